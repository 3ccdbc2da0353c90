// Who is calling: established by cryptography (mTLS peer certificate, signed JWT), or by a mesh
// proxy's header only when the operator named that header and the connection comes from its address.
import { rememberAtMost } from '../runtime/bounded-map.js';
import { createLocalJWKSet, createRemoteJWKSet, jwtVerify, errors as joseErrors, type JWTVerifyGetKey, type JSONWebKeySet } from 'jose';
import { readFile } from 'node:fs/promises';
import type { TLSSocket } from 'node:tls';
import { ANONYMOUS, type Source } from '../formats/input.js';
import { looksLikeSpiffe, principalFromIdentityHeader, principalFromXfcc, spiffeIdFromSan } from './identity-header.js';
import { deepFreeze } from '../runtime/rego-value.js';

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
  /** Reuse a token's verification for its later calls (default: on, 1,000 tokens, 60 s); false: verify every call. */
  cache?: TokenCacheOptions | false;
  /** The clock tokens are checked against, ms since the epoch (default Date.now). */
  now?: () => number;
}

/** How verified bearer tokens are remembered. */
export interface TokenCacheOptions {
  /** Tokens remembered at once, the oldest forgotten first (default 1,000). */
  maxEntries?: number;
  /** Longest one verification is reused, seconds (default 60); never past the token's own exp. */
  maxAgeSec?: number;
}

// A caller sends the same token with every call until it expires, and checking its signature costs
// 180–270 µs of CPU (RS256, ES256 through jose on this machine: `bench/proxy.bench.ts`), more than the
// rest of the decision. So a verified token is remembered, keyed by its exact compact text (signature
// included: a forged variant is a different key and is verified), until the earliest of its exp, its
// maxTokenAge limit and maxAgeSec. What it may cost: a key withdrawn from the JWKS keeps accepting the
// tokens it already verified for up to maxAgeSec; a JWKS URL is itself cached for 10 minutes.
interface Verified {
  principal: string;
  claims: Record<string, unknown>;
  until: number;
}

class TokenCache {
  private readonly entries = new Map<string, Verified>();

  constructor(
    readonly maxEntries: number,
    readonly maxAgeMs: number,
  ) {}

  get(token: string, now: number): Verified | undefined {
    const v = this.entries.get(token);
    if (v && now >= v.until) {
      this.entries.delete(token);
      return undefined;
    }
    return v;
  }

  set(token: string, v: Verified): void {
    rememberAtMost(this.entries, token, v, this.maxEntries);
  }
}

const tokenCaches = new WeakMap<JwtConfig, TokenCache | null>();

function tokenCacheOf(cfg: JwtConfig): TokenCache | null {
  let cache = tokenCaches.get(cfg);
  if (cache === undefined) {
    const o = cfg.cache === false ? { maxEntries: 0 } : (cfg.cache ?? {});
    const max = o.maxEntries ?? 1000;
    cache = max > 0 ? new TokenCache(max, (o.maxAgeSec ?? 60) * 1000) : null;
    tokenCaches.set(cfg, cache);
  }
  return cache;
}

/** A mesh identity header trusted from one local peer. */
export interface TrustedHeaderConfig {
  /** e.g. `x-forwarded-client-cert` (Envoy) or `l5d-client-id` (Linkerd). */
  name: string;
  /** Peer addresses the header is accepted from (the local mesh proxy). */
  peers: string[];
}

// A mesh proxy sends the same header text with every call of one client (the same XFCC for every call
// of a connection, and of every connection of the same caller), and reading it by its grammar cost
// ~5 µs of CPU per call (bench/proxy.bench.ts). So what the text says is remembered, keyed by the exact
// text: a different text, even by one byte, is read again; a result is a pure function of the text, so a
// cached one is what reading it again would give. The peer check and the repeated-field check stay
// per call, before the cache is consulted, so only a trusted peer's texts are ever read or remembered,
// and a text remembered from a trusted peer means nothing for a call from any other address. Bounded
// in entries (oldest forgotten first) and in text length (a longer text is read every time), so a
// trusted peer forwarding ever-new texts costs at most HEADER_CACHE_ENTRIES × HEADER_CACHE_TEXT chars.
const HEADER_CACHE_ENTRIES = 1024;
const HEADER_CACHE_TEXT = 2048;
type HeaderReading = { principal: string; namespace: string | undefined } | { refused: string };
const headerCaches = new WeakMap<TrustedHeaderConfig, Map<string, HeaderReading>>();

// What a trusted header's text says, read once per distinct text (see above).
function readTrustedHeader(th: TrustedHeaderConfig, value: string): HeaderReading {
  let cache = headerCaches.get(th);
  if (!cache) headerCaches.set(th, (cache = new Map()));
  const known = cache.get(value);
  if (known) return known;
  const id = th.name === 'x-forwarded-client-cert' ? principalFromXfcc(value) : principalFromIdentityHeader(th.name, value);
  const reading: HeaderReading = 'refused' in id ? id : { principal: id.principal, namespace: namespaceOf(id.principal) };
  if (value.length <= HEADER_CACHE_TEXT) {
    rememberAtMost(cache, value, reading, HEADER_CACHE_ENTRIES);
  }
  return reading;
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
  /** The fields as received ([name, value, …]): a trusted identity header sent twice is refused. */
  rawHeaders?: readonly string[];
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

// Only a workload identity (mTLS, trusted mesh header) has a namespace: a bearer token never poses as a workload.
function source(principal: string, authn: Source['authn'], address: string, claims: Record<string, unknown> = {}): Source {
  const ns = authn === 'mtls' || authn === 'header' ? namespaceOf(principal) : undefined;
  return { principal, authn, claims, address, ...(ns ? { namespace: ns } : {}) };
}

export { spiffeIdFromSan };

// A remembered token is answered at once; only a signature check waits (see identify).
function verifyJwt(token: string, cfg: JwtConfig, address: string): Identified | Promise<Identified> {
  const now = (cfg.now ?? Date.now)();
  const cache = tokenCacheOf(cfg);
  const known = cache?.get(token, now);
  if (known) return { ok: true, source: source(known.principal, 'jwt', address, known.claims) };
  return checkJwt(token, cfg, address, now, cache);
}

async function checkJwt(token: string, cfg: JwtConfig, address: string, now: number, cache: TokenCache | null): Promise<Identified> {
  try {
    const { payload } = await jwtVerify(token, cfg.keys, {
      currentDate: new Date(now),
      issuer: cfg.issuer,
      audience: cfg.audience,
      algorithms: cfg.algorithms.filter((a) => ASYMMETRIC_ALGORITHMS.includes(a)),
      clockTolerance: Math.min(Math.max(cfg.clockToleranceSec, 0), 300),
      requiredClaims: ['exp', 'sub'],
      ...(cfg.maxTokenAgeSec ? { maxTokenAge: cfg.maxTokenAgeSec } : {}),
    });
    // A SPIFFE ID names a workload, and only mTLS or the trusted mesh header may establish one.
    if (looksLikeSpiffe(String(payload.sub))) return { ok: false, reason: 'bearer token refused (its sub is a SPIFFE ID: a workload identity comes only from mTLS or the trusted mesh header, never from a token)' };
    // Shared by every call a cached token makes: frozen, so no call can change another's input.
    const claims = deepFreeze(payload) as Record<string, unknown>;
    if (cache) {
      // exp is required above; iat only bounds the entry when a maximum token age is configured.
      const limits = [now + cache.maxAgeMs, payload.exp! * 1000];
      if (cfg.maxTokenAgeSec && typeof payload.iat === 'number') limits.push((payload.iat + cfg.maxTokenAgeSec) * 1000);
      cache.set(token, { principal: String(payload.sub), claims, until: Math.min(...limits) });
    }
    return { ok: true, source: source(String(payload.sub), 'jwt', address, claims) };
  } catch (err) {
    const why = err instanceof joseErrors.JOSEError ? `${err.code}: ${err.message}` : String((err as Error)?.message ?? err);
    return { ok: false, reason: `bearer token refused (${why})` };
  }
}

// A TLS connection proves one client certificate, in its handshake (the sidecar refuses renegotiation),
// so what it says is read once per connection: getPeerCertificate() builds a new object on every call
// (27–70 µs of CPU per call on this machine). undefined: no certificate was presented.
type PeerIdentity = { principal: string } | { refused: string } | undefined;
const peers = new WeakMap<object, PeerIdentity>();

function peerOf(socket: Presented['socket']): PeerIdentity {
  if (peers.has(socket)) return peers.get(socket);
  const cert = socket.getPeerCertificate!();
  let peer: PeerIdentity;
  if (cert && Object.keys(cert).length > 0) {
    const id = spiffeIdFromSan(cert.subjectaltname);
    if (!socket.authorized) peer = { refused: `client certificate refused: ${String(socket.authorizationError ?? 'not trusted')}` };
    else peer = id ? { principal: id } : { refused: 'client certificate has no single SPIFFE ID in its URI SAN' };
  }
  peers.set(socket, peer);
  return peer;
}

// How many fields named `name` (lower case) the raw head holds, in any spelling of the name.
function fieldCount(rawHeaders: readonly string[], name: string): number {
  let n = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const f = rawHeaders[i]!;
    if (f.length === name.length && f.toLowerCase() === name) n++;
  }
  return n;
}

/**
 * Identify the caller. Order: a bearer JWT (the end user a call is made for), then the mTLS peer,
 * then the trusted mesh header from its named peer, else anonymous. Credentials that are presented
 * but do not verify are refused rather than ignored. Synchronous unless a token's signature must be
 * checked: the other ways cost no promise and no turn of the event loop on every call.
 */
export function identify(p: Presented, cfg: IdentityConfig): Identified | Promise<Identified> {
  const address = p.socket.remoteAddress ?? '';
  const auth = p.headers.authorization;
  if (auth !== undefined) {
    const m = /^Bearer ([A-Za-z0-9\-_.~+/]+=*)$/i.exec(auth);
    if (!m) return { ok: false, reason: 'Authorization header is not a Bearer token' };
    if (!cfg.jwt) return { ok: false, reason: 'a bearer token was sent but this plugin has no JWT issuer configured' };
    return verifyJwt(m[1]!, cfg.jwt, address);
  }
  if (p.socket.encrypted && p.socket.getPeerCertificate) {
    const peer = peerOf(p.socket);
    if (peer) return 'refused' in peer ? { ok: false, reason: peer.refused } : { ok: true, source: source(peer.principal, 'mtls', address) };
  }
  const th = cfg.trustedHeader;
  if (th && p.headers[th.name] !== undefined && th.peers.includes(address)) {
    // Two fields (joined by then) could be the caller's and the proxy's in either order: refused, never guessed.
    if (p.rawHeaders && fieldCount(p.rawHeaders, th.name) > 1) return { ok: false, reason: `${th.name} from ${address} was sent more than once` };
    const id = readTrustedHeader(th, p.headers[th.name]!);
    if ('refused' in id) return { ok: false, reason: `${id.refused} (from ${address})` };
    return { ok: true, source: { principal: id.principal, authn: 'header', claims: {}, address, ...(id.namespace ? { namespace: id.namespace } : {}) } };
  }
  return { ok: true, source: source(ANONYMOUS, 'none', address) };
}
