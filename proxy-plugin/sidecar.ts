// The sidecar form: a reverse proxy in front of the workload. accept → normalize → identify →
// (CallHandler | decide) → forward (streaming, byte-for-byte) or deny; every response carries the
// decision id. With `gate: null` it is the same proxy without policy (the benchmark's baseline).
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { ANONYMOUS } from '../formats/input.js';
import { decideHttp, prepare, type Arrival, type Gate, type Prepared } from './admit.js';
import type { CallHandler } from './call-handler.js';
import type { Verdict } from './decide.js';
import { FastPath, type Admission, type SidecarLimits } from './fast-path.js';
import type { RequestHead, ResponseHead } from './http1.js';
import { readBody } from '../runtime/http-body.js';
import { formKind } from './form-fields.js';
import type { NormalizedRequest } from './normalize.js';
import { bodyFieldReader, checkedJsonBody, checksQueryKeys, readsJsonBody, refusal, undecodedBody, type Ready } from './request-body.js';
import { closingAnswer, denialAnswer, ownAnswer, writeOwn } from './own-answer.js';
import { Relay, responseHeaderLines, type Outgoing } from './relay.js';
import { DEFAULT_HEADER_POLICY, headerLines, upstreamHeaders, type HeaderPolicy } from './upstream-head.js';

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
  /** Caller-sent fields never forwarded (default DEFAULT_HEADER_POLICY; see upstream-head.ts). */
  headers?: HeaderPolicy;
  /** Seconds the sidecar held each call it forwarded on its fast path (FastPathOptions.held): a metric. */
  held?: (seconds: number) => void;
}

/** The sidecar's listener: a net (or TLS) server with http.Server's ways to close connections. */
export type SidecarServer = net.Server & {
  closeAllConnections(): void;
  closeIdleConnections(): void;
  /** Serve a rotated certificate (and client CA) from the next handshake on; connections open keep theirs. */
  setTls(tls: SidecarTls): void;
};

// The parts one sidecar is composed of, shared by its steps below.
interface Parts {
  opts: SidecarOptions;
  limits: Required<SidecarLimits>;
  headers: HeaderPolicy;
  relay: Relay;
  log: Logger;
  /** The largest JSON body read into the input (--json-body, within --max-body-bytes); 0: none is. */
  jsonBodyBytes: number;
}


const targetOf = (r: NormalizedRequest) => (r.rawQuery ? `${r.path}?${r.rawQuery}` : r.path);

const arrivalOf = (req: IncomingMessage): Arrival => ({ method: req.method ?? '', target: req.url ?? '', rawHeaders: req.rawHeaders, socket: req.socket });

// An unread body would be parsed as the next request on this connection; close it instead.
const sendDenial = (res: ServerResponse, v: Verdict) => writeOwn(res, denialAnswer(v), !res.req.complete);

// A JSON body the policy reads (--json-body), on node's path: its bytes, its value, or the refusal of a body too large or unreadable.
async function jsonBody(c: Parts, gate: Gate, p: Ready, req: IncomingMessage): Promise<{ bytes?: Buffer; value?: unknown } | { refused: Verdict }> {
  const h = p.request.headers;
  if (!readsJsonBody(c.jsonBodyBytes, h['content-type']) || (h['content-length'] === undefined && h['transfer-encoding'] === undefined)) return {};
  const foreign = undecodedBody(gate, p);
  if (foreign) return foreign;
  const bytes = await readBody(req, c.jsonBodyBytes);
  return bytes === undefined ? tooLarge(c, gate, p) : checkedJsonBody(gate, p, bytes);
}

// A form, or a body Laravel reads as JSON that the sidecar did not read whole, read as it streams
// (bodyFieldReader: a POST's for `_method`, any method's for the query keys the policy reads): what the
// relay feeds, or the refusal of one that cannot be read. The fast path hands such a request over to
// node's path, whose relay streams it.
function formOf(gate: Gate, p: Ready): { refusal: Verdict } | NonNullable<Outgoing['inspect']> | undefined {
  const r = bodyFieldReader(gate, p);
  if (!r || 'refusal' in r) return r;
  const { reader } = r;
  return { feed: (chunk) => reader.feed(chunk), end: () => reader.end?.(), refused: (reason) => denialAnswer(refusal(gate, p, reason, 400)) };
}

const tooLarge = (c: Parts, gate: Gate, p: Ready) => ({ refused: refusal(gate, p, `request refused: JSON body larger than ${c.jsonBodyBytes} bytes`, 413) });

// Node's path: normalize → identify → (CallHandler | read the JSON body → decide) → forward or deny.
async function serveRequest(c: Parts, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const gate = c.opts.gate;
  if (!gate) return c.relay.forward(req, res, { target: req.url ?? '/', decisionId: undefined, source: undefined });
  const p = await prepare(gate, arrivalOf(req), 'proxy');
  if (!p.ok) return sendDenial(res, p.verdict);
  const target = targetOf(p.request);
  // Every request on a path a handler owns (MCP) is the handler's, whatever its method and headers.
  const handler = c.opts.handlers?.find((h) => h.owns(p));
  if (handler) {
    return handler.handle({
      req,
      res,
      request: p.request,
      source: p.source,
      bundle: p.bundle,
      pipeline: gate.pipeline,
      via: 'proxy',
      headerPolicy: c.headers,
      forward: ({ decisionId, body }) => c.relay.forward(req, res, { target, decisionId, source: p.source, body }),
      deny: (v) => sendDenial(res, v),
    });
  }
  const body = await jsonBody(c, gate, p, req);
  if ('refused' in body) return sendDenial(res, body.refused);
  // A JSON body read whole was checked for `_method` (checkedJsonBody); any other POST body is read as it streams.
  const form = body.bytes === undefined ? formOf(gate, p) : undefined;
  if (form && 'refusal' in form) return sendDenial(res, form.refusal);
  const v = decideHttp(gate, p, 'proxy', body.value !== undefined ? { body: body.value } : undefined);
  if (!v.allow) return sendDenial(res, v);
  c.relay.forward(req, res, { target, decisionId: v.decisionId, source: p.source, body: body.bytes, ...(form ? { inspect: form } : {}) });
}

// True when a request on the fast path carries a body formOf reads: node's path takes it.
const carriesForm = (head: RequestHead, p: Ready): boolean => head.contentLength > 0 && formKind(head.method, head.contentType, checksQueryKeys(p)) !== undefined;

/**
 * The protocol an upgrade asks for, or why it is refused: exactly one protocol token, and never `h2c`
 * (HTTP/2 over cleartext would turn the connection into one whose later requests nobody decides).
 */
export function upgradeProtocol(value: string | undefined): { protocol: string } | { refused: string } {
  const v = (value ?? '').trim().toLowerCase();
  if (!/^[a-z0-9!#$%&'*+.^_`|~-]+(\/[a-z0-9!#$%&'*+.^_`|~-]+)?$/.test(v)) return { refused: `request refused: Upgrade ${JSON.stringify((value ?? '').slice(0, 80))} must name exactly one protocol` };
  if (v.split('/')[0] === 'h2c') return { refused: 'request refused: Upgrade: h2c is never forwarded (send HTTP/1.1 requests, or HTTP/2 over TLS)' };
  return { protocol: v };
}

// Refuse an upgrade before node wrote anything: one whole answer, then the connection closes.
const refuseUpgrade = (socket: Duplex, v: Verdict) => void socket.end(closingAnswer(denialAnswer(v)));

// Upgrades (WebSocket): never on a path a handler owns, never h2c; decided with `input.request.upgrade`,
// then the two sockets are spliced (what flows through the tunnel afterwards is not decided).
async function serveUpgrade(c: Parts, req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
  socket.on('error', () => socket.destroy());
  const gate = c.opts.gate;
  // CONNECT asks for a tunnel (its target, if origin-form, passes normalization): never one, whatever it names.
  const protocol = req.method === 'CONNECT' ? { refused: 'request refused: CONNECT asks for a tunnel, which the sidecar never opens' } : upgradeProtocol(req.headers.upgrade);
  if (!gate) {
    if ('refused' in protocol) return void socket.end(closingAnswer(ownAnswer(400, undefined, protocol.refused)));
    return c.relay.upgrade(req, socket, head, { target: req.url ?? '/', decisionId: undefined, source: undefined });
  }
  const p = await prepare(gate, arrivalOf(req), 'proxy');
  if (!p.ok) return refuseUpgrade(socket, p.verdict);
  if ('refused' in protocol) return refuseUpgrade(socket, refusal(gate, p, protocol.refused, 400));
  if (c.opts.handlers?.some((h) => h.owns(p))) {
    return refuseUpgrade(socket, refusal(gate, p, `request refused: no upgrade on ${p.request.path}, an MCP transport path (its calls are decided one by one)`, 400, { upgrade: protocol.protocol }));
  }
  const v = decideHttp(gate, p, 'proxy', { upgrade: protocol.protocol });
  if (!v.allow) return refuseUpgrade(socket, v);
  c.relay.upgrade(req, socket, head, { target: targetOf(p.request), decisionId: v.decisionId, source: p.source });
}

// A POST a handler owns, on the fast path: its body is read, then the handler admits it (FastOutcome).
function handlerAdmission(c: Parts, gate: Gate, h: CallHandler, head: RequestHead, p: Ready): Admission {
  const fast = h.fast;
  const bundle = p.bundle;
  // No bundle (deny-all), no body or one too large: node's path answers these through `handle`.
  if (!fast || !bundle || head.method !== 'POST' || head.contentLength === 0 || head.contentLength > fast.maxBodyBytes) return { handOff: true };
  const target = targetOf(p.request);
  return {
    readBody: (body) => {
      const o = fast.admit({ request: p.request, rawHeaders: head.rawHeaders, body, source: p.source, bundle, pipeline: gate.pipeline, via: 'proxy', headerPolicy: c.headers });
      if ('handOff' in o) return o;
      if ('answer' in o) return { forward: false, ...o.answer };
      const f = o.forward;
      return { forward: true, target, decisionId: f.decisionId, headerLines: `host: ${c.opts.upstream.host}\r\n${headerLines(f.headers)}`, body: f.body, onResponse: (resp) => f.onResponse(resp.rawHeaders), ...(f.answer ? { answer: (resp: ResponseHead) => f.answer!(resp.status, resp.rawHeaders) } : {}) };
    },
  };
}

// The fast path's decision for one request head: the same steps as node's path, on the raw socket.
// Synchronous unless a token's signature must be checked first (prepare).
function admitFast(c: Parts, head: RequestHead, socket: net.Socket): Admission | Promise<Admission> {
  const gate = c.opts.gate;
  if (!gate) return { forward: true, target: head.target, decisionId: undefined, headerLines: headerLines(upstreamHeaders(head.rawHeaders, c.headers, {})) };
  const prepared = prepare(gate, { method: head.method, target: head.target, rawHeaders: head.rawHeaders, socket }, 'proxy');
  return prepared instanceof Promise ? prepared.then((p) => admitPrepared(c, gate, head, p)) : admitPrepared(c, gate, head, prepared);
}

// The rest of admitFast once the caller is known.
function admitPrepared(c: Parts, gate: Gate, head: RequestHead, p: Prepared): Admission {
  // A call on a path a handler owns (MCP), in any spelling normalization folds, is the handler's: it
  // serves it here when it can, else node's path parses it again and gives it over. Decided per call on
  // the bundle pinned for it.
  const owner = p.ok ? c.opts.handlers?.find((h) => h.owns(p)) : undefined;
  if (owner) return handlerAdmission(c, gate, owner, head, p as Ready);
  if (p.ok && head.contentLength > 0 && readsJsonBody(c.jsonBodyBytes, head.contentType)) return jsonBodyAdmission(c, gate, head, p);
  if (p.ok && carriesForm(head, p)) return { handOff: true };
  const v = p.ok ? decideHttp(gate, p, 'proxy') : p.verdict;
  if (!p.ok || !v.allow) return { forward: false, ...denialAnswer(v) };
  return { forward: true, target: targetOf(p.request), decisionId: v.decisionId, headerLines: headerLines(upstreamHeaders(head.rawHeaders, c.headers, { source: p.source, decisionId: v.decisionId })) };
}

// A JSON body the policy reads, on the fast path: read whole, then checked and decided as node's path does
// (the same refusals: 413 before reading a body over the limit, 400 for one that is not JSON, nests too
// deep or names `_method` at its top), and forwarded as received.
function jsonBodyAdmission(c: Parts, gate: Gate, head: RequestHead, p: Ready): Admission {
  if (head.contentLength > c.jsonBodyBytes) return { forward: false, ...denialAnswer(tooLarge(c, gate, p).refused) };
  const foreign = undecodedBody(gate, p);
  if (foreign) return { forward: false, ...denialAnswer(foreign.refused) };
  return {
    readBody: (bytes) => {
      const body = checkedJsonBody(gate, p, bytes);
      if ('refused' in body) return { forward: false, ...denialAnswer(body.refused) };
      const v = decideHttp(gate, p, 'proxy', body.value !== undefined ? { body: body.value } : undefined);
      if (!v.allow) return { forward: false, ...denialAnswer(v) };
      return { forward: true, target: targetOf(p.request), decisionId: v.decisionId, headerLines: headerLines(upstreamHeaders(head.rawHeaders, c.headers, { source: p.source, decisionId: v.decisionId })), body: bytes };
    },
  };
}

// Node's http server: it never listens itself; it parses the connections handed to it (TLS, when
// configured, ends at the listener). 'listening' starts its checks of header and request timeouts,
// which is what stops slow clients on handed-over connections.
function nodeServer(c: Parts): http.Server {
  const { limits, log } = c;
  const full = http.createServer({
    maxHeaderSize: limits.maxHeaderBytes,
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    // How often header and request timeouts are checked; node's 30 s default would let a slow client linger.
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(limits.headersTimeoutMs / 4))),
  });
  full.emit('listening');
  full.on('request', (req: IncomingMessage, res: ServerResponse) => {
    serveRequest(c, req, res).catch((err: unknown) => {
      log.error({ err: String((err as Error)?.message ?? err) }, 'request handling failed');
      writeOwn(res, ownAnswer(500, undefined, 'internal error (fail closed)'), true);
    });
  });
  full.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    serveUpgrade(c, req, socket, head).catch(() => socket.destroy());
  });
  // CONNECT asks for a tunnel, and node hands it over apart from requests (with no listener it drops the
  // connection unanswered). The sidecar opens no tunnel: refused and logged as an upgrade is, its
  // authority-form target by normalization, any other by serveUpgrade.
  full.on('connect', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    serveUpgrade(c, req, socket, head).catch(() => socket.destroy());
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
  return full;
}

// The fast path, unless the upstream is https (its raw connections do not apply). Calls a handler owns
// leave it one by one (admitFast), so a sidecar with the MCP handler keeps it for every other call.
function fastPathOf(c: Parts, full: http.Server): FastPath | undefined {
  const { opts, limits, log } = c;
  if (opts.upstream.protocol === 'https:') return undefined;
  return new FastPath({
    upstream: { host: opts.upstream.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(opts.upstream.port || 80) },
    limits,
    handOff: (socket) => full.emit('connection', socket),
    admit: (head, socket) => admitFast(c, head, socket),
    responseHeaderLines,
    answer: ownAnswer,
    upstreamFailed: (decisionId, err) => log.warn({ decision_id: decisionId, err }, 'upstream request failed'),
    ...(opts.held ? { held: opts.held } : {}),
  });
}

// The listener: plain or TLS; each connection starts on the fast path or goes to node's server, and
// closing behaves like http.Server's.
function listenerOf(c: Parts, fast: FastPath | undefined, full: http.Server): SidecarServer {
  const t = c.opts.tls;
  const listener = t
    ? tls.createServer({ cert: t.cert, key: t.key, ALPNProtocols: ['http/1.1'], ...(t.ca ? { ca: t.ca, requestCert: true, rejectUnauthorized: false } : {}) })
    : net.createServer();
  listener.on(t ? 'secureConnection' : 'connection', (socket: net.Socket) => {
    // A connection's identity is the certificate of its handshake (identify reads it once per connection).
    if (t) (socket as tls.TLSSocket).disableRenegotiation();
    if (fast) fast.accept(socket);
    else full.emit('connection', socket);
  });
  listener.on('close', () => {
    fast?.close();
    c.relay.close();
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
    setTls: (next: SidecarTls) => {
      if (!(listener instanceof tls.Server)) throw new TypeError('the sidecar listens without TLS: there is no certificate to replace');
      listener.setSecureContext({ cert: next.cert, key: next.key, ...(next.ca ? { ca: next.ca } : {}) });
    },
  });
}

/**
 * The sidecar server (not yet listening): node's server and the fast path behind one listener, both
 * forwarding through the one head builder (upstream-head.ts). Connections start on the fast path when
 * the upstream is plain HTTP; a call a handler owns (MCP) and anything the fast path does not parse move
 * the connection to node's http server.
 */
export function createSidecar(opts: SidecarOptions): SidecarServer {
  const limits = { maxHeaderBytes: 16 * 1024, maxBodyBytes: 10 * 1024 * 1024, headersTimeoutMs: 10_000, requestTimeoutMs: 60_000, keepAliveTimeoutMs: 5_000, ...opts.limits };
  const headers = opts.headers ?? DEFAULT_HEADER_POLICY;
  const c: Parts = { opts, limits, headers, relay: new Relay(opts.upstream, headers, limits.maxBodyBytes, opts.logger), log: opts.logger, jsonBodyBytes: Math.min(opts.jsonBodyBytes ?? 0, limits.maxBodyBytes) };
  const full = nodeServer(c);
  return listenerOf(c, fastPathOf(c, full), full);
}
