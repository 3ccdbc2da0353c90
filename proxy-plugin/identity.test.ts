import { exportJWK, generateKeyPair, SignJWT, createLocalJWKSet } from 'jose';
import { describe, expect, it } from 'vitest';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { identify, loadJwks, spiffeIdFromSan, type IdentityConfig } from './identity.js';

const plainSocket = (address: string) => ({ remoteAddress: address });

describe('identify', () => {
  it('is anonymous without credentials', async () => {
    expect(await identify({ socket: plainSocket('10.0.0.1'), headers: {} }, {})).toEqual({ ok: true, source: { principal: 'anonymous', authn: 'none', claims: {}, address: '10.0.0.1' } });
  });

  it('trusts a mesh header only from the configured peer', async () => {
    const cfg: IdentityConfig = { trustedHeader: { name: 'l5d-client-id', peers: ['127.0.0.1'] } };
    const headers = { 'l5d-client-id': 'web.shop.serviceaccount.identity.linkerd.cluster.local' };
    const fromPeer = await identify({ socket: plainSocket('127.0.0.1'), headers }, cfg);
    expect(fromPeer.ok && fromPeer.source).toMatchObject({ authn: 'header', principal: headers['l5d-client-id'] });
    const fromElsewhere = await identify({ socket: plainSocket('10.1.1.1'), headers }, cfg);
    expect(fromElsewhere.ok && fromElsewhere.source.principal).toBe('anonymous');
  });

  it('takes the SPIFFE ID of the nearest hop from x-forwarded-client-cert', async () => {
    const cfg: IdentityConfig = { trustedHeader: { name: 'x-forwarded-client-cert', peers: ['127.0.0.1'] } };
    const xfcc = 'By=spiffe://td/ns/a/sa/x;URI=spiffe://td/ns/evil/sa/e,By=spiffe://td/ns/a/sa/x;URI=spiffe://td/ns/shop/sa/web';
    const r = await identify({ socket: plainSocket('127.0.0.1'), headers: { 'x-forwarded-client-cert': xfcc } }, cfg);
    expect(r.ok && r.source).toMatchObject({ principal: 'spiffe://td/ns/shop/sa/web', namespace: 'shop' });
  });

  it('refuses a certificate without exactly one SPIFFE URI SAN', () => {
    expect(spiffeIdFromSan('DNS:a, URI:spiffe://td/ns/a/sa/b')).toBe('spiffe://td/ns/a/sa/b');
    expect(spiffeIdFromSan('URI:spiffe://td/ns/a/sa/b, URI:spiffe://td/ns/c/sa/d')).toBeUndefined();
    expect(spiffeIdFromSan('DNS:a')).toBeUndefined();
  });

  it('puts verified JWT claims into the source and refuses a token outside the clock skew', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k', alg: 'ES256' };
    const cfg: IdentityConfig = { jwt: { keys: createLocalJWKSet({ keys: [jwk] }), issuer: 'iss', audience: 'aud', algorithms: ['ES256'], clockToleranceSec: 30 } };
    const now = Math.floor(Date.now() / 1000);
    const sign = (exp: number) => new SignJWT({ sub: 'u1', scope: 'a b' }).setProtectedHeader({ alg: 'ES256', kid: 'k' }).setIssuer('iss').setAudience('aud').setExpirationTime(exp).sign(privateKey);
    const good = await identify({ socket: plainSocket('1.2.3.4'), headers: { authorization: `Bearer ${await sign(now + 60)}` } }, cfg);
    expect(good.ok && good.source).toMatchObject({ principal: 'u1', authn: 'jwt', claims: { scope: 'a b', iss: 'iss' } });
    const justExpired = await identify({ socket: plainSocket('1.2.3.4'), headers: { authorization: `Bearer ${await sign(now - 10)}` } }, cfg);
    expect(justExpired.ok).toBe(true); // within 30 s of skew
    const expired = await identify({ socket: plainSocket('1.2.3.4'), headers: { authorization: `Bearer ${await sign(now - 120)}` } }, cfg);
    expect(expired).toMatchObject({ ok: false, reason: expect.stringContaining('ERR_JWT_EXPIRED') });
  });

  it('refuses a bearer token when no issuer is configured instead of ignoring it', async () => {
    const r = await identify({ socket: plainSocket('1.2.3.4'), headers: { authorization: 'Bearer abc.def.ghi' } }, {});
    expect(r).toMatchObject({ ok: false, reason: expect.stringContaining('no JWT issuer configured') });
  });

  it('refetches a JWKS URL when a token names a key it has not seen (key rotation)', async () => {
    const k1 = await generateKeyPair('ES256');
    const k2 = await generateKeyPair('ES256');
    const keys = [{ ...(await exportJWK(k1.publicKey)), kid: 'k1', alg: 'ES256' }];
    let fetches = 0;
    const server = http.createServer((_req, res) => {
      fetches++;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
      const cfg: IdentityConfig = { jwt: { keys: await loadJwks(url, { cooldownMs: 0 }), issuer: 'iss', audience: 'aud', algorithms: ['ES256'], clockToleranceSec: 5 } };
      const sign = (key: CryptoKey, kid: string) => new SignJWT({ sub: kid }).setProtectedHeader({ alg: 'ES256', kid }).setIssuer('iss').setAudience('aud').setExpirationTime('1m').sign(key);
      const first = await identify({ socket: plainSocket('1.1.1.1'), headers: { authorization: `Bearer ${await sign(k1.privateKey, 'k1')}` } }, cfg);
      expect(first.ok).toBe(true);
      expect(fetches).toBe(1);
      keys.push({ ...(await exportJWK(k2.publicKey)), kid: 'k2', alg: 'ES256' });
      const rotated = await identify({ socket: plainSocket('1.1.1.1'), headers: { authorization: `Bearer ${await sign(k2.privateKey, 'k2')}` } }, cfg);
      expect(rotated.ok && rotated.source.principal).toBe('k2');
      expect(fetches).toBe(2);
    } finally {
      server.close();
    }
  });
});
