import { exportJWK, generateKeyPair, SignJWT, createLocalJWKSet, type JWTVerifyGetKey } from 'jose';
import { describe, expect, it } from 'vitest';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { createCertificateAuthority } from '../runtime/certificate-authority.js';
import { identify, loadJwks, spiffeIdFromSan, type IdentityConfig, type TokenCacheOptions } from './identity.js';

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

  describe('remembered mesh header texts', () => {
    const cfg: IdentityConfig = { trustedHeader: { name: 'x-forwarded-client-cert', peers: ['127.0.0.1'] } };
    const xfcc = (sa: string) => `By=spiffe://td/ns/a/sa/x;URI=spiffe://td/ns/shop/sa/${sa}`;
    const call = async (address: string, value: string, rawHeaders?: string[]) => {
      const r = await identify({ socket: plainSocket(address), headers: { 'x-forwarded-client-cert': value }, ...(rawHeaders ? { rawHeaders } : {}) }, cfg);
      return r.ok ? `${r.source.authn} ${r.source.principal} ${r.source.namespace ?? '-'} ${r.source.address}` : `refused: ${r.reason}`;
    };

    it('gives each text its own principal, however close the texts and however often they repeat', async () => {
      expect(await call('127.0.0.1', xfcc('web'))).toBe('header spiffe://td/ns/shop/sa/web shop 127.0.0.1');
      expect(await call('127.0.0.1', xfcc('weB'))).toBe('header spiffe://td/ns/shop/sa/weB shop 127.0.0.1');
      expect(await call('127.0.0.1', `${xfcc('web')} `)).toMatch(/^refused: x-forwarded-client-cert/);
      expect(await call('127.0.0.1', xfcc('web'))).toBe('header spiffe://td/ns/shop/sa/web shop 127.0.0.1');
      // A text refused once is refused again, and its refusal is never another text's answer.
      expect(await call('127.0.0.1', `URI=${'spiffe://td/ns/shop/sa/web'};URI=spiffe://td/ns/shop/sa/evil`)).toMatch(/holds 2 URI SANs/);
      expect(await call('127.0.0.1', `URI=${'spiffe://td/ns/shop/sa/web'};URI=spiffe://td/ns/shop/sa/evil`)).toMatch(/holds 2 URI SANs/);
    });

    it('still checks the peer and repeated fields on every call, after the text was read for a trusted peer', async () => {
      const text = xfcc('storefront');
      expect(await call('127.0.0.1', text)).toBe('header spiffe://td/ns/shop/sa/storefront shop 127.0.0.1');
      // The same text from an address that is not the mesh proxy's is not a credential.
      expect(await call('10.0.0.9', text)).toBe('none anonymous - 10.0.0.9');
      expect(await call('127.0.0.2', text)).toBe('none anonymous - 127.0.0.2');
      // From the trusted peer, but sent twice (the caller's copy and the proxy's): refused, as before it was remembered.
      expect(await call('127.0.0.1', text, ['X-Forwarded-Client-Cert', text, 'x-forwarded-client-cert', text])).toMatch(/was sent more than once/);
      expect(await call('127.0.0.1', text, ['X-Forwarded-Client-Cert', text])).toBe('header spiffe://td/ns/shop/sa/storefront shop 127.0.0.1');
    });

    it('hands every call a source of its own: changing one call\'s source changes no later call', async () => {
      const first = await identify({ socket: plainSocket('127.0.0.1'), headers: { 'x-forwarded-client-cert': xfcc('api') } }, cfg);
      if (!first.ok) throw new Error(first.reason);
      first.source.principal = 'spiffe://td/ns/evil/sa/x';
      first.source.claims.role = 'admin';
      expect(await call('127.0.0.1', xfcc('api'))).toBe('header spiffe://td/ns/shop/sa/api shop 127.0.0.1');
      const again = await identify({ socket: plainSocket('127.0.0.1'), headers: { 'x-forwarded-client-cert': xfcc('api') } }, cfg);
      expect(again.ok && again.source.claims).toEqual({});
    });

    it('reads texts beyond what it remembers, and long texts, correctly', async () => {
      // More distinct texts than the cache holds, then the first ones again (forgotten by then).
      for (let i = 0; i < 1100; i++) expect(await call('127.0.0.1', xfcc(`sa-${i}`))).toBe(`header spiffe://td/ns/shop/sa/sa-${i} shop 127.0.0.1`);
      for (let i = 0; i < 5; i++) expect(await call('127.0.0.1', xfcc(`sa-${i}`))).toBe(`header spiffe://td/ns/shop/sa/sa-${i} shop 127.0.0.1`);
      // A text longer than what is remembered (a long Subject), read on every call.
      const long = (sa: string) => `Subject="CN=${'x'.repeat(3000)}";URI=spiffe://td/ns/shop/sa/${sa}`;
      expect(await call('127.0.0.1', long('one'))).toBe('header spiffe://td/ns/shop/sa/one shop 127.0.0.1');
      expect(await call('127.0.0.1', long('two'))).toBe('header spiffe://td/ns/shop/sa/two shop 127.0.0.1');
    });

    it('keeps what one header says apart from what another header with the same text says', async () => {
      const linkerd: IdentityConfig = { trustedHeader: { name: 'l5d-client-id', peers: ['127.0.0.1'] } };
      const text = 'web.shop.serviceaccount.identity.linkerd.cluster.local';
      const asL5d = await identify({ socket: plainSocket('127.0.0.1'), headers: { 'l5d-client-id': text } }, linkerd);
      expect(asL5d.ok && asL5d.source.principal).toBe(text);
      // Not an XFCC element: the XFCC reader refuses the text the l5d reader accepted.
      expect(await call('127.0.0.1', text)).toMatch(/^refused: x-forwarded-client-cert is malformed/);
    });
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

  // A token that names where its key lives, or carries the key itself, is checked against the configured
  // key set all the same: the attacker's own key, however it is offered, verifies nothing.
  it('refuses tokens that bring their own key (jwk, jku, x5u), name an unknown kid, or are signed by another key under a known kid', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const attacker = await generateKeyPair('ES256', { extractable: true });
    const attackerJwk = await exportJWK(attacker.publicKey);
    const cfg: IdentityConfig = { jwt: { keys: createLocalJWKSet({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k', alg: 'ES256' }] }), issuer: 'iss', audience: 'aud', algorithms: ['ES256'], clockToleranceSec: 30 } };
    const sign = (key: CryptoKey, header: Record<string, unknown>, claims: { iss?: string; aud?: string; nbf?: number } = {}) =>
      new SignJWT({ sub: 'mallory', role: 'admin' }).setProtectedHeader({ alg: 'ES256', ...header }).setIssuer(claims.iss ?? 'iss').setAudience(claims.aud ?? 'aud').setNotBefore(claims.nbf ?? 0).setExpirationTime('5m').sign(key);
    // jose will not sign a header naming a critical extension it does not know: signed here with WebCrypto.
    const signRaw = async (key: CryptoKey, header: Record<string, unknown>, claims: Record<string, unknown>) => {
      const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
      const sig = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, key, new TextEncoder().encode(input));
      return `${input}.${Buffer.from(sig).toString('base64url')}`;
    };
    const refused = async (token: string) => identify({ socket: plainSocket('1.2.3.4'), headers: { authorization: `Bearer ${token}` } }, cfg);
    const hostile: Array<[string, string, string]> = [
      ['its own key in the jwk header', await sign(attacker.privateKey, { jwk: attackerJwk }), 'SIGNATURE'],
      ['its own key in the jwk header, under the known kid', await sign(attacker.privateKey, { kid: 'k', jwk: attackerJwk }), 'SIGNATURE'],
      ['a jku naming a key set of its own', await sign(attacker.privateKey, { kid: 'k', jku: 'http://127.0.0.1:1/jwks.json' }), 'SIGNATURE'],
      ['an x5u naming a certificate of its own', await sign(attacker.privateKey, { kid: 'k', x5u: 'http://127.0.0.1:1/cert.pem' }), 'SIGNATURE'],
      ['a kid no configured key has', await sign(attacker.privateKey, { kid: 'attacker' }), 'NO_MATCHING_KEY'],
      ['another key under the known kid', await sign(attacker.privateKey, { kid: 'k' }), 'SIGNATURE'],
      ['a critical header nobody understands', await signRaw(privateKey, { alg: 'ES256', kid: 'k', crit: ['x-bypass'], 'x-bypass': true }, { sub: 'mallory', iss: 'iss', aud: 'aud', exp: Math.floor(Date.now() / 1000) + 300 }), 'NOT_SUPPORTED'],
      ['the right key, another issuer', await sign(privateKey, { kid: 'k' }, { iss: 'other-iss' }), '"iss"'],
      ['the right key, another audience', await sign(privateKey, { kid: 'k' }, { aud: 'other-aud' }), '"aud"'],
      ['the right key, not valid for an hour yet', await sign(privateKey, { kid: 'k' }, { nbf: Math.floor(Date.now() / 1000) + 3600 }), '"nbf"'],
    ];
    for (const [what, token, why] of hostile) expect({ what, r: await refused(token) }).toEqual({ what, r: { ok: false, reason: expect.stringMatching(new RegExp(`^bearer token refused .*${why}`)) } });
    // The same token shape signed by the configured key is accepted: the refusals above are the key's, the claims' and the header's.
    expect(await refused(await sign(privateKey, { kid: 'k' }))).toMatchObject({ ok: true, source: { principal: 'mallory', authn: 'jwt' } });
  });

  describe('verified-token cache', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const local = createLocalJWKSet({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k', alg: 'ES256' }] });
    // Every signature check asks the key set for its key: counting the lookups counts verifications.
    const setup = (cache?: TokenCacheOptions | false) => {
      const state = { lookups: 0, clock: Date.now() };
      const keys: JWTVerifyGetKey = (header, token) => {
        state.lookups++;
        return local(header, token);
      };
      const cfg: IdentityConfig = { jwt: { keys, issuer: 'iss', audience: 'aud', algorithms: ['ES256'], clockToleranceSec: 30, now: () => state.clock, ...(cache !== undefined ? { cache } : {}) } };
      return { state, cfg };
    };
    const sign = (sub: string, exp: number, extra: Record<string, unknown> = {}) =>
      new SignJWT({ sub, ...extra }).setProtectedHeader({ alg: 'ES256', kid: 'k' }).setIssuer('iss').setAudience('aud').setExpirationTime(exp).sign(privateKey);
    const call = (cfg: IdentityConfig, token: string, address = '10.0.0.1') => identify({ socket: plainSocket(address), headers: { authorization: `Bearer ${token}` } }, cfg);

    it('checks a token once, serves each later call with its own address, and never past exp', async () => {
      const { state, cfg } = setup();
      const exp = Math.floor(state.clock / 1000) + 50;
      const token = await sign('u1', exp, { role: 'admin' });
      const first = await call(cfg, token, '10.0.0.1');
      const second = await call(cfg, token, '10.0.0.2');
      expect(state.lookups).toBe(1);
      expect(second).toEqual({ ok: true, source: { principal: 'u1', authn: 'jwt', address: '10.0.0.2', claims: first.ok ? first.source.claims : {} } });
      state.clock = exp * 1000 + 10_000; // past exp, within the 30 s skew: verified again, and accepted
      expect((await call(cfg, token)).ok).toBe(true);
      expect(state.lookups).toBe(2);
      state.clock = exp * 1000 + 60_000; // past the skew: refused, although it was accepted before
      expect(await call(cfg, token)).toMatchObject({ ok: false, reason: expect.stringContaining('ERR_JWT_EXPIRED') });
    });

    it('verifies again after maxAgeSec, and every call when turned off', async () => {
      const { state, cfg } = setup({ maxAgeSec: 5 });
      const token = await sign('u1', Math.floor(state.clock / 1000) + 600);
      await call(cfg, token);
      await call(cfg, token);
      state.clock += 6000;
      await call(cfg, token);
      expect(state.lookups).toBe(2);
      const off = setup(false);
      for (let i = 0; i < 3; i++) expect((await call(off.cfg, token)).ok).toBe(true);
      expect(off.state.lookups).toBe(3);
    });

    it('forgets the oldest token beyond maxEntries', async () => {
      const { state, cfg } = setup({ maxEntries: 2 });
      const exp = Math.floor(state.clock / 1000) + 600;
      const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((sub) => sign(sub, exp)));
      for (const t of [a!, b!, c!, c!, b!]) await call(cfg, t);
      expect(state.lookups).toBe(3);
      await call(cfg, a!);
      expect(state.lookups).toBe(4);
    });

    it('never serves a forged variant of a cached token: changed claims, alg none, a stripped signature', async () => {
      const { state, cfg } = setup();
      const token = await sign('u1', Math.floor(state.clock / 1000) + 600, { role: 'support' });
      expect((await call(cfg, token)).ok).toBe(true);
      const [header, , signature] = token.split('.');
      const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
      const claims = { sub: 'u1', role: 'admin', iss: 'iss', aud: 'aud', exp: Math.floor(state.clock / 1000) + 600 };
      const forged = [`${header}.${b64(claims)}.${signature}`, `${b64({ alg: 'none' })}.${b64(claims)}.`, `${header}.${token.split('.')[1]}.`];
      for (const f of forged) expect(await call(cfg, f), f).toMatchObject({ ok: false, reason: expect.stringContaining('bearer token refused') });
      expect(state.lookups).toBeGreaterThanOrEqual(2);
    });

    it('shares claims between calls read-only', async () => {
      const { state, cfg } = setup();
      const token = await sign('u1', Math.floor(state.clock / 1000) + 600, { amr: ['pwd'] });
      const first = await call(cfg, token);
      const claims = (first.ok ? first.source.claims : {}) as { amr: string[]; role?: string };
      expect(() => claims.amr.push('mfa')).toThrow(TypeError);
      expect(() => (claims.role = 'admin')).toThrow(TypeError);
      const second = await call(cfg, token);
      expect(second.ok && second.source.claims).toMatchObject({ amr: ['pwd'] });
      expect(second.ok && second.source.claims.role).toBeUndefined();
    });
  });

  it('reads a connection\'s client certificate once, for all the calls it carries', async () => {
    const ca = await createCertificateAuthority('identity-test-ca');
    const other = await createCertificateAuthority('other-ca');
    const serverCert = await ca.issue({ kind: 'server', commonName: 'localhost', ipAddresses: ['127.0.0.1'] });
    const server = tls.createServer({ cert: serverCert.certPem, key: serverCert.keyPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: false });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const clients: tls.TLSSocket[] = [];
    // The server side of one connection made with `cert`, its getPeerCertificate() calls counted.
    const connect = async (cert?: { certPem: string; keyPem: string }) => {
      const accepted = new Promise<tls.TLSSocket>((r) => server.once('secureConnection', r));
      clients.push(tls.connect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', ca: ca.certPem, ...(cert ? { cert: cert.certPem, key: cert.keyPem } : {}) }));
      const socket = await accepted;
      const reads = { n: 0 };
      const original = socket.getPeerCertificate.bind(socket);
      socket.getPeerCertificate = ((detailed?: boolean) => {
        reads.n++;
        return original(detailed as true);
      }) as typeof socket.getPeerCertificate;
      return { socket, reads };
    };
    try {
      const storefront = await connect(await ca.issue({ kind: 'client', uris: ['spiffe://cluster.local/ns/shop/sa/storefront'] }));
      for (let i = 0; i < 3; i++) {
        const r = await identify({ socket: storefront.socket, headers: {} }, {});
        expect(r.ok && r.source).toMatchObject({ principal: 'spiffe://cluster.local/ns/shop/sa/storefront', authn: 'mtls', namespace: 'shop' });
      }
      expect(storefront.reads.n).toBe(1);
      const foreign = await connect(await other.issue({ kind: 'client', uris: ['spiffe://cluster.local/ns/shop/sa/storefront'] }));
      for (let i = 0; i < 2; i++) expect(await identify({ socket: foreign.socket, headers: {} }, {})).toMatchObject({ ok: false, reason: expect.stringContaining('client certificate refused') });
      expect(foreign.reads.n).toBe(1);
      const none = await connect();
      for (let i = 0; i < 2; i++) expect(await identify({ socket: none.socket, headers: {} }, {})).toMatchObject({ ok: true, source: { principal: 'anonymous' } });
      expect(none.reads.n).toBe(1);
    } finally {
      for (const c of clients) c.destroy();
      server.close();
    }
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
