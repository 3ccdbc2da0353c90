import { X509Certificate } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { closeServer, listenLocal } from '../test/support/proxy-fixtures.js';
import { createCertificateAuthority } from './certificate-authority.js';
import { EngineConnection, EngineConnectionError } from './engine-connection.js';

describe('EngineConnection', () => {
  it('refuses credentials it could not use, instead of silently talking without an identity', () => {
    expect(() => new EngineConnection('http://127.0.0.1:8181', { cert: 'c', key: 'k' })).toThrow(/plain http, but TLS credentials were given; use https/);
    expect(() => new EngineConnection('https://127.0.0.1:8181', { cert: 'c' })).toThrow(/certificate and its key go together/);
    expect(() => new EngineConnection('ftp://engine')).toThrow(EngineConnectionError);
    expect(() => new EngineConnection('not a url')).toThrow(/is not a URL/);
  });

  it('sends requests under the base URL, path prefix included', async () => {
    const seen: string[] = [];
    const server = http.createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      res.end('ok');
    });
    const port = await listenLocal(server);
    const c = new EngineConnection(`http://127.0.0.1:${port}/engine`);
    try {
      const r = await c.request('logs', { method: 'POST', body: Buffer.from('[]') });
      expect([r.status, r.body.toString()]).toEqual([200, 'ok']);
      await c.request('/bundles/orders');
      expect(seen).toEqual(['POST /engine/logs', 'GET /engine/bundles/orders']);
    } finally {
      c.close();
      await closeServer(server);
    }
  });

  it('presents a rotated client certificate from the next request on, while a request in flight finishes', async () => {
    const ca = await createCertificateAuthority('engine-connection-test');
    const serverCert = await ca.issue({ kind: 'server', commonName: 'localhost', ipAddresses: ['127.0.0.1'] });
    const before = await ca.issue({ kind: 'client', uris: ['spiffe://cluster.local/ns/shop/sa/orders'] });
    const after = await ca.issue({ kind: 'client', uris: ['spiffe://cluster.local/ns/shop/sa/orders'] });
    let releaseSlow: () => void = () => undefined;
    const server = https.createServer({ cert: serverCert.certPem, key: serverCert.keyPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      const serial = (req.socket as TLSSocket).getPeerCertificate().serialNumber;
      if (req.url === '/slow') releaseSlow = () => res.end(serial);
      else res.end(serial);
    });
    const port = await listenLocal(server);
    const c = new EngineConnection(`https://127.0.0.1:${port}`, { ca: ca.certPem, cert: before.certPem, key: before.keyPem });
    const serialOf = (pem: string) => new X509Certificate(pem).serialNumber;
    try {
      expect((await c.request('x')).body.toString()).toBe(serialOf(before.certPem));
      const slow = c.request('slow');
      await new Promise<void>((r) => server.once('request', () => setImmediate(r)));
      c.setTls({ ca: ca.certPem, cert: after.certPem, key: after.keyPem });
      expect((await c.request('x')).body.toString()).toBe(serialOf(after.certPem));
      releaseSlow();
      expect((await slow).body.toString()).toBe(serialOf(before.certPem));
      expect(() => c.setTls({ cert: after.certPem })).toThrow(/certificate and its key go together/);
    } finally {
      c.close();
      await closeServer(server);
    }
  });
});
