// OCI references and docker-config credentials: what is accepted, and the message for what is not.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { credentialsFor, formatOciReference, parseOciReference, RegistryClient } from './oci-registry.js';

const dir = mkdtempSync(join(tmpdir(), `warden-oci-config-${process.pid}-`));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const config = (name: string, value: unknown) => {
  const p = join(dir, name);
  writeFileSync(p, typeof value === 'string' ? value : JSON.stringify(value));
  return p;
};

describe('parseOciReference', () => {
  it.each([
    ['oci://registry.example.com/platform/bundles/orders:main', { registry: 'registry.example.com', repository: 'platform/bundles/orders', reference: 'main', plainHttp: false }],
    ['oci+http://127.0.0.1:5000/bundles:v1.2', { registry: '127.0.0.1:5000', repository: 'bundles', reference: 'v1.2', plainHttp: true }],
    ['ghcr.io/acme/warden-bundles:main', { registry: 'ghcr.io', repository: 'acme/warden-bundles', reference: 'main', plainHttp: false }],
    [`oci://r.example/b@sha256:${'a'.repeat(64)}`, { registry: 'r.example', repository: 'b', reference: `sha256:${'a'.repeat(64)}`, plainHttp: false }],
  ])('reads %s', (raw, want) => {
    expect(parseOciReference(raw)).toEqual(want);
    expect(parseOciReference(formatOciReference(want))).toEqual(want);
  });

  it.each([
    ['oci://registry.example.com/orders', /has no :tag/],
    ['oci://registry.example.com/../etc:main', /not a valid repository name/],
    ['oci://registry.example.com/Orders:main', /not a valid repository name/],
    ['oci://user@registry.example.com/orders:main', /is not a host/],
    ['oci://registry.example.com/orders:-bad', /not a valid tag/],
    ['oci://registry.example.com/orders@sha256:abc', /not a sha256 digest/],
    ['https://registry.example.com/orders:main', /is not a host|not a valid repository/],
    ['orders:main', /needs a registry host/],
  ])('refuses %s', (raw, why) => {
    expect(() => parseOciReference(raw)).toThrow(why);
  });
});

describe('credentialsFor', () => {
  it('reads auth, username/password and registrytoken entries, with or without a scheme in the key', () => {
    const file = config('ok.json', {
      auths: {
        'a.example': { auth: Buffer.from('ci:p:ss').toString('base64') },
        'https://b.example': { username: 'u', password: 'p' },
        'c.example': { registrytoken: 'tok' },
      },
    });
    expect(credentialsFor('a.example', file)).toEqual({ username: 'ci', password: 'p:ss' });
    expect(credentialsFor('b.example', file)).toEqual({ username: 'u', password: 'p' });
    expect(credentialsFor('c.example', file)).toEqual({ bearer: 'tok' });
    expect(credentialsFor('d.example', file)).toBeUndefined();
  });

  it('is anonymous when the default file is missing, and an error when a named one is', () => {
    expect(credentialsFor('a.example', join(dir, 'missing.json'))).toBeUndefined();
    expect(() => credentialsFor('a.example', join(dir, 'missing.json'), true)).toThrow(/missing\.json cannot be read/);
  });

  it('says what is wrong with a file it cannot use', () => {
    expect(() => credentialsFor('a.example', config('bad.json', '{nope'))).toThrow(/bad\.json is not JSON/);
    expect(() => credentialsFor('a.example', config('helper.json', { credHelpers: { 'a.example': 'ecr-login' } }))).toThrow(/credential helper, which Warden does not run/);
    expect(() => credentialsFor('a.example', config('noauth.json', { auths: { 'a.example': { auth: Buffer.from('nocolon').toString('base64') } } }))).toThrow(/not base64 of user:password/);
    expect(() => credentialsFor('a.example', config('empty.json', { auths: { 'a.example': {} } }))).toThrow(/neither auth, username\/password nor registrytoken/);
  });
});

describe('registry credentials on a redirect', () => {
  // A registry may send blob downloads to storage on another origin (S3, a CDN). The registry's
  // credentials must reach only the registry: not that origin, even when it asks for them.
  const listen = async (handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; origin: string }> => {
    const server = createServer(handler).listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    return { server, origin: `127.0.0.1:${(server.address() as AddressInfo).port}` };
  };
  const close = (s: Server) => new Promise((r) => s.close(r));

  it.each([
    ['answers', 200],
    ['challenges for credentials', 401],
  ])('sends them to the registry only, when the other origin %s', async (_what, storageStatus) => {
    const seenByStorage: IncomingHttpHeaders[] = [];
    const storage = await listen((req, res) => {
      seenByStorage.push(req.headers);
      res.writeHead(storageStatus, storageStatus === 401 ? { 'www-authenticate': 'Basic realm="storage"' } : {}).end('blob');
    });
    const registry = await listen((req, res) => {
      if (req.headers.authorization !== `Basic ${Buffer.from('ci:secret').toString('base64')}`) res.writeHead(401, { 'www-authenticate': 'Basic realm="registry"' }).end();
      else res.writeHead(307, { location: `http://${storage.origin}/blob` }).end();
    });
    try {
      const client = new RegistryClient(registry.origin, { plainHttp: true, credentials: { username: 'ci', password: 'secret' } });
      const got = client.request('GET', 'bundles/blobs/sha256:0', { scope: 'repository:bundles:pull' });
      if (storageStatus === 200) expect((await got).status).toBe(200);
      else await expect(got).rejects.toThrow(/refused GET .* \(401\) with the credentials given/);
      expect(seenByStorage.length).toBeGreaterThan(0);
      expect(seenByStorage.map((h) => h.authorization)).toEqual(seenByStorage.map(() => undefined));
    } finally {
      await close(registry.server);
      await close(storage.server);
    }
  });
});
