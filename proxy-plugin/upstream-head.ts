// The one place that builds what leaves the sidecar for the app: every forwarder (the fast path, node's
// path, upgrades, the MCP relay) takes its request header fields from `upstreamHeaders`, so a rule about
// what the app may receive holds on all of them at once.
//
// Invariant: the app behind the sidecar never receives a field a caller could use to speak for Warden
// or to re-route it — identity, URL-override and method-override fields, any `x-warden-*` — in any
// spelling (case, `_` for `-`: CGI, WSGI and PHP read `x_forwarded_user` as X-Forwarded-User). It
// receives Warden's verified caller instead (`x-warden-principal`, `x-warden-authn`) and the decision id.
// Hop-by-hop fields (RFC 9110 §7.6.1) and the fields named in `Connection` never cross the hop.
import type { Source } from '../formats/input.js';

/** Fields removed from every forwarded request by default (lower case, `-` spelling; see docs/proxy-security.md). */
export const REMOVED_HEADERS: readonly string[] = [
  // Identity asserted by a mesh proxy, an auth proxy or a load balancer: only Warden speaks for the caller.
  'x-forwarded-client-cert',
  'l5d-client-id',
  'x-forwarded-user',
  'x-forwarded-email',
  'x-forwarded-groups',
  'x-forwarded-preferred-username',
  'x-forwarded-access-token',
  'x-auth-request-user',
  'x-auth-request-email',
  'x-auth-request-groups',
  'x-auth-request-preferred-username',
  'x-auth-request-access-token',
  'x-remote-user',
  'x-remote-group',
  'remote-user',
  'x-webauth-user',
  'x-user',
  'x-user-id',
  'x-ssl-client-cert',
  'x-ssl-client-verify',
  'x-ssl-client-s-dn',
  'x-client-cert',
  'x-client-verify',
  'x-client-dn',
  'ssl-client-cert',
  'x-amzn-oidc-identity',
  'x-amzn-oidc-data',
  'x-amzn-oidc-accesstoken',
  'x-goog-authenticated-user-email',
  'x-goog-authenticated-user-id',
  'x-goog-iap-jwt-assertion',
  'x-ms-client-principal',
  'x-ms-client-principal-id',
  'x-ms-client-principal-name',
  'cf-access-authenticated-user-email',
  'cf-access-jwt-assertion',
  // URL overrides (Symfony, Zend, IIS URL Rewrite, proxies' original-path fields): the path decided is the path served.
  'x-original-url',
  'x-rewrite-url',
  'x-original-uri',
  'x-original-path',
  'x-forwarded-uri',
  'x-forwarded-path',
  'x-envoy-original-path',
  // Method overrides: the decision saw the request line's method, never these.
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
];

/** Every field with this prefix is Warden's own: a caller's copy is removed, whatever its name. */
export const WARDEN_PREFIX = 'x-warden-';

/** The verified caller's principal, set only by Warden. */
export const PRINCIPAL_HEADER = 'x-warden-principal';
/** How the caller was authenticated (`mtls`, `header`, `jwt`, `none`), set only by Warden. */
export const AUTHN_HEADER = 'x-warden-authn';
/** The decision id: on every response, and on every forwarded request. */
export const DECISION_ID_HEADER = 'x-warden-decision-id';

/** Which caller-sent fields never reach the app. */
export interface HeaderPolicy {
  /** Removed names, lower case with `-` for `_`. */
  readonly removed: ReadonlySet<string>;
}

/** A field name as the policy compares it: lower case, `_` read as `-` (the CGI spelling). */
export const headerKey = (name: string): string => name.toLowerCase().replace(/_/g, '-');

/**
 * The header policy: the defaults, plus `remove`, minus `keep`. `x-warden-*` is always removed; a name
 * in `keep` that is Warden's own is refused (the app could then no longer trust those fields).
 */
export function headerPolicy(o: { remove?: readonly string[]; keep?: readonly string[] } = {}): HeaderPolicy {
  const removed = new Set(REMOVED_HEADERS);
  for (const n of o.remove ?? []) removed.add(headerKey(n));
  for (const n of o.keep ?? []) {
    const k = headerKey(n);
    if (k.startsWith(WARDEN_PREFIX)) throw new TypeError(`${n}: x-warden-* fields are Warden's own and always removed from what callers send`);
    removed.delete(k);
  }
  return { removed };
}

/** The default policy (REMOVED_HEADERS and x-warden-*). */
export const DEFAULT_HEADER_POLICY = headerPolicy();

// Hop-by-hop fields (RFC 9110 §7.6.1) are for one connection only and never forwarded.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authorization', 'proxy-authenticate']);

/**
 * Fields Connection can name without making them hop-by-hop: a message's framing and its Host. Dropping
 * Content-Length while the body still follows would let the next hop read that body as a request (or an
 * answer's end as the next one's start); a caller's request naming them is refused at normalization.
 * (Other fields a request's Connection names are dropped there too, before the policy reads them.)
 */
export const NEVER_NOMINATED: ReadonlySet<string> = new Set(['content-length', 'host']);

/** A name a request's Connection may list without naming a field of its own: an option, or a hop-by-hop field anyway (RFC 9110 §7.6.1). */
export const isConnectionOption = (name: string): boolean => HOP_BY_HOP.has(name) || name === 'close' || name === 'http2-settings';

/** Every name listed in Connection values, lower case; undefined when there are none beyond `keep-alive` or `close`. */
export function connectionNames(value: string | readonly string[] | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  // The usual values name nothing beyond the hop-by-hop fields every hop drops anyway.
  if (typeof value === 'string' && /^\s*(keep-alive|close)\s*$/i.test(value)) return undefined;
  const named = new Set<string>();
  for (const v of typeof value === 'string' ? [value] : value) for (const t of v.split(',')) named.add(t.trim().toLowerCase());
  return named;
}

/** Names listed in Connection values (hop-by-hop too, RFC 9110 §7.6.1), never the framing; undefined when there are none. */
export function connectionTokens(value: string | readonly string[] | undefined): Set<string> | undefined {
  const named = connectionNames(value);
  for (const n of NEVER_NOMINATED) named?.delete(n);
  return named;
}

/** The Connection values of a raw [name, value, …] header list (undefined when there are none). */
export function rawConnection(raw: readonly string[]): string[] | undefined {
  let values: string[] | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.length === 10 && raw[i]!.toLowerCase() === 'connection') (values ??= []).push(raw[i + 1]!);
  return values;
}

/** True for a hop-by-hop field (`name` lower case), including those `named` by Connection. */
export const isHopByHop = (name: string, named: ReadonlySet<string> | undefined): boolean => HOP_BY_HOP.has(name) || named?.has(name) === true;

// A principal as a header value: bytes outside visible ASCII (a JWT `sub` can hold any text, CR/LF
// included) and `%` itself are percent-encoded, so the value is always one well-formed field.
function fieldValue(v: string): string {
  return /^[\x21-\x24\x26-\x7e]*$/.test(v) ? v : encodeURIComponent(v).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** Warden's word on the caller as [name, value, …] fields: `x-warden-principal` and `x-warden-authn`. */
export function callerFields(source: Source): string[] {
  return [PRINCIPAL_HEADER, fieldValue(source.principal), AUTHN_HEADER, source.authn];
}

/** What the forwarder knows about the call it is sending on. */
export interface Forwarding {
  /** The verified caller (absent on the policy-less benchmark baseline). */
  source?: Source | undefined;
  /** The decision id(s) of the call (an MCP batch has several, joined with ", "). */
  decisionId?: string | undefined;
  /** Keep `Upgrade` and `Connection: upgrade` (an upgrade the policy allowed). */
  upgrade?: boolean;
  /** Further fields this forwarder sets itself (framing it replaces, a token it must not pass on), lower case. */
  replaced?: readonly string[];
}

/**
 * The request header fields for the app as a flat [name, value, …] list (duplicates kept in order):
 * hop-by-hop fields and those named in Connection dropped, `expect` dropped (the sidecar answers it
 * itself), the policy's removed fields and every `x-warden-*` dropped in any spelling, then Warden's
 * own fields appended.
 */
export function upstreamHeaders(raw: readonly string[], policy: HeaderPolicy, f: Forwarding): string[] {
  const named = connectionTokens(rawConnection(raw));
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (f.upgrade && name === 'upgrade') {
      out.push(raw[i]!, raw[i + 1]!);
      continue;
    }
    if (isHopByHop(name, named) || name === 'expect' || f.replaced?.includes(name)) continue;
    const key = name.includes('_') ? headerKey(name) : name;
    if (key.startsWith(WARDEN_PREFIX) || policy.removed.has(key)) continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  if (f.upgrade) out.push('connection', 'upgrade');
  if (f.source) out.push(...callerFields(f.source));
  if (f.decisionId) out.push(DECISION_ID_HEADER, f.decisionId);
  return out;
}

/** A header object (node's `req.headers`) as a flat [name, value, …] list. */
export function flatHeaders(h: Readonly<Record<string, string | readonly string[] | number | undefined>>): string[] {
  const out: string[] = [];
  for (const name in h) {
    const v = h[name];
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const x of v as readonly string[]) out.push(name, x);
    else out.push(name, String(v));
  }
  return out;
}

/** A flat [name, value, …] list as `name: value\r\n` lines. */
export function headerLines(flat: readonly string[]): string {
  let out = '';
  for (let i = 0; i + 1 < flat.length; i += 2) out += `${flat[i]}: ${flat[i + 1]}\r\n`;
  return out;
}

/** A flat [name, value, …] list as a header object for node's client (repeated names become arrays). */
export function headerObject(flat: readonly string[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const name = flat[i]!.toLowerCase();
    const prev = out[name];
    out[name] = prev === undefined ? flat[i + 1]! : Array.isArray(prev) ? [...prev, flat[i + 1]!] : [prev, flat[i + 1]!];
  }
  return out;
}
