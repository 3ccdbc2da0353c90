// `warden serve` as the engine service, wired by its flags only: over mTLS it takes decision events
// from `warden proxy` (which presents its SVID via --engine-cert/--engine-key/--engine-ca) and answers
// `warden audit query --engine`; over plain HTTP it serves bundles and refuses to offer /logs.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeServer, copyPolicies, startUpstream, type PolicyCopy, type Upstream } from './support/proxy-fixtures.js';
import { createCa, rotate, serialOf, servedSerial } from './support/tls.js';
import { until } from './support/until.js';

// Wait until a process's output says `what` (bounded; fails showing that output).
const said = (what: RegExp, output: () => string) => until(() => `${what} in:\n${output()}`, () => (what.test(output()) ? true : undefined));

const execFileP = promisify(execFile);
const warden = resolve('bin/warden.js');
const children: ChildProcess[] = [];
const STOREFRONT = 'spiffe://cluster.local/ns/shop/sa/storefront';
const AUDITOR = 'spiffe://cluster.local/ns/warden/sa/auditor';

// Start a CLI command and resolve with the first output line matching `ready`.
function start(args: string[], ready: RegExp, cwd?: string): Promise<{ match: RegExpMatchArray; output: () => string }> {
  const child = spawn(process.execPath, [warden, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...(cwd ? { cwd } : {}) });
  children.push(child);
  let out = '';
  return new Promise((resolvePromise, reject) => {
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = ready.exec(out);
      if (m) resolvePromise({ match: m, output: () => out });
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`warden ${args[0]} exited with ${code}: ${out}`)));
  });
}

let policies: PolicyCopy;
let upstream: Upstream;
let dir: string;
const pem = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

beforeAll(async () => {
  policies = await copyPolicies(['orders']);
  upstream = await startUpstream();
  dir = mkdtempSync(join(tmpdir(), 'warden-serve-cli-'));
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  await Promise.all(children.map((c) => (c.exitCode !== null ? undefined : new Promise((r) => c.once('exit', r)))));
  if (upstream) await closeServer(upstream.server);
});

describe('warden serve', () => {
  it('over plain HTTP serves bundles but does not offer POST /logs, and says why at startup', async () => {
    const { match, output } = await start(['serve', '--bundles', policies.out, '--listen', '127.0.0.1:0'], /on (http:\/\/[\d.]+:\d+)[^\n]*\n/, dir);
    expect(output()).toMatch(/POST \/logs and \/audit\/\* are not mounted .*unauthenticated log endpoint would let anyone write the audit log/);
    expect((await fetch(`${match[1]}/bundles/orders`)).status).toBe(200);
    expect((await fetch(`${match[1]}/logs`, { method: 'POST', body: '[]' })).status).toBe(404);
    expect(existsSync(join(dir, '.warden', 'audit.db'))).toBe(false);
  });

  it('over mTLS stores what warden proxy ships as its SVID and answers warden audit query --engine', async () => {
    const ca = await createCa('Cluster CA');
    const server = await ca.server('127.0.0.1');
    const orders = await ca.client('spiffe://cluster.local/ns/shop/sa/orders');
    const auditor = await ca.client(AUDITOR);
    const caFile = pem('ca.pem', ca.cert);
    const store = `sqlite:${join(dir, 'audit.db')}`;
    const key = join(dir, 'checkpoint.jwk');
    const serve = await start(
      ['serve', '--bundles', policies.out, '--listen', '127.0.0.1:0', '--tls-cert', pem('engine.pem', server.cert), '--tls-key', pem('engine.key', server.key), '--client-ca', caFile,
        '--store', store, '--reader', AUDITOR, '--checkpoint-key', key, '--checkpoint-every', '1s'],
      /on (https:\/\/[\d.]+:\d+); audit log/,
    );
    const engine = serve.match[1]!;
    expect(existsSync(key)).toBe(true);
    const proxy = await start(
      ['proxy', '--workload', 'orders', '--upstream', `http://127.0.0.1:${upstream.port}`, '--listen', '127.0.0.1:0',
        '--engine', engine, '--engine-ca', caFile, '--engine-cert', pem('orders.pem', orders.cert), '--engine-key', pem('orders.key', orders.key),
        '--verification-key', join(policies.out, 'verification-key.pem'), '--spill', join(dir, 'spill.ndjson'),
        '--trust-header', 'x-forwarded-client-cert', '--trust-peer', '127.0.0.1', '--cert-reload', '1'],
      /on ([\d.]+:\d+) →.*\(bundle (?!none)/,
    );
    const r = await fetch(`http://${proxy.match[1]}/orders/3`, { headers: { 'x-forwarded-client-cert': `URI=${STOREFRONT}` } });
    expect(r.status).toBe(200);
    const id = r.headers.get('x-warden-decision-id')!;

    const stored = async (decisionId: string) => {
      const query = ['audit', 'query', '--engine', engine, '--engine-ca', caFile, '--engine-cert', pem('auditor.pem', auditor.cert), '--engine-key', pem('auditor.key', auditor.key), '--decision-id', decisionId, '-o', 'json'];
      const found = await until(
        () => `decision ${decisionId} to reach the engine: ${serve.output()}`,
        async () => {
          const events = JSON.parse((await execFileP(process.execPath, [warden, ...query])).stdout) as Array<{ decision_id: string; outcome: string; labels: { workload: string } }>;
          return events.length > 0 ? events : undefined;
        },
      );
      return found.map((e) => [e.decision_id, e.outcome, e.labels.workload]);
    };
    expect(await stored(id)).toEqual([[id, 'allow', 'orders']]);

    // The workload's SVID is rotated (same SPIFFE ID, new certificate): the plugin reloads it without a
    // restart, and the engine keeps taking its decisions. (That the next request presents the new
    // certificate is shown by runtime/engine-connection.test.ts, which reads the serial the server sees.)
    const renewed = await ca.client('spiffe://cluster.local/ns/shop/sa/orders');
    rotate(dir, { 'orders.pem': renewed.cert, 'orders.key': renewed.key });
    await said(/engine client certificate reloaded/, proxy.output);
    const after = await fetch(`http://${proxy.match[1]}/orders/4`, { headers: { 'x-forwarded-client-cert': `URI=${STOREFRONT}` } });
    const afterId = after.headers.get('x-warden-decision-id')!;
    expect(await stored(afterId)).toEqual([[afterId, 'allow', 'orders']]);
  });

  it('serves a rotated certificate without a restart, and keeps the old one while the new pair does not match', async () => {
    const ca = await createCa('Rotating CA');
    const [first, second] = [await ca.server('127.0.0.1'), await ca.server('127.0.0.1')];
    const certs = mkdtempSync(join(dir, 'rotate-'));
    rotate(certs, { 'tls.crt': first.cert, 'tls.key': first.key });
    const serve = await start(['serve', '--bundles', policies.out, '--listen', '127.0.0.1:0', '--tls-cert', join(certs, 'tls.crt'), '--tls-key', join(certs, 'tls.key'), '--cert-reload', '1'], /on (https:\/\/[\d.]+:\d+)/, dir);
    const engine = serve.match[1]!;
    expect(await servedSerial(engine, ca.cert)).toBe(serialOf(first.cert));
    // A certificate whose key is not there yet: refused, the old pair stays.
    rotate(certs, { 'tls.crt': second.cert });
    await said(/do not form a usable TLS context/, serve.output);
    expect(await servedSerial(engine, ca.cert)).toBe(serialOf(first.cert));
    rotate(certs, { 'tls.key': second.key });
    await said(/engine serving certificate reloaded/, serve.output);
    expect(await servedSerial(engine, ca.cert)).toBe(serialOf(second.cert));
  });

  it('refuses half a TLS configuration with a message naming the flags', async () => {
    await expect(start(['serve', '--bundles', policies.out, '--listen', '127.0.0.1:0', '--tls-cert', warden], /never/)).rejects.toThrow(/--tls-cert and --tls-key go together/);
    await expect(start(['serve', '--bundles', policies.out, '--listen', '127.0.0.1:0', '--reader', 'frontend'], /never/)).rejects.toThrow(/--reader "frontend" is not a SPIFFE ID/);
  });

  it('refuses half an OIDC console configuration, a claim that is not name=value, and keys fetched in the clear', async () => {
    const serve = (...more: string[]) => start(['serve', '--bundles', policies.out, '--listen', '127.0.0.1:0', ...more], /never/);
    await expect(serve('--console-oidc-issuer', 'https://login.example.com')).rejects.toThrow(/needs --console-oidc-issuer, --console-oidc-jwks and --console-oidc-claim together/);
    await expect(serve('--console-oidc-issuer', 'https://login.example.com', '--console-oidc-jwks', 'https://login.example.com/keys', '--console-oidc-claim', 'groups')).rejects.toThrow(/--console-oidc-claim: "groups" is not name=value/);
    await expect(serve('--console-oidc-issuer', 'https://login.example.com', '--console-oidc-jwks', 'http://login.example.com/keys', '--console-oidc-claim', 'groups=auditors')).rejects.toThrow(/plain http is refused/);
  });
});
