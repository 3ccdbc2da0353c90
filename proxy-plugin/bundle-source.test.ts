import { readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { pino } from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { closeServer, copyPolicies, listenLocal, type PolicyCopy } from '../test/support/proxy-fixtures.js';
import { BundleSource, type BundleEvent } from './bundle-source.js';
import { DecisionPipeline } from './decide.js';
import { DecisionLog } from '../runtime/decision-log.js';
import { trustPolicy } from './plugin.js';

let policies: PolicyCopy;
let newer: Buffer;
let older: Buffer;
let key: string;
let revision: string;

beforeAll(async () => {
  policies = await copyPolicies(['storefront']);
  await policies.build(['storefront'], () => new Date(Date.now() - 3600_000), 8);
  newer = readFileSync(join(policies.out, 'storefront.tar.gz'));
  key = readFileSync(join(policies.out, 'verification-key.pem'), 'utf8');
  // The previous policy commit, rebuilt an hour later (as an old engine pod re-created now would).
  rmSync(join(policies.out, 'storefront.build.json'));
  await policies.build(['storefront'], () => new Date(), 7);
  older = readFileSync(join(policies.out, 'storefront.tar.gz'));
  revision = (JSON.parse(readFileSync(join(policies.out, 'storefront.build.json'), 'utf8')) as { revision: string }).revision;
});

const source = (events: BundleEvent[], engine?: string) =>
  new BundleSource({ workload: 'storefront', trust: trustPolicy({ verificationKey: key }), onEvent: (e) => events.push(e), pollIntervalMs: 50, longPollSeconds: 1, ...(engine ? { engine } : {}) });

describe('BundleSource', () => {
  it('denies every call until a first bundle is loaded', () => {
    const s = source([]);
    const log = new DecisionLog({ logger: pino({ level: 'silent' }) });
    const p = new DecisionPipeline({ destination: { workload: 'storefront', namespace: 'shop', principal: '' }, source: s, log });
    const v = p.decide({ source: { principal: 'anonymous', authn: 'none', claims: {}, address: '' }, destination: p.destination, request: { method: 'GET', path: '/products', segments: ['products'], query: {}, headers: {} } }, { kind: 'http', via: 'proxy' });
    expect(v).toMatchObject({ allow: false, outcome: 'deny', status: 403 });
  });

  it('refuses a bundle of an older generation, even one built later, and keeps the newer', async () => {
    const events: BundleEvent[] = [];
    const s = source(events);
    const loaded = await s.install(newer, 'test');
    expect(loaded.generation).toBe(8);
    await expect(s.install(older, 'test')).rejects.toThrow(/is of generation 7, older than the loaded .* \(generation 8\)/);
    expect(s.current).toBe(loaded);
    expect(events.map((e) => e.type)).toEqual(['loaded', 'rejected']);
  });

  it('refuses a generation that is not a whole number, even when signed with the right key', async () => {
    const { readArchive, writeArchive } = await import('../runtime/archive.js');
    const { signBundle } = await import('../runtime/signature.js');
    const { createPrivateKey } = await import('node:crypto');
    const signingKey = createPrivateKey(readFileSync(join(policies.dir, '.warden/keys/signing-key.pem')));
    for (const generation of ['99', -1, 1.5, 1e300]) {
      const files = await readArchive(newer);
      files.delete('.signatures.json');
      const manifest = JSON.parse(files.get('.manifest')!.toString()) as { metadata: Record<string, unknown> };
      manifest.metadata.generation = generation;
      files.set('.manifest', Buffer.from(JSON.stringify(manifest)));
      const { keyId } = JSON.parse(readFileSync(join(policies.out, 'index.json'), 'utf8')) as { keyId: string };
      files.set('.signatures.json', await signBundle(files, { key: signingKey, algorithm: 'ES256', keyId }));
      await expect(source([]).install(writeArchive(files), 'test')).rejects.toThrow(/generation .* must be a whole number/);
    }
  });

  it('lets a call that pinned a bundle finish on it after a newer one is swapped in', async () => {
    const s = source([]);
    const log = new DecisionLog({ logger: pino({ level: 'silent' }) });
    const p = new DecisionPipeline({ destination: { workload: 'storefront', namespace: 'shop', principal: '' }, source: s, log });
    const old = await s.install(older, 'test');
    const pinned = p.pin();
    const next = await s.install(newer, 'test');
    expect(next).not.toBe(old);
    const v = p.decide({ source: { principal: 'anonymous', authn: 'none', claims: {}, address: '' }, destination: p.destination, request: { method: 'GET', path: '/products', segments: ['products'], query: {}, headers: {} } }, { kind: 'http', via: 'proxy', bundle: pinned });
    expect(v.bundle).toBe(old);
    expect(v.allow).toBe(true);
    expect(p.pin()).toBe(next);
  });

  it('refuses a bundle signed for another key', async () => {
    const { generateKeyPairSync } = await import('node:crypto');
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
    const s = new BundleSource({ workload: 'storefront', trust: trustPolicy({ verificationKey: other }) });
    await expect(s.install(newer, 'test')).rejects.toThrow(/signature is invalid/);
    expect(s.current).toBeUndefined();
  });

  it('refuses a bundle built for another workload', async () => {
    const s = new BundleSource({ workload: 'orders', trust: trustPolicy({ verificationKey: key }) });
    await expect(s.install(newer, 'test')).rejects.toThrow(/for workload storefront, not orders/);
  });

  it('keeps serving the last good bundle when the server goes away or sends garbage', async () => {
    let body: Buffer = newer;
    const server = http.createServer((req, res) => {
      if (req.headers['if-none-match'] === '"v1"' && body === newer) return void res.writeHead(304).end();
      res.writeHead(200, { etag: body === newer ? '"v1"' : '"v2"' }).end(body);
    });
    const port = await listenLocal(server);
    const events: BundleEvent[] = [];
    const s = source(events, `http://127.0.0.1:${port}`);
    await s.start();
    const first = s.current;
    expect(first?.revision).toBeTruthy();
    body = Buffer.from('not a bundle');
    for (let i = 0; i < 100 && !events.some((e) => e.type === 'rejected'); i++) await new Promise((r) => setTimeout(r, 20));
    await closeServer(server);
    for (let i = 0; i < 100 && !events.some((e) => e.type === 'unreachable'); i++) await new Promise((r) => setTimeout(r, 20));
    await s.stop();
    expect(events.some((e) => e.type === 'rejected')).toBe(true);
    expect(events.some((e) => e.type === 'unreachable')).toBe(true);
    expect(s.current).toBe(first);
  });

  it('keeps the bundle in force when another engine replica serves its own build of the same revision', async () => {
    // Two replicas build the same revision at different times: different bytes, ETag and build time.
    let body: Buffer = newer;
    const server = http.createServer((req, res) => {
      const etag = body === newer ? '"replica-a"' : '"replica-b"';
      if (req.headers['if-none-match'] === etag) return void res.writeHead(304).end();
      res.writeHead(200, { etag, 'x-warden-revision': revision }).end(body);
    });
    const port = await listenLocal(server);
    const events: BundleEvent[] = [];
    const s = source(events, `http://127.0.0.1:${port}`);
    try {
      await s.start();
      const first = s.current!;
      expect(first.etag).toBe('"replica-a"');
      body = older; // the same revision, but a lower generation: installing it would be refused as older
      for (let i = 0; i < 200 && s.current?.etag !== '"replica-b"'; i++) await new Promise((r) => setTimeout(r, 20));
      expect(s.current?.etag).toBe('"replica-b"');
      expect(s.current?.policy).toBe(first.policy);
      expect(events.map((e) => e.type)).toEqual(['loaded']);
    } finally {
      await s.stop();
      await closeServer(server);
    }
  });
});
