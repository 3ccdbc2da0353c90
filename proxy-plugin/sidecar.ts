// The sidecar form: a reverse proxy in front of the workload. accept → normalize → identify →
// (CallHandler | decide) → forward (streaming, byte-for-byte) or deny; every response carries the
// decision id. With `gate: null` it is the same proxy without policy (the benchmark's baseline).
import http, { type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { Readable, type Duplex } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import type { Logger } from 'pino';
import { ANONYMOUS } from '../formats/input.js';
import { decideHttp, DECISION_ID_HEADER, denialBody, prepare, type Gate } from './admit.js';
import type { Call, CallHandler } from './call-handler.js';
import type { Verdict } from './decide.js';
import { answerHead, FastPath, type Admission, type OwnAnswer } from './fast-path.js';
import type { RequestHead, ResponseHead } from './http1.js';
import { buildInput } from './input.js';

/** Size and time limits (defaults in brackets). */
export interface SidecarLimits {
  /** Largest request head, bytes [16 KiB] → 431. */
  maxHeaderBytes?: number;
  /** Largest request body, bytes [10 MiB] → 413. */
  maxBodyBytes?: number;
  /** Time to receive the request head, ms [10 s] → 408 (slowloris). */
  headersTimeoutMs?: number;
  /** Time to receive the whole request, ms [60 s] → 408. */
  requestTimeoutMs?: number;
  /** Idle keep-alive connections are closed after, ms [5 s]. */
  keepAliveTimeoutMs?: number;
}

/** TLS for the listener; client certificates are verified against `ca`. */
export interface SidecarTls {
  cert: string | Buffer;
  key: string | Buffer;
  /** Trust bundle for client certificates (mTLS); without it no client certificate is asked for. */
  ca?: string | Buffer;
}

/** Options of the sidecar. */
export interface SidecarOptions {
  upstream: URL;
  /** null: pass-through without policy (benchmark baseline only). */
  gate: Gate | null;
  handlers?: CallHandler[];
  limits?: SidecarLimits;
  tls?: SidecarTls;
  logger: Logger;
  /**
   * Read JSON request bodies up to this many bytes into `input.request.body` (so policy can look at them
   * and their sensitive fields are masked in the log); the exact bytes received are forwarded. Off when 0.
   */
  jsonBodyBytes?: number;
}

// Collect a request body up to `limit` bytes; undefined when it is larger.
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        req.off('data', onData);
        req.pause();
        resolve(undefined);
        return;
      }
      chunks.push(c);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

const isJson = (contentType: string | undefined) => !!contentType && /^application\/([\w.+-]*\+)?json\s*(;|$)/i.test(contentType);

// Hop-by-hop headers (RFC 9110 §7.6.1) are for one connection only and never forwarded.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authorization', 'proxy-authenticate']);

// Names listed in the Connection header are hop-by-hop too (RFC 9110 §7.6.1).
function connectionTokens(value: string | readonly string[] | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  // The usual values name nothing beyond the hop-by-hop fields every hop drops anyway.
  if (typeof value === 'string' && /^\s*(keep-alive|close)\s*$/i.test(value)) return undefined;
  const named = new Set<string>();
  for (const v of typeof value === 'string' ? [value] : value) for (const t of v.split(',')) named.add(t.trim().toLowerCase());
  return named;
}

// The Connection values of a raw [name, value, …] header list (undefined when there are none).
function rawConnection(raw: readonly string[]): string[] | undefined {
  let values: string[] | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.length === 10 && raw[i]!.toLowerCase() === 'connection') (values ??= []).push(raw[i + 1]!);
  return values;
}

const isHopByHop = (name: string, named: Set<string> | undefined) => HOP_BY_HOP.has(name) || named?.has(name) === true;

// Request headers for the upstream as a flat [name, value, …] list (duplicates kept in order).
// `expect` is answered by this proxy's own server and never forwarded (undici refuses it anyway);
// `content-length` is replaced when the body goes as buffered bytes (`extra` carries the new one).
function requestHeadersOut(raw: readonly string[], extra: readonly string[], drop: string | undefined, newLength: boolean): string[] {
  const named = connectionTokens(rawConnection(raw));
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (isHopByHop(name, named) || name === drop || name === 'expect' || (newLength && name === 'content-length')) continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  for (const h of extra) out.push(h);
  return out;
}

// Upgrade requests keep Upgrade and Connection, as an object for node's client.
function upgradeHeadersOut(raw: readonly string[], extra: Record<string, string>): OutgoingHttpHeaders {
  const named = connectionTokens(rawConnection(raw));
  const out: OutgoingHttpHeaders = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (isHopByHop(name, named) && name !== 'upgrade' && name !== 'connection') continue;
    const prev = out[name];
    out[name] = prev === undefined ? raw[i + 1]! : Array.isArray(prev) ? [...prev, raw[i + 1]!] : [String(prev), raw[i + 1]!];
  }
  return { ...out, ...extra };
}

// Response headers from the upstream (already parsed by undici, names lower-case) for the client.
function responseHeadersOut(headers: Record<string, string | string[] | undefined>, decisionId: string | undefined): OutgoingHttpHeaders {
  const named = connectionTokens(headers.connection);
  const out: OutgoingHttpHeaders = {};
  for (const name in headers) {
    if (isHopByHop(name, named)) continue;
    out[name] = headers[name];
  }
  if (decisionId) out[DECISION_ID_HEADER] = decisionId;
  return out;
}

// Response header lines from a raw upstream head (the fast path): hop-by-hop fields dropped, and the
// upstream's framing fields too when the body is relayed with other framing; the decision id is Warden's.
function responseHeaderLines(resp: ResponseHead, decisionId: string | undefined): string {
  const raw = resp.rawHeaders;
  const named = connectionTokens(rawConnection(raw));
  let out = '';
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (isHopByHop(name, named) || (name === 'content-length' && resp.framing !== 'length') || (decisionId && name === DECISION_ID_HEADER)) continue;
    out += `${raw[i]}: ${raw[i + 1]}\r\n`;
  }
  return decisionId ? `${out}${DECISION_ID_HEADER}: ${decisionId}\r\n` : out;
}

// A flat [name, value, …] list as header lines.
function lines(flat: readonly string[]): string {
  let out = '';
  for (let i = 0; i + 1 < flat.length; i += 2) out += `${flat[i]}: ${flat[i + 1]}\r\n`;
  return out;
}

// Fields the sidecar sets on its own answers; a policy's denial headers cannot replace them.
const OWN_FIELDS = new Set(['content-type', 'content-length', 'connection', 'transfer-encoding', DECISION_ID_HEADER]);

// A policy denial as the fast path writes it (the same fields sendDenial writes).
function denialAnswer(v: Verdict): OwnAnswer {
  const headers: Array<[string, string]> = Object.entries(v.headers).filter(([name]) => !OWN_FIELDS.has(name.toLowerCase()));
  headers.push(['content-type', 'application/json'], [DECISION_ID_HEADER, v.decisionId]);
  return { status: v.status, headers, body: denialBody(v) };
}

// The sidecar's own JSON answer: decision id and reasons, never upstream details.
function ownAnswer(status: number, decisionId: string | undefined, reason: string): OwnAnswer {
  const headers: Array<[string, string]> = [['content-type', 'application/json']];
  if (decisionId) headers.push([DECISION_ID_HEADER, decisionId]);
  return { status, headers, body: JSON.stringify({ decision_id: decisionId, reasons: [reason] }) };
}

// A whole response that closes the connection (an upgrade refused before node wrote anything); a field
// that cannot be written fails closed with a 500, as node's writeHead would.
function closingAnswer(a: OwnAnswer): string {
  const head = answerHead(a, Buffer.byteLength(a.body), 'connection: close\r\n');
  return head === undefined ? closingAnswer(ownAnswer(500, undefined, 'internal error (fail closed)')) : head + a.body;
}

/** The sidecar's listener: a net (or TLS) server with http.Server's ways to close connections. */
export type SidecarServer = net.Server & {
  closeAllConnections(): void;
  closeIdleConnections(): void;
  /** Serve a rotated certificate (and client CA) from the next handshake on; connections open keep theirs. */
  setTls(tls: SidecarTls): void;
};

class BodyTooLarge extends Error {}

// A request body that is not framed by content-length, counted as it streams: past `limit` it fails.
async function* limited(req: IncomingMessage, limit: number): AsyncGenerator<Buffer> {
  let seen = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    seen += chunk.length;
    if (seen > limit) throw new BodyTooLarge(`request body larger than ${limit} bytes`);
    yield chunk;
  }
}

/**
 * The sidecar server (not yet listening). Connections start on the fast path (fast-path.ts) when the
 * upstream is plain HTTP and no call handler (MCP) is configured; node's http server serves the rest.
 */
export function createSidecar(opts: SidecarOptions): SidecarServer {
  const limits = {
    maxHeaderBytes: 16 * 1024,
    maxBodyBytes: 10 * 1024 * 1024,
    headersTimeoutMs: 10_000,
    requestTimeoutMs: 60_000,
    keepAliveTimeoutMs: 5_000,
    ...opts.limits,
  };
  const upstreamIsTls = opts.upstream.protocol === 'https:';
  // Calls go upstream through an undici pool of keep-alive connections (about half the CPU per call of
  // node's http.request); upgrades (WebSocket) use node's client, which hands over the raw socket.
  const pool = new Pool(opts.upstream.origin, { connections: 256, pipelining: 1, keepAliveTimeout: 4_000 });
  const upstreamBase = { protocol: opts.upstream.protocol, hostname: opts.upstream.hostname, port: opts.upstream.port || (upstreamIsTls ? 443 : 80) };
  const requestUpstream = upstreamIsTls ? https.request : http.request;
  const log = opts.logger;

  // A mesh identity header from anyone but the trusted local peer is dropped, so the upstream cannot be fooled by it either.
  function untrustedIdentityHeader(socket: { remoteAddress?: string | undefined }): string | undefined {
    const th = opts.gate?.identity.trustedHeader;
    return th && !th.peers.includes(socket.remoteAddress ?? '') ? th.name : undefined;
  }

  // One of the sidecar's own answers on node's path (the fast path writes the same OwnAnswer itself).
  function writeOwn(res: ServerResponse, a: OwnAnswer, close: boolean): void {
    if (res.headersSent) return void res.destroy();
    const body = Buffer.from(a.body, 'utf8');
    res.writeHead(a.status, [...a.headers.flat(), 'content-length', String(body.length), ...(close ? ['connection', 'close'] : [])]).end(body);
  }

  // An unread body would be parsed as the next request on this connection; close it instead.
  const sendDenial = (res: ServerResponse, v: Verdict) => writeOwn(res, denialAnswer(v), !res.req.complete);

  // The sidecar's own JSON answer (413, 502, 500): decision id and reasons, never upstream details.
  const answer = (res: ServerResponse, status: number, decisionId: string | undefined, reason: string, close: boolean) => writeOwn(res, ownAnswer(status, decisionId, reason), close);

  const tooLarge = (res: ServerResponse, decisionId: string | undefined) => answer(res, 413, decisionId, `request body larger than ${limits.maxBodyBytes} bytes`, true);

  // Forward an admitted call through the upstream pool: the request body streams out (or goes as the
  // buffered bytes already read), the response streams back with the upstream's own framing.
  function forward(req: IncomingMessage, res: ServerResponse, target: string, decisionId: string | undefined, body?: Buffer): void {
    const declared = req.headers['content-length'];
    if (body === undefined && declared !== undefined && Number(declared) > limits.maxBodyBytes) return tooLarge(res, decisionId);
    const extra = decisionId ? [DECISION_ID_HEADER, decisionId] : [];
    let payload: Buffer | Readable | null;
    if (body !== undefined) {
      // The buffered request body's length goes upstream only: the response keeps the upstream's own framing.
      payload = body;
      extra.push('content-length', String(body.length));
    } else if (declared !== undefined) payload = Number(declared) > 0 ? req : null;
    else payload = req.headers['transfer-encoding'] !== undefined ? Readable.from(limited(req, limits.maxBodyBytes), { objectMode: false }) : null;
    let controller: Dispatcher.DispatchController | undefined;
    res.on('close', () => {
      if (!res.writableFinished) controller?.abort(new Error('the client went away'));
    });
    const headers = requestHeadersOut(req.rawHeaders, extra, untrustedIdentityHeader(req.socket), body !== undefined);
    pool.dispatch(
      { method: req.method as Dispatcher.HttpMethod, path: target, headers, body: payload },
      {
        onRequestStart(c) {
          controller = c;
        },
        onResponseStart(c, status, upHeaders, statusMessage) {
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
        onResponseError(_c, err) {
          if (err instanceof BodyTooLarge) {
            // A chunked body that outgrew the limit: the upstream request was aborted, never completed.
            // The rest of the body is not read: the connection closes once the 413 is out.
            res.once('finish', () => req.destroy());
            tooLarge(res, decisionId);
            return;
          }
          if (res.destroyed || (res.writableEnded && !res.headersSent)) return;
          log.warn({ decision_id: decisionId, err: err.message }, 'upstream request failed');
          answer(res, 502, decisionId, 'the upstream is unavailable', false);
        },
      },
    );
  }

  async function onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const gate = opts.gate;
    if (!gate) return forward(req, res, req.url ?? '/', undefined);
    const p = await prepare(gate, { method: req.method ?? '', target: req.url ?? '', rawHeaders: req.rawHeaders, socket: req.socket }, 'proxy');
    if (!p.ok) return sendDenial(res, p.verdict);
    const target = p.request.rawQuery ? `${p.request.path}?${p.request.rawQuery}` : p.request.path;
    if (opts.handlers?.length) {
      const call: Call = {
        req,
        res,
        request: p.request,
        source: p.source,
        bundle: p.bundle,
        pipeline: gate.pipeline,
        via: 'proxy',
        forward: ({ decisionId, body }) => forward(req, res, target, decisionId, body),
        deny: (v) => sendDenial(res, v),
      };
      const handler = opts.handlers.find((h) => h.owns(call));
      if (handler) return handler.handle(call);
    }
    let bodyBytes: Buffer | undefined;
    let body: unknown;
    if (opts.jsonBodyBytes && isJson(p.request.headers['content-type']) && (p.request.headers['content-length'] !== undefined || p.request.headers['transfer-encoding'] !== undefined)) {
      const limit = Math.min(opts.jsonBodyBytes, limits.maxBodyBytes);
      bodyBytes = await readBody(req, limit);
      const refuse = (reason: string, status: number) => sendDenial(res, gate.pipeline.refuse(buildInput(p.source, gate.pipeline.destination, p.request), { kind: 'http', via: 'proxy', bundle: p.bundle }, reason, status));
      if (bodyBytes === undefined) return refuse(`request refused: JSON body larger than ${limit} bytes`, 413);
      try {
        body = bodyBytes.length ? JSON.parse(bodyBytes.toString('utf8')) : undefined;
      } catch {
        // The upstream would have to guess what an unparseable JSON body means: refuse it.
        return refuse('request refused: the body is not valid JSON', 400);
      }
    }
    const v = decideHttp(gate, p, 'proxy', body);
    if (!v.allow) return sendDenial(res, v);
    forward(req, res, target, v.decisionId, bodyBytes);
  }

  // WebSocket and other upgrades: decided like any request, then the two sockets are spliced.
  async function onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => socket.destroy());
    let target = req.url ?? '/';
    let decisionId: string | undefined;
    const gate = opts.gate;
    if (gate) {
      const p = await prepare(gate, { method: req.method ?? '', target, rawHeaders: req.rawHeaders, socket: req.socket }, 'proxy');
      const v = p.ok ? decideHttp(gate, p, 'proxy') : p.verdict;
      if (!v.allow) {
        socket.end(closingAnswer(denialAnswer(v)));
        return;
      }
      decisionId = v.decisionId;
      if (p.ok) target = p.request.rawQuery ? `${p.request.path}?${p.request.rawQuery}` : p.request.path;
    }
    const extra: Record<string, string> = decisionId ? { [DECISION_ID_HEADER]: decisionId } : {};
    const up = requestUpstream({ ...upstreamBase, method: req.method, path: target, headers: upgradeHeadersOut(req.rawHeaders, extra) });
    up.on('upgrade', (upRes, upSocket, upHead) => {
      const lines = [`HTTP/1.1 ${upRes.statusCode} ${upRes.statusMessage}`];
      for (let i = 0; i + 1 < upRes.rawHeaders.length; i += 2) lines.push(`${upRes.rawHeaders[i]}: ${upRes.rawHeaders[i + 1]}`);
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
      for (let i = 0; i + 1 < upRes.rawHeaders.length; i += 2) if (!isHopByHop(upRes.rawHeaders[i]!.toLowerCase(), named)) lines.push(`${upRes.rawHeaders[i]}: ${upRes.rawHeaders[i + 1]}`);
      if (decisionId) lines.push(`${DECISION_ID_HEADER}: ${decisionId}`);
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
      upRes.pipe(socket);
    });
    up.on('error', () => socket.end('HTTP/1.1 502 Bad Gateway\r\nconnection: close\r\ncontent-length: 0\r\n\r\n'));
    up.end();
  }

  const serverOptions: http.ServerOptions = {
    maxHeaderSize: limits.maxHeaderBytes,
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    // How often header and request timeouts are checked; node's 30 s default would let a slow client linger.
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(limits.headersTimeoutMs / 4))),
  };
  // Node's http server parses what the fast path hands over; it never listens itself (TLS, when
  // configured, ends at the listener below). 'listening' starts its checks of header and request
  // timeouts, which is what stops slow clients on handed-over connections.
  const full = http.createServer(serverOptions);
  full.emit('listening');
  full.on('request', (req: IncomingMessage, res: ServerResponse) => {
    onRequest(req, res).catch((err: unknown) => {
      log.error({ err: String((err as Error)?.message ?? err) }, 'request handling failed');
      answer(res, 500, undefined, 'internal error (fail closed)', true);
    });
  });
  full.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    onUpgrade(req, socket, head).catch(() => socket.destroy());
  });
  // Requests refused by the HTTP parser itself (oversized head, slow client, malformed): log why.
  full.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    const code = err.code ?? 'ERR';
    const status = code === 'HPE_HEADER_OVERFLOW' ? 431 : code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    if (code !== 'ECONNRESET') log.warn({ code, status, principal: ANONYMOUS }, 'request refused by the HTTP parser');
    if (socket.writable && !(socket as { _httpMessage?: unknown })._httpMessage) {
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    } else socket.destroy();
  });

  // Decided once: with a call handler (MCP) every call needs node's parsed request, so no connection
  // would ever stay on the fast path; with an https upstream its raw connections do not apply.
  const fast =
    upstreamIsTls || opts.handlers?.length
      ? undefined
    : new FastPath({
        upstream: { host: opts.upstream.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(upstreamBase.port) },
        limits,
        handOff: (socket) => full.emit('connection', socket),
        // JSON bodies the policy reads go node's way: they need the parsed request.
        eligible: (head: RequestHead) => !(opts.jsonBodyBytes && head.contentLength > 0 && isJson(head.contentType)),
        admit: async (head: RequestHead, socket: net.Socket): Promise<Admission> => {
          const drop = untrustedIdentityHeader(socket);
          const gate = opts.gate;
          if (!gate) return { forward: true, target: head.target, decisionId: undefined, headerLines: lines(requestHeadersOut(head.rawHeaders, [], drop, false)) };
          const p = await prepare(gate, { method: head.method, target: head.target, rawHeaders: head.rawHeaders, socket }, 'proxy');
          const v = p.ok ? decideHttp(gate, p, 'proxy') : p.verdict;
          if (!p.ok || !v.allow) return { forward: false, ...denialAnswer(v) };
          const target = p.request.rawQuery ? `${p.request.path}?${p.request.rawQuery}` : p.request.path;
          return { forward: true, target, decisionId: v.decisionId, headerLines: lines(requestHeadersOut(head.rawHeaders, [DECISION_ID_HEADER, v.decisionId], drop, false)) };
        },
        responseHeaderLines,
        answer: ownAnswer,
        upstreamFailed: (decisionId, err) => log.warn({ decision_id: decisionId, err }, 'upstream request failed'),
      });

  const listener = opts.tls
    ? tls.createServer({ cert: opts.tls.cert, key: opts.tls.key, ALPNProtocols: ['http/1.1'], ...(opts.tls.ca ? { ca: opts.tls.ca, requestCert: true, rejectUnauthorized: false } : {}) })
    : net.createServer();
  listener.on(opts.tls ? 'secureConnection' : 'connection', (socket: net.Socket) => {
    // A connection's identity is the certificate of its handshake (identify reads it once per connection).
    if (opts.tls) (socket as tls.TLSSocket).disableRenegotiation();
    if (fast) fast.accept(socket);
    else full.emit('connection', socket);
  });
  listener.on('close', () => {
    fast?.close();
    void pool.destroy();
    full.close();
  });
  // Like http.Server.close(): stop accepting, close idle keep-alive connections, let calls in flight end.
  const stopAccepting = listener.close.bind(listener);
  listener.close = (callback?: (err?: Error) => void) => {
    stopAccepting(callback);
    fast?.drain();
    full.closeIdleConnections();
    return listener;
  };
  return Object.assign(listener, {
    closeAllConnections: () => {
      fast?.closeAllConnections();
      full.closeAllConnections();
    },
    closeIdleConnections: () => {
      fast?.closeIdleConnections();
      full.closeIdleConnections();
    },
    setTls: (t: SidecarTls) => {
      if (!(listener instanceof tls.Server)) throw new TypeError('the sidecar listens without TLS: there is no certificate to replace');
      listener.setSecureContext({ cert: t.cert, key: t.key, ...(t.ca ? { ca: t.ca } : {}) });
    },
  });
}
