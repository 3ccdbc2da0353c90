// The runtime under hostile bundles: unsafe archives, missing or forged signatures, unknown builtins.
import { execFile } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { Header } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireOpa } from '../engine/toolchain/opa.js';
import { readArchive, writeArchive } from '../runtime/archive.js';
import { openBundle } from '../runtime/bundle.js';
import { InputSelection } from '../runtime/input-selection.js';
import { importedMemoryMinimum, Policy } from '../runtime/policy.js';
import { signBundle, type TrustPolicy } from '../runtime/signature.js';

const execFileP = promisify(execFile);

// A raw tar.gz with entries exactly as given (writeArchive would refuse the hostile ones).
function rawTar(entries: Array<{ path: string; body?: string; type?: 'File' | 'SymbolicLink' | 'Directory'; linkpath?: string }>): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const body = Buffer.from(e.body ?? '');
    const block = Buffer.alloc(512);
    new Header({ path: e.path, mode: 0o644, size: e.type === 'File' || !e.type ? body.length : 0, mtime: new Date(0), type: e.type ?? 'File', ...(e.linkpath ? { linkpath: e.linkpath } : {}) }).encode(block, 0);
    blocks.push(block);
    if (!e.type || e.type === 'File') blocks.push(body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}

describe('bundle archives', () => {
  it('refuses entries that climb out of the bundle', async () => {
    await expect(readArchive(rawTar([{ path: '../../etc/passwd', body: 'x' }]))).rejects.toThrow(/unsafe path/);
    await expect(readArchive(rawTar([{ path: 'a/./../b', body: 'x' }]))).rejects.toThrow(/unsafe path/);
  });
  it('refuses links and duplicates', async () => {
    await expect(readArchive(rawTar([{ path: 'data.json', type: 'SymbolicLink', linkpath: '/etc/passwd' }]))).rejects.toThrow(/only regular files/);
    await expect(readArchive(rawTar([{ path: 'data.json', body: '{}' }, { path: '/data.json', body: '{}' }]))).rejects.toThrow(/twice/);
  });
  it('refuses what is not gzip and what is too large', async () => {
    await expect(readArchive(Buffer.from('not a bundle'))).rejects.toThrow(/not a valid gzip/);
    const big = rawTar([{ path: 'data.json', body: 'x'.repeat(4096) }]);
    await expect(readArchive(big, { maxFiles: 10, maxTotalBytes: 1024 })).rejects.toThrow(/larger than 1024 bytes/);
  });
});

describe('bundle signatures and policies', () => {
  let dir: string;
  let wasm: Buffer;
  let hostOnlyWasm: Buffer;
  let key: KeyObject;
  let pub: KeyObject;
  let trust: TrustPolicy;
  const files = () =>
    new Map<string, Uint8Array>([
      ['.manifest', Buffer.from(JSON.stringify({ revision: 'r1', roots: ['t'], wasm: [{ entrypoint: 't/allow', module: '/policy.wasm' }] }))],
      ['data.json', Buffer.from(JSON.stringify({ t: { who: 'alice' } }))],
      ['policy.wasm', wasm],
    ]);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'warden-rt-'));
    const opa = await requireOpa();
    writeFileSync(join(dir, 'p.rego'), 'package t\nimport rego.v1\nallow if input.user == data.t.who\n');
    await execFileP(opa, ['build', '-t', 'wasm', '-e', 't/allow', '-o', join(dir, 'p.tar.gz'), join(dir, 'p.rego')]);
    wasm = (await readArchive(readFileSync(join(dir, 'p.tar.gz')))).get('policy.wasm')!;
    writeFileSync(join(dir, 'h.rego'), 'package h\nimport rego.v1\nallow if count(net.lookup_ip_addr(input.host)) > 0\n');
    await execFileP(opa, ['build', '-t', 'wasm', '-e', 'h/allow', '-o', join(dir, 'h.tar.gz'), join(dir, 'h.rego')]);
    hostOnlyWasm = (await readArchive(readFileSync(join(dir, 'h.tar.gz')))).get('policy.wasm')!;
    ({ privateKey: key, publicKey: pub } = generateKeyPairSync('ec', { namedCurve: 'P-256' }));
    trust = { keys: [{ id: 'k1', algorithm: 'ES256', key: pub }] };
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function signed(f = files(), signer: KeyObject = key, extra: { keyId?: string; scope?: string } = {}): Promise<Buffer> {
    f.set('.signatures.json', await signBundle(f, { key: signer, algorithm: 'ES256', keyId: extra.keyId ?? 'k1', ...(extra.scope ? { scope: extra.scope } : {}) }));
    return writeArchive(f);
  }

  it('loads a signed bundle and evaluates it', async () => {
    const b = await openBundle(await signed(), trust);
    const p = await Policy.load(b);
    expect(p.evaluate('t/allow', { user: 'alice' })).toBe(true);
    expect(p.evaluate('t/allow', { user: 'bob' })).toBeUndefined();
  });

  it('refuses an unsigned bundle when a key is configured', async () => {
    await expect(openBundle(writeArchive(files()), trust)).rejects.toThrow(/not signed/);
  });

  it('refuses a signature from another key, an unknown key id, and alg none', async () => {
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    await expect(openBundle(await signed(files(), other), trust)).rejects.toThrow(/signature does not match/);
    await expect(openBundle(await signed(files(), key, { keyId: 'k2' }), trust)).rejects.toThrow(/key id "k2"/);
    const f = files();
    const payload = Buffer.from(JSON.stringify({ files: [] })).toString('base64url');
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', kid: 'k1' })).toString('base64url')}.${payload}.`;
    f.set('.signatures.json', Buffer.from(JSON.stringify({ signatures: [none] })));
    await expect(openBundle(writeArchive(f), trust)).rejects.toThrow(/uses none but key k1 is configured for ES256/);
  });

  it('refuses a file added after signing, a file removed, and a scope mismatch', async () => {
    const f = await readArchive(await signed());
    f.set('extra.rego', Buffer.from('package t\n'));
    await expect(openBundle(writeArchive(f), trust)).rejects.toThrow(/extra\.rego is not covered/);
    const g = await readArchive(await signed());
    g.delete('data.json');
    await expect(openBundle(writeArchive(g), trust)).rejects.toThrow(/missing: data\.json/);
    await expect(openBundle(await signed(files(), key, { scope: 'prod' }), trust)).rejects.toThrow(/scope "prod" does not match/);
  });

  it('reads the memory a module imports, so policies with large data load', () => {
    const min = importedMemoryMinimum(wasm)!;
    const module = new WebAssembly.Module(new Uint8Array(wasm));
    const env = (pages: number) => ({
      env: {
        memory: new WebAssembly.Memory({ initial: pages }),
        ...Object.fromEntries(['opa_abort', 'opa_println', 'opa_builtin0', 'opa_builtin1', 'opa_builtin2', 'opa_builtin3', 'opa_builtin4'].map((n) => [n, () => 0])),
      },
    });
    expect(min).toBeGreaterThanOrEqual(1);
    expect(() => new WebAssembly.Instance(module, env(min))).not.toThrow();
    expect(() => new WebAssembly.Instance(module, env(min - 1))).toThrow(/smaller than initial/);
  });

  it('starts the memory large enough for data segments that reach past the declared minimum', () => {
    // A module importing 1 page whose data segment is placed at 70,000 (OPA 1.22 emits such modules
    // for large specs): instantiating with the declared minimum fails.
    const segment = [0x00, 0x41, 0xf0, 0xa2, 0x04, 0x0b, 0x04, 1, 2, 3, 4]; // active, i32.const 70000, end, 4 bytes
    const imports = [0x01, 0x03, ...Buffer.from('env'), 0x06, ...Buffer.from('memory'), 0x02, 0x00, 0x01];
    const module = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0, 0, 0, 0x02, imports.length, ...imports, 0x0b, segment.length + 1, 0x01, ...segment]);
    const instantiate = (pages: number) => new WebAssembly.Instance(new WebAssembly.Module(module), { env: { memory: new WebAssembly.Memory({ initial: pages }) } });
    expect(() => instantiate(1)).toThrow(/data segment/);
    expect(importedMemoryMinimum(module)).toBe(2);
    expect(() => instantiate(importedMemoryMinimum(module)!)).not.toThrow();
  });

  it('refuses a module of an older OPA WASM ABI, or one lacking the exports Warden calls, saying what it lacks', async () => {
    // A module exporting only the ABI version globals (i32 constants).
    const abiModule = (minor: number) => {
      const name = (n: string) => [n.length, ...Buffer.from(n)];
      const globals = [0x02, 0x7f, 0x00, 0x41, 0x01, 0x0b, 0x7f, 0x00, 0x41, minor, 0x0b];
      const exports = [0x02, ...name('opa_wasm_abi_version'), 0x03, 0x00, ...name('opa_wasm_abi_minor_version'), 0x03, 0x01];
      // One function `() -> ()` with an empty body, so that there is something to meter.
      const [types, funcs, code] = [[0x01, 0x60, 0x00, 0x00], [0x01, 0x00], [0x01, 0x02, 0x00, 0x0b]];
      return new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0, 0, 0, 0x01, types.length, ...types, 0x03, funcs.length, ...funcs, 0x06, globals.length, ...globals, 0x07, exports.length, ...exports, 0x0a, code.length, ...code]);
    };
    const load = (wasm: Uint8Array) => Policy.load({ manifest: { revision: 'abi' } as never, revision: 'abi', data: {}, wasm, files: new Map(), inputs: InputSelection.fromManifest({}) });
    await expect(load(abiModule(1))).rejects.toThrow(/unsupported OPA WASM ABI version 1\.1: Warden reads ABI 1\.2 or later/);
    await expect(load(abiModule(3))).rejects.toThrow(/lacks the ABI exports builtins, entrypoints, opa_malloc, .*opa_eval_ctx_new, .*, eval$/);
  });

  it('refuses to load a policy that needs a builtin the runtime does not provide', async () => {
    const f = files();
    f.set('policy.wasm', hostOnlyWasm);
    const b = await openBundle(await signed(f), trust);
    await expect(Policy.load(b)).rejects.toThrow(/builtins this runtime does not provide: net\.lookup_ip_addr/);
  });

  it('reads an entrypoint that gives a set, then plain JSON, then a set again, each as OPA prints it', async () => {
    // Once an entrypoint gave a set, its results are read exactly from then on (no failing JSON.parse):
    // arrays keep their order, sets come sorted, integers beyond 2^53 keep their digits either way.
    writeFileSync(join(dir, 'v.rego'), 'package v\nimport rego.v1\nout := {n | some n in input.names} if input.set\nout := input.names if not input.set\n');
    await execFileP(await requireOpa(), ['build', '-t', 'wasm', '-e', 'v/out', '-o', join(dir, 'v.tar.gz'), join(dir, 'v.rego')]);
    const f = new Map<string, Uint8Array>([
      ['.manifest', Buffer.from(JSON.stringify({ revision: 'r1', roots: ['v'], wasm: [{ entrypoint: 'v/out', module: '/policy.wasm' }] }))],
      ['data.json', Buffer.from('{}')],
      ['policy.wasm', (await readArchive(readFileSync(join(dir, 'v.tar.gz')))).get('policy.wasm')!],
    ]);
    const p = await Policy.load(await openBundle(await signed(f), trust));
    expect(p.evaluate('v/out', { set: false, names: ['b', 'a'] })).toEqual(['b', 'a']);
    expect(p.evaluate('v/out', { set: true, names: ['b', 'a', 'b', 'c'] })).toEqual(['a', 'b', 'c']);
    expect(p.evaluate('v/out', { set: false, names: ['b', 'a'] })).toEqual(['b', 'a']);
    expect(p.evaluate('v/out', { set: true, names: [] })).toEqual([]);
    expect(p.evaluate('v/out', { set: false, names: [{ k: 'v' }, [1.5]] })).toEqual([{ k: 'v' }, [1.5]]);
    expect(p.evaluate('v/out', { set: false, names: [12345678901234567890n, 'b', 'a'] })).toEqual([12345678901234567890n, 'b', 'a']);
    expect(p.evaluate('v/out', { set: true, names: ['z', 'y'] })).toEqual(['y', 'z']);
  });
});
