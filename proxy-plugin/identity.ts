// Who is calling: established by cryptography (mTLS peer certificate, signed JWT), or by a mesh
// proxy's header only when the operator named that header and the connection comes from its address.
import { createLocalJWKSet, createRemoteJWKSet, jwtVerify, errors as joseErrors, type JWTVerifyGetKey, type JSONWebKeySet } from 'jose';
import { readFile } from 'node:fs/promises';
import type { TLSSocket } from 'node:tls';
import { ANONYMOUS, type Source } from '../formats/input.js';

/** JWT verification settings. */
export interface JwtConfig {
  keys: JWTVerifyGetKey;
  issuer: string | string[];
  audience: string | string[];
  /** Accepted algorithms; asymmetric only (a public key is never an HMAC secret). */
  algorithms: string[];
  /** Clock skew tolerated on exp/nbf/iat, seconds (bounded to 5 minutes). */
  clockToleranceSec: number;
  /** Largest token lifetime accepted (exp - iat), seconds. */
  maxTokenAgeSec?: number;
}

/** A mesh identity header trusted from one local peer. */
export interface TrustedHeaderConfig {
  /** e.g. `x-forwarded-client-cert` (Envoy) or `l5d-client-id` (Linkerd). */
  name: string;
  /** Peer addresses the header is accepted from (the local mesh proxy). */
  peers: string[];
}

/** How a plugin identifies callers. */
export interface IdentityConfig {
  jwt?: JwtConfig;
  trustedHeader?: TrustedHeaderConfig;
}

/** The connection and headers a caller presented. */
export interface Presented {
  /** The socket (a TLSSocket when the listener is TLS). */
  socket: { remoteAddress?: string | undefined } & Partial<Pick<TLSSocket, 'authorized' | 'authorizationError' | 'getPeerCertificate' | 'encrypted'>>;
  /** Lower-cased request headers. */
  headers: Record<string, string>;
}

/** An identity, or why the credentials presented were refused (401, never a silent downgrade). */
export type Identified = { ok: true; source: Source } | { ok: false; reason: string };

/** Asymmetric JWS algorithms; `none` and HS* are never accepted. */
export const ASYMMETRIC_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

/** JWKS from a file (read once) or an http(s) URL (cached; refetched when an unknown kid appears). */
export async function loadJwks(location: string, opts: { cooldownMs?: number } = {}): Promise<JWTVerifyGetKey> {
  // cooldown: an unknown kid triggers at most one refetch per period, so random kids cannot flood the issuer.
  if (/^https?:\/\//.test(location)) return createRemoteJWKSet(new URL(location), { cooldownDuration: opts.cooldownMs ?? 30_000, cacheMaxAge: 600_000, timeoutDuration: 5000 });
  const set = JSON.parse(await readFile(location, 'utf8')) as JSONWebKeySet;
  return createLocalJWKSet(set);
}

// Kubernetes SPIFFE IDs name the caller's namespace: spiffe://<td>/ns/<ns>/sa/<sa>.
function namespaceOf(principal: string): string | undefined {
  const m = /^spiffe:\/\/[^/]+\/ns\/([^/]+)\/sa\/[^/]+$/.exec(principal);
  return m?.[1];
}

function source(principal: string, authn: Source['authn'], address: string, claims: Record<string, unknown> = {}): Source {
  const ns = namespaceOf(principal);
  return { principal, authn, claims, address, ...(ns ? { namespace: ns } : {}) };
}

/** The SPIFFE ID in a certificate's URI SAN (`subjectaltname` as node formats it). */
export function spiffeIdFromSan(san: string | undefined): string | undefined {
  if (!san) return undefined;
  const ids = san.split(/,\s*/).filter((e) => e.startsWith('URI:spiffe://')).map((e) => e.slice(4));
  return ids.length === 1 ? ids[0] : undefined; // SPIFFE: exactly one URI SAN
}

// Envoy XFCC: the element appended by the nearest proxy is the last; its URI= is the peer's SPIFFE ID.
function principalFromXfcc(value: string): string | undefined {
  const last = value.split(',').pop() ?? '';
  const m = /(?:^|;)URI=("?)(spiffe:\/\/[^;",]+)\1/.exec(last.trim());
  return m?.[2];
}

async function verifyJwt(token: string, cfg: JwtConfig, address: string): Promise<Identified> {
  try {
    const { payload } = await jwtVerify(token, cfg.keys, {
      issuer: cfg.issuer,
      audience: cfg.audience,
      algorithms: cfg.algorithms.filter((a) => ASYMMETRIC_ALGORITHMS.includes(a)),
      clockTolerance: Math.min(Math.max(cfg.clockToleranceSec, 0), 300),
      requiredClaims: ['exp', 'sub'],
      ...(cfg.maxTokenAgeSec ? { maxTokenAge: cfg.maxTokenAgeSec } : {}),
    });
    return { ok: true, source: source(String(payload.sub), 'jwt', address, payload as Record<string, unknown>) };
  } catch (err) {
    const why = err instanceof joseErrors.JOSEError ? `${err.code}: ${err.message}` : String((err as Error)?.message ?? err);
    return { ok: false, reason: `bearer token refused (${why})` };
  }
}

/**
 * Identify the caller. Order: a bearer JWT (the end user a call is made for), then the mTLS peer,
 * then the trusted mesh header from its named peer, else anonymous. Credentials that are presented
 * but do not verify are refused rather than ignored.
 */
export async function identify(p: Presented, cfg: IdentityConfig): Promise<Identified> {
  const address = p.socket.remoteAddress ?? '';
  const auth = p.headers.authorization;
  if (auth !== undefined) {
    const m = /^Bearer ([A-Za-z0-9\-_.~+/]+=*)$/i.exec(auth);
    if (!m) return { ok: false, reason: 'Authorization header is not a Bearer token' };
    if (!cfg.jwt) return { ok: false, reason: 'a bearer token was sent but this plugin has no JWT issuer configured' };
    return verifyJwt(m[1]!, cfg.jwt, address);
  }
  if (p.socket.encrypted && p.socket.getPeerCertificate) {
    const cert = p.socket.getPeerCertificate();
    const presented = cert && Object.keys(cert).length > 0;
    if (presented) {
      if (!p.socket.authorized) return { ok: false, reason: `client certificate refused: ${String(p.socket.authorizationError ?? 'not trusted')}` };
      const id = spiffeIdFromSan(cert.subjectaltname);
      if (!id) return { ok: false, reason: 'client certificate has no single SPIFFE ID in its URI SAN' };
      return { ok: true, source: source(id, 'mtls', address) };
    }
  }
  const th = cfg.trustedHeader;
  if (th && p.headers[th.name] !== undefined && th.peers.includes(address)) {
    const value = p.headers[th.name]!;
    const principal = th.name === 'x-forwarded-client-cert' ? principalFromXfcc(value) : value.trim();
    if (!principal) return { ok: false, reason: `${th.name} from ${address} carries no usable identity` };
    return { ok: true, source: source(principal, 'header', address) };
  }
  return { ok: true, source: source(ANONYMOUS, 'none', address) };
}
