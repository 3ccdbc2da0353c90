// `warden serve` and `warden proxy` as real processes, wired by their flags only.
import type { ChildProcess } from 'node:child_process';
import http, { type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCertificateAuthority } from '../runtime/certificate-authority.js';
import { rotate, serialOf, servedSerial } from './support/tls.js';
import { refusedSoon, startWarden, stopWardens } from './support/warden-process.js';
import { closeServer, copyPolicies, startUpstream, type Upstream } from './support/proxy-fixtures.js';

// Any existing file that is not a PEM key, for the refusal below.
const notAKey = resolve('bin/warden.js');
const children: ChildProcess[] = [];
let upstream: Upstream;
let proxyUrl: string;
let adminUrl: string;
let proxyArgs: string[];
let scratch: string;

const start = (args: string[], ready: RegExp) => startWarden(args, ready, children);

beforeAll(async () => {
  const policies = await copyPolicies(['orders']);
  upstream = await startUpstream();
  const serve = await start(['serve', '--bundles', policies.out, '--listen', '127.0.0.1:0'], /on (http:\/\/[\d.]+:\d+)/);
  scratch = policies.dir;
  proxyArgs = ['proxy', '--workload', 'orders', '--upstream', `http://127.0.0.1:${upstream.port}`, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0',
    '--engine', serve[1]!, '--verification-key', join(policies.out, 'verification-key.pem'), '--trust-header', 'x-forwarded-client-cert', '--trust-peer', '127.0.0.1'];
  const proxy = await start([...proxyArgs, '--spill', join(scratch, 'spill.ndjson')], /on ([\d.]+:\d+) \(admin ([\d.]+:\d+)\)/);
  proxyUrl = `http://${proxy[1]}`;
  adminUrl = `http://${proxy[2]}`;
});

afterAll(async () => {
  await stopWardens(children);
  if (upstream) await closeServer(upstream.server);
});

describe('warden serve + warden proxy', () => {
  it('enforces the bundle pulled from warden serve, with readiness and metrics on the admin port', async () => {
    expect((await fetch(`${adminUrl}/readyz`)).status).toBe(200);
    const denied = await fetch(`${proxyUrl}/orders`);
    expect(denied.status).toBe(403);
    const allowed = await fetch(`${proxyUrl}/orders`, { headers: { 'x-forwarded-client-cert': 'URI=spiffe://cluster.local/ns/shop/sa/storefront' } });
    expect(allowed.status).toBe(200);
    expect(allowed.headers.get('x-warden-decision-id')).toBeTruthy();
    const metrics = await (await fetch(`${adminUrl}/metrics`)).text();
    expect(metrics).toContain('warden_decisions_total{outcome="deny",source="proxy"} 1');
    expect(metrics).toContain('warden_decisions_total{outcome="allow",source="proxy"} 1');
    expect(metrics).toContain('warden_policy_results_reused_total 0');
    // The same call again: the policy reads nothing that changed, so its result is reused.
    expect((await fetch(`${proxyUrl}/orders`, { headers: { 'x-forwarded-client-cert': 'URI=spiffe://cluster.local/ns/shop/sa/storefront' } })).status).toBe(200);
    expect(await (await fetch(`${adminUrl}/metrics`)).text()).toContain('warden_policy_results_reused_total 1');
    // The denied call again: denied from the reused result, and the app never sees it.
    const seen = upstream.seen.length;
    expect((await fetch(`${proxyUrl}/orders`)).status).toBe(403);
    expect(upstream.seen.length).toBe(seen);
    expect(await (await fetch(`${adminUrl}/metrics`)).text()).toContain('warden_policy_results_reused_total 2');
  });

  // One denied and one allowed call through a new `warden proxy <args>`: the outcomes of its local decision lines.
  async function decisionLines(args: string[], spill: string): Promise<string[]> {
    const proxy = await start([...args, '--spill', join(scratch, spill)], /on ([\d.]+:\d+) \(admin/);
    const child = children.at(-1)!;
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const denied = await fetch(`http://${proxy[1]}/orders`);
    const allowed = await fetch(`http://${proxy[1]}/orders`, { headers: { 'x-forwarded-client-cert': 'URI=spiffe://cluster.local/ns/shop/sa/storefront' } });
    expect([denied.status, allowed.status]).toEqual([403, 200]);
    // The lines are buffered until exit.
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
    const ids = new Map([[denied.headers.get('x-warden-decision-id'), 'denied'], [allowed.headers.get('x-warden-decision-id'), 'allowed']]);
    const lines = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string; decision_id?: string; outcome?: string });
    return lines.filter((l) => l.msg === 'decision').map((l) => `${ids.get(l.decision_id ?? null) ?? 'unknown id'}: ${l.outcome}`);
  }

  it('with --decision-lines denied writes a local line for the denial only', async () => {
    expect(await decisionLines([...proxyArgs, '--decision-lines', 'denied'], 'spill-denied.ndjson')).toEqual(['denied: deny']);
  });

  it('by default writes a line for the denial only when events are shipped to --engine, and for every call without an engine', async () => {
    // OPA's default too: decision logs go to the service, the console gets none. The allowed call's event is still shipped.
    expect(await decisionLines(proxyArgs, 'spill-default.ndjson')).toEqual(['denied: deny']);
    expect(await decisionLines([...proxyArgs, '--decision-lines', 'all'], 'spill-all.ndjson')).toEqual(['denied: deny', 'allowed: allow']);
    // Without an engine the lines are the only record: every decision gets one.
    const local = proxyArgs.filter((_, i) => proxyArgs[i] !== '--engine' && proxyArgs[i - 1] !== '--engine');
    expect(await decisionLines([...local, '--bundle', join(scratch, 'bundles', 'orders.tar.gz')], 'spill-local.ndjson')).toEqual(['denied: deny', 'allowed: allow']);
  });

  it('serves a rotated certificate from the next connection on, without a restart', async () => {
    const ca = await createCertificateAuthority('rotation-test');
    const issue = () => ca.issue({ kind: 'server', commonName: 'localhost', ipAddresses: ['127.0.0.1'] });
    const [first, second] = [await issue(), await issue()];
    rotate(scratch, { 'tls.crt': first.certPem, 'tls.key': first.keyPem });
    const proxy = await start([...proxyArgs, '--spill', join(scratch, 'spill-tls.ndjson'), '--tls-cert', join(scratch, 'tls.crt'), '--tls-key', join(scratch, 'tls.key'), '--cert-reload', '1'], /on ([\d.]+:\d+) \(admin/);
    const child = children.at(-1)!;
    let out = '';
    const reloaded = new Promise<void>((resolve) =>
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('serving certificate reloaded')) resolve();
      }),
    );
    expect(await servedSerial(proxy[1]!, ca.certPem)).toBe(serialOf(first.certPem));
    // A Secret volume swaps both files at once; here they land one after the other. A read between the
    // two sees a certificate without its key: the old pair is kept and the new one taken on a later read.
    rotate(scratch, { 'tls.crt': second.certPem, 'tls.key': second.keyPem });
    await reloaded;
    expect(await servedSerial(proxy[1]!, ca.certPem)).toBe(serialOf(second.certPem));
    child.kill('SIGTERM');
  });

  it('refuses --decision-lines that is not a choice, or that would leave decisions unrecorded', async () => {
    const base = ['proxy', '--workload', 'orders', '--upstream', 'http://127.0.0.1:1', '--verification-key', notAKey, '--bundle', notAKey];
    await expect(start([...base, '--decision-lines', 'some'], /never/)).rejects.toThrow(/--decision-lines "some" is not one of all, denied, none/);
    await expect(start([...base, '--decision-lines', 'none'], /never/)).rejects.toThrow(/--decision-lines none needs --engine: without one the local lines are the only record of decisions/);
  });

  it('refuses --keep-header for a field of Warden\'s own, and a name that is not a field name', async () => {
    const base = ['proxy', '--workload', 'orders', '--upstream', 'http://127.0.0.1:1', '--verification-key', notAKey, '--bundle', notAKey];
    await expect(start([...base, '--keep-header', 'X-Warden-Principal'], /never/)).rejects.toThrow(/--keep-header X-Warden-Principal: x-warden-\* fields are Warden's own/);
    await expect(start([...base, '--remove-header', 'bad name'], /never/)).rejects.toThrow(/"bad name" is not a header field name/);
  });

  it('on SIGTERM stops accepting, answers the call in flight, cuts a stream still open after --drain-seconds and exits; a second signal cuts at once', async () => {
    const caller = { headers: { 'x-forwarded-client-cert': 'URI=spiffe://cluster.local/ns/shop/sa/storefront' } };
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let arrived!: () => void;
    const inFlightArrived = new Promise<void>((r) => (arrived = r));
    const streams: ServerResponse[] = [];
    // /orders/1 is answered when the test says so; any other path opens an event stream that never ends.
    const app = http.createServer((req, res) => {
      if (req.url === '/orders/1') return void (arrived(), released.then(() => res.end('done')));
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: open\n\n');
      streams.push(res);
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    const base = proxyArgs.map((a, i) => (proxyArgs[i - 1] === '--upstream' ? `http://127.0.0.1:${(app.address() as AddressInfo).port}` : a));
    // The body of a stream through the proxy, read until the proxy ends or cuts it.
    const readAll = async (res: Response) => {
      let text = '';
      const reader = res.body!.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return { text, cut: false };
          text += Buffer.from(value).toString();
        }
      } catch {
        return { text, cut: true };
      }
    };
    try {
      for (const drain of ['1', '600']) {
        const proxy = await start([...base, '--drain-seconds', drain, '--spill', join(scratch, `spill-drain-${drain}.ndjson`)], /on [\d.]+:(\d+) \(admin/);
        const child = children.at(-1)!;
        const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
        const port = Number(proxy[1]);
        const inFlight = drain === '1' ? fetch(`http://127.0.0.1:${port}/orders/1`, caller) : undefined;
        if (inFlight) await inFlightArrived;
        const stream = await fetch(`http://127.0.0.1:${port}/orders/2`, caller);
        expect(stream.status).toBe(200);
        const body = readAll(stream);
        child.kill('SIGTERM');
        expect(await refusedSoon(port)).toBe(true);
        if (inFlight) {
          // Begun before the signal: answered in full while the proxy drains.
          release();
          const answer = await inFlight;
          expect([answer.status, await answer.text()]).toEqual([200, 'done']);
        } else {
          // --drain-seconds 600: only a second signal ends the stream before then.
          expect(child.exitCode).toBe(null);
          child.kill('SIGTERM');
        }
        const read = await body;
        expect(read).toEqual({ text: 'data: open\n\n', cut: true });
        expect(await exited).toBe(0);
      }
      // Every stream the app opened was cut by the proxy, not ended by the app.
      expect(streams.map((r) => r.writableEnded)).toEqual([false, false]);
    } finally {
      app.closeAllConnections();
      await new Promise<void>((r) => app.close(() => r()));
    }
  });

  it('refuses to start without a bundle source, saying what to pass', async () => {
    await expect(start(['proxy', '--workload', 'orders', '--upstream', 'http://127.0.0.1:1', '--verification-key', notAKey], /never/)).rejects.toThrow(/give --engine <url> .* or --bundle <file>/);
  });

  it('serves one listener per --inbound, each forwarding to its own app port (how the injected sidecar serves every port)', async () => {
    const second = await startUpstream();
    try {
      const base = proxyArgs.filter((_, i) => !['--upstream', '--listen'].includes(proxyArgs[i]!) && !['--upstream', '--listen'].includes(proxyArgs[i - 1]!));
      const proxy = await start([...base, '--spill', join(scratch, 'spill-inbound.ndjson'), '--inbound', `127.0.0.1:0=http://127.0.0.1:${upstream.port}`, '--inbound', `127.0.0.1:0=http://127.0.0.1:${second.port}`], /on ([\d.]+:\d+), ([\d.]+:\d+) \(admin/);
      const caller = { headers: { 'x-forwarded-client-cert': 'URI=spiffe://cluster.local/ns/shop/sa/storefront' } };
      const [before1, before2] = [upstream.seen.length, second.seen.length];
      expect((await fetch(`http://${proxy[1]}/orders`, caller)).status).toBe(200);
      expect((await fetch(`http://${proxy[2]}/orders`, caller)).status).toBe(200);
      expect((await fetch(`http://${proxy[2]}/orders`)).status).toBe(403);
      expect([upstream.seen.length - before1, second.seen.length - before2]).toEqual([1, 1]);
      children.at(-1)!.kill('SIGTERM');
    } finally {
      await closeServer(second.server);
    }
  });

  it('refuses an --inbound that is not <listen>=<url>, and a proxy with nowhere to forward', async () => {
    const base = ['proxy', '--workload', 'orders', '--verification-key', notAKey, '--bundle', notAKey];
    await expect(start([...base, '--inbound', '15101:http://127.0.0.1:8080'], /never/)).rejects.toThrow(/--inbound "15101:http:\/\/127.0.0.1:8080" is not <listen address>=<upstream url>/);
    await expect(start(base, /never/)).rejects.toThrow(/give --upstream <url> \(or one --inbound <listen>=<url> per app port\)/);
  });

  it('refuses --app-probes that would reach anything but a probe on loopback, or that no admin port serves', async () => {
    const base = ['proxy', '--workload', 'orders', '--upstream', 'http://127.0.0.1:1', '--verification-key', notAKey, '--bundle', notAKey, '--admin', '127.0.0.1:0'];
    const probe = { kind: 'http', port: 8080, path: '/healthz', scheme: 'HTTP', headers: [], timeoutSeconds: 1 };
    await expect(start([...base, '--app-probes', JSON.stringify({ '/metrics': probe })], /never/)).rejects.toThrow(/"\/metrics" is not \/app-health\/<container>\/<livez\|readyz\|startupz>/);
    await expect(start([...base, '--app-probes', JSON.stringify({ '/app-health/app/livez': { ...probe, host: '10.0.0.1' } })], /never/)).rejects.toThrow(/unknown field "host"/);
    await expect(start([...base, '--app-probes', JSON.stringify({ '/app-health/app/livez': { ...probe, path: 'http://evil/' } })], /never/)).rejects.toThrow(/path must start with \//);
    await expect(start([...base, '--app-probes', '{"/app-health/app/livez":'], /never/)).rejects.toThrow(/--app-probes is not JSON/);
    await expect(start(base.slice(0, -2).concat('--app-probes', JSON.stringify({ '/app-health/app/livez': probe })), /never/)).rejects.toThrow(/--app-probes needs --admin/);
  });

  it('answers the configured app probes on the admin port, and nothing else of the app', async () => {
    const probes = { '/app-health/app/livez': { kind: 'http', port: upstream.port, path: '/healthz', scheme: 'HTTP', headers: [{ name: 'X-Probe', value: 'kubelet' }], timeoutSeconds: 1 }, '/app-health/app/readyz': { kind: 'tcp', port: 1, timeoutSeconds: 1 } };
    const proxy = await start([...proxyArgs, '--spill', join(scratch, 'spill-probes.ndjson'), '--app-probes', JSON.stringify(probes)], /on ([\d.]+:\d+) \(admin ([\d.]+:\d+)\)/);
    const admin = `http://${proxy[2]}`;
    const before = upstream.seen.length;
    expect((await fetch(`${admin}/app-health/app/livez?deep=1`)).status).toBe(200);
    expect(upstream.seen.slice(before)).toEqual([expect.objectContaining({ method: 'GET', url: '/healthz', headers: expect.objectContaining({ 'x-probe': 'kubelet' }) })]);
    // Nothing on port 1: the tcpSocket probe fails.
    expect((await fetch(`${admin}/app-health/app/readyz`)).status).toBe(503);
    expect((await fetch(`${admin}/app-health/app/startupz`)).status).toBe(404);
    expect((await fetch(`${admin}/app-health/app/livez`, { method: 'POST', body: 'x' })).status).toBe(405);
    expect((await fetch(`${admin}/app-health/app/%6civez`)).status).toBe(404);
    expect(upstream.seen.length - before).toBe(1);
    children.at(-1)!.kill('SIGTERM');
  });

  it('refuses a numeric flag that is not a whole number, naming it', async () => {
    await expect(start(['proxy', '--workload', 'orders', '--upstream', 'http://127.0.0.1:1', '--verification-key', notAKey, '--bundle', notAKey, '--max-body-bytes', '10MB'], /never/)).rejects.toThrow(/--max-body-bytes "10MB" is not a whole number/);
    await expect(start(['proxy', '--workload', 'orders', '--upstream', 'http://127.0.0.1:1', '--verification-key', notAKey, '--bundle', notAKey, '--jwks', notAKey, '--issuer', 'i', '--audience', 'a', '--jwt-cache', '-1'], /never/)).rejects.toThrow(/--jwt-cache "-1" is not a whole number/);
  });
});
