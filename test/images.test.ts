// The Dockerfile against the sources (no image can be built here): every folder it copies exists, the
// build stage compiles what the images copy out of dist/, the entrypoints run compiled code, and the
// slim sidecar holds exactly its import graph — no compiler, no engine, no webhook module — with exactly
// the npm packages that graph imports. The sidecar's file set is then run as it would be in the image.
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build } from '../bin/build.js';
import { importClosure } from './support/import-graph.js';

const run = promisify(execFile);
const root = resolve(import.meta.dirname, '..');
const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');

/** The stages of the Dockerfile: name → its instructions (continuation lines joined). */
function stages(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of text.replace(/\\\n/g, ' ').split('\n')) {
    const from = /^FROM\s+\S+(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from) out.set(from[1] ?? `stage${out.size}`, (current = []));
    else if (current && line.trim() && !line.startsWith('#')) current.push(line.trim());
  }
  return out;
}

const copies = (stage: string[]) =>
  stage
    .filter((l) => l.startsWith('COPY '))
    .map((l) => {
      const parts = l.split(/\s+/).slice(1);
      const from = parts[0]!.startsWith('--from=') ? parts.shift()!.slice('--from='.length) : undefined;
      return { from, sources: parts.slice(0, -1), dest: parts.at(-1)! };
    });

// The sidecar process: `warden proxy` — cli/main.ts, loading the proxy subcommand only.
const sidecarClosure = () =>
  importClosure(root, ['cli/main.ts'], (from, spec, dynamic) => from === 'cli/main.ts' && dynamic && !spec.endsWith('proxy-plugin/command.js'));

const all = stages(dockerfile);
const sidecar = all.get('sidecar')!;

describe('Dockerfile', () => {
  it('has a sidecar and a control-plane target', () => {
    expect([...all.keys()]).toEqual(expect.arrayContaining(['opa', 'build', 'deps', 'sidecar-deps', 'sidecar', 'control-plane']));
  });

  it('copies only files that exist, and compiles in the build stage every folder the images take from dist/', () => {
    for (const [name, stage] of all) {
      for (const c of copies(stage).filter((x) => !x.from)) for (const s of c.sources) expect(existsSync(join(root, s)), `${name}: COPY ${s}`).toBe(true);
    }
    const compiled = copies(all.get('build')!).filter((c) => !c.from).flatMap((c) => c.sources);
    for (const c of [...copies(sidecar), ...copies(all.get('control-plane')!)].filter((x) => x.from === 'build')) {
      for (const s of c.sources) {
        // dist/sidecar.js is the bundle of cli/sidecar.ts (bin/build.js).
        const folder = s === '/app/dist/sidecar.js' ? 'cli' : s.replace(/^\/app\/dist\/?/, '').split('/')[0];
        if (folder) expect(compiled, `${s} comes from ${folder}/`).toContain(folder);
      }
    }
    expect(dockerfile).toMatch(/^RUN node bin\/build\.js --force$/m);
  });

  it('runs compiled code: both entrypoints start bin/warden.js, which imports dist/ (and no tsx)', () => {
    expect(sidecar.find((l) => l.startsWith('ENTRYPOINT'))).toBe('ENTRYPOINT ["node", "bin/warden.js"]');
    expect(all.get('control-plane')!.find((l) => l.startsWith('ENTRYPOINT'))).toContain('"node", "bin/warden.js"');
    const bin = readFileSync(join(root, 'bin/warden.js'), 'utf8');
    expect(bin).toContain("await import('../dist/cli/main.js')");
    expect(bin).not.toMatch(/['"]tsx[/'"]/);
  });

  it('the sidecar holds its import graph and nothing of the compiler, the engine or the webhook', () => {
    const closure = sidecarClosure();
    // What the sidecar stage copies out of dist/, as source paths.
    const copied = copies(sidecar)
      .filter((c) => c.from === 'build')
      .flatMap((c) => c.sources.map((s) => s.replace(/^\/app\/dist\//, '').replace(/\.js$/, '.ts')));
    const inImage = (m: string) => copied.some((c) => m === c || m.startsWith(`${c}/`));
    expect(closure.modules.filter((m) => !inImage(m))).toEqual([]);
    expect(closure.modules.filter((m) => /^(engine|admission)\//.test(m))).toEqual([]);
    expect(copied.filter((c) => /^(engine|admission)/.test(c))).toEqual([]);
    // …and the scanner does see the compiler when it is there (it can fail).
    expect(importClosure(root, ['cli/main.ts']).modules).toContain('engine/compiler/build.ts');
    // No OPA, no git in the sidecar stage; the one Debian package it installs is iptables (`warden init-net`).
    expect(sidecar.filter((l) => /opa|git/.test(l) && !l.startsWith('CMD'))).toEqual([]);
    const installs = sidecar.flatMap((l) => [...l.matchAll(/apt-get install((?:\s+[-\w.]+)+)/g)].flatMap((m) => m[1]!.trim().split(/\s+/).filter((w) => !w.startsWith('-'))));
    expect(installs).toEqual(['iptables']);
  });

  it('installs exactly the npm packages the sidecar imports', () => {
    const arg = /^ARG SIDECAR_PACKAGES="([^"]*)"$/m.exec(dockerfile)?.[1]?.split(/\s+/).sort();
    expect(arg).toEqual(sidecarClosure().packages);
  });

  describe('the sidecar file set, run as in the image', () => {
    let image: string;
    beforeAll(async () => {
      image = mkdtempSync(join(tmpdir(), `warden-sidecar-image-${process.pid}-`));
      const dist = join(image, 'build-dist');
      await build({ out: dist });
      for (const c of copies(sidecar)) {
        for (const s of c.sources) {
          const from = c.from === 'build' ? join(dist, s.replace(/^\/app\/dist\//, '')) : c.from ? undefined : join(root, s);
          if (!from) continue; // node_modules: linked below
          const dest = c.dest.endsWith('/') ? join(image, c.dest.replace(/^\.\//, ''), s.split('/').pop()!) : join(image, c.dest.replace(/^\.\//, ''));
          mkdirSync(join(dest, '..'), { recursive: true });
          cpSync(from, dest, { recursive: true });
        }
      }
      rmSync(dist, { recursive: true, force: true });
      symlinkSync(join(root, 'node_modules'), join(image, 'node_modules'));
    });
    afterAll(() => rmSync(image, { recursive: true, force: true }));

    it('answers warden proxy --help, and its full help lists only the commands the image holds', async () => {
      expect(existsSync(join(image, 'dist/engine'))).toBe(false);
      expect(existsSync(join(image, 'dist/sidecar.js')), 'the one-file sidecar bundle bin/warden.js starts proxy from').toBe(true);
      const proxy = await run(process.execPath, ['bin/warden.js', 'proxy', '--help'], { cwd: image });
      expect(proxy.stdout).toContain('--bundle-url');
      const help = await run(process.execPath, ['bin/warden.js', '--help'], { cwd: image });
      expect(help.stdout).toMatch(/\bproxy\b/);
      expect(help.stdout).toMatch(/\bext-authz\b/);
      expect(help.stdout).not.toMatch(/^\s+build\b/m);
    });
  });
});
