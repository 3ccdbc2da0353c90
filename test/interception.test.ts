// A pod that really runs: the injector's Pod spec, run on this machine in network namespaces the test
// makes. The pod namespace gets the interception init's command (`warden init-net`, the same code path
// as the container), an app on every address (declared port 8080, undeclared 7070, TCP and UDP), and
// the sidecar with the injected arguments (SVID, key and spill paths mapped to temp files; the one
// substitution: --bundle instead of the engine, which this test does not run). A peer namespace,
// joined by a veth pair, is the rest of the cluster: allowed calls reach the app, denied calls never
// do, and every way around the sidecar fails. The kubelet's probes, rewritten by the injector, are
// answered on the sidecar's admin port with the app's real health. Addresses are from 198.18.0.0/15 and fd00::/8, inside
// the two namespaces only; both namespaces (and with them the veth pair) are removed at the end.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../engine/toolchain/paths.js';
import { admissionReview, buildExamplePolicies, GOOD_IMAGE, PROXY_IMAGE, webhookFor, type BuiltPolicies } from './support/admission-fixture.js';
import { applyJsonPatch } from '../admission/json-patch.js';
import { until } from './support/until.js';
import { makePki, type Pki } from './support/proxy-fixtures.js';
import { mutate } from '../admission/mutate.js';
import { SIDECAR_PATHS } from '../admission/injection.js';

const id = process.pid;
const POD_NS = `wdn-pod-${id}`;
const PEER_NS = `wdn-peer-${id}`;
const POD_V4 = '198.18.0.2';
const PEER_V4 = '198.18.0.1';
const POD_V6 = 'fd00:77::2';
const PEER_V6 = 'fd00:77::1';
const netnsDir = join(repoRoot, 'test', 'netns');

let built: BuiltPolicies;
let pki: Pki;
let tmp: string;
const procs: ChildProcess[] = [];
let app: { lines: Array<Record<string, unknown>> };
let appProc: ChildProcess;
type HttpGet = { path: string; port: number };
let injected: { initArgs: string[]; proxyArgs: string[]; live: HttpGet; ready: HttpGet };
let files: Record<string, string>;

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr || r.error?.message}`);
  return r.stdout;
}

// Run a long-lived process in a namespace; its stdout lines (JSON when they parse) and stderr are kept.
function start(ns: string, args: string[]): { proc: ChildProcess; lines: Array<Record<string, unknown>>; err: () => string } {
  const proc = spawn('ip', ['netns', 'exec', ns, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(proc);
  const lines: Array<Record<string, unknown>> = [];
  let err = '';
  let rest = '';
  proc.stdout!.setEncoding('utf8').on('data', (c: string) => {
    rest += c;
    const parts = rest.split('\n');
    rest = parts.pop()!;
    for (const p of parts) {
      try {
        lines.push(JSON.parse(p) as Record<string, unknown>);
      } catch {
        lines.push({ text: p });
      }
    }
  });
  proc.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
  return { proc, lines, err: () => err };
}

type Attempt = Record<string, unknown> & { name: string };
function callFromPeer(attempts: Attempt[]): Record<string, Record<string, unknown>> {
  const out = sh('ip', ['netns', 'exec', PEER_NS, process.execPath, join(netnsDir, 'caller.mjs'), JSON.stringify(attempts)]);
  return Object.fromEntries(out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).map((r) => [r.name as string, r]));
}

function cleanup(): void {
  for (const p of procs) {
    // One that is gone already must not keep the rest (and the namespaces) from being cleaned up.
    try {
      if (p.exitCode === null && p.signalCode === null && p.pid) process.kill(p.pid, 'SIGKILL');
    } catch {
      // ESRCH: it exited between the check and the kill.
    }
  }
  // Deleting a namespace deletes the veth end in it, and with it the pair.
  for (const ns of [POD_NS, PEER_NS]) spawnSync('ip', ['netns', 'del', ns]);
}

// The injector's arguments with the pod's file paths mapped to this test's files (and --bundle for the engine).
function mapProxyArgs(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--')) {
      out.push(a);
      continue;
    }
    const v = args[++i]!;
    if (['--engine', '--engine-cert', '--engine-key', '--engine-ca'].includes(a)) continue;
    out.push(a, files[v] ?? v);
  }
  return [...out, '--bundle', join(built.bundles, 'orders.tar.gz')];
}

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error('this test makes network namespaces and needs root (tests run as root in CI)');
  sh('sh', ['-c', 'command -v iptables-restore && command -v ip6tables-restore']);
  built = await buildExamplePolicies();
  pki = makePki();
  tmp = mkdtempSync(join(tmpdir(), 'warden-netns-'));
  const write = (name: string, text: string) => (writeFileSync(join(tmp, name), text), join(tmp, name));
  files = {
    [`${SIDECAR_PATHS.svid}/tls.crt`]: write('tls.crt', pki.serverCert),
    [`${SIDECAR_PATHS.svid}/tls.key`]: write('tls.key', pki.serverKey),
    [`${SIDECAR_PATHS.svid}/ca.crt`]: write('ca.crt', pki.ca),
    [`${SIDECAR_PATHS.verificationKey}/verification-key.pem`]: write('verification-key.pem', built.verificationKeyPem),
    [`${SIDECAR_PATHS.run}/decisions.spill.ndjson`]: join(tmp, 'spill.ndjson'),
  };
  // The Pod as the injector leaves it.
  const webhook = await webhookFor(built, { config: { injection: { proxyImage: PROXY_IMAGE } } });
  const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { generateName: 'orders-' }, spec: { serviceAccountName: 'orders', securityContext: { runAsNonRoot: true }, containers: [{
    name: 'app', image: GOOD_IMAGE, ports: [{ containerPort: 8080 }],
    // The kubelet's probes as the user wrote them; the injector aims them at the sidecar's admin port.
    livenessProbe: { httpGet: { path: '/healthz', port: 8080, httpHeaders: [{ name: 'X-Probe', value: 'kubelet' }] } },
    readinessProbe: { tcpSocket: { port: 8080 } },
  }] } };
  const out = await mutate(admissionReview(pod, 'shop'), webhook.deps, 'namespace');
  const patch = (out.body as { response: { patch: string } }).response.patch;
  const stored = applyJsonPatch(pod, JSON.parse(Buffer.from(patch, 'base64').toString('utf8'))) as { spec: { initContainers: Array<{ args: string[] }>; containers: Array<Record<string, { httpGet: HttpGet }>> } };
  const appSpec = stored.spec.containers[0]!;
  injected = { initArgs: stored.spec.initContainers[0]!.args, proxyArgs: stored.spec.initContainers[1]!.args, live: appSpec.livenessProbe!.httpGet, ready: appSpec.readinessProbe!.httpGet };

  cleanup();
  const veth = [`wd${id}a`, `wd${id}b`];
  sh('ip', ['netns', 'add', POD_NS]);
  sh('ip', ['netns', 'add', PEER_NS]);
  sh('ip', ['link', 'add', veth[0]!, 'netns', POD_NS, 'type', 'veth', 'peer', 'name', veth[1]!, 'netns', PEER_NS]);
  for (const [ns, dev, v4, v6] of [[POD_NS, veth[0]!, POD_V4, POD_V6], [PEER_NS, veth[1]!, PEER_V4, PEER_V6]] as const) {
    sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    sh('ip', ['-n', ns, 'addr', 'add', `${v4}/30`, 'dev', dev]);
    sh('ip', ['-n', ns, '-6', 'addr', 'add', `${v6}/64`, 'dev', dev, 'nodad']);
    sh('ip', ['-n', ns, 'link', 'set', dev, 'up']);
  }
  const a = start(POD_NS, [process.execPath, join(netnsDir, 'app.mjs'), join(tmp, 'app-sick')]);
  appProc = a.proc;
  app = a;
  await until(() => `the app to listen (${a.err()})`, () => (a.lines.some((l) => l.ready) ? true : undefined));
}, 240_000);

afterAll(() => {
  cleanup();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  built?.cleanup();
});

describe('a pod that really runs behind the injected interception and sidecar', () => {
  it('without interception the app is reachable directly (the checks below can fail)', () => {
    const r = callFromPeer([
      { name: 'direct', scheme: 'http', host: POD_V4, port: 8080, path: '/orders/export' },
      { name: 'udp', udp: true, host: POD_V4, port: 8080, data: 'control' },
    ]);
    expect(r.direct).toMatchObject({ status: 200 });
    return until('the control datagram', () => (app.lines.some((l) => l.data === 'control') ? true : undefined));
  });

  it('decides every call: allowed calls reach the app, denied calls and every way around the sidecar never do', async () => {
    // The interception init, through the same command the container runs.
    const init = spawnSync('ip', ['netns', 'exec', POD_NS, process.execPath, join(repoRoot, 'bin', 'warden.js'), ...injected.initArgs], { encoding: 'utf8' });
    expect(init.stderr).toContain('inbound intercepted');
    expect(init.status).toBe(0);
    const proxy = start(POD_NS, [process.execPath, join(repoRoot, 'bin', 'warden.js'), ...mapProxyArgs(injected.proxyArgs)]);
    await until(() => `the sidecar to start (${proxy.err()})`, () => (/warden proxy: orders on .*bundle (?!none)/.test(proxy.err()) ? true : undefined), 60_000);
    const before = app.lines.length;
    const storefront = pki.client('spiffe://cluster.local/ns/shop/sa/storefront');
    const write = (name: string, text: string) => (writeFileSync(join(tmp, name), text), join(tmp, name));
    const sf = { ca: files[`${SIDECAR_PATHS.svid}/ca.crt`], cert: write('sf.crt', storefront.cert), key: write('sf.key', storefront.key) };
    const foreign = { ca: sf.ca, cert: write('foreign.crt', pki.foreignClient.cert), key: write('foreign.key', pki.foreignClient.key) };
    const r = callFromPeer([
      { name: 'allowed', scheme: 'https', host: POD_V4, port: 8080, path: '/orders/42', ...sf },
      { name: 'denied', scheme: 'https', host: POD_V4, port: 8080, path: '/orders/export', ...sf },
      { name: 'no certificate', scheme: 'https', host: POD_V4, port: 8080, path: '/orders/42', ca: sf.ca },
      { name: 'certificate from another CA', scheme: 'https', host: POD_V4, port: 8080, path: '/orders/42', ...foreign },
      { name: 'forged identity header', scheme: 'https', host: POD_V4, port: 8080, path: '/orders/42', ca: sf.ca, headers: { 'x-forwarded-client-cert': 'URI=spiffe://cluster.local/ns/shop/sa/storefront', 'l5d-client-id': 'storefront.shop' } },
      { name: 'plain http to the app port', scheme: 'http', host: POD_V4, port: 8080, path: '/orders/42' },
      { name: 'undeclared app port', scheme: 'http', host: POD_V4, port: 7070, path: '/orders/42' },
      { name: 'ipv6 to the app port', scheme: 'https', host: POD_V6, port: 8080, path: '/orders/export', ...sf },
      { name: 'ipv6 plain http', scheme: 'http', host: POD_V6, port: 8080, path: '/orders/42' },
      { name: 'ipv6 undeclared port', scheme: 'http', host: POD_V6, port: 7070, path: '/orders/42' },
      { name: 'the sidecar port directly', scheme: 'https', host: POD_V4, port: 15101, path: '/orders/export', ...sf },
      { name: 'the admin port', scheme: 'http', host: POD_V4, port: 15020, path: '/orders/42' },
      { name: 'udp v4 8080', udp: true, host: POD_V4, port: 8080, data: 'bypass-udp4' },
      { name: 'udp v4 7070', udp: true, host: POD_V4, port: 7070, data: 'bypass-udp4-7070' },
      { name: 'udp v6 8080', udp: true, host: POD_V6, port: 8080, data: 'bypass-udp6' },
      // Last, so that anything sent before it has had its chance to arrive.
      { name: 'allowed again', scheme: 'https', host: POD_V6, port: 8080, path: '/orders/43', ...sf },
    ]);
    expect(r.allowed).toMatchObject({ status: 200, body: 'app 8080\n' });
    expect(r['allowed again']).toMatchObject({ status: 200, body: 'app 8080\n' });
    for (const name of ['denied', 'no certificate', 'forged identity header', 'ipv6 to the app port', 'the sidecar port directly']) expect(r[name], name).toMatchObject({ status: 403 });
    // An unknown CA's certificate is refused before policy (401), or by TLS itself.
    expect(r['certificate from another CA']!.status === 401 || 'error' in r['certificate from another CA']!).toBe(true);
    for (const name of ['plain http to the app port', 'ipv6 plain http']) expect(r[name]!.status === 200, name).toBe(false);
    for (const name of ['undeclared app port', 'ipv6 undeclared port']) expect(r[name], name).toMatchObject({ error: expect.stringMatching(/ECONNRESET|ECONNREFUSED/) });
    expect(r['the admin port']!.status).toBe(404);
    await until('the second allowed call to reach the app', () => (app.lines.slice(before).some((l) => l.url === '/orders/43') ? true : undefined));
    // What reached the app: the two allowed calls, through the sidecar, and nothing else.
    expect(app.lines.slice(before).map((l) => `${String(l.tcp ?? `udp ${String(l.udp)}`)} ${String(l.url ?? l.data)}`)).toEqual(['8080 /orders/42', '8080 /orders/43']);
  }, 120_000);

  it("answers the kubelet's rewritten probes with the app's real health, while the app port stays behind the sidecar", async () => {
    const { live, ready } = injected;
    expect([live, ready]).toEqual([{ path: '/app-health/app/livez', port: 15020, scheme: 'HTTP' }, { path: '/app-health/app/readyz', port: 15020, scheme: 'HTTP' }]);
    const before = app.lines.length;
    // The kubelet probes from outside the pod (the node), on the pod's address.
    const healthy = callFromPeer([
      { name: 'live', scheme: 'http', host: POD_V4, port: live.port, path: live.path },
      { name: 'ready', scheme: 'http', host: POD_V6, port: ready.port, path: ready.path },
      // The admin port is no way to the app: no other path, method or header reaches it.
      { name: 'a path of the caller', scheme: 'http', host: POD_V4, port: live.port, path: '/app-health/app/livez/../../../orders/42' },
      { name: 'another container', scheme: 'http', host: POD_V4, port: live.port, path: '/app-health/other/livez' },
      { name: 'another method', scheme: 'http', host: POD_V4, port: live.port, path: live.path, method: 'POST' },
      // The probe's own target, called directly: through the sidecar, and decided (the example policy
      // lets anyone GET /healthz, nothing else: this POST without a certificate is denied).
      { name: 'the app health directly', scheme: 'https', host: POD_V4, port: 8080, path: '/healthz', method: 'POST', ca: files[`${SIDECAR_PATHS.svid}/ca.crt`], headers: { 'x-probe': 'caller' } },
      { name: 'the app health in plain http', scheme: 'http', host: POD_V4, port: 8080, path: '/healthz' },
    ]);
    expect(healthy.live).toMatchObject({ status: 200 });
    expect(healthy.ready).toMatchObject({ status: 200 });
    for (const name of ['a path of the caller', 'another container']) expect(healthy[name], name).toMatchObject({ status: 404 });
    expect(healthy['another method']).toMatchObject({ status: 405 });
    expect(healthy['the app health directly']).toMatchObject({ status: 403 });
    expect(healthy['the app health in plain http']!.status === 200).toBe(false);
    // What reached the app: the liveness probe, as the user wrote it (its header too), made by the sidecar on loopback.
    await until('the probe to reach the app', () => (app.lines.length > before ? true : undefined));
    expect(app.lines.slice(before)).toEqual([expect.objectContaining({ tcp: 8080, method: 'GET', url: '/healthz', probe: 'kubelet' })]);

    // The app says it is unhealthy: the kubelet sees it.
    writeFileSync(join(tmp, 'app-sick'), '');
    expect(callFromPeer([{ name: 'live', scheme: 'http', host: POD_V4, port: live.port, path: live.path }]).live).toMatchObject({ status: 500 });
    // The app is gone: both probes fail (the tcpSocket one cannot connect).
    appProc.kill('SIGKILL');
    await until('the app to exit', () => (appProc.exitCode !== null || appProc.signalCode !== null ? true : undefined));
    const gone = callFromPeer([{ name: 'live', scheme: 'http', host: POD_V4, port: live.port, path: live.path }, { name: 'ready', scheme: 'http', host: POD_V4, port: ready.port, path: ready.path }]);
    expect(gone.live).toMatchObject({ status: 503 });
    expect(gone.ready).toMatchObject({ status: 503 });
  }, 60_000);
});
