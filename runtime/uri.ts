// uri.parse and uri.is_valid: Go's net/url Parse (OPA's v1/topdown/uri.go), ported for the parts that
// decide validity and the fields OPA returns (scheme, hostname, port, path, raw_path, raw_query,
// fragment).
import { BuiltinError, str } from './builtin-operand.js';
import type { JsonValue } from './sprintf.js';

type Mode = 'path' | 'host' | 'fragment' | 'user';

/** A URL Go's url.Parse refuses, with Go's reason. */
export class UrlError extends Error {}

const isAlnum = (c: string) => /^[A-Za-z0-9]$/.test(c);

// Go's shouldEscape for the modes url.Parse uses.
function shouldEscape(c: string, mode: Mode): boolean {
  if (isAlnum(c)) return false;
  if (mode === 'host' && `!$&'()*+,;=:[]<>"`.includes(c)) return false;
  if ('-_.~'.includes(c)) return false;
  if ('$&+,/:;=?@'.includes(c)) {
    if (mode === 'path') return c === '?';
    if (mode === 'user') return '@/?:'.includes(c);
    if (mode === 'fragment') return false;
  }
  if (mode === 'fragment' && '!()*'.includes(c)) return false;
  return true;
}

// Go's unescape: every % must start a valid escape; in a host, escapes of ASCII other than %25 are refused.
function unescape(s: string, mode: Mode): string {
  const bytes: number[] = [];
  const raw = Buffer.from(s, 'utf8');
  for (let i = 0; i < raw.length; i++) {
    const b = raw[i]!;
    if (b === 0x25) {
      const hex = raw.subarray(i + 1, i + 3).toString('latin1');
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw new UrlError(`invalid URL escape "${raw.subarray(i, i + 3).toString('latin1')}"`);
      if (mode === 'host' && parseInt(hex, 16) < 0x80 && hex !== '25') throw new UrlError(`invalid URL escape "%${hex}"`);
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      if (mode === 'host' && b < 0x80 && shouldEscape(String.fromCharCode(b), 'host')) throw new UrlError(`invalid character "${String.fromCharCode(b)}" in host name`);
      bytes.push(b);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Go's escape(path, encodePath). */
export function escapePath(s: string): string {
  let out = '';
  for (const byte of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += byte < 0x80 && !shouldEscape(c, 'path') ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

const validPort = (p: string) => p === '' || /^:\d*$/.test(p);

function parseHost(host: string): string {
  if (host.startsWith('[')) {
    const i = host.lastIndexOf(']');
    if (i < 0) throw new UrlError(`missing ']' in host`);
    const colonPort = host.slice(i + 1);
    if (!validPort(colonPort)) throw new UrlError(`invalid port "${colonPort}" after host`);
    return host.slice(0, i + 1) + colonPort;
  }
  const i = host.lastIndexOf(':');
  if (i >= 0 && !validPort(host.slice(i))) throw new UrlError(`invalid port "${host.slice(i)}" after host`);
  return unescape(host, 'host');
}

function parseAuthority(authority: string): string {
  const at = authority.lastIndexOf('@');
  if (at < 0) return parseHost(authority);
  const userinfo = authority.slice(0, at);
  if (![...userinfo].every((c) => isAlnum(c) || `-._:~!$&'()*+,;=%@`.includes(c))) throw new UrlError('net/url: invalid userinfo');
  unescape(userinfo, 'user');
  return parseHost(authority.slice(at + 1));
}

/** The parts of a URL Go's url.Parse gives (Host with its port; rawPath only when not the escaped path). */
export interface ParsedUrl {
  scheme: string;
  host: string;
  path: string;
  rawPath: string;
  rawQuery: string;
  fragment: string;
}

/** Go's url.Parse; throws UrlError with Go's message. */
export function parseUrl(input: string): ParsedUrl {
  const hash = input.indexOf('#');
  const [rest0, frag] = hash < 0 ? [input, ''] : [input.slice(0, hash), input.slice(hash + 1)];
  if ([...rest0].some((c) => c < ' ' || c === '\x7f')) throw new UrlError('net/url: invalid control character in URL');
  const u: ParsedUrl = { scheme: '', host: '', path: '', rawPath: '', rawQuery: '', fragment: '' };
  if (rest0 === '*') {
    u.path = '*';
    return u;
  }
  let rest = rest0;
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(rest);
  if (m) {
    u.scheme = m[1]!.toLowerCase();
    rest = rest.slice(m[0].length);
  } else if (rest.startsWith(':')) throw new UrlError('missing protocol scheme');
  const q = rest.indexOf('?');
  if (rest.endsWith('?') && q === rest.length - 1) rest = rest.slice(0, -1);
  else if (q >= 0) [rest, u.rawQuery] = [rest.slice(0, q), rest.slice(q + 1)];
  if (!rest.startsWith('/')) {
    if (u.scheme !== '') return u; // opaque
    if ((rest.split('/')[0] ?? '').includes(':')) throw new UrlError('first path segment in URL cannot contain colon');
  }
  if ((u.scheme !== '' || !rest.startsWith('///')) && rest.startsWith('//')) {
    let authority = rest.slice(2);
    rest = '';
    const slash = authority.indexOf('/');
    if (slash >= 0) [authority, rest] = [authority.slice(0, slash), authority.slice(slash)];
    u.host = parseAuthority(authority);
  }
  u.path = unescape(rest, 'path');
  u.rawPath = escapePath(u.path) === rest ? '' : rest;
  if (frag !== '') u.fragment = unescape(frag, 'fragment');
  return u;
}

function hostname(host: string): string {
  if (host.startsWith('[')) return host.slice(1, host.indexOf(']'));
  const i = host.lastIndexOf(':');
  return i < 0 ? host : host.slice(0, i);
}

function port(host: string): string {
  const i = host.lastIndexOf(':');
  if (i < 0 || (host.startsWith('[') && i < host.indexOf(']'))) return '';
  return host.slice(i + 1);
}

/** uri.parse(s): the URL's parts, as OPA returns them. */
export function parseUri(x: JsonValue): JsonValue {
  const s = str('uri.parse', x);
  let u: ParsedUrl;
  try {
    u = parseUrl(s);
  } catch (err) {
    if (err instanceof UrlError) throw new BuiltinError('uri.parse', `parse ${JSON.stringify(s)}: ${err.message}`);
    throw err;
  }
  const out: Record<string, string> = {};
  if (u.scheme) out.scheme = u.scheme;
  if (hostname(u.host)) out.hostname = hostname(u.host);
  if (port(u.host)) out.port = port(u.host);
  if (u.path) {
    out.path = u.path;
    out.raw_path = u.rawPath || u.path;
  }
  if (u.rawQuery) out.raw_query = u.rawQuery;
  if (u.fragment) out.fragment = u.fragment;
  return out;
}

/** uri.is_valid(s): a non-empty string Go's url.Parse accepts. */
export function isValidUri(x: JsonValue): boolean {
  if (typeof x !== 'string' || x === '') return false;
  try {
    parseUrl(x);
    return true;
  } catch (err) {
    if (err instanceof UrlError) return false;
    throw err;
  }
}
