// Node's way to the upstream, for calls node's http server parsed (the fast path has its own sockets):
// admitted calls through an undici pool of keep-alive connections (about half the CPU per call of
// node's http.request), upgrades through node's client, which hands over the raw socket. Request
// header fields come from upstream-head.ts, as on every other path.
import http, { type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import https from 'node:https';
import { Readable, type Duplex } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import type { Logger } from 'pino';
import type { Source } from '../formats/input.js';
import { MAX_RESPONSE_HEAD_BYTES, type ResponseHead } from './http1.js';
import type { OwnAnswer } from './fast-path.js';
import { ownAnswer, writeOwn } from './own-answer.js';
import { connectionTokens, DECISION_ID_HEADER, headerObject, isHopByHop, rawConnection, upstreamHeaders, type HeaderPolicy } from './upstream-head.js';

/** One admitted call on its way out. */
export interface Outgoing {
  /** Path and query the upstream receives (the normalized ones the policy saw). */
  target: string;
  decisionId: string | undefined;
  source: Source | undefined;
  /** The body as bytes already read (its length replaces the caller's framing); else it streams. */
  body?: Buffer | undefined;
  /**
   * A streamed body read on its way (a multipart form, for `_method`): each chunk is fed before it goes
   * on; a reason stops the body there (the upstream gets it cut short) and the caller gets `refused`'s answer.
   */
  inspect?: { feed(chunk: Buffer): string | undefined; end?(): string | undefined; refused(reason: string): OwnAnswer };
}

/** Response headers from the upstream (parsed by undici, names lower-case) for the client. */
export function responseHeadersOut(headers: Record<string, string | string[] | undefined>, decisionId: string | undefined): OutgoingHttpHeaders {
  const named = connectionTokens(headers.connection);
  const out: OutgoingHttpHeaders = {};
  for (const name in headers) {
    if (isHopByHop(name, named)) continue;
    out[name] = headers[name];
  }
  if (decisionId) out[DECISION_ID_HEADER] = decisionId;
  return out;
}

/**
 * Response header lines from a raw upstream head (the fast path): hop-by-hop fields dropped, and the
 * upstream's framing fields too when the body is relayed with other framing; the decision id is Warden's
 * (an upstream's own is never relayed, also on a call forwarded without a decision, such as a JSON-RPC
 * response from an MCP client).
 */
export function responseHeaderLines(resp: ResponseHead, decisionId: string | undefined): string {
  const raw = resp.rawHeaders;
  const named = connectionTokens(rawConnection(raw));
  let out = '';
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (isHopByHop(name, named) || (name === 'content-length' && resp.framing !== 'length') || name === DECISION_ID_HEADER) continue;
    out += `${raw[i]}: ${raw[i + 1]}\r\n`;
  }
  return decisionId ? `${out}${DECISION_ID_HEADER}: ${decisionId}\r\n` : out;
}

class BodyTooLarge extends Error {}

class BodyRefused extends Error {}

// A streamed body fed to its inspector chunk by chunk: a reason ends it before that chunk goes on. Each
// chunk is held back until the next is read, and the last until the inspector's `end` passes: a body
// refused at its end never arrives whole.
async function* inspected(body: AsyncIterable<Buffer>, inspect: NonNullable<Outgoing['inspect']>): AsyncGenerator<Buffer> {
  let held: Buffer | undefined;
  for await (const chunk of body) {
    const reason = inspect.feed(chunk);
    if (reason !== undefined) throw new BodyRefused(reason);
    if (held) yield held;
    held = chunk;
  }
  const reason = inspect.end?.();
  if (reason !== undefined) throw new BodyRefused(reason);
  if (held) yield held;
}

// A request body that is not framed by content-length, counted as it streams: past `limit` it fails.
async function* limited(req: IncomingMessage, limit: number): AsyncGenerator<Buffer> {
  let seen = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    seen += chunk.length;
    if (seen > limit) throw new BodyTooLarge(`request body larger than ${limit} bytes`);
    yield chunk;
  }
}

/** The upstream as node's path reaches it. */
export class Relay {
  private readonly pool: Pool;
  private readonly base: { protocol: string; hostname: string; port: string | number };
  private readonly request: typeof http.request;

  constructor(
    upstream: URL,
    private readonly headers: HeaderPolicy,
    private readonly maxBodyBytes: number,
    private readonly log: Logger,
  ) {
    const tls = upstream.protocol === 'https:';
    this.pool = new Pool(upstream.origin, { connections: 256, pipelining: 1, keepAliveTimeout: 4_000, maxHeaderSize: MAX_RESPONSE_HEAD_BYTES });
    this.base = { protocol: upstream.protocol, hostname: upstream.hostname, port: upstream.port || (tls ? 443 : 80) };
    this.request = tls ? https.request : http.request;
  }

  private tooLarge(res: ServerResponse, decisionId: string | undefined): void {
    writeOwn(res, ownAnswer(413, decisionId, `request body larger than ${this.maxBodyBytes} bytes`), true);
  }

  /**
   * Forward an admitted call: the request body streams out (or goes as the buffered bytes already
   * read), the response streams back with the upstream's own framing.
   */
  forward(req: IncomingMessage, res: ServerResponse, o: Outgoing): void {
    const { decisionId, body } = o;
    const declared = req.headers['content-length'];
    if (body === undefined && declared !== undefined && Number(declared) > this.maxBodyBytes) return this.tooLarge(res, decisionId);
    let payload: Buffer | Readable | null;
    if (body !== undefined) payload = body;
    else if (declared !== undefined) payload = Number(declared) > 0 ? req : null;
    else payload = req.headers['transfer-encoding'] !== undefined ? Readable.from(limited(req, this.maxBodyBytes), { objectMode: false }) : null;
    if (o.inspect && payload instanceof Readable) payload = Readable.from(inspected(payload, o.inspect), { objectMode: false });
    const headers = upstreamHeaders(req.rawHeaders, this.headers, { source: o.source, decisionId, ...(body !== undefined ? { replaced: ['content-length'] } : {}) });
    // The buffered request body's length goes upstream only: the response keeps the upstream's own framing.
    if (body !== undefined) headers.push('content-length', String(body.length));
    let controller: Dispatcher.DispatchController | undefined;
    res.on('close', () => {
      if (!res.writableFinished) controller?.abort(new Error('the client went away'));
    });
    const log = this.log;
    this.pool.dispatch(
      { method: req.method as Dispatcher.HttpMethod, path: o.target, headers, body: payload },
      {
        onRequestStart(c) {
          controller = c;
        },
        onResponseStart(_c, status, upHeaders, statusMessage) {
          if (status < 200) return; // informational (100, 103): the final answer follows
          res.writeHead(status, statusMessage, responseHeadersOut(upHeaders, decisionId));
          // SSE: the client sees the stream start before the first event (others go out with the first body bytes).
          if (String(upHeaders['content-type'] ?? '').startsWith('text/event-stream')) res.flushHeaders();
        },
        onResponseData(c, chunk) {
          if (!res.write(chunk)) {
            c.pause();
            res.once('drain', () => c.resume());
          }
        },
        onResponseEnd() {
          res.end();
        },
        onResponseError: (_c, err) => {
          if (err instanceof BodyRefused && o.inspect) {
            // Refused on its way: the upstream request was aborted before the refused bytes; the rest is not read.
            res.once('finish', () => req.destroy());
            writeOwn(res, o.inspect.refused(err.message), true);
            return;
          }
          if (err instanceof BodyTooLarge) {
            // A chunked body that outgrew the limit: the upstream request was aborted, never completed.
            // The rest of the body is not read: the connection closes once the 413 is out.
            res.once('finish', () => req.destroy());
            this.tooLarge(res, decisionId);
            return;
          }
          if (res.destroyed || (res.writableEnded && !res.headersSent)) return;
          log.warn({ decision_id: decisionId, err: err.message }, 'upstream request failed');
          writeOwn(res, ownAnswer(502, decisionId, 'the upstream is unavailable'), false);
        },
      },
    );
  }

  /** Forward an admitted upgrade (WebSocket) and splice the two sockets once the upstream switches. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, o: Outgoing): void {
    const { decisionId } = o;
    const headers = headerObject(upstreamHeaders(req.rawHeaders, this.headers, { source: o.source, decisionId, upgrade: true }));
    const up = this.request({ ...this.base, method: req.method, path: o.target, headers, maxHeaderSize: MAX_RESPONSE_HEAD_BYTES });
    up.on('upgrade', (upRes, upSocket, upHead) => {
      const lines = [`HTTP/1.1 ${upRes.statusCode} ${upRes.statusMessage}`];
      for (let i = 0; i + 1 < upRes.rawHeaders.length; i += 2) if (upRes.rawHeaders[i]!.toLowerCase() !== DECISION_ID_HEADER) lines.push(`${upRes.rawHeaders[i]}: ${upRes.rawHeaders[i + 1]}`);
      if (decisionId) lines.push(`${DECISION_ID_HEADER}: ${decisionId}`);
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (upHead.length) socket.write(upHead);
      if (head.length) upSocket.write(head);
      upSocket.pipe(socket).pipe(upSocket);
      upSocket.on('error', () => socket.destroy());
      socket.on('close', () => upSocket.destroy());
    });
    up.on('response', (upRes) => {
      // The upstream declined the upgrade: relay its answer and close.
      const lines = [`HTTP/1.1 ${upRes.statusCode} ${upRes.statusMessage}`, 'connection: close'];
      const named = connectionTokens(rawConnection(upRes.rawHeaders));
      for (let i = 0; i + 1 < upRes.rawHeaders.length; i += 2) {
        const name = upRes.rawHeaders[i]!.toLowerCase();
        if (!isHopByHop(name, named) && name !== DECISION_ID_HEADER) lines.push(`${upRes.rawHeaders[i]}: ${upRes.rawHeaders[i + 1]}`);
      }
      if (decisionId) lines.push(`${DECISION_ID_HEADER}: ${decisionId}`);
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
      upRes.pipe(socket);
    });
    up.on('error', () => socket.end('HTTP/1.1 502 Bad Gateway\r\nconnection: close\r\ncontent-length: 0\r\n\r\n'));
    up.end();
  }

  close(): void {
    void this.pool.destroy();
  }
}
