// Request normalization, done exactly once, before policy: the path the policy sees is the path the
// upstream receives. Anything two parsers could read differently is refused as ambiguous.
import { fieldMap } from '../runtime/field-map.js';
import { connectionNames, headerKey, isConnectionOption, NEVER_NOMINATED } from './upstream-head.js';

/** A request as the policy and the upstream will both read it. */
export interface NormalizedRequest {
  method: string;
  /** Canonical path: unreserved characters decoded, other escapes kept (upper-case hex). Forwarded as is. */
  path: string;
  /** Fully decoded path segments ("/" → []). */
  segments: string[];
  query: Record<string, string[]>;
  /** Raw query string (without "?"), forwarded unchanged. */
  rawQuery: string;
  /** Lower-cased names; repeated headers joined with ", " (cookie with "; "). */
  headers: Record<string, string>;
  /** The names of the headers other than Cookie sent more than once, when any was (see refuseRepeatedRead in admit.ts). */
  repeated?: string[];
}

/** Why a request was refused before policy; `status` is what the caller gets. */
export interface Refusal {
  status: number;
  reason: string;
}

/**
 * Either the normalized request or the reason it was refused. A request refused for its header fields,
 * its target parsed, carries that target: its decision event holds the path, segments and query as any
 * call's do, masked the same way.
 */
export type Normalized = { ok: true; request: NormalizedRequest } | { ok: false; refusal: Refusal; target?: NormalizedRequest };

// Fields Warden itself reads to frame, route, type or identify a request. Spelled with `_` they are the
// same field to servers that read headers as CGI variables (PHP's, Puma, WSGI: `Content_Type` is
// CONTENT_TYPE there), which Warden would not have read: refused.
const READ_BY_WARDEN = new Set(['content-type', 'content-length', 'content-encoding', 'transfer-encoding', 'host', 'authorization', 'connection', 'upgrade', 'expect', 'te', 'trailer', 'cookie', 'x-http-method-override', 'x-method-override', 'x-http-method']);

// Headers that must appear at most once: two values would let caller and upstream disagree.
const SINGLETON_HEADERS = new Set(['authorization', 'host', 'content-length', 'content-type', 'proxy-authorization', 'transfer-encoding']);
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;
/** An HTTP method name as Warden accepts one: upper-case letters only (anything else is refused). */
export const METHOD = /^[A-Z]+$/;

const refuse = (reason: string, status = 400): Normalized => ({ ok: false, refusal: { status, reason } });

/** Canonicalise one raw path segment; returns an error string when it is ambiguous. */
function canonicalSegment(raw: string): { canonical: string; decoded: string } | string {
  // Most segments hold no escape: such a segment is its own canonical and decoded form.
  if (!raw.includes('%')) return raw === '.' || raw === '..' ? `dot segment "${raw}" in the path is ambiguous` : { canonical: raw, decoded: raw };
  let canonical = '';
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (c !== '%') {
      canonical += c;
      continue;
    }
    const hex = raw.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return `malformed percent-escape "%${hex}" in the path`;
    const ch = String.fromCharCode(parseInt(hex, 16));
    if (ch === '/' || ch === '\\') return `encoded "${ch}" (%${hex}) in the path is ambiguous`;
    if (ch === '\0') return 'encoded NUL in the path';
    if (ch === ';') return 'encoded ";" (matrix parameter) in the path is ambiguous';
    canonical += UNRESERVED.test(ch) ? ch : `%${hex.toUpperCase()}`;
    i += 2;
  }
  let decoded: string;
  try {
    decoded = decodeURIComponent(canonical);
  } catch {
    return 'the path is not valid UTF-8 after percent-decoding';
  }
  if (decoded === '.' || decoded === '..') return `dot segment "${raw}" in the path is ambiguous`;
  return { canonical, decoded };
}

/**
 * A `_method` parameter: Rails (Rack::MethodOverride), Laravel and Symfony take it, in a POST's form body
 * or its query, for the request's method, and express's method-override middleware in the query; the
 * policy decides on the request line's method. Refused (400) in the query of any request, and in a
 * POST's form body where the sidecar reads it.
 */
export const METHOD_PARAMETER = 'a "_method" parameter is a method override: frameworks (Rails, Laravel, Symfony, express\'s method-override) read it as the method instead of the request line\'s; send the method itself';

/**
 * True when a decoded parameter name is `_method` to one of the frameworks that take it, in any case: PHP
 * (Laravel, Symfony) drops leading spaces, cuts a name at a NUL and turns ' ' and '.' into '_' (` _method`,
 * `.method`, `_method\0x`); Rack 2 drops the brackets around a plain name (`[_method]`, `_method]]`). A name
 * with more after its brackets (`_method[x]`, an array or a nested hash to both) is not.
 */
export function namesMethodOverride(name: string): boolean {
  if (name.length < 7) return false;
  const plain = /^[ [\]]*([^[\]]*)\]*$/.exec(name.split('\0')[0]!)?.[1];
  return plain?.length === 7 && plain.replace(/[ .]/g, '_').toLowerCase() === '_method';
}

function parseQuery(raw: string): Record<string, string[]> | string {
  // No prototype: `constructor`, `toString` and `__proto__` are keys like any other (a plain object's
  // inherited members threw on `?constructor=x`, and `__proto__` set its prototype instead of a key).
  const query = fieldMap<string[]>();
  if (raw === '') return query;
  // Rack 2 (Rails) and Python before 3.9.2 split the query on ";" as on "&"; the policy would read
  // `role=user;role=admin` as one value and such an app as two (Go refuses it since 1.17, as here).
  if (raw.includes(';')) return 'a raw ";" in the query string is a separator to some apps and data to others: send it as %3B';
  for (const pair of raw.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const [k, v] = eq < 0 ? [pair, ''] : [pair.slice(0, eq), pair.slice(eq + 1)];
    let key: string;
    let value: string;
    try {
      key = decodeURIComponent(k.replace(/\+/g, ' '));
      value = decodeURIComponent(v.replace(/\+/g, ' '));
    } catch {
      return 'the query string has a malformed escape or invalid UTF-8';
    }
    if (key.includes('\0') || value.includes('\0')) return 'NUL in the query string';
    if (namesMethodOverride(key)) return METHOD_PARAMETER;
    (query[key] ??= []).push(value);
  }
  return query;
}

/**
 * Lower-case header names, refusing repeated singleton headers (`rawHeaders` as node gives it). `hop`: the
 * request is forwarded over a connection of its own (the sidecar), which drops what `Connection` names.
 */
export function normalizeHeaders(rawHeaders: readonly string[], hop: boolean): { headers: Record<string, string>; repeated?: string[] } | { refusal: Refusal } {
  // No prototype, as for the query: a `constructor` or `__proto__` field is a field like any other.
  const headers = fieldMap<string>();
  let repeated: string[] | undefined;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    const cgi = name.includes('_') ? headerKey(name) : undefined;
    if (cgi !== undefined && READ_BY_WARDEN.has(cgi)) return { refusal: { status: 400, reason: `a header spelled ${JSON.stringify(rawHeaders[i]!.slice(0, 40))} is ${cgi} to servers that read headers as CGI variables (PHP, Rack, WSGI): send ${cgi} itself` } };
    const value = rawHeaders[i + 1]!;
    const prev = headers[name];
    if (prev === undefined) headers[name] = value;
    else if (SINGLETON_HEADERS.has(name)) return { refusal: { status: 400, reason: `duplicate ${name} header` } };
    else {
      headers[name] = `${prev}${name === 'cookie' ? '; ' : ', '}${value}`;
      if (name !== 'cookie' && !repeated?.includes(name)) (repeated ??= []).push(name);
    }
  }
  // A field Connection names is dropped at the hop (RFC 9110 §7.6.1), so the app never receives it: the
  // policy and the caller's identity do not read it either. Except the framing and the Host: dropping
  // Content-Length while its body still follows would have the app read that body as the next request.
  // With no hop (the middleware, in the app's process) the app reads every field, and so does the policy.
  for (const named of (hop && connectionNames(headers.connection)) || []) {
    if (isConnectionOption(named) || !Object.hasOwn(headers, named)) continue;
    if (NEVER_NOMINATED.has(named)) return { refusal: { status: 400, reason: `Connection names ${named}: the request's ${named === 'host' ? 'Host' : 'framing'} cannot be dropped at the hop` } };
    delete headers[named];
  }
  return repeated ? { headers, repeated } : { headers };
}

/** Normalize method, request-target and headers; refuse anything ambiguous with a reason (`hop`: see normalizeHeaders). */
export function normalizeRequest(method: string, target: string, rawHeaders: readonly string[], hop = true): Normalized {
  if (!METHOD.test(method)) return refuse(`method ${JSON.stringify(method)} is not an HTTP method name`);
  if (!target.startsWith('/')) return refuse('the request target must be an origin-form path starting with "/"');
  if (target.includes('#')) return refuse('a fragment in the request target is not allowed');
  const q = target.indexOf('?');
  const rawPath = q < 0 ? target : target.slice(0, q);
  const rawQuery = q < 0 ? '' : target.slice(q + 1);
  if (rawPath.includes('\\')) return refuse('a backslash in the path is ambiguous');
  if (rawPath.includes(';')) return refuse('";" (matrix parameter) in the path is ambiguous');
  if (rawPath.includes('\0')) return refuse('NUL in the path');
  if (rawPath.includes('//')) return refuse('an empty path segment ("//") is ambiguous');
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x20\x7f-\uffff]/.test(rawPath)) return refuse('raw control, space or non-ASCII characters in the path');
  const segments: string[] = [];
  const canonical: string[] = [];
  const rawSegments = rawPath === '/' ? [] : rawPath.slice(1).split('/');
  for (const raw of rawSegments) {
    const seg = canonicalSegment(raw);
    if (typeof seg === 'string') return refuse(seg);
    segments.push(seg.decoded);
    canonical.push(seg.canonical);
  }
  const query = parseQuery(rawQuery);
  if (typeof query === 'string') return refuse(query);
  const path = `/${canonical.join('/')}`;
  const h = normalizeHeaders(rawHeaders, hop);
  if ('refusal' in h) return { ok: false, refusal: h.refusal, target: { method, path, segments, query, rawQuery, headers: {} } };
  const request: NormalizedRequest = { method, path, segments, query, rawQuery, headers: h.headers };
  if (h.repeated) request.repeated = h.repeated;
  return { ok: true, request };
}
