// A secret in a path segment (`/orders/{id}` where the id is a bearer secret: an API key's id, a share
// link's token), marked `sensitive: ["path:id"]` on the operation, through `warden proxy` started as a user
// starts it, shipping its decision events to a real engine. The app still gets the path as sent; the
// decision events carry the segment masked, in `segments` and in `path`, whether the call was allowed,
// denied, or matched no operation.
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngineApp } from '../engine/bundle-server.js';
import type { DecisionEvent } from '../formats/decision-event.js';
import { closeServer, copyPolicies, listenLocal, logCollector, startUpstream, type Upstream } from './support/proxy-fixtures.js';
import { until } from './support/until.js';
import { startWarden, stopWardens } from './support/warden-process.js';

const children: ChildProcess[] = [];
const received: DecisionEvent[] = [];
let engineServer: http.Server;
let upstream: Upstream;
let proxyUrl: string;

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
});

afterAll(async () => {
  await stopWardens(children);
  if (upstream) await closeServer(upstream.server);
  if (engineServer) await closeServer(engineServer);
});

async function get(path: string, headers: Record<string, string> = {}): Promise<{ status: number; id: string }> {
  const r = await fetch(`${proxyUrl}${path}`, { headers });
  await r.arrayBuffer();
  return { status: r.status, id: r.headers.get('x-warden-decision-id')! };
}

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
