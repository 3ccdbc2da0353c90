import http from 'node:http';
import { describe, expect, it } from 'vitest';
import { closeServer, listenLocal } from '../test/proxy-fixtures.js';
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
});
