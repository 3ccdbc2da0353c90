import { createHash } from 'node:crypto';
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import http, { type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngineApp, type EngineApp } from './bundle-server.js';

let dir: string;
let engine: EngineApp;
let server: Server;
let base: string;

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

// Publish a bundle the way `warden build` does: the file, then index.json, each by rename. The
// admission bundle is listed apart from the workloads.
const published: { keyId: string; algorithm: string; bundles: Record<string, { revision: string; sha256: string }>; admission?: { revision: string; sha256: string } } = { keyId: 'k', algorithm: 'ES256', bundles: {} };
function publish(name: string, bytes: Buffer, revision: string): void {
  writeFileSync(join(dir, `${name}.tar.gz.tmp`), bytes);
  renameSync(join(dir, `${name}.tar.gz.tmp`), join(dir, `${name}.tar.gz`));
  if (name === 'admission') published.admission = { revision, sha256: sha(bytes) };
  else published.bundles[name] = { revision, sha256: sha(bytes) };
  writeFileSync(join(dir, 'index.json.tmp'), JSON.stringify(published));
  renameSync(join(dir, 'index.json.tmp'), join(dir, 'index.json'));
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'warden-bundles-'));
  publish('orders', Buffer.from('bundle-v1'), 'r1');
  const mounted = express.Router();
  mounted.post('/', (_req, res) => void res.status(202).json({ mounted: true }));
  engine = createEngineApp({ bundlesDir: dir, rescanMs: 100, mounts: [{ path: '/logs', router: mounted }] });
  server = http.createServer(engine.app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  engine.close();
  await new Promise<void>((r) => {
    server.close(() => r());
    server.closeAllConnections();
  });
});

describe('bundle server', () => {
  it('serves a bundle with its sha256 as a strong ETag and answers 304 to a matching If-None-Match', async () => {
    const res = await fetch(`${base}/bundles/orders`);
    expect(res.status).toBe(200);
    const etag = res.headers.get('etag');
    expect(etag).toBe(`"${sha(Buffer.from('bundle-v1'))}"`);
    expect(Buffer.from(await res.arrayBuffer()).toString()).toBe('bundle-v1');
    const again = await fetch(`${base}/bundles/orders`, { headers: { 'if-none-match': etag! } });
    expect(again.status).toBe(304);
  });

  it('holds a long poll until the bundle changes, then sends the new one', async () => {
    const etag = (await fetch(`${base}/bundles/orders`)).headers.get('etag')!;
    const started = Date.now();
    const polled = fetch(`${base}/bundles/orders`, { headers: { 'if-none-match': etag, prefer: 'wait=10' } });
    await new Promise((r) => setTimeout(r, 200)); // let the poll start waiting
    publish('orders', Buffer.from('bundle-v2'), 'r2');
    const res = await polled;
    expect(res.status).toBe(200);
    expect(res.headers.get('x-warden-revision')).toBe('r2');
    expect(Buffer.from(await res.arrayBuffer()).toString()).toBe('bundle-v2');
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('ends a long poll with 304 when nothing changes within the wait', async () => {
    const etag = (await fetch(`${base}/bundles/orders`)).headers.get('etag')!;
    const started = Date.now();
    const res = await fetch(`${base}/bundles/orders?wait=1`, { headers: { 'if-none-match': etag } });
    expect(res.status).toBe(304);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });

  it('lists the index, reports health, and 404s an unknown or invalid workload', async () => {
    expect(((await (await fetch(`${base}/bundles`)).json()) as { bundles: Record<string, unknown> }).bundles).toHaveProperty('orders');
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/bundles/nope`)).status).toBe(404);
    expect((await fetch(`${base}/bundles/..%2Fsecret`)).status).toBe(400);
  });

  it('serves the admission bundle listed apart in the index, with ETag and long poll, and never as a workload', async () => {
    expect((await fetch(`${base}/bundles/admission`)).status).toBe(404);
    publish('admission', Buffer.from('admission-v1'), 'a1');
    let res = await fetch(`${base}/bundles/admission?wait=5`);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-warden-revision')).toBe('a1');
    expect(Buffer.from(await res.arrayBuffer()).toString()).toBe('admission-v1');
    const etag = res.headers.get('etag')!;
    expect((await fetch(`${base}/bundles/admission`, { headers: { 'if-none-match': etag } })).status).toBe(304);
    const polled = fetch(`${base}/bundles/admission`, { headers: { 'if-none-match': etag, prefer: 'wait=10' } });
    await new Promise((r) => setTimeout(r, 200)); // let the poll start waiting
    publish('admission', Buffer.from('admission-v2'), 'a2');
    res = await polled;
    expect([res.status, res.headers.get('x-warden-revision'), Buffer.from(await res.arrayBuffer()).toString()]).toEqual([200, 'a2', 'admission-v2']);
    // Coverage checks read the workloads from the index: the admission bundle is not one of them.
    expect(Object.keys(((await (await fetch(`${base}/bundles`)).json()) as { bundles: Record<string, unknown> }).bundles)).toEqual(['orders']);
  });

  it('mounts routers given by other parts of the engine', async () => {
    const res = await fetch(`${base}/logs`, { method: 'POST' });
    expect(res.status).toBe(202);
  });
});
