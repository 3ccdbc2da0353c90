import { describe, expect, it } from 'vitest';
import { ChunkedEnd, parseRequestHead, parseResponseHead, type ResponseHead } from './http1.js';

const head = (...lines: string[]) => lines.join('\r\n');

describe('parseRequestHead (the fast path accepts only what node reads the same way)', () => {
  it('reads a plain request: method, target, headers as received with trimmed values, framing', () => {
    const h = parseRequestHead(head('POST /orders?x=1 HTTP/1.1', 'Host: shop', 'X-Forwarded-Client-Cert:  URI=spiffe://a \t', 'Content-Length: 12', 'Content-Type: application/json', 'Connection: close'));
    expect(h).toEqual({
      method: 'POST',
      target: '/orders?x=1',
      rawHeaders: ['Host', 'shop', 'X-Forwarded-Client-Cert', 'URI=spiffe://a', 'Content-Length', '12', 'Content-Type', 'application/json', 'Connection', 'close'],
      contentLength: 12,
      close: true,
      contentType: 'application/json',
    });
    expect(parseRequestHead(head('GET / HTTP/1.1', 'host: a'))).toMatchObject({ contentLength: 0, close: false, contentType: undefined });
  });

  // Each of these goes to node's parser instead (which refuses most with 400): never guessed here.
  const refused: Array<[string, string]> = [
    ['HTTP/1.0', head('GET / HTTP/1.0', 'Host: a')],
    ['a lower-case method', head('get / HTTP/1.1', 'Host: a')],
    ['CONNECT', head('CONNECT a:443 HTTP/1.1', 'Host: a')],
    ['an absolute-form target', head('GET http://a/ HTTP/1.1', 'Host: a')],
    ['an asterisk target', head('OPTIONS * HTTP/1.1', 'Host: a')],
    ['a space in the target', head('GET /a b HTTP/1.1', 'Host: a')],
    ['a control character in the target', head('GET /a\x01 HTTP/1.1', 'Host: a')],
    ['two spaces after the method', head('GET  / HTTP/1.1', 'Host: a')],
    ['trailing text after the version', head('GET / HTTP/1.1 x', 'Host: a')],
    ['no Host', head('GET / HTTP/1.1', 'X: a')],
    ['two Hosts', head('GET / HTTP/1.1', 'Host: a', 'Host: b')],
    ['Transfer-Encoding', head('POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked')],
    ['Content-Length with Transfer-Encoding', head('POST / HTTP/1.1', 'Host: a', 'Content-Length: 5', 'Transfer-Encoding: chunked')],
    ['two Content-Lengths', head('POST / HTTP/1.1', 'Host: a', 'Content-Length: 5', 'Content-Length: 5')],
    ['a list Content-Length', head('POST / HTTP/1.1', 'Host: a', 'Content-Length: 5, 5')],
    ['a signed Content-Length', head('POST / HTTP/1.1', 'Host: a', 'Content-Length: +5')],
    ['a hex Content-Length', head('POST / HTTP/1.1', 'Host: a', 'Content-Length: 0x5')],
    ['an empty Content-Length', head('POST / HTTP/1.1', 'Host: a', 'Content-Length:')],
    ['obs-fold', head('GET / HTTP/1.1', 'Host: a', 'X-A: 1', ' folded')],
    ['a space before the colon', head('GET / HTTP/1.1', 'Host: a', 'Content-Length : 5')],
    ['an empty field name', head('GET / HTTP/1.1', 'Host: a', ': x')],
    ['a line without a colon', head('GET / HTTP/1.1', 'Host: a', 'junk')],
    ['a bare LF inside a field', 'GET / HTTP/1.1\r\nHost: a\nContent-Length: 5'],
    ['a bare CR inside a field', 'GET / HTTP/1.1\r\nHost: a\rX: b'],
    ['a NUL in a value', head('GET / HTTP/1.1', 'Host: a', 'X: a\x00b')],
    ['obs-text in a value', head('GET / HTTP/1.1', 'Host: a', 'X: caf\xe9')],
    ['Upgrade', head('GET / HTTP/1.1', 'Host: a', 'Upgrade: websocket', 'Connection: Upgrade')],
    ['Connection: upgrade alone', head('GET / HTTP/1.1', 'Host: a', 'Connection: keep-alive, Upgrade')],
    ['Expect', head('POST / HTTP/1.1', 'Host: a', 'Content-Length: 1', 'Expect: 100-continue')],
    ['HTTP2-Settings', head('GET / HTTP/1.1', 'Host: a', 'HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA')],
  ];
  it.each(refused)('hands over %s', (_what, text) => {
    expect(parseRequestHead(text)).toBeUndefined();
  });
});

describe('parseResponseHead (framing of the upstream answer, RFC 9112 §6.3)', () => {
  const framing = (text: string, method = 'GET') => {
    const r = parseResponseHead(text, method);
    if (typeof r === 'string') throw new Error(r);
    return { framing: r.framing, contentLength: r.contentLength, close: r.close };
  };

  it('frames by content-length, chunked, or the close', () => {
    expect(framing(head('HTTP/1.1 200 OK', 'Content-Length: 12'))).toEqual({ framing: 'length', contentLength: 12, close: false });
    expect(framing(head('HTTP/1.1 200 OK', 'Transfer-Encoding: gzip, chunked'))).toEqual({ framing: 'chunked', contentLength: 0, close: false });
    // A final coding other than chunked runs to the close (with a content-length too: refused, below).
    expect(framing(head('HTTP/1.1 200 OK', 'Transfer-Encoding: gzip'))).toEqual({ framing: 'close', contentLength: 0, close: true });
    expect(framing(head('HTTP/1.1 200 OK', 'X: y'))).toEqual({ framing: 'close', contentLength: 0, close: true });
  });

  it('knows the answers without a body: HEAD, 1xx, 204, 304', () => {
    expect(framing(head('HTTP/1.1 200 OK', 'Content-Length: 99'), 'HEAD')).toMatchObject({ framing: 'length', contentLength: 0 });
    expect(framing(head('HTTP/1.1 204 No Content'))).toMatchObject({ framing: 'length', contentLength: 0, close: false });
    expect(framing(head('HTTP/1.1 304 Not Modified', 'Content-Length: 40'))).toMatchObject({ contentLength: 0 });
    expect(framing(head('HTTP/1.1 103 Early Hints', 'Link: </a.css>; rel=preload'))).toMatchObject({ contentLength: 0 });
  });

  it('reads connection reuse hints: HTTP/1.0, Connection: close, Keep-Alive timeout', () => {
    expect(framing(head('HTTP/1.0 200 OK', 'Content-Length: 1'))).toMatchObject({ close: true });
    expect(framing(head('HTTP/1.1 200 OK', 'Content-Length: 1', 'Connection: Close'))).toMatchObject({ close: true });
    const r = parseResponseHead(head('HTTP/1.1 200 OK', 'Content-Length: 1', 'Keep-Alive: timeout=5, max=100'), 'GET') as ResponseHead;
    expect(r.keepAliveMs).toBe(5000);
    expect(r).toMatchObject({ status: 200, reason: 'OK', rawHeaders: ['Content-Length', '1', 'Keep-Alive', 'timeout=5, max=100'] });
    expect(parseResponseHead('HTTP/1.1 200', 'GET')).toMatchObject({ status: 200, reason: '' });
    // obs-text is legal in a response field value and relayed as it came.
    expect(parseResponseHead(head('HTTP/1.1 200 OK', 'Content-Length: 0', 'X-Name: caf\xe9'), 'GET')).toMatchObject({ rawHeaders: ['Content-Length', '0', 'X-Name', 'caf\xe9'] });
  });

  const broken: Array<[string, string]> = [
    ['a malformed status line', head('HTTP/1.1 20 OK', 'Content-Length: 1')],
    ['another protocol', head('ICY 200 OK', 'Content-Length: 1')],
    ['HTTP/2 in a status line', head('HTTP/2 200 OK', 'Content-Length: 1')],
    ['conflicting content-lengths', head('HTTP/1.1 200 OK', 'Content-Length: 1', 'Content-Length: 2')],
    ['a list of differing content-lengths', head('HTTP/1.1 200 OK', 'Content-Length: 1, 2')],
    ['repeated equal content-lengths', head('HTTP/1.1 200 OK', 'Content-Length: 1', 'Content-Length: 1')],
    ['a list of equal content-lengths', head('HTTP/1.1 200 OK', 'Content-Length: 1, 1')],
    ['content-length with transfer-encoding', head('HTTP/1.1 200 OK', 'Content-Length: 1', 'Transfer-Encoding: chunked')],
    ['transfer-encoding with content-length', head('HTTP/1.1 200 OK', 'Transfer-Encoding: gzip', 'Content-Length: 1')],
    ['a negative content-length', head('HTTP/1.1 200 OK', 'Content-Length: -1')],
    ['obs-fold', head('HTTP/1.1 200 OK', 'Content-Length: 1', ' x')],
    ['a bare CR in a field', 'HTTP/1.1 200 OK\r\nX: a\rSet-Cookie: b'],
    ['a bare LF in a field', 'HTTP/1.1 200 OK\r\nX: a\nSet-Cookie: b'],
  ];
  it.each(broken)('refuses %s', (_what, text) => {
    expect(typeof parseResponseHead(text, 'GET')).toBe('string');
  });
});

describe('ChunkedEnd', () => {
  const body = Buffer.from('4;name=v\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: never\r\nX: y\r\n\r\n');

  it('finds the end of a chunked body with extensions and trailers, however the bytes are split', () => {
    expect(new ChunkedEnd().feed(body)).toBe(body.length);
    const tail = Buffer.concat([body, Buffer.from('HTTP/1.1 200 OK\r\n')]);
    expect(new ChunkedEnd().feed(tail)).toBe(body.length);
    for (const step of [1, 2, 3, 7]) {
      const c = new ChunkedEnd();
      let end = -1;
      let at = 0;
      for (; at < body.length && end < 0; at += step) {
        const r = c.feed(body.subarray(at, at + step));
        if (r >= 0) end = at + r;
      }
      expect(end).toBe(body.length);
    }
    expect(new ChunkedEnd().feed(Buffer.from('0\r\n\r\n'))).toBe(5);
    expect(new ChunkedEnd().feed(body.subarray(0, body.length - 1))).toBe(-1);
  });

  const bad: Array<[string, string]> = [
    ['a chunk size that is not hex', 'zz\r\n'],
    ['an empty chunk size', '\r\n'],
    ['data longer than its size', '2\r\nabc\r\n'],
    ['a bare LF after the size', '2\nab\r\n'],
    ['a bare LF in the trailers', '0\r\nX: y\n\r\n'],
    ['a chunk size beyond 2^48', '1000000000000\r\n'],
  ];
  it.each(bad)('throws on %s', (_what, text) => {
    expect(() => new ChunkedEnd().feed(Buffer.from(text))).toThrow();
  });
});
