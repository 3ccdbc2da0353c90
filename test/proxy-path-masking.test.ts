// A secret in a path segment (`/orders/{id}` where the id is a bearer secret: an API key's id, a share
// link's token), marked `sensitive: ["path:id"]` on the operation, through every front end that decides a
// call, each shipping its decision events to a real engine: `warden proxy` and `warden ext-authz` started
// as a user starts them, and the express middleware in a real app. The app still gets the path as sent;
// the decision events carry the segment masked, in `segments` and in `path`, whether the call was allowed,
// denied, or matched no operation.
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import express from 'express';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngineApp } from '../engine/bundle-server.js';
import type { DecisionEvent } from '../formats/decision-event.js';
import { closeServer, copyPolicies, listenLocal, logCollector, startUpstream, type Upstream } from './support/proxy-fixtures.js';
import { exchange, statuses } from './support/raw-http.js';
import { until } from './support/until.js';
import { startWarden, stopWardens } from './support/warden-process.js';
import { wardenMiddleware } from '../proxy-plugin/middleware.js';
import { startPlugin, type Plugin } from '../proxy-plugin/plugin.js';

const children: ChildProcess[] = [];
const received: DecisionEvent[] = [];
let engineServer: http.Server;
let upstream: Upstream;
let proxyUrl: string;
let extAuthzUrl: string;
let appUrl: string;
let appServer: http.Server;
let plugin: Plugin;
// The paths the middleware's app routes saw.
const appSeen: string[] = [];

const STOREFRONT = 'By=spiffe://cluster.local/ns/shop/sa/orders;URI=spiffe://cluster.local/ns/shop/sa/storefront';
const M = '**masked**';

beforeAll(async () => {
  const policies = await copyPolicies(['orders'], (repo) => {
    // Test-only: getOrder's id is a secret.
    const spec = join(repo, 'workloads/orders/openapi.yaml');
    const text = readFileSync(spec, 'utf8');
    const grants = '          - claims: { role: [support, admin] }\n    delete:\n';
    if (!text.includes(grants)) throw new Error('orders/openapi.yaml changed: the test cannot mark getOrder');
    writeFileSync(spec, text.replace(grants, '          - claims: { role: [support, admin] }\n        sensitive: ["path:id"]\n    delete:\n'));
  });
  const engine = createEngineApp({ bundlesDir: policies.out, rescanMs: 60_000, mounts: [{ path: '/logs', router: logCollector(received).router }] });
  engineServer = http.createServer(engine.app);
  const engineUrl = `http://127.0.0.1:${await listenLocal(engineServer)}`;
  upstream = await startUpstream();
  const m = await startWarden(
    ['proxy', '--workload', 'orders', '--upstream', `http://127.0.0.1:${upstream.port}`, '--listen', '127.0.0.1:0', '--engine', engineUrl,
      '--verification-key', join(policies.out, 'verification-key.pem'), '--spill', join(policies.dir, 'spill.ndjson'), '--trust-header', 'x-forwarded-client-cert', '--trust-peer', '127.0.0.1'],
    /on ([\d.]+:\d+) .*\(bundle [^n]/,
    children,
  );
  proxyUrl = `http://${m[1]}`;
  const a = await startWarden(
    ['ext-authz', '--workload', 'orders', '--listen', '127.0.0.1:0', '--engine', engineUrl, '--verification-key', join(policies.out, 'verification-key.pem'),
      '--spill', join(policies.dir, 'spill-ext-authz.ndjson'), '--trust-header', 'x-forwarded-client-cert', '--trust-peer', '127.0.0.1'],
    /warden ext-authz: orders on ([\d.]+:\d+)/,
    children,
  );
  extAuthzUrl = `http://${a[1]}`;
  // The middleware: the real plugin in a real express app, its events shipped to the same engine.
  plugin = await startPlugin({
    workload: 'orders',
    engine: engineUrl,
    verificationKey: readFileSync(join(policies.out, 'verification-key.pem'), 'utf8'),
    identity: { trustedHeader: { name: 'x-forwarded-client-cert', peers: ['127.0.0.1'] } },
    logger: pino({ level: 'silent' }),
  });
  await until('the middleware\'s bundle', () => plugin.source.current);
  const app = express();
  app.use(wardenMiddleware(plugin.gate), (req, res) => {
    appSeen.push(req.originalUrl);
    res.json({ ok: true });
  });
  appServer = http.createServer(app);
  appUrl = `http://127.0.0.1:${await listenLocal(appServer)}`;
});

afterAll(async () => {
  await stopWardens(children);
  if (appServer) await closeServer(appServer);
  await plugin?.close();
  if (upstream) await closeServer(upstream.server);
  if (engineServer) await closeServer(engineServer);
});

async function get(path: string, headers: Record<string, string> = {}, base = proxyUrl): Promise<{ status: number; id: string }> {
  const r = await fetch(`${base}${path}`, { headers });
  await r.arrayBuffer();
  return { status: r.status, id: r.headers.get('x-warden-decision-id')! };
}

// Every front end that decides a call: its name, its base URL (once started), the event's source label.
const FRONT_ENDS: Array<[string, () => string, string]> = [
  ['warden proxy', () => proxyUrl, 'proxy'],
  ['warden ext-authz', () => extAuthzUrl, 'ext_authz'],
  ['the express middleware', () => appUrl, 'middleware'],
];

const eventOf = (id: string) => until(`the decision event ${id}`, () => received.find((e) => e.decision_id === id));
const requestOf = (e: DecisionEvent) => e.input!.request as { path: string; segments: string[] };

describe('a path parameter marked sensitive, through warden proxy', () => {
  it('forwards the path as sent and logs the segment masked, allowed or denied', async () => {
    const allowed = await get('/orders/k-s3cret-1', { 'x-forwarded-client-cert': STOREFRONT });
    expect(allowed.status).toBe(200);
    expect(upstream.seen.some((r) => r.url === '/orders/k-s3cret-1')).toBe(true);
    const denied = await get('/orders/k%2Ds3cret-2');
    expect(denied.status).toBe(403);
    for (const { id } of [allowed, denied]) {
      const e = await eventOf(id);
      expect(requestOf(e)).toMatchObject({ path: `/orders/${M}`, segments: ['orders', M] });
      expect(e.masked).toEqual(['/input/request/segments/1', '/input/request/path']);
      expect(JSON.stringify(e)).not.toMatch(/s3cret|2Ds3/);
    }
    expect((await eventOf(allowed.id)).result).toMatchObject({ allow: true, operation: 'getOrder' });
    // The denial's reason quotes the path: as masked. The caller itself was told the path it sent.
    expect((await eventOf(denied.id)).result).toMatchObject({ allow: false, reasons: [`no rule grants anonymous GET /orders/${M}`] });
  });

  it('masks the segment of a call that matched no operation too (every operation\'s mask applies), and leaves other operations\' paths alone', async () => {
    const stray = await get('/orders/k-s3cret-3/unknown', { 'x-forwarded-client-cert': STOREFRONT });
    expect(stray.status).toBe(403);
    expect(requestOf(await eventOf(stray.id))).toMatchObject({ path: `/orders/${M}/unknown`, segments: ['orders', M, 'unknown'] });
    // Another operation whose id is not marked: its path is logged as sent.
    const refund = await fetch(`${proxyUrl}/orders/42/refund`, { method: 'POST', headers: { 'x-forwarded-client-cert': STOREFRONT } });
    await refund.arrayBuffer();
    const e = await eventOf(refund.headers.get('x-warden-decision-id')!);
    expect(requestOf(e)).toMatchObject({ path: '/orders/42/refund', segments: ['orders', '42', 'refund'] });
    expect(e.masked ?? []).not.toContain('/input/request/path');
  });
});

// A raw request (header fields no fetch would send), to warden proxy unless `base` says otherwise: the
// status and decision id of its answer.
async function raw(lines: string[], base = proxyUrl): Promise<{ status: number; id: string; text: string }> {
  const text = await exchange(Number(new URL(base).port), `${lines.join('\r\n')}\r\nconnection: close\r\n\r\n`);
  return { status: statuses(text)[0]!, id: /x-warden-decision-id: (\S+)/i.exec(text)?.[1] ?? '', text };
}

// Refusals come before the policy, in `prepare`, which every front end calls: each is sent here to the
// proxy's and ext-authz's processes and to the middleware's app as a raw request. Neither the proxy's
// upstream nor the middleware's route may see it (ext-authz's non-200 answer is Envoy's denial).
const reached = (segment: string) => upstream.seen.some((r) => r.url.includes(segment)) || appSeen.some((u) => u.includes(segment));
describe.each(FRONT_ENDS)('a refused request that carries a sensitive path parameter or a credential in its query, through %s', (_name, base, source) => {
  it('logs a target that cannot be parsed without its path (which part is the parameter cannot be told) and without its query', async () => {
    const r = await raw(['GET /orders/k-s3cret-9;v=1?access_token=tok-s3cret HTTP/1.1', 'host: orders'], base());
    expect(r.status).toBe(400);
    expect(r.text).toContain('matrix parameter');
    const e = await eventOf(r.id);
    expect(e.labels.source).toBe(source);
    expect(e.error).toMatch(/^request refused: .*matrix parameter.*\(received \*\*masked\*\*\)$/);
    expect(requestOf(e)).toMatchObject({ path: M, segments: [] });
    expect(JSON.stringify(e)).not.toMatch(/s3cret/);
    expect(reached('k-s3cret-9')).toBe(false);
  });

  it('logs a target refused for its header fields as any call\'s, its segment and credential masked', async () => {
    const r = await raw(['GET /orders/k-s3cret-10?access_token=tok-s3cret&page=2 HTTP/1.1', 'host: orders', 'x_http_method_override: DELETE'], base());
    expect(r.status).toBe(400);
    const e = await eventOf(r.id);
    expect(e.labels.source).toBe(source);
    expect(e.error).toContain('x-http-method-override');
    expect(requestOf(e)).toMatchObject({ path: `/orders/${M}`, segments: ['orders', M] });
    expect((e.input!.request as { query: unknown }).query).toEqual({ access_token: M, page: ['2'] });
    expect(e.masked).toEqual(expect.arrayContaining(['/input/request/segments/1', '/input/request/path', '/input/request/query/access_token']));
    expect(JSON.stringify(e)).not.toMatch(/s3cret/);
    expect(reached('k-s3cret-10')).toBe(false);
  });
});

// A request line whose method is not a method name is refused by the HTTP parser of every front end (node's,
// and warden proxy's own) before `prepare`: a bare 400, no decision and so no event to mask, and the
// upstream never sees it.
describe('a request line whose method is not a method name, through warden proxy', () => {
  it('is refused before any decision and never reaches the upstream', async () => {
    const r = await raw(['get /orders/k-s3cret-11;v=1?access_token=tok-s3cret HTTP/1.1', 'host: orders']);
    expect(r.status).toBe(400);
    expect(r.id).toBe('');
    expect(reached('k-s3cret-11')).toBe(false);
    // A call decided after it reaches the log (the log keeps the order of decisions): no event before it
    // is the refused line's.
    const after = await get('/orders/k-s3cret-12', { 'x-forwarded-client-cert': STOREFRONT });
    await eventOf(after.id);
    expect(received.filter((e) => /method name|INVALID/.test(`${e.error ?? ''} ${(e.input?.request as { method?: string } | undefined)?.method ?? ''}`))).toEqual([]);
  });
});

// The same operation decided by the other front ends: Envoy's check (the path is the call's, sent to the
// check service) and the middleware (the app's route). Both build the event in the same pipeline as the
// proxy; these calls show it through their own processes and servers.
describe.each(FRONT_ENDS.slice(1))('a path parameter marked sensitive, through %s', (_name, base, source) => {
  it('logs the segment masked, allowed, denied or matching no operation, and the call goes on as sent', async () => {
    const allowed = await get('/orders/k-s3cret-4', { 'x-forwarded-client-cert': STOREFRONT }, base());
    expect(allowed.status).toBe(200);
    const denied = await get('/orders/k-s3cret-5', {}, base());
    expect(denied.status).toBe(403);
    const stray = await get('/orders/k-s3cret-6/unknown', { 'x-forwarded-client-cert': STOREFRONT }, base());
    expect(stray.status).toBe(403);
    for (const { id } of [allowed, denied]) {
      const e = await eventOf(id);
      expect(e.labels.source).toBe(source);
      expect(requestOf(e)).toMatchObject({ path: `/orders/${M}`, segments: ['orders', M] });
      expect(e.masked).toEqual(['/input/request/segments/1', '/input/request/path']);
    }
    expect(requestOf(await eventOf(stray.id))).toMatchObject({ path: `/orders/${M}/unknown`, segments: ['orders', M, 'unknown'] });
    for (const { id } of [allowed, denied, stray]) expect(JSON.stringify(await eventOf(id))).not.toContain('s3cret');
    expect((await eventOf(denied.id)).result).toMatchObject({ allow: false, reasons: [`no rule grants anonymous GET /orders/${M}`] });
    if (source === 'middleware') expect(appSeen).toContain('/orders/k-s3cret-4');
  });
});
