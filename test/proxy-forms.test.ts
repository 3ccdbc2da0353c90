// The same calls decided through all three forms — sidecar, Envoy ext_authz, express middleware —
// sharing one plugin instance and the real orders bundle.
import express from 'express';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { Server as NetServer } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gate } from '../proxy-plugin/admit.js';
import { createExtAuthzServer } from '../proxy-plugin/ext-authz.js';
import { loadJwks } from '../proxy-plugin/identity.js';
import { wardenMiddleware } from '../proxy-plugin/middleware.js';
import { startPlugin, type Plugin } from '../proxy-plugin/plugin.js';
import { createSidecar } from '../proxy-plugin/sidecar.js';
import { closeServer, copyPolicies, listenLocal, startIssuer, startUpstream, type Issuer, type Upstream } from './support/proxy-fixtures.js';

const silent = pino({ level: 'silent' });
let plugin: Plugin;
let upstream: Upstream;
let issuer: Issuer;
const servers: Array<NetServer & { closeAllConnections(): void }> = [];
const ports = { sidecar: 0, extAuthz: 0, app: 0 };
const appSaw: string[] = [];

function request(port: number, method: string, path: string, headers: Record<string, string>): Promise<{ status: number; id: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, id: res.headers['x-warden-decision-id'] as string | undefined }));
    });
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  const policies = await copyPolicies(['orders']);
  issuer = await startIssuer();
  upstream = await startUpstream();
  plugin = await startPlugin({
    workload: 'orders',
    bundleFile: join(policies.out, 'orders.tar.gz'),
    verificationKey: readFileSync(join(policies.out, 'verification-key.pem'), 'utf8'),
    identity: {
      jwt: { keys: await loadJwks(issuer.jwksUrl), issuer: issuer.issuer, audience: issuer.audience, algorithms: ['RS256'], clockToleranceSec: 5 },
      // The local Envoy (127.0.0.1 here) forwards the caller's verified certificate as XFCC.
      trustedHeader: { name: 'x-forwarded-client-cert', peers: ['127.0.0.1'] },
    },
    logger: silent,
  });
  const sidecar = createSidecar({ upstream: new URL(`http://127.0.0.1:${upstream.port}`), gate: plugin.gate, logger: silent });
  const extAuthz = createExtAuthzServer({ gate: plugin.gate, pathPrefix: '/check' });
  const app = express();
  app.use(wardenMiddleware(plugin.gate));
  app.use((req, res) => {
    appSaw.push(req.originalUrl);
    res.json({ ok: true });
  });
  const appServer = http.createServer(app);
  servers.push(sidecar, extAuthz, appServer);
  ports.sidecar = await listenLocal(sidecar);
  ports.extAuthz = await listenLocal(extAuthz);
  ports.app = await listenLocal(appServer);
});

afterAll(async () => {
  await plugin?.close();
  for (const s of [...servers, upstream?.server, issuer?.server]) if (s) await closeServer(s);
});

const XFCC_STOREFRONT = 'By=spiffe://cluster.local/ns/shop/sa/orders;Hash=abc;URI=spiffe://cluster.local/ns/shop/sa/storefront';
const XFCC_BILLING = 'By=spiffe://cluster.local/ns/shop/sa/orders;Hash=def;URI=spiffe://cluster.local/ns/billing/sa/invoicer';

describe('one decision table through sidecar, ext_authz and express middleware', () => {
  const table: Array<{ name: string; method: string; path: string; headers: () => Promise<Record<string, string>>; status: number }> = [
    { name: 'anonymous list of orders is denied', method: 'GET', path: '/orders', headers: async () => ({}), status: 403 },
    { name: 'a kubelet probe is allowed', method: 'GET', path: '/healthz', headers: async () => ({}), status: 200 },
    { name: 'the storefront (mesh identity) lists orders', method: 'GET', path: '/orders?limit=2', headers: async () => ({ 'x-forwarded-client-cert': XFCC_STOREFRONT }), status: 200 },
    { name: 'billing exports orders, literal route before the template', method: 'GET', path: '/orders/export', headers: async () => ({ 'x-forwarded-client-cert': XFCC_BILLING }), status: 200 },
    { name: 'the storefront may not export', method: 'GET', path: '/orders/export', headers: async () => ({ 'x-forwarded-client-cert': XFCC_STOREFRONT }), status: 403 },
    { name: 'support staff read one order', method: 'GET', path: '/orders/42', headers: async () => ({ authorization: `Bearer ${await issuer.sign({ sub: 'sam', role: 'support' })}` }), status: 200 },
    { name: 'an admin without MFA may not delete', method: 'DELETE', path: '/orders/42', headers: async () => ({ authorization: `Bearer ${await issuer.sign({ sub: 'ada', role: 'admin' })}` }), status: 403 },
    { name: 'an admin with MFA deletes', method: 'DELETE', path: '/orders/42', headers: async () => ({ authorization: `Bearer ${await issuer.sign({ sub: 'ada', role: 'admin', amr: ['mfa'] })}` }), status: 200 },
    { name: 'an expired token is refused', method: 'GET', path: '/orders/42', headers: async () => ({ authorization: `Bearer ${await issuer.sign({ sub: 'sam', role: 'support' }, { expiresIn: 1000, issuedAt: 900 })}` }), status: 401 },
    { name: 'a dot-dot path is refused', method: 'GET', path: '/healthz/../orders', headers: async () => ({}), status: 400 },
    { name: 'an encoded slash is refused', method: 'GET', path: '/orders%2Fexport', headers: async () => ({}), status: 400 },
  ];

  for (const row of table) {
    it(`${row.name}: ${row.status} in every form`, async () => {
      const headers = await row.headers();
      const seenBefore = upstream.seen.length;
      const appBefore = appSaw.length;
      const viaSidecar = await request(ports.sidecar, row.method, row.path, headers);
      const viaExtAuthz = await request(ports.extAuthz, row.method, `/check${row.path}`, headers);
      const viaApp = await request(ports.app, row.method, row.path, headers);
      // ext_authz answers 200 for allow; the other forms pass the upstream's 200 through.
      expect({ sidecar: viaSidecar.status, extAuthz: viaExtAuthz.status, middleware: viaApp.status }).toEqual({ sidecar: row.status, extAuthz: row.status, middleware: row.status });
      for (const r of [viaSidecar, viaExtAuthz, viaApp]) expect(r.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(upstream.seen.length - seenBefore).toBe(row.status === 200 ? 1 : 0);
      expect(appSaw.length - appBefore).toBe(row.status === 200 ? 1 : 0);
    });
  }

  it('gives Envoy the verified caller to copy upstream when ext_authz allows', async () => {
    const caller = await new Promise<http.IncomingHttpHeaders>((resolve, reject) => {
      http.request({ host: '127.0.0.1', port: ports.extAuthz, path: '/check/orders', headers: { 'x-forwarded-client-cert': XFCC_STOREFRONT, 'x-warden-principal': 'forged' }, agent: false }, (res) => {
        res.resume();
        resolve(res.headers);
      }).on('error', reject).end();
    });
    expect([caller['x-warden-principal'], caller['x-warden-authn']]).toEqual(['spiffe://cluster.local/ns/shop/sa/storefront', 'header']);
  });

  it('reads a field the request\'s Connection names only where the app receives it: not through the sidecar (a hop drops it), through the middleware', async () => {
    const headers = { 'x-forwarded-client-cert': XFCC_STOREFRONT, connection: 'keep-alive, X-Forwarded-Client-Cert' };
    const appBefore = appSaw.length;
    expect((await request(ports.sidecar, 'GET', '/orders?named=1', headers)).status).toBe(403);
    expect(upstream.seen.find((r) => r.url === '/orders?named=1')).toBeUndefined();
    expect((await request(ports.app, 'GET', '/orders?named=1', headers)).status).toBe(200);
    expect(appSaw.slice(appBefore)).toEqual(['/orders?named=1']);
  });

  it('ignores a mesh identity header from a peer that is not the configured local proxy', async () => {
    const gate: Gate = { pipeline: plugin.gate.pipeline, identity: { trustedHeader: { name: 'x-forwarded-client-cert', peers: ['10.0.0.9'] } } };
    const server = createExtAuthzServer({ gate });
    const port = await listenLocal(server);
    try {
      expect((await request(port, 'GET', '/orders', { 'x-forwarded-client-cert': XFCC_STOREFRONT })).status).toBe(403);
    } finally {
      await closeServer(server);
    }
  });

  it('does not forward a mesh identity header the sidecar did not trust', async () => {
    const gate: Gate = { pipeline: plugin.gate.pipeline, identity: { trustedHeader: { name: 'x-forwarded-client-cert', peers: ['10.0.0.9'] } } };
    const sidecar = createSidecar({ upstream: new URL(`http://127.0.0.1:${upstream.port}`), gate, logger: silent });
    const port = await listenLocal(sidecar);
    try {
      expect((await request(port, 'GET', '/healthz?xfcc=1', { 'x-forwarded-client-cert': XFCC_STOREFRONT })).status).toBe(200);
      const seen = upstream.seen.find((r) => r.url === '/healthz?xfcc=1')!;
      expect(seen.headers['x-forwarded-client-cert']).toBeUndefined();
      expect(seen.headers['x-warden-decision-id']).toMatch(/^[0-9a-f-]{36}$/);
    } finally {
      await closeServer(sidecar);
    }
  });
});
