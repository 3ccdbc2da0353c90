// The one body reader and JSON writer, on a real node HTTP server and raw client sockets.
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBody, sendJson } from './http-body.js';

const LIMIT = 16;
let server: Server;
let port: number;

beforeAll(async () => {
  server = createServer((req, res) => {
    void readBody(req, LIMIT).then((body) =>
      body === undefined ? sendJson(res, 413, { error: 'too large' }, { connection: 'close' }) : sendJson(res, 200, { got: body.toString('utf8') }, { 'x-seen': String(body.length) }),
    );
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((ok) => server.close(() => ok()));
});

// Send raw bytes, collect all the server writes until it closes the connection (or `until` matches).
function exchange(raw: string, until?: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.write(raw));
    let out = '';
    s.on('data', (c: Buffer) => {
      out += c.toString('latin1');
      if (until?.test(out)) s.destroy();
    });
    s.on('close', () => resolve(out));
    s.on('error', reject);
  });
}

describe('readBody and sendJson', () => {
  it('reads a body within the limit and answers it as JSON with its length', async () => {
    const out = await exchange('POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello');
    expect(out).toMatch(/^HTTP\/1\.1 200 /);
    expect(out).toMatch(/content-type: application\/json/i);
    expect(out).toMatch(/x-seen: 5/i);
    expect(out).toMatch(/content-length: 15\r\n/i);
    expect(out.endsWith('{"got":"hello"}')).toBe(true);
  });

  it('refuses a declared length over the limit before reading the body', async () => {
    // The body never comes: an answer proves the reader did not wait for it.
    const out = await exchange(`POST / HTTP/1.1\r\nhost: x\r\ncontent-length: ${LIMIT + 1}\r\n\r\n`, /too large/);
    expect(out).toMatch(/^HTTP\/1\.1 413 /);
  });

  it('refuses a chunked body once it outgrows the limit, and closes the connection instead of reading on', async () => {
    const chunk = (s: string) => `${s.length.toString(16)}\r\n${s}\r\n`;
    // The body is never finished: only a reader that stops at the limit answers, and the connection closes.
    const out = await exchange(`POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n${chunk('a'.repeat(10))}${chunk('b'.repeat(10))}`);
    expect(out).toMatch(/^HTTP\/1\.1 413 /);
    expect(out).toMatch(/connection: close/i);
  });
});
