// Who may open the console: an audit reader identified by its client certificate (the audit API's
// rule), or a person with an OIDC bearer token from the configured issuer that carries the configured
// claim. Nobody else, never anonymously. Tokens are verified with jose against the issuer's keys,
// asymmetric algorithms only (an `alg: none` or HMAC token is refused whatever it claims).
import { readFileSync } from 'node:fs';
import type { Request } from 'express';
import { createLocalJWKSet, createRemoteJWKSet, errors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import type { Identify } from '../audit/peer-identity.js';

/** OIDC access: tokens from `issuer` (keys at `jwks`: an https URL or a JWKS file) with `claim` = `value`. */
export interface ConsoleOidc {
  issuer: string;
  jwks: string;
  /** When set, the token's `aud` must name it. */
  audience?: string;
  /** The claim that grants access, e.g. `groups`; it must equal `value` or be a list holding it. */
  claim: string;
  value: string;
}

/** What the console checks callers against. */
export interface ConsoleAccessOptions {
  identify: Identify;
  readers: readonly string[];
  oidc?: ConsoleOidc;
}

/** Who is looking, or why not. */
export type AccessResult = { ok: true; who: string; via: 'certificate' | 'oidc' } | { ok: false; status: 401 | 403; reason: string };

const ASYMMETRIC = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

/** Parse `--console-oidc-claim name=value`. */
export function parseClaim(text: string): { claim: string; value: string } | undefined {
  const at = text.indexOf('=');
  return at > 0 && at < text.length - 1 ? { claim: text.slice(0, at), value: text.slice(at + 1) } : undefined;
}

/** A JWKS location keys may be fetched from: https, or plain http on loopback only (keys fetched in the clear could be swapped). */
export function isKeyUrl(jwks: string): boolean {
  return /^https:\/\//.test(jwks) || /^http:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d+)?\//.test(jwks);
}

function keySet(jwks: string): JWTVerifyGetKey {
  if (/^https?:\/\//.test(jwks) && !isKeyUrl(jwks)) throw new Error(`OIDC keys at ${jwks} would be fetched in the clear; use https`);
  if (isKeyUrl(jwks)) return createRemoteJWKSet(new URL(jwks), { cooldownDuration: 30_000, timeoutDuration: 5_000 });
  return createLocalJWKSet(JSON.parse(readFileSync(jwks, 'utf8')) as Parameters<typeof createLocalJWKSet>[0]);
}

/** A checker for console requests. */
export function consoleAccess(opts: ConsoleAccessOptions): (req: Request) => Promise<AccessResult> {
  const readers = new Set(opts.readers);
  const keys = opts.oidc ? keySet(opts.oidc.jwks) : undefined;
  return async (req) => {
    const auth = req.get('authorization');
    // A bearer token is judged on its own: a valid certificate does not rescue a bad token, nor the reverse.
    if (auth !== undefined) {
      if (!opts.oidc || !keys) return { ok: false, status: 401, reason: 'this console accepts no bearer tokens (no OIDC issuer configured); present an audit reader client certificate' };
      const m = /^Bearer ([A-Za-z0-9_=-]+\.[A-Za-z0-9_=-]*\.[A-Za-z0-9_=-]*)$/.exec(auth.trim());
      if (!m) return { ok: false, status: 401, reason: 'Authorization must be "Bearer <JWT>"' };
      try {
        const { payload } = await jwtVerify(m[1]!, keys, { issuer: opts.oidc.issuer, ...(opts.oidc.audience ? { audience: opts.oidc.audience } : {}), algorithms: ASYMMETRIC, clockTolerance: 30 });
        const v = payload[opts.oidc.claim];
        const has = v === opts.oidc.value || (Array.isArray(v) && v.includes(opts.oidc.value));
        const who = `oidc:${typeof payload.sub === 'string' ? payload.sub : '?'}`;
        if (!has) return { ok: false, status: 403, reason: `${who} may not open the console: its token's ${opts.oidc.claim} claim does not hold ${JSON.stringify(opts.oidc.value)}` };
        return { ok: true, who, via: 'oidc' };
      } catch (err) {
        const why = err instanceof errors.JWTExpired ? 'the token has expired' : err instanceof errors.JOSEAlgNotAllowed ? 'the token is not signed with an allowed algorithm' : err instanceof errors.JWTClaimValidationFailed ? `the token's ${err.claim} claim is not accepted` : 'the token does not verify against the issuer\'s keys';
        return { ok: false, status: 401, reason: `${why}; sign in again with ${opts.oidc.issuer}` };
      }
    }
    const peer = await opts.identify(req);
    if (!peer) return { ok: false, status: 401, reason: `present an audit reader client certificate${opts.oidc ? ` or a bearer token from ${opts.oidc.issuer}` : ''}` };
    if (!readers.has(peer.principal)) return { ok: false, status: 403, reason: `${peer.principal} may not read the audit log` };
    return { ok: true, who: peer.principal, via: 'certificate' };
  };
}
