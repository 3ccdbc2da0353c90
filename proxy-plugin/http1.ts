// Strict HTTP/1.1 message heads for the sidecar's fast path (RFC 9112). The request parser accepts a
// deliberately narrow subset — origin-form target, HTTP/1.1, token names, visible-ASCII values, one Host,
// at most one Content-Length, no Transfer-Encoding, Upgrade or Expect — and returns undefined for
// anything else, so the caller hands the connection to node's own parser (llhttp) instead of guessing.
// Accepting only what both parsers read the same way is what keeps the two paths from disagreeing
// about where a request ends (request smuggling).

/** A request head the fast path may handle. */
export interface RequestHead {
  method: string;
  /** Origin-form request target as received. */
  target: string;
  /** [name, value, …] as received (names keep their case; values without surrounding whitespace). */
  rawHeaders: string[];
  /** Body length from Content-Length (0 when absent). */
  contentLength: number;
  /** The client asked to close the connection after this exchange. */
  close: boolean;
  /** The value of Content-Type, if any. */
  contentType: string | undefined;
}

/** A response head from the upstream. */
export interface ResponseHead {
  status: number;
  reason: string;
  rawHeaders: string[];
  /** How the body is framed on the wire. */
  framing: 'length' | 'chunked' | 'close';
  contentLength: number;
  /** The upstream will close (or may not be reused) after this response. */
  close: boolean;
  /** `Keep-Alive: timeout=N` from the upstream, ms. */
  keepAliveMs: number | undefined;
}

// tchar (RFC 9110 §5.6.2).
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1;

const isToken = (s: string, from: number, to: number): boolean => {
  if (to <= from) return false;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || TCHAR[c] === 0) return false;
  }
  return true;
};

// Field value characters: visible ASCII, space and tab, and obs-text (bytes 0x80–0xff) when allowed.
function isValueText(s: string, from: number, to: number, obsText: boolean): boolean {
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x09 || (c >= 0x20 && c <= 0x7e) || (obsText && c >= 0x80 && c <= 0xff)) continue;
    return false;
  }
  return true;
}

/**
 * The largest answer head the sidecar takes from its upstream, on every path (the fast path's parser,
 * undici's pool, node's http client): past it the call gets a 502. Node's own default is 16 KiB.
 */
export const MAX_RESPONSE_HEAD_BYTES = 64 * 1024;

/** A header field value of visible ASCII, spaces and tabs only (what the fast path writes through). */
export const isPlainValue = (s: string): boolean => isValueText(s, 0, s.length, false);

/** A header field name: a token. */
export const isHeaderName = (s: string): boolean => isToken(s, 0, s.length);

const isOws = (c: number) => c === 0x20 || c === 0x09;

// Read the header lines of `head` from `pos` into `out` as [name, value, …] (values without surrounding
// whitespace), in one pass. False when a line is not a plain `token: value` field: obs-fold (a line
// starting with whitespace), a bare CR or LF, a control character, or obs-text unless allowed.
function readFields(head: string, pos: number, obsText: boolean, out: string[]): boolean {
  const n = head.length;
  while (pos < n) {
    let eol = head.indexOf('\r\n', pos);
    if (eol < 0) eol = n;
    // One pass, inlined: this runs for every field of every call.
    let colon = pos;
    for (; colon < eol; colon++) {
      const c = head.charCodeAt(colon);
      if (c === 0x3a) break;
      if (c >= 128 || TCHAR[c] === 0) return false;
    }
    if (colon === pos || colon === eol) return false;
    let a = colon + 1;
    let b = eol;
    while (a < b && isOws(head.charCodeAt(a))) a++;
    while (b > a && isOws(head.charCodeAt(b - 1))) b--;
    for (let k = a; k < b; k++) {
      const c = head.charCodeAt(k);
      if (c === 0x09 || (c >= 0x20 && c <= 0x7e) || (obsText && c >= 0x80 && c <= 0xff)) continue;
      return false;
    }
    out.push(head.slice(pos, colon), head.slice(a, b));
    pos = eol + 2;
  }
  return true;
}

const DIGITS = /^[0-9]{1,15}$/;

// The comma-separated tokens of a list header, lower-cased.
const listTokens = (value: string): string[] => value.split(',').map((t) => t.trim().toLowerCase());

/**
 * Parse the request head in `head` (the bytes before the blank line, as latin1). Undefined when the
 * request is outside the fast path's subset; the caller then lets node parse it.
 */
export function parseRequestHead(head: string): RequestHead | undefined {
  let lineEnd = head.indexOf('\r\n');
  if (lineEnd < 0) lineEnd = head.length;
  const sp1 = head.indexOf(' ');
  if (sp1 <= 0 || sp1 > 20) return undefined;
  const sp2 = head.indexOf(' ', sp1 + 1);
  if (sp2 < 0 || sp2 + 9 !== lineEnd || !head.startsWith('HTTP/1.1', sp2 + 1)) return undefined;
  for (let i = 0; i < sp1; i++) {
    const c = head.charCodeAt(i);
    if (c < 0x41 || c > 0x5a) return undefined; // methods are upper-case tokens here
  }
  const method = head.slice(0, sp1);
  if (method === 'CONNECT' || head.charCodeAt(sp1 + 1) !== 0x2f /* / */) return undefined;
  for (let i = sp1 + 2; i < sp2; i++) {
    const c = head.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f) return undefined;
  }
  const rawHeaders: string[] = [];
  if (!readFields(head, lineEnd + 2, false, rawHeaders)) return undefined;
  let hosts = 0;
  let contentLength: number | undefined;
  let close = false;
  let contentType: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const value = rawHeaders[i + 1]!;
    // Only the names below matter here; their lengths skip lower-casing every other name.
    const len = name.length;
    if (len !== 4 && len !== 6 && len !== 7 && len !== 10 && len !== 12 && len !== 14 && len !== 17) continue;
    switch (name.toLowerCase()) {
      case 'host':
        hosts++;
        break;
      case 'content-length':
        if (contentLength !== undefined || !DIGITS.test(value)) return undefined;
        contentLength = Number(value);
        break;
      case 'transfer-encoding':
      case 'upgrade':
      case 'expect':
      case 'http2-settings':
        return undefined;
      case 'connection': {
        const tokens = listTokens(value);
        if (tokens.includes('upgrade')) return undefined;
        if (tokens.includes('close')) close = true;
        break;
      }
      case 'content-type':
        contentType = value;
        break;
    }
  }
  if (hosts !== 1) return undefined;
  return { method, target: head.slice(sp1 + 1, sp2), rawHeaders, contentLength: contentLength ?? 0, close, contentType };
}

/** Parse an upstream response head (latin1, without the blank line); a string says what is wrong. */
export function parseResponseHead(head: string, requestMethod: string): ResponseHead | string {
  let lineEnd = head.indexOf('\r\n');
  if (lineEnd < 0) lineEnd = head.length;
  // HTTP/1.x SP 3DIGIT [SP reason-phrase]
  const d0 = head.charCodeAt(9);
  const d1 = head.charCodeAt(10);
  const d2 = head.charCodeAt(11);
  const version = head.charCodeAt(7);
  if (
    !head.startsWith('HTTP/1.', 0) ||
    (version !== 0x30 && version !== 0x31) ||
    head.charCodeAt(8) !== 0x20 ||
    !(d0 >= 0x31 && d0 <= 0x39 && d1 >= 0x30 && d1 <= 0x39 && d2 >= 0x30 && d2 <= 0x39) ||
    (lineEnd > 12 && head.charCodeAt(12) !== 0x20) ||
    lineEnd < 12
  ) {
    return `malformed status line ${JSON.stringify(head.slice(0, Math.min(lineEnd, 80)))}`;
  }
  const reason = lineEnd > 13 ? head.slice(13, lineEnd) : '';
  if (!isValueText(reason, 0, reason.length, true)) return 'malformed status line (control character in the reason)';
  const status = (d0 - 0x30) * 100 + (d1 - 0x30) * 10 + (d2 - 0x30);
  const rawHeaders: string[] = [];
  if (!readFields(head, lineEnd + 2, true, rawHeaders)) return 'malformed header line in the response head';
  let contentLength: number | undefined;
  let chunked: boolean | undefined;
  let close = version === 0x30;
  let keepAliveMs: number | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const len = rawHeaders[i]!.length;
    if (len !== 10 && len !== 14 && len !== 17) continue;
    const value = rawHeaders[i + 1]!;
    switch (rawHeaders[i]!.toLowerCase()) {
      case 'content-length':
        // One field with one value. RFC 9110 §8.6 lets a recipient read repeated identical values as one,
        // but node's path (undici) refuses them, and an answer must read alike on both paths.
        if (!DIGITS.test(value)) return `invalid content-length ${JSON.stringify(value)}`;
        if (contentLength !== undefined) return 'repeated content-length fields';
        contentLength = Number(value);
        break;
      case 'transfer-encoding': {
        // The final coding decides: chunked frames the body, anything else runs to the close (RFC 9112 §6.3).
        const codings = listTokens(value);
        chunked = codings[codings.length - 1] === 'chunked';
        break;
      }
      case 'connection':
        if (listTokens(value).includes('close')) close = true;
        break;
      case 'keep-alive': {
        const t = /(?:^|[,;\s])timeout=(\d+)/i.exec(value);
        if (t) keepAliveMs = Number(t[1]) * 1000;
        break;
      }
    }
  }
  // Both framings: which one the client reads is its choice (RFC 9112 §6.3 calls it an error to relay).
  if (chunked !== undefined && contentLength !== undefined) return 'both content-length and transfer-encoding';
  // No body: HEAD answers, 1xx, 204, 304 (RFC 9112 §6.3 rule 1).
  let framing: ResponseHead['framing'] = 'length';
  let length = 0;
  if (requestMethod === 'HEAD' || status < 200 || status === 204 || status === 304) length = 0;
  else if (chunked === true) framing = 'chunked';
  else if (chunked === false || contentLength === undefined) {
    framing = 'close';
    close = true;
  } else length = contentLength;
  return { status, reason, rawHeaders, framing, contentLength: length, close, keepAliveMs };
}

/**
 * Follows a chunked body (RFC 9112 §7.1) byte by byte without changing it: `feed` returns the offset
 * just past the message's end (after the last chunk and trailers), -1 when more bytes are needed, and
 * throws on bytes that are not chunked framing. `onData`, when given, receives the chunks' data.
 */
type ChunkState = 'size' | 'ext' | 'size-lf' | 'data' | 'data-cr' | 'data-lf' | 'trailer-start' | 'trailer' | 'trailer-lf' | 'end-lf';
const CR = 0x0d;
const LF = 0x0a;

export class ChunkedEnd {
  private state: ChunkState = 'size';
  private size = 0;
  private digits = 0;

  constructor(private readonly onData?: (data: Uint8Array) => void) {}

  feed(buf: Uint8Array): number {
    let i = 0;
    while (i < buf.length) {
      const c = buf[i]!;
      switch (this.state) {
        case 'size': {
          const d = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : c >= 0x41 && c <= 0x46 ? c - 0x37 : -1;
          if (d >= 0) {
            if (++this.digits > 12) throw new Error('chunk size too large');
            this.size = this.size * 16 + d;
          } else if (this.digits > 0 && (c === 0x3b || c === 0x20 || c === 0x09)) this.state = 'ext';
          else if (this.digits > 0 && c === CR) this.state = 'size-lf';
          else throw new Error('malformed chunk size');
          break;
        }
        case 'ext':
          this.toLineEnd(c, 'size-lf', 'a chunk extension');
          break;
        case 'size-lf':
          this.expect(c, LF, this.size === 0 ? 'trailer-start' : 'data', 'chunk size line not ended by CRLF');
          break;
        case 'data': {
          const take = Math.min(this.size, buf.length - i);
          if (take > 0) this.onData?.(buf.subarray(i, i + take));
          this.size -= take;
          i += take;
          if (this.size === 0) this.state = 'data-cr';
          continue; // moved past the data already
        }
        case 'data-cr':
          this.expect(c, CR, 'data-lf', 'chunk data not followed by CRLF');
          break;
        case 'data-lf':
          this.expect(c, LF, 'size', 'chunk data not followed by CRLF');
          this.digits = 0;
          break;
        case 'trailer-start':
          if (c === LF) throw new Error('bare LF in the trailer section');
          this.state = c === CR ? 'end-lf' : 'trailer';
          break;
        case 'trailer':
          this.toLineEnd(c, 'trailer-lf', 'the trailer section');
          break;
        case 'trailer-lf':
          this.expect(c, LF, 'trailer-start', 'trailer line not ended by CRLF');
          break;
        case 'end-lf':
          if (c !== LF) throw new Error('chunked body not ended by CRLF');
          return i + 1;
      }
      i++; // every other state reads one byte
    }
    return -1;
  }

  // One exact byte, then the next state.
  private expect(c: number, want: number, next: ChunkState, what: string): void {
    if (c !== want) throw new Error(what);
    this.state = next;
  }

  // Any byte up to the CR that ends the line; a bare LF is an error.
  private toLineEnd(c: number, next: ChunkState, where: string): void {
    if (c === CR) this.state = next;
    else if (c === LF) throw new Error(`bare LF in ${where}`);
  }
}
