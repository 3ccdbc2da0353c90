// The sidecar's fast path: plain HTTP/1.1 exchanges handled on the raw sockets. A request whose whole
// head arrives at once and falls in http1.ts's strict subset is parsed here, decided, and relayed to
// the upstream over a pool of keep-alive connections; its response is relayed byte for byte after a
// rewritten head. Everything else (a head split across reads, upgrades, chunked or expect-continue
// bodies, anything unusual) hands the connection over to node's http server, which parses it from the
// first byte not yet consumed and keeps it for good. Node's http server and client cost about twice
// the CPU per call of these few socket reads and writes (bench/proxy.bench.ts shows both).
import net from 'node:net';
import { STATUS_CODES } from 'node:http';
import { ChunkedEnd, isHeaderName, isPlainValue, MAX_RESPONSE_HEAD_BYTES, parseRequestHead, parseResponseHead, type RequestHead, type ResponseHead } from './http1.js';

const CRLFCRLF = Buffer.from('\r\n\r\n');

// Whether `bytes` (after `before`, the byte that came just ahead of them) hold an LF not preceded by CR.
function bareLf(bytes: Buffer, before: number | undefined): boolean {
  for (let j = bytes.indexOf(10); j >= 0; j = bytes.indexOf(10, j + 1)) if ((j > 0 ? bytes[j - 1] : before) !== 13) return true;
  return false;
}
/** Client bytes buffered while a call is in flight before reading pauses. */
const MAX_BUFFERED = 64 * 1024;

/** Size and time limits of the sidecar's listener (defaults in brackets): the fast path and node's server both apply them. */
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

/** An answer the sidecar writes itself (a denial, 502, 408, 500). */
export interface OwnAnswer {
  status: number;
  headers: Array<[string, string]>;
  body: string;
}

/** An admitted request on its way to the upstream. */
export interface Forward {
  forward: true;
  target: string;
  decisionId: string | undefined;
  /** Request header lines for the upstream; with `body`, they frame it (content-length). */
  headerLines: string;
  /** The body to send instead of the client's (already read, see `readBody`). */
  body?: Buffer;
  /** Sees the upstream's final response head before it is relayed (an MCP session id, say). */
  onResponse?(resp: ResponseHead): void;
  /** A rewrite of the final answer's body, when it needs one (a filtered MCP tool list); else relayed as is. */
  answer?(resp: ResponseHead): BodyRewrite | WholeAnswer | undefined;
}

/**
 * An answer read whole before any of it goes out (an MCP JSON answer, checked or filtered): `end` gets its
 * body, unframed, and returns the body to send in one write with its own Content-Length, or the sidecar's
 * own answer instead (a 502 for an answer that cannot be read). Nothing reaches the client before `end`,
 * so a body over `max` bytes is refused with a 502 as well.
 */
export interface WholeAnswer {
  whole: true;
  max: number;
  end(body: Buffer): Buffer | OwnAnswer;
}

/**
 * Rewrites an answer's body as it streams: the client gets what `push` returns for each piece of the
 * body (unframed) and what `end` returns at its end, framed chunked. Throwing cuts the client off.
 */
export interface BodyRewrite {
  push(data: Buffer): string;
  end(): string;
}

/**
 * The outcome of admitting one request: forward it, answer it, hand the connection to node's server
 * from this request on (a call another part must see parsed, such as one on an MCP transport path), or
 * read the whole body first and admit again with it (a handler that decides on the body, such as MCP's;
 * it must hand off only before it decided anything, since node's path then decides the call again).
 */
export type Admission = Forward | ({ forward: false } & OwnAnswer) | { handOff: true } | { readBody(body: Buffer): Admission | Promise<Admission> };

/** What the fast path asks of the sidecar. */
export interface FastPathOptions {
  upstream: { host: string; port: number };
  limits: Required<SidecarLimits>;
  /** Takes over a connection the fast path does not handle (node's http server; it never listens itself). */
  handOff(socket: net.Socket): void;
  /**
   * Decide the request; a forward carries the upstream target and its request header lines. Answered
   * synchronously when nothing must be awaited (no token signature to check), so the call goes on in
   * the same turn of the event loop.
   */
  admit(head: RequestHead, socket: net.Socket): Admission | Promise<Admission>;
  /** Response header lines for the client (`name: value\r\n` each) from the upstream's head. */
  responseHeaderLines(resp: ResponseHead, decisionId: string | undefined): string;
  /** The sidecar's own JSON answer (502, 408, 500). */
  answer(status: number, decisionId: string | undefined, reason: string): OwnAnswer;
  /** An upstream call failed before it could answer. */
  upstreamFailed(decisionId: string | undefined, err: string): void;
  /**
   * A forwarded call's answer went out: the seconds the sidecar held it, from its request head to the
   * request's forwarding plus from the answer's first bytes to its last write (the upstream's own time
   * is not counted).
   */
  held?(seconds: number): void;
}

// One keep-alive connection to the upstream. Its listeners stay for its whole life and route to the
// exchange using it (none while idle: then a close, stray bytes or the idle timeout retire it).
class Upstream {
  exchange: Exchange | undefined;
  reused = false;

  constructor(
    readonly socket: net.Socket,
    pool: UpstreamPool,
  ) {
    socket.on('data', (chunk: Buffer) => {
      const ex = this.exchange;
      if (!ex) return void socket.destroy();
      try {
        ex.onUpData(chunk);
      } catch {
        ex.abort(); // a bug here must cost one call, not the whole sidecar
      }
    });
    socket.on('end', () => this.exchange?.onUpEnd());
    socket.on('error', (err: Error) => this.exchange?.onUpError(err));
    socket.on('timeout', () => (this.exchange ? undefined : socket.destroy()));
    socket.once('close', () => {
      this.exchange?.onUpEnd();
      pool.closed(this);
    });
  }
}

// Keep-alive connections to the upstream, at most `max` at once; calls beyond wait in order.
class UpstreamPool {
  private readonly idle: Upstream[] = [];
  private readonly waiting: Exchange[] = [];
  private open = 0;
  private ended = false;

  constructor(
    private readonly at: { host: string; port: number },
    private readonly max: number,
    private readonly idleMs: number,
  ) {}

  /** A connection for `ex` now (reused when one is idle), or later in order of asking. */
  acquire(ex: Exchange): void {
    while (this.idle.length > 0) {
      const up = this.idle.pop()!;
      if (up.socket.destroyed) continue;
      up.socket.setTimeout(0);
      up.reused = true;
      return ex.start(up);
    }
    if (this.open < this.max) return ex.start(this.connect());
    this.waiting.push(ex);
  }

  /** A fresh connection, whatever is idle (a retry after a reused one failed). */
  fresh(ex: Exchange): void {
    if (this.open < this.max) ex.start(this.connect());
    else this.waiting.unshift(ex);
  }

  release(up: Upstream, reusable: boolean, keepAliveMs: number | undefined): void {
    up.exchange = undefined;
    // Keep an idle connection as long as the upstream says it will (Keep-Alive: timeout=N), retiring it
    // a second early so no call races the upstream's close; 4 s when it does not say (as undici does).
    const idleMs = keepAliveMs === undefined ? this.idleMs : Math.min(keepAliveMs - 1000, MAX_IDLE_MS);
    if (!reusable || this.ended || up.socket.destroyed || idleMs <= 0) return void up.socket.destroy();
    up.socket.resume(); // a slow client may have paused it; idle connections are read
    const next = this.waiting.shift();
    if (next) {
      up.reused = true;
      return next.start(up);
    }
    up.socket.setTimeout(idleMs);
    this.idle.push(up);
  }

  closed(up: Upstream): void {
    this.open--;
    const i = this.idle.indexOf(up);
    if (i >= 0) this.idle.splice(i, 1);
    const next = !this.ended && this.open < this.max ? this.waiting.shift() : undefined;
    if (next) next.start(this.connect());
  }

  destroy(): void {
    this.ended = true;
    for (const up of this.idle.splice(0)) up.socket.destroy();
    this.waiting.length = 0;
  }

  private connect(): Upstream {
    this.open++;
    return new Upstream(net.connect({ host: this.at.host, port: this.at.port, noDelay: true }), this);
  }
}

/** The longest an upstream's Keep-Alive hint keeps an idle connection open (undici's keepAliveMaxTimeout). */
const MAX_IDLE_MS = 600_000;

const RETRYABLE = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * The head of one of the sidecar's own answers, ending with `connection` (a header line). Undefined when
 * a field cannot be written — a name that is not a token, a value with CR/LF (a policy's denial headers
 * could carry either) — and the caller fails closed, as node's writeHead would.
 */
export function answerHead(answer: OwnAnswer, bodyLength: number, connection: string): string | undefined {
  let lines = '';
  for (const [name, value] of answer.headers) {
    if (!isHeaderName(name) || !isPlainValue(value)) return undefined;
    lines += `${name}: ${value}\r\n`;
  }
  return `HTTP/1.1 ${answer.status} ${STATUS_CODES[answer.status] ?? ''}\r\ndate: ${new Date().toUTCString()}\r\n${lines}content-length: ${bodyLength}\r\n${connection}\r\n`;
}

/** The fast path of one sidecar listener. */
export class FastPath {
  readonly connections = new Set<Connection>();
  readonly pool: UpstreamPool;
  /** The listener is closing: calls in flight finish, then their connections close. */
  draining = false;
  private readonly keepAlive: string;

  constructor(readonly o: FastPathOptions) {
    this.pool = new UpstreamPool(o.upstream, 256, 4_000);
    this.keepAlive = `keep-alive: timeout=${Math.floor(o.limits.keepAliveTimeoutMs / 1000)}\r\n`;
  }

  /**
   * The field that tells the client what happens to the connection: `connection: close` (asked for, or
   * the listener is closing), or how long it may stay idle (as node's server says it), so clients keep
   * it open that long instead of guessing.
   */
  connectionLine(close: boolean): string {
    return close || this.draining ? 'connection: close\r\n' : this.keepAlive;
  }

  /** Serve a new client connection (plain or TLS). */
  accept(socket: net.Socket): void {
    this.connections.add(new Connection(this, socket));
  }

  closeIdleConnections(): void {
    for (const c of this.connections) if (!c.busy) c.socket.destroy();
  }

  closeAllConnections(): void {
    for (const c of this.connections) c.socket.destroy();
  }

  /** Stop: idle connections close now, busy ones after their call. */
  drain(): void {
    this.draining = true;
    this.closeIdleConnections();
  }

  close(): void {
    this.pool.destroy();
  }
}

/**
 * Bytes that arrive in pieces, kept as the pieces and joined only when read whole: a body or head
 * trickled in a million small reads costs a million appends, not a million copies of all that came before
 * it (quadratic: seconds of CPU for one 1 MiB MCP body, on the event loop every call of the pod shares).
 */
class Pieces {
  private list: Buffer[] = [];
  /** Bytes held. */
  size = 0;

  push(b: Buffer): void {
    this.list.push(b);
    this.size += b.length;
  }

  /** All of them as one buffer, kept as such (undefined: none). */
  joined(): Buffer | undefined {
    if (this.list.length > 1) this.list = [Buffer.concat(this.list, this.size)];
    return this.list[0];
  }

  /** Hold `b` alone (nothing when undefined). */
  reset(b?: Buffer): void {
    this.list.length = 0;
    if (b) this.list.push(b);
    this.size = b?.length ?? 0;
  }

  /** The last `n` bytes held (fewer when fewer are). */
  last(n: number): Buffer {
    const out: Buffer[] = [];
    for (let i = this.list.length - 1, need = n; i >= 0 && need > 0; i--) {
      const b = this.list[i]!;
      out.unshift(b.subarray(Math.max(0, b.length - need)));
      need -= b.length;
    }
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  }
}

// One client connection while the fast path owns it.
class Connection {
  busy = false;
  // The bytes read and not yet consumed.
  private readonly unread = new Pieces();
  private exchange: Exchange | undefined;
  private gone = false;
  // The method of the request being served (own answers to a HEAD carry no body).
  private method = '';
  /** When the request being served had its head read (performance.now()): the start of its hold. */
  arrived = 0;
  /** A body being read before its request is admitted again (Admission.readBody). */
  private collecting: { head: RequestHead; headBytes: Buffer; then: (body: Buffer) => Admission | Promise<Admission>; timer: NodeJS.Timeout } | undefined;

  constructor(
    private readonly fp: FastPath,
    readonly socket: net.Socket,
  ) {
    socket.setNoDelay(true);
    socket.on('data', this.onData);
    socket.on('error', this.onGone);
    socket.on('close', this.onGone);
    socket.on('end', this.onGone);
    socket.on('timeout', this.onIdle);
    socket.setTimeout(fp.o.limits.headersTimeoutMs);
  }

  private readonly onData = (chunk: Buffer): void => {
    try {
      this.read(chunk);
    } catch {
      // A bug here must cost one connection, not the whole sidecar (fail closed).
      this.exchange?.abort();
      this.socket.destroy();
    }
  };

  // The unconsumed bytes as one buffer (undefined: none).
  private get buf(): Buffer | undefined {
    return this.unread.joined();
  }

  private set buf(b: Buffer | undefined) {
    this.unread.reset(b);
  }

  private read(chunk: Buffer): void {
    // Closing: what still arrives (say, the rest of a body the upstream answered without reading) is
    // never parsed as a request, here or by node.
    if (this.gone) return;
    const ex = this.exchange;
    if (ex?.streaming && ex.bodyLeft > 0) {
      const n = Math.min(ex.bodyLeft, chunk.length);
      ex.sendBody(chunk.subarray(0, n));
      if (n === chunk.length) return;
      chunk = chunk.subarray(n);
    }
    this.unread.push(chunk);
    if (!this.busy) this.next();
    else if (this.collecting) this.collected();
    else if (this.unread.size > MAX_BUFFERED) this.socket.pause();
  }

  private readonly onGone = (): void => {
    if (this.gone) return;
    this.gone = true;
    this.fp.connections.delete(this);
    if (this.collecting) clearTimeout(this.collecting.timer);
    this.collecting = undefined;
    this.exchange?.abort();
    this.socket.destroy();
  };

  private readonly onIdle = (): void => {
    if (!this.busy) this.socket.destroy();
  };

  /** Take the bytes of the body that arrived with the head (up to `n`). */
  takeBuffered(n: number): Buffer | undefined {
    const buf = this.buf;
    if (!buf || n === 0) return undefined;
    if (buf.length <= n) {
      this.buf = undefined;
      return buf;
    }
    this.buf = buf.subarray(n);
    return buf.subarray(0, n);
  }

  // Parse the next request from the buffered bytes, or hand the connection over.
  private next(): void {
    const buf = this.buf;
    if (!buf) return;
    const { limits } = this.fp.o;
    const end = buf.indexOf(CRLFCRLF);
    if (end < 0 || end + 4 > limits.maxHeaderBytes) return this.handOff();
    const head = parseRequestHead(buf.toString('latin1', 0, end));
    if (!head || head.contentLength > limits.maxBodyBytes) return this.handOff();
    this.buf = end + 4 < buf.length ? buf.subarray(end + 4) : undefined;
    this.busy = true;
    this.method = head.method;
    this.socket.setTimeout(0);
    this.arrived = performance.now();
    const headBytes = buf.subarray(0, end + 4);
    this.admitWith(head, headBytes, undefined, () => this.fp.o.admit(head, this.socket));
  }

  // One admission step (`body`: the request's body when it was read for it): an answer given at once
  // goes on at once, a promised one when it settles; a step that throws fails closed.
  private admitWith(head: RequestHead, headBytes: Buffer, body: Buffer | undefined, step: () => Admission | Promise<Admission>): void {
    let a: Admission | Promise<Admission>;
    try {
      a = step();
    } catch {
      return this.admitted(head, headBytes, this.failed(), body);
    }
    if (!(a instanceof Promise)) return this.admitted(head, headBytes, a, body);
    a.then(
      (x) => this.admitted(head, headBytes, x, body),
      () => this.admitted(head, headBytes, this.failed(), body),
    );
  }

  private failed(): Admission {
    return { forward: false, ...this.fp.o.answer(500, undefined, 'internal error (fail closed)') };
  }

  // `body`: the request's body, already read (Admission.readBody); else it is still to come.
  private admitted(head: RequestHead, headBytes: Buffer, a: Admission, body: Buffer | undefined): void {
    if (this.gone) return;
    if ('readBody' in a) {
      if (body) return this.admitted(head, headBytes, this.failed(), body); // one read per request
      const timer = setTimeout(() => this.bodyTimedOut(), this.fp.o.limits.requestTimeoutMs);
      timer.unref();
      this.collecting = { head, headBytes, then: a.readBody, timer };
      this.socket.resume(); // paused if the body outgrew MAX_BUFFERED while the head was admitted; bounded by contentLength
      return this.collected();
    }
    if ('handOff' in a) {
      // Node parses this request again from its first byte: put its head (and its body, when it was
      // read here) back in front of what followed.
      const parts = [headBytes, ...(body ? [body] : []), ...(this.buf ? [this.buf] : [])];
      this.buf = parts.length > 1 ? Buffer.concat(parts) : headBytes;
      return this.handOff();
    }
    if (!a.forward) return this.own(a, head.close || (!body && head.contentLength > 0));
    this.exchange = new Exchange(this.fp, this, head, a);
  }

  // The body being read is all in: admit its request again, with it.
  private collected(): void {
    const c = this.collecting!;
    if (this.unread.size < c.head.contentLength) return;
    clearTimeout(c.timer);
    this.collecting = undefined;
    const body = this.takeBuffered(c.head.contentLength)!;
    this.admitWith(c.head, c.headBytes, body, () => c.then(body));
  }

  // The whole request must arrive in time (node's requestTimeout): a slow sender is cut off.
  private bodyTimedOut(): void {
    if (!this.collecting || this.gone) return;
    this.collecting = undefined;
    this.own(this.fp.o.answer(408, undefined, 'the request body did not arrive in time'), true);
  }

  /**
   * Write one of the sidecar's own answers; `close` when the connection cannot be reused. An answer to a
   * HEAD has no body (RFC 9110 §9.3.2), only the length a GET's would have, as node's path writes it:
   * bytes after it would be read as the start of the next answer.
   */
  own(answer: OwnAnswer, close: boolean): void {
    const body = Buffer.from(answer.body, 'utf8');
    const head = answerHead(answer, body.length, this.fp.connectionLine(close));
    if (head === undefined) return this.own(this.fp.o.answer(500, undefined, 'internal error (fail closed)'), true);
    this.socket.cork();
    this.socket.write(head, 'latin1');
    if (this.method !== 'HEAD') this.socket.write(body);
    this.socket.uncork();
    this.done(close);
  }

  /** The exchange is over: close, or go on with the next request. */
  done(close: boolean): void {
    this.exchange = undefined;
    this.busy = false;
    if (this.gone) return;
    if (close || this.fp.draining) {
      this.gone = true;
      this.fp.connections.delete(this);
      this.socket.end();
      return;
    }
    this.socket.resume();
    this.socket.setTimeout(this.fp.o.limits.keepAliveTimeoutMs);
    // The next pipelined request is read once this call has unwound: requests the sidecar answers
    // itself at once (denials) would otherwise nest one call deeper each, without bound.
    queueMicrotask(this.nextIfIdle);
  }

  private readonly nextIfIdle = (): void => {
    if (!this.gone && !this.busy) this.next();
  };

  // From here on node's http server owns the connection, starting with the bytes not yet consumed.
  private handOff(): void {
    const s = this.socket;
    s.removeListener('data', this.onData);
    s.removeListener('error', this.onGone);
    s.removeListener('close', this.onGone);
    s.removeListener('end', this.onGone);
    s.removeListener('timeout', this.onIdle);
    s.setTimeout(0);
    this.fp.connections.delete(this);
    s.pause();
    if (this.buf) s.unshift(this.buf);
    this.buf = undefined;
    this.fp.o.handOff(s);
    s.resume();
  }
}

// One request relayed to the upstream and its response relayed back.
class Exchange {
  bodyLeft: number;
  /** The request went out: more body from the client goes straight to the upstream. */
  streaming = false;
  private up: Upstream | undefined;
  private retried = false;
  // The answer's head read so far (after any informational heads already read).
  private readonly rhead = new Pieces();
  private resp: ResponseHead | undefined;
  private left = 0;
  private chunked: ChunkedEnd | undefined;
  private rewrite: BodyRewrite | undefined;
  /** The answer being read whole (WholeAnswer): its head goes out with its body. */
  private whole: { answer: WholeAnswer; parts: Buffer[]; size: number } | undefined;
  /** Body bytes of the current upstream read, unframed (a rewrite reads them). */
  private data: Buffer[] = [];
  private extra = false;
  private closeAfter: boolean;
  private timer: NodeJS.Timeout | undefined;
  private finished = false;
  private readonly requestHead: string;
  /** Sidecar time before the request went out (part of the held time). */
  private heldMs = 0;
  /** When the answer's first bytes came (performance.now()); 0 while none has. */
  private answerAt = 0;

  constructor(
    private readonly fp: FastPath,
    private readonly conn: Connection,
    private readonly head: RequestHead,
    private readonly a: Forward,
  ) {
    // A body read before admission is sent whole; the client's bytes are all consumed.
    this.bodyLeft = a.body ? 0 : head.contentLength;
    this.closeAfter = head.close;
    this.requestHead = `${head.method} ${a.target} HTTP/1.1\r\n${a.headerLines}\r\n`;
    if (this.bodyLeft > 0) {
      // The whole body must arrive in time (node's requestTimeout); slow senders are cut off.
      this.timer = setTimeout(() => this.bodyTimedOut(), fp.o.limits.requestTimeoutMs);
      this.timer.unref();
    }
    fp.pool.acquire(this);
  }

  /** The connection to send on is ready. */
  start(up: Upstream): void {
    if (this.finished) return void this.fp.pool.release(up, true, undefined);
    this.up = up;
    up.exchange = this;
    const s = up.socket;
    s.cork();
    s.write(this.requestHead, 'latin1');
    if (this.a.body) s.write(this.a.body);
    const early = this.conn.takeBuffered(this.bodyLeft);
    if (early) {
      this.bodyLeft -= early.length;
      s.write(early);
    }
    s.uncork();
    this.heldMs = performance.now() - this.conn.arrived;
    this.streaming = true;
    if (this.bodyLeft === 0) this.bodySent();
    else this.conn.socket.resume();
  }

  /** More request body from the client. */
  sendBody(chunk: Buffer): void {
    this.bodyLeft -= chunk.length;
    const s = this.up?.socket;
    if (!s || s.destroyed) return;
    if (!s.write(chunk)) {
      const client = this.conn.socket;
      client.pause();
      s.once('drain', () => client.resume());
    }
    if (this.bodyLeft === 0) this.bodySent();
  }

  private bodySent(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private bodyTimedOut(): void {
    if (this.finished || this.bodyLeft === 0) return;
    if (this.resp) return this.abort();
    this.fail(408, 'the request body did not arrive in time', true);
  }

  onUpData(chunk: Buffer): void {
    if (this.finished) return;
    if (!this.resp) {
      const head = this.rhead;
      if (this.answerAt === 0) this.answerAt = performance.now();
      // A read that cannot end the head (no blank line across the seam with what came before) waits
      // unsearched and unjoined.
      const ends = head.size === 0 || Buffer.concat([head.last(3), chunk]).includes(CRLFCRLF);
      if (!ends && bareLf(chunk, head.last(1)[0])) return this.fail(502, 'the upstream answered with a malformed response (a bare LF in its head)', false);
      head.push(chunk);
      if (!ends) return void this.headTooLarge(head.size);
      let buf = head.joined()!;
      head.reset();
      for (;;) {
        const end = buf.indexOf(CRLFCRLF);
        if (end < 0) {
          // A head whose lines end in a bare LF would never end: node's path refuses it, so does this one.
          if (bareLf(buf, undefined)) return this.fail(502, 'the upstream answered with a malformed response (a bare LF in its head)', false);
          head.push(buf);
          return void this.headTooLarge(head.size);
        }
        if (this.headTooLarge(end + 4)) return;
        const resp = parseResponseHead(buf.toString('latin1', 0, end), this.head.method);
        if (typeof resp === 'string' || resp.status === 101) return this.fail(502, `the upstream answered with a malformed response (${typeof resp === 'string' ? resp : 'an unasked-for upgrade'})`, false);
        buf = buf.subarray(end + 4);
        if (resp.status >= 200) {
          chunk = buf;
          // The rewritten head and the first body bytes leave in one write.
          const client = this.conn.socket;
          client.cork();
          this.respond(resp);
          if (chunk.length > 0) this.relay(chunk);
          else if (resp.framing === 'length' && this.left === 0) this.relay(chunk); // an empty body: its end
          client.uncork();
          return;
        }
        // Informational answers (100, 103) are for this hop only; the final one follows.
      }
    }
    this.relay(chunk);
  }

  // An answer head over the bound, however it came (whole, in one read, or in pieces), is a 502.
  private headTooLarge(size: number): boolean {
    if (size <= MAX_RESPONSE_HEAD_BYTES) return false;
    this.fail(502, 'the upstream answered with a head too large', false);
    return true;
  }

  private respond(resp: ResponseHead): void {
    this.resp = resp;
    this.a.onResponse?.(resp);
    // The connection cannot carry another call when the answer runs to the close or the upstream
    // answered before the request body was all in (the rest is never read).
    if (resp.framing === 'close' || this.bodyLeft > 0) this.closeAfter = true;
    // Only an answer with a body is rewritten as it streams (the rewrite frames it chunked: its length
    // changes); one read whole is checked even when empty (an empty JSON answer is no answer).
    const bodied = resp.framing !== 'length' || resp.contentLength > 0;
    const rewrite = this.a.answer?.(resp);
    if (rewrite && 'whole' in rewrite) this.whole = { answer: rewrite, parts: [], size: 0 };
    else if (bodied) this.rewrite = rewrite;
    const reads = this.rewrite || this.whole;
    if (resp.framing === 'chunked') this.chunked = new ChunkedEnd(reads ? (d) => this.data.push(Buffer.from(d.buffer, d.byteOffset, d.byteLength)) : undefined);
    this.left = resp.framing === 'length' ? resp.contentLength : 0;
    if (this.whole) return; // its head goes out with the body, once the body is read (wholeRead)
    const lines = this.fp.o.responseHeaderLines(this.rewrite ? { ...resp, framing: 'chunked' } : resp, this.a.decisionId);
    const framing = resp.framing === 'chunked' || this.rewrite ? 'transfer-encoding: chunked\r\n' : '';
    this.conn.socket.write(`HTTP/1.1 ${resp.status} ${resp.reason}\r\n${lines}${framing}${this.fp.connectionLine(this.closeAfter)}\r\n`, 'latin1');
  }

  private relay(chunk: Buffer): void {
    const resp = this.resp!;
    let out = chunk;
    let end = false;
    if (resp.framing === 'length') {
      const n = Math.min(this.left, chunk.length);
      this.left -= n;
      if (n < chunk.length) {
        this.extra = true; // bytes past the declared length: the connection is not reused
        out = chunk.subarray(0, n);
      }
      end = this.left === 0;
    } else if (this.chunked) {
      let at: number;
      try {
        at = this.chunked.feed(chunk);
      } catch {
        return this.abort();
      }
      if (at >= 0) {
        end = true;
        if (at < chunk.length) {
          this.extra = true;
          out = chunk.subarray(0, at);
        }
      }
    }
    if (this.whole) return this.wholeRead(resp.framing === 'chunked' ? undefined : out, end);
    if (this.rewrite) out = this.rewritten(resp.framing === 'chunked' ? undefined : out, end);
    if (out.length > 0 && !this.conn.socket.write(out)) {
      // The client reads slower than the upstream writes: hold the upstream until it catches up.
      const up = this.up!.socket;
      up.pause();
      this.conn.socket.once('drain', () => up.resume());
    }
    if (end) this.complete();
  }

  // The rewrite's output for this read as chunked framing (`unframed`: the body bytes when the upstream
  // did not chunk them; else the chunk data collected while following its framing).
  private rewritten(unframed: Buffer | undefined, end: boolean): Buffer {
    const r = this.rewrite!;
    let text = '';
    for (const d of unframed ? [unframed] : this.data.splice(0)) if (d.length > 0) text += r.push(d);
    if (end) text += r.end();
    const body = Buffer.from(text, 'utf8');
    const chunk = body.length > 0 ? `${body.length.toString(16)}\r\n` : '';
    return Buffer.concat([Buffer.from(chunk, 'latin1'), body, Buffer.from(body.length > 0 ? (end ? '\r\n0\r\n\r\n' : '\r\n') : end ? '0\r\n\r\n' : '', 'latin1')]);
  }

  // More of an answer read whole (`unframed` as in `rewritten`); at its end, the head and the body (or
  // the sidecar's own answer) leave in one write.
  private wholeRead(unframed: Buffer | undefined, end: boolean): void {
    const w = this.whole!;
    for (const d of unframed ? [unframed] : this.data.splice(0)) {
      w.size += d.length;
      w.parts.push(d);
    }
    // Nothing went out yet: an answer too large is refused whole, and the upstream connection with it.
    if (w.size > w.answer.max) return this.complete(this.fp.o.answer(502, this.a.decisionId, `the upstream's answer exceeds ${w.answer.max} bytes`), false);
    if (!end) return;
    const out = w.answer.end(w.parts.length === 1 ? w.parts[0]! : Buffer.concat(w.parts, w.size));
    if (!Buffer.isBuffer(out)) return this.complete(out);
    const resp = this.resp!;
    const lines = this.fp.o.responseHeaderLines({ ...resp, framing: 'chunked' }, this.a.decisionId);
    const client = this.conn.socket;
    client.cork();
    client.write(`HTTP/1.1 ${resp.status} ${resp.reason}\r\n${lines}content-length: ${out.length}\r\n${this.fp.connectionLine(this.closeAfter)}\r\n`, 'latin1');
    client.write(out);
    client.uncork();
    this.complete();
  }

  // The answer is over: the upstream connection goes back to the pool when it can carry another call,
  // and the client gets `own` instead of the upstream's answer when given (nothing of that went out).
  private complete(own?: OwnAnswer, reusable = true): void {
    const resp = this.resp!;
    if (!own) this.fp.o.held?.((this.heldMs + performance.now() - this.answerAt) / 1000);
    this.finish();
    this.fp.pool.release(this.up!, reusable && !resp.close && !this.extra && this.bodyLeft === 0, resp.keepAliveMs);
    if (own) this.conn.own(own, this.closeAfter);
    else this.conn.done(this.closeAfter);
  }

  onUpEnd(): void {
    if (this.finished) return;
    if (this.resp?.framing === 'close') {
      if (this.whole) return this.wholeRead(Buffer.alloc(0), true);
      const up = this.up!;
      if (this.rewrite) {
        try {
          this.conn.socket.write(this.rewritten(Buffer.alloc(0), true));
        } catch {
          return this.abort();
        }
      }
      this.finish();
      up.socket.destroy();
      this.conn.done(true);
      return;
    }
    this.failBeforeAnswer('the upstream closed the connection');
  }

  onUpError(err: Error): void {
    if (!this.finished) this.failBeforeAnswer(err.message);
  }

  // The upstream failed: retry a bodiless idempotent call that went out on a reused connection (it
  // may have raced the upstream closing it), answer 502 if nothing reached the client, else cut it off.
  private failBeforeAnswer(reason: string): void {
    if (this.resp) return this.abort(); // part of an answer is out already
    if (this.up?.reused && !this.retried && this.answerAt === 0 && this.head.contentLength === 0 && RETRYABLE.has(this.head.method)) {
      this.retried = true;
      const up = this.up;
      up.exchange = undefined;
      up.socket.destroy();
      this.up = undefined;
      this.fp.pool.fresh(this);
      return;
    }
    this.fp.o.upstreamFailed(this.a.decisionId, reason);
    this.fail(502, 'the upstream is unavailable', this.bodyLeft > 0);
  }

  private fail(status: number, reason: string, close: boolean): void {
    if (this.resp) return this.abort(); // part of an answer is out already
    const up = this.up;
    this.finish();
    up?.socket.destroy();
    this.conn.own(this.fp.o.answer(status, this.a.decisionId, reason), close || this.closeAfter);
  }

  /** Give up on the exchange: both connections are closed (the client already has part of an answer). */
  abort(): void {
    if (this.finished) return;
    const up = this.up;
    this.finish();
    up?.socket.destroy();
    this.conn.socket.destroy();
  }

  private finish(): void {
    this.finished = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.up?.exchange === this) this.up.exchange = undefined;
  }
}
