// The sidecar's fast path on real sockets: keep-alive and pipelined calls, the hand-over to node's
// parser, request smuggling attempts, and every way an upstream can frame (or botch) its answer. The
// upstream here is a raw TCP server, so the test decides exactly which bytes it writes and sees.
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChunkedEnd } from '../proxy-plugin/http1.js';
import { startPlugin, type Plugin } from '../proxy-plugin/plugin.js';
import type { SidecarLimits } from '../proxy-plugin/fast-path.js';
import { createSidecar } from '../proxy-plugin/sidecar.js';
import { closeServer, copyPolicies, listenLocal, type PolicyCopy } from './support/proxy-fixtures.js';
import { startWarden } from './support/warden-process.js';
import { exchange, statuses } from './support/raw-http.js';

const XFCC = 'X-Forwarded-Client-Cert: By=spiffe://cluster.local/ns/shop/sa/orders;URI=spiffe://cluster.local/ns/shop/sa/storefront';
const silent = pino({ level: 'silent' });
let plugin: Plugin;
let policies: PolicyCopy;

beforeAll(async () => {
  policies = await copyPolicies(['orders']);
  plugin = await startPlugin({
    workload: 'orders',
    bundleFile: join(policies.out, 'orders.tar.gz'),
    verificationKey: readFileSync(join(policies.out, 'verification-key.pem'), 'utf8'),
    identity: { trustedHeader: { name: 'x-forwarded-client-cert', peers: ['127.0.0.1'] } },
    logger: silent,
  });
}, 120_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  await Promise.all(children.map((c) => (c.exitCode !== null ? undefined : new Promise((r) => c.once('exit', r)))));
  await plugin?.close();
});

/** A request as the raw upstream received it. */
interface Seen {
  method: string;
  target: string;
  head: string;
  body: Buffer;
  /** Which upstream connection (1-based) and which request on it (0-based). */
  conn: number;
  index: number;
}

type Behaviour = (req: Seen, socket: net.Socket) => void;

const answer = (status: string, headers: string[], body = '') => `HTTP/1.1 ${status}\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n${body}`;
const ok: Behaviour = (req, s) => {
  const body = JSON.stringify({ target: req.target });
  s.write(answer('200 OK', ['Content-Type: application/json', `Content-Length: ${body.length}`], body));
};

// A raw HTTP/1.1 upstream: reads requests framed by content-length or chunked and lets `behave` answer.
async function startRawUpstream(behave: Behaviour): Promise<{ server: net.Server; port: number; seen: Seen[] }> {
  const seen: Seen[] = [];
  let conns = 0;
  const server = net.createServer((s) => {
    const conn = ++conns;
    let index = 0;
    let buf = Buffer.alloc(0);
    s.on('error', () => undefined);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.toString('latin1', 0, end);
        const rest = buf.subarray(end + 4);
        let bodyLength = 0;
        const cl = /\r\ncontent-length: *(\d+)/i.exec(head);
        if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
          bodyLength = new ChunkedEnd().feed(rest);
          if (bodyLength < 0) return;
        } else if (cl) bodyLength = Number(cl[1]);
        if (rest.length < bodyLength) return;
        const [method, target] = head.split(' ') as [string, string];
        const req = { method, target, head, body: rest.subarray(0, bodyLength), conn, index: index++ };
        buf = rest.subarray(bodyLength);
        seen.push(req);
        behave(req, s);
      }
    });
  });
  return { server, port: await listenLocal(server), seen };
}

// An upstream that answers 413 as soon as a request head arrives and records every head it sees
// (whatever follows a head is read as the next head: it never skips a body).
async function startEarlyAnswerUpstream(): Promise<{ server: net.Server; port: number; heads: string[] }> {
  const heads: string[] = [];
  const server = net.createServer((s) => {
    let buf = '';
    s.on('error', () => undefined);
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      let end: number;
      while ((end = buf.indexOf('\r\n\r\n')) >= 0) {
        heads.push(buf.slice(0, end));
        buf = buf.slice(end + 4);
        s.write(answer('413 Content Too Large', ['Content-Length: 0']));
      }
    });
  });
  return { server, port: await listenLocal(server), heads };
}

// How a test's sidecar is started: in this process (createSidecar, no call handler), or as users start
// it — `warden proxy` as a process, which also registers the MCP handler for its http:// upstream, and
// still takes the fast path for every call not on an MCP transport path.
type Form = 'createSidecar' | 'warden proxy';
const FORMS: Form[] = ['createSidecar', 'warden proxy'];
const children: ChildProcess[] = [];

// The CLI flags that set `limits` (the defaults otherwise, as in createSidecar).
const limitFlags = (l: SidecarLimits) => [
  ...(l.maxHeaderBytes !== undefined ? ['--max-header-bytes', String(l.maxHeaderBytes)] : []),
  ...(l.headersTimeoutMs !== undefined ? ['--headers-timeout', String(l.headersTimeoutMs)] : []),
  ...(l.requestTimeoutMs !== undefined ? ['--request-timeout', String(l.requestTimeoutMs)] : []),
];

// A listening sidecar of the given form in front of the upstream on `upstreamPort`.
async function sidecarFor(form: Form, upstreamPort: number, limits: SidecarLimits): Promise<{ port: number; close: () => Promise<void> }> {
  if (form === 'createSidecar') {
    // JSON bodies read into the input up to 64 KiB, as `warden proxy` does by default.
    const sidecar = createSidecar({ upstream: new URL(`http://127.0.0.1:${upstreamPort}`), gate: plugin.gate, logger: silent, limits, jsonBodyBytes: 65_536 });
    return { port: await listenLocal(sidecar), close: () => closeServer(sidecar) };
  }
  const m = await startWarden(
    ['proxy', '--workload', 'orders', '--bundle', join(policies.out, 'orders.tar.gz'), '--verification-key', join(policies.out, 'verification-key.pem'),
      '--upstream', `http://127.0.0.1:${upstreamPort}`, '--listen', '127.0.0.1:0', '--trust-header', 'x-forwarded-client-cert', '--trust-peer', '127.0.0.1',
      '--spill', join(policies.dir, `fast-path-${children.length}.spill`), '--decision-lines', 'all', ...limitFlags(limits)],
    /on [\d.]+:(\d+) .*\(bundle [^n]/,
    children,
  );
  const child = children.at(-1)!;
  return {
    port: Number(m[1]),
    close: () => (child.exitCode !== null ? Promise.resolve() : new Promise<void>((r) => (child.once('exit', () => r()), child.kill('SIGTERM')))),
  };
}

// A sidecar in front of a raw upstream for one test.
async function stack(form: Form, behave: Behaviour, limits = {}): Promise<{ port: number; seen: Seen[]; close: () => Promise<void> }> {
  const up = await startRawUpstream(behave);
  const sidecar = await sidecarFor(form, up.port, { requestTimeoutMs: 400, headersTimeoutMs: 400, ...limits });
  return {
    port: sidecar.port,
    seen: up.seen,
    close: async () => {
      await sidecar.close();
      await new Promise<void>((r) => up.server.close(() => r()));
    },
  };
}

// One sidecar (in front of an `ok` upstream) for the tests of a suite that need no state of their own:
// each test starts with an empty `seen`. A `warden proxy` started per test made this file take ~80 s.
function sharedStack(form: Form): () => { port: number; seen: Seen[]; close: () => Promise<void> } {
  let t: Awaited<ReturnType<typeof stack>> | undefined;
  beforeAll(async () => {
    t = await stack(form, ok);
  });
  afterAll(async () => {
    await t?.close();
  });
  return () => {
    t!.seen.length = 0;
    return { port: t!.port, seen: t!.seen, close: async () => {} };
  };
}

const get = (path: string, ...extra: string[]) => `GET ${path} HTTP/1.1\r\nHost: orders\r\n${XFCC}\r\n${extra.map((h) => `${h}\r\n`).join('')}\r\n`;
const decisionIds = (text: string) => [...text.matchAll(/^x-warden-decision-id: (\S+)\r$/gim)].map((m) => m[1]);
const headerOf = (req: Seen, name: string) => new RegExp(`\r\n${name}: *([^\r]*)`, 'i').exec(req.head)?.[1];

describe.each(FORMS)('fast path: calls on one connection (%s)', (form) => {
  const shared = sharedStack(form);
  it('serves pipelined keep-alive calls in order, each decided and stamped with its decision id', async () => {
    const t = shared();
    try {
      const out = await exchange(t.port, get('/orders/1') + get('/orders/2') + get('/orders/3', 'Connection: close'));
      expect(statuses(out)).toEqual([200, 200, 200]);
      expect(t.seen.map((r) => r.target)).toEqual(['/orders/1', '/orders/2', '/orders/3']);
      // Kept alive: one upstream connection carried all three.
      expect(new Set(t.seen.map((r) => r.conn)).size).toBe(1);
      const ids = decisionIds(out);
      expect(ids).toHaveLength(3);
      expect(t.seen.map((r) => headerOf(r, 'x-warden-decision-id'))).toEqual(ids);
      expect(out).toContain('{"target":"/orders/3"}');
      // Clients learn how long an idle connection stays open (the sidecar's keep-alive timeout, 5 s by default).
      expect(out.match(/^keep-alive: timeout=5\r$/gm)).toHaveLength(2);
      expect(out.match(/^connection: close\r$/gm)).toHaveLength(1);
    } finally {
      await t.close();
    }
  });

  it("hands the connection to node's parser for a call outside the fast path, and keeps serving it there", async () => {
    const t = shared();
    try {
      const chunked = `POST /orders HTTP/1.1\r\nHost: orders\r\n${XFCC}\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n`;
      const out = await exchange(t.port, get('/orders/1') + chunked + get('/orders/2', 'Connection: close'));
      expect(statuses(out)).toEqual([200, 200, 200]);
      // Node's server starts a pipelined call while the one before still streams its body: the upstream
      // may see them in either order; the client gets its answers in order all the same.
      expect(t.seen.map((r) => `${r.method} ${r.target}`).sort()).toEqual(['GET /orders/1', 'GET /orders/2', 'POST /orders']);
      expect(out.indexOf('"target":"/orders/1"')).toBeLessThan(out.indexOf('"target":"/orders"'));
      expect(out.indexOf('"target":"/orders"')).toBeLessThan(out.indexOf('"target":"/orders/2"'));
      // Node's path streamed the chunked body on unchanged in content.
      const post = t.seen.find((r) => r.method === 'POST')!;
      expect(post.body.toString()).toMatch(/hello/);
      expect(post.body.toString()).toMatch(/ world/);
      expect(decisionIds(out)).toHaveLength(3);
    } finally {
      await t.close();
    }
  });

  it('denies on the fast path with the JSON answer, and closes when a body was sent with the denied call', async () => {
    const t = shared();
    try {
      const anonymous = 'GET /orders/1 HTTP/1.1\r\nHost: orders\r\n\r\n';
      const out = await exchange(t.port, anonymous + get('/orders/2', 'Connection: close'));
      expect(statuses(out)).toEqual([403, 200]);
      expect(out).toContain('no rule grants anonymous GET /orders/1');
      const withBody = await exchange(t.port, 'POST /orders HTTP/1.1\r\nHost: orders\r\nContent-Type: application/octet-stream\r\nContent-Length: 5\r\n\r\nhello' + get('/orders/3'));
      expect(statuses(withBody)).toEqual([403]);
      expect(withBody).toMatch(/^connection: close\r$/im);
      expect(t.seen.map((r) => r.target)).toEqual(['/orders/2']);
    } finally {
      await t.close();
    }
  });

  it('answers thousands of pipelined calls it denies itself, in order, on one connection', async () => {
    // Each denial is answered in the turn its request was read: the next pipelined request must not be
    // read one call deeper each time (3,000 in one packet would overflow the stack and cut the client off).
    const t = shared();
    try {
      const anonymous = (i: number) => `GET /orders/${i} HTTP/1.1\r\nHost: orders\r\n\r\n`;
      const out = await exchange(t.port, Array.from({ length: 3000 }, (_, i) => anonymous(i)).join('') + get('/orders/last', 'Connection: close'));
      const got = statuses(out);
      expect(got).toHaveLength(3001);
      expect(got.slice(0, 3000).every((s) => s === 403)).toBe(true);
      expect(got[3000]).toBe(200);
      expect([...out.matchAll(/no rule grants anonymous GET \/orders\/(\d+)/g)].map((m) => Number(m[1]))).toEqual(Array.from({ length: 3000 }, (_, i) => i));
      expect(t.seen.map((r) => r.target)).toEqual(['/orders/last']);
    } finally {
      await t.close();
    }
  });

  it('forwards a content-length body exactly, also when it arrives in pieces after the head', async () => {
    const t = shared();
    try {
      const head = `POST /orders HTTP/1.1\r\nHost: orders\r\n${XFCC}\r\nContent-Type: application/octet-stream\r\nContent-Length: 11\r\nConnection: close\r\n\r\n`;
      const out = await exchange(t.port, head + 'hel', 'lo w', 'orld');
      expect(statuses(out)).toEqual([200]);
      expect(t.seen[0]!.body.toString()).toBe('hello world');
      expect(headerOf(t.seen[0]!, 'content-length')).toBe('11');
    } finally {
      await t.close();
    }
  });

  it('answers 408 and closes when the announced body never arrives', async () => {
    const t = await stack(form, ok, { requestTimeoutMs: 300, headersTimeoutMs: 300 });
    try {
      const out = await exchange(t.port, `POST /orders HTTP/1.1\r\nHost: orders\r\n${XFCC}\r\nContent-Type: application/octet-stream\r\nContent-Length: 100\r\n\r\nonly a little`);
      expect(statuses(out)).toEqual([408]);
      expect(out).toMatch(/the request body did not arrive in time/);
    } finally {
      await t.close();
    }
  });

  it("drops hop-by-hop fields both ways and never relays an upstream's own decision id", async () => {
    const t = await stack(form, (_req, s) =>
      s.write(answer('200 OK', ['Content-Length: 2', 'Connection: keep-alive, X-Secret', 'X-Secret: 1', 'Keep-Alive: timeout=30', 'Proxy-Connection: x', 'X-Warden-Decision-Id: forged', 'X-Kept: yes'], 'ok')),
    );
    try {
      const out = await exchange(t.port, get('/orders/1', 'Connection: close, X-Internal', 'X-Internal: 1', 'Keep-Alive: 5', 'TE: trailers'));
      expect(statuses(out)).toEqual([200]);
      expect(out).toMatch(/^X-Kept: yes\r$/m);
      expect(out).not.toMatch(/X-Secret|Keep-Alive|Proxy-Connection|forged/i);
      expect(decisionIds(out)).toEqual([headerOf(t.seen[0]!, 'x-warden-decision-id')]);
      expect(t.seen[0]!.head).not.toMatch(/X-Internal|Keep-Alive|\r\nTE:|\r\nConnection:/i);
    } finally {
      await t.close();
    }
  });
});

describe('fast path: closing', () => {
  it('closes idle connections at once and lets a call in flight finish, answered with connection: close', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let arrived!: () => void;
    const atUpstream = new Promise<void>((r) => (arrived = r));
    const up = await startRawUpstream((req, s) => {
      arrived();
      void held.then(() => ok(req, s));
    });
    const sidecar = createSidecar({ upstream: new URL(`http://127.0.0.1:${up.port}`), gate: plugin.gate, logger: silent });
    const port = await listenLocal(sidecar);
    try {
      const idle = net.connect(port, '127.0.0.1');
      const idleClosed = new Promise<void>((r) => idle.on('close', () => r()));
      await new Promise<void>((r) => idle.on('connect', () => r()));
      const inflight = exchange(port, get('/orders/1')); // keep-alive: only the close ends it
      await atUpstream;
      const closed = new Promise<void>((r) => sidecar.close(() => r()));
      await idleClosed;
      release();
      const out = await inflight;
      expect(statuses(out)).toEqual([200]);
      expect(out).toMatch(/^connection: close\r$/m);
      await closed;
    } finally {
      sidecar.closeAllConnections();
      await new Promise<void>((r) => up.server.close(() => r()));
    }
  });
});

describe.each(FORMS)('fast path: request smuggling attempts never reach the upstream as requests (%s)', (form) => {
  const shared = sharedStack(form);
  const smuggled = `GET /orders/smuggled HTTP/1.1\r\nHost: orders\r\n${XFCC}\r\n\r\n`;
  const cases: Array<[string, string, boolean]> = [
    ['two differing Content-Lengths', `POST /orders HTTP/1.1\r\nHost: orders\r\n${XFCC}\r\nContent-Length: 0\r\nContent-Length: ${smuggled.length}\r\n\r\n${smuggled}`, true],
    ['Content-Length with Transfer-Encoding', `POST /orders HTTP/1.1\r\nHost: orders\r\n${XFCC}\r\nContent-Length: ${smuggled.length + 5}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`, true],
    ['a space before the colon', `POST /orders HTTP/1.1\r\nHost: orders\r\n${XFCC}\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n${smuggled}`, true],
    ['a list Content-Length', `POST /orders HTTP/1.1\r\nHost: orders\r\n${XFCC}\r\nContent-Length: ${smuggled.length}, 0\r\n\r\n${smuggled}`, true],
    ['a final coding other than chunked', `POST /orders HTTP/1.1\r\nHost: orders\r\n${XFCC}\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${smuggled}`, true],
    ['obs-fold of Transfer-Encoding', `POST /orders HTTP/1.1\r\nHost: orders\r\n${XFCC}\r\nContent-Length: ${smuggled.length}\r\nTransfer-Encoding: identity\r\n chunked\r\n\r\n${smuggled}`, false],
    ['bare LF line ends', `POST /orders HTTP/1.1\nHost: orders\n${XFCC}\nContent-Length: ${smuggled.length}\n\n${smuggled}`, false],
  ];
  it.each(cases)('%s', async (_what, payload, refused) => {
    const t = shared();
    try {
      const out = await exchange(t.port, payload);
      // The request carried in another's body is never forwarded as a request of its own.
      expect(t.seen.filter((r) => r.target === '/orders/smuggled')).toEqual([]);
      // Whatever reached the upstream has one unambiguous framing.
      for (const r of t.seen) expect(/\r\ncontent-length:/i.test(r.head) && /\r\ntransfer-encoding:/i.test(r.head)).toBe(false);
      if (refused) {
        expect(statuses(out)).toEqual([400]);
        expect(t.seen).toEqual([]);
      }
    } finally {
      await t.close();
    }
  });

  it('never parses the rest of a body as a request after the upstream answered before reading it', async () => {
    // The upstream answers as soon as it has the head (an early 413, say) and never reads the body.
    const early = await startEarlyAnswerUpstream();
    const { port, close } = await sidecarFor(form, early.port, { requestTimeoutMs: 2000, headersTimeoutMs: 2000 });
    try {
      // The rest of the body is a whole request, chunked so that only node's parser would take it.
      const rest = `POST /orders/smuggled HTTP/1.1\r\nHost: orders\r\n${XFCC}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`;
      const head = `POST /orders HTTP/1.1\r\nHost: orders\r\n${XFCC}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${10 + rest.length}\r\n\r\n`;
      const out = await new Promise<string>((resolve, reject) => {
        const s = net.connect(port, '127.0.0.1');
        const got: Buffer[] = [];
        s.on('error', reject);
        s.on('data', (d: Buffer) => {
          got.push(d);
          // The early answer is in: now send the rest of the body, which hides a request.
          if (got.length === 1) s.write(rest);
        });
        s.on('close', () => resolve(Buffer.concat(got).toString('latin1')));
        s.on('connect', () => s.write(`${head}0123456789`));
      });
      // One answer (the early one, then the connection closes), and the hidden request never went upstream.
      expect(statuses(out)).toEqual([413]);
      expect(out).toMatch(/^connection: close\r$/m);
      expect(early.heads).toHaveLength(1);
      expect(early.heads[0]).toMatch(/^POST \/orders HTTP\/1\.1/);
    } finally {
      await close();
      await new Promise<void>((r) => early.server.close(() => r()));
    }
  });

  it('refuses an oversized head with 431 (node parses what the fast path will not)', async () => {
    const t = await stack(form, ok, { maxHeaderBytes: 2048 });
    try {
      const out = await exchange(t.port, get('/orders/1', `X-Big: ${'a'.repeat(4096)}`));
      expect(statuses(out)).toEqual([431]);
      expect(t.seen).toEqual([]);
    } finally {
      await t.close();
    }
  });
});

describe.each(FORMS)('fast path: what the upstream answers (%s)', (form) => {
  it('relays a chunked answer with trailers unchanged, written in pieces, and reuses the connection after it', async () => {
    const t = await stack(form, (req, s) => {
      if (req.index > 0) return ok(req, s);
      s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5\r\nhel');
      setImmediate(() => s.write('lo\r\n6;ext=1\r\n world\r\n0\r\nX-Sum: 11\r\n\r\n'));
    });
    try {
      const out = await exchange(t.port, get('/orders/1') + get('/orders/2', 'Connection: close'));
      expect(statuses(out)).toEqual([200, 200]);
      expect(out).toContain('transfer-encoding: chunked\r\n');
      expect(out).toContain('5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Sum: 11\r\n\r\n');
      expect(t.seen.map((r) => r.conn)).toEqual([1, 1]);
    } finally {
      await t.close();
    }
  });

  it("keeps an idle upstream connection no longer than the upstream's Keep-Alive hint allows", async () => {
    // timeout=1: retiring it a second early leaves no time at all, so the next call opens a new one.
    const t = await stack(form, (req, s) => s.write(answer('200 OK', ['Content-Length: 2', 'Keep-Alive: timeout=1'], 'ok')));
    try {
      const out = await exchange(t.port, get('/orders/1') + get('/orders/2', 'Connection: close'));
      expect(statuses(out)).toEqual([200, 200]);
      expect(t.seen.map((r) => r.conn)).toEqual([1, 2]);
    } finally {
      await t.close();
    }
  });

  it('relays an answer framed by the close and then closes the client connection too', async () => {
    const t = await stack(form, (_req, s) => {
      s.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the ');
      setImmediate(() => s.end('end'));
    });
    try {
      const out = await exchange(t.port, get('/orders/1') + get('/orders/2'));
      expect(statuses(out)).toEqual([200]);
      expect(out).toMatch(/^connection: close\r$/m);
      expect(out.endsWith('\r\n\r\nuntil the end')).toBe(true);
    } finally {
      await t.close();
    }
  });

  it('knows HEAD, 204 and informational answers carry no body, and drops the informational ones', async () => {
    const t = await stack(form, (req, s) => {
      if (req.method === 'HEAD') s.write(answer('200 OK', ['Content-Length: 10']));
      else if (req.target === '/orders/2') s.write(answer('204 No Content', []));
      else if (req.target === '/orders/3') s.write(answer('103 Early Hints', ['Link: </a.css>; rel=preload']) + answer('200 OK', ['Content-Length: 5'], 'final'));
      else ok(req, s);
    });
    try {
      const head = `HEAD /orders/1 HTTP/1.1\r\nHost: orders\r\n${XFCC}\r\n\r\n`;
      const out = await exchange(t.port, head + get('/orders/2') + get('/orders/3') + get('/orders/4', 'Connection: close'));
      expect(statuses(out)).toEqual([200, 204, 200, 200]);
      expect(out).not.toMatch(/^HTTP\/1\.1 103/m); // (a decision id may hold the digits 103)
      expect(out).toContain('\r\n\r\nfinal');
      expect(t.seen.map((r) => r.conn)).toEqual([1, 1, 1, 1]);
    } finally {
      await t.close();
    }
  });

  it("reads an answer's head that comes in small pieces, an informational one before it, and refuses one too large however it comes", async () => {
    // Written a few bytes at a time, each piece in its own turn: the sidecar sees many reads per head.
    const trickle = async (s: net.Socket, text: string, size: number) => {
      for (let i = 0; i < text.length; i += size) {
        s.write(text.slice(i, i + size), 'latin1');
        await new Promise((r) => setImmediate(r));
      }
    };
    const filler = Array.from({ length: 200 }, (_, i) => `X-Filler-${i}: ${'f'.repeat(40)}`);
    const t = await stack(form, (req, s) => {
      if (req.target === '/orders/1') void trickle(s, answer('103 Early Hints', ['Link: </a.css>; rel=preload']) + answer('200 OK', [...filler, 'Content-Length: 5'], 'final'), 3);
      // A head that never ends: past 64 KiB the sidecar stops reading it.
      else if (req.target === '/orders/2') void trickle(s, `HTTP/1.1 200 OK\r\nX-Huge: ${'h'.repeat(70 * 1024)}`, 4096);
      // One that ends, in one write: the same bound.
      else if (req.target === '/orders/3') s.write(answer('200 OK', [`X-Huge: ${'h'.repeat(70 * 1024)}`, 'Content-Length: 2'], 'ok'));
      else ok(req, s);
    });
    try {
      const out = await exchange(t.port, get('/orders/1') + get('/orders/2') + get('/orders/3') + get('/orders/4', 'Connection: close'));
      expect(statuses(out)).toEqual([200, 502, 502, 200]);
      expect(out).not.toContain('hhhh');
      expect(out).toContain('X-Filler-199: ');
      expect(out).toContain('\r\n\r\nfinal');
      expect(out).toContain('the upstream answered with a head too large');
      expect(out).not.toMatch(/^HTTP\/1\.1 103/m);
    } finally {
      await t.close();
    }
  });

  it("bounds an answer's head at 64 KiB on node's path too (an HTTP/1.0 call goes there): 20 KiB passes, 70 KiB is a 502", async () => {
    const t = await stack(form, (req, s) => s.write(answer('200 OK', [`X-Big: ${'b'.repeat((req.target === '/orders/1' ? 20 : 70) * 1024)}`, 'Content-Length: 2'], 'ok')));
    try {
      const call = (path: string) => exchange(t.port, `GET ${path} HTTP/1.0\r\nHost: orders\r\n${XFCC}\r\n\r\n`);
      const [small, large] = [await call('/orders/1'), await call('/orders/2')];
      expect([statuses(small), statuses(large)]).toEqual([[200], [502]]);
      expect(small).toContain(`x-big: ${'b'.repeat(20 * 1024)}`);
      // None of the upstream's head reaches the caller. (Not a short run of "b": a decision id is hex, and
      // 01a24fca-a798-7786-9929-49bbbb616ff0 once made that assertion fail.)
      expect(large).not.toMatch(/x-big/i);
      expect(large).not.toContain('b'.repeat(64));
    } finally {
      await t.close();
    }
  });

  const botched: Array<[string, string]> = [
    ['a malformed status line', 'HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok'],
    ['conflicting content-lengths', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok'],
    ['a header split by a bare LF', 'HTTP/1.1 200 OK\r\nX-A: 1\nSet-Cookie: injected=1\r\nContent-Length: 2\r\n\r\nok'],
    ['an unasked-for upgrade', 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n'],
    // Framing a client could read two ways; node's path (undici) refuses each, so the fast path does too.
    ['content-length with transfer-encoding', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n'],
    ['repeated equal content-lengths', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok'],
    ['a list of equal content-lengths', 'HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok'],
    // A head that would never end for a CRLF reader: it waited until the upstream closed.
    ['a head whose lines end in bare LFs', 'HTTP/1.1 200 OK\nContent-Length: 2\n\nok'],
  ];
  it.each(botched)('answers 502 with the decision id to %s, and does not reuse that connection', async (_what, bytes) => {
    const t = await stack(form, (req, s) => (req.conn === 1 ? s.write(bytes) : ok(req, s)));
    try {
      const out = await exchange(t.port, get('/orders/1') + get('/orders/2', 'Connection: close'));
      expect(statuses(out)).toEqual([502, 200]);
      expect(out).toContain('the upstream answered with a malformed response');
      expect(out).not.toContain('injected');
      expect(decisionIds(out)).toEqual(t.seen.map((r) => headerOf(r, 'x-warden-decision-id')));
      expect(t.seen.map((r) => r.conn)).toEqual([1, 2]);
    } finally {
      await t.close();
    }
  });

  it('cuts the client off when the upstream dies in the middle of a body', async () => {
    const t = await stack(form, (_req, s) => {
      s.write(answer('200 OK', ['Content-Length: 100'], 'partial'));
      setImmediate(() => s.destroy());
    });
    try {
      const out = await exchange(t.port, get('/orders/1'));
      expect(statuses(out)).toEqual([200]);
      expect(out.endsWith('partial')).toBe(true); // the client sees 7 of 100 bytes and a closed connection
    } finally {
      await t.close();
    }
  });

  it('retries a bodiless GET once on a fresh connection when a reused one dies unanswered, but never a POST', async () => {
    // Every upstream connection answers its first request and drops the second unanswered (a keep-alive race).
    const t = await stack(form, (req, s) => (req.index === 0 ? ok(req, s) : s.destroy()));
    try {
      const out = await exchange(t.port, get('/orders/1') + get('/orders/2', 'Connection: close'));
      expect(statuses(out)).toEqual([200, 200]);
      expect(t.seen.map((r) => `${r.target}@${r.conn}.${r.index}`)).toEqual(['/orders/1@1.0', '/orders/2@1.1', '/orders/2@2.0']);
      const post = `POST /orders HTTP/1.1\r\nHost: orders\r\n${XFCC}\r\nContent-Type: application/octet-stream\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi`;
      const posted = await exchange(t.port, get('/orders/3') + post);
      expect(statuses(posted)).toEqual([200, 502]);
      expect(posted).toContain('the upstream is unavailable');
      expect(t.seen.filter((r) => r.method === 'POST')).toHaveLength(1);
    } finally {
      await t.close();
    }
  });
});

describe('fast path: how long the sidecar holds a call', () => {
  it("reports each forwarded call's time in the sidecar, the upstream's own time not counted (warden proxy --admin, /metrics)", async () => {
    // The upstream takes 300 ms per answer; the sidecar's own work is well under a millisecond. A denial
    // is answered by the sidecar itself and is not a forwarded call.
    const up = await startRawUpstream((req, s) => void setTimeout(() => ok(req, s), 300));
    const m = await startWarden(
      ['proxy', '--workload', 'orders', '--bundle', join(policies.out, 'orders.tar.gz'), '--verification-key', join(policies.out, 'verification-key.pem'),
        '--upstream', `http://127.0.0.1:${up.port}`, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--trust-header', 'x-forwarded-client-cert', '--trust-peer', '127.0.0.1',
        '--spill', join(policies.dir, 'fast-path-held.spill')],
      /on [\d.]+:(\d+) \(admin [\d.]+:(\d+)\).*\(bundle [^n]/,
      children,
    );
    try {
      const out = await exchange(Number(m[1]), get('/orders/1') + 'GET /orders/2 HTTP/1.1\r\nHost: orders\r\n\r\n' + get('/orders/3', 'Connection: close'));
      expect(statuses(out)).toEqual([200, 403, 200]);
      const text = await (await fetch(`http://127.0.0.1:${m[2]}/metrics`)).text();
      const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
      expect(value('warden_proxy_held_seconds_count')).toBe(2);
      expect(value('warden_proxy_held_seconds_sum')).toBeGreaterThan(0);
      expect(value('warden_proxy_held_seconds_sum')).toBeLessThan(0.3); // one upstream answer alone took 0.3 s
      expect(value('warden_proxy_held_seconds_bucket\\{le="0.05"\\}')).toBe(2);
    } finally {
      children.at(-1)!.kill('SIGTERM');
      await new Promise<void>((r) => up.server.close(() => r()));
    }
  });
});

describe.each(FORMS)('fast path: what Connection names, HEAD answers and JSON charsets (%s)', (form) => {
  const shared = sharedStack(form);
  const smuggled = 'GET /orders/export HTTP/1.1\r\nHost: orders\r\n\r\n';
  const post = (fields: string[], body: string) => `POST /orders HTTP/1.1\r\nHost: orders\r\n${XFCC}\r\n${fields.map((f) => `${f}\r\n`).join('')}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

  it("refuses a request whose Connection names its framing or Host, so its body is never read as a request; decides without any other field it names", async () => {
    const t = shared();
    const named = ['Connection: content-length', 'Connection: close, Content-Length', 'Connection: CONTENT-LENGTH', 'Connection: keep-alive\r\nConnection: content-length', 'Connection: host'];
    for (const connection of named) {
      // The body is a request for what the caller may not reach (/orders/export is for billing only).
      const out = await exchange(t.port, post(['Content-Type: text/plain', connection], smuggled) + get('/orders/1', 'Connection: close'));
      expect({ connection, statuses: statuses(out) }).toEqual({ connection, statuses: [400] });
      expect(out).toMatch(/Connection names (content-length|host): the request's (framing|Host) cannot be dropped at the hop/);
    }
    expect(t.seen).toEqual([]);
    // A field it names does not reach the app, and the policy does not read it: without the identity
    // header the caller is anonymous, and is denied.
    expect(statuses(await exchange(t.port, get('/orders/1', 'Connection: close, X-Forwarded-Client-Cert')))).toEqual([403]);
    expect(t.seen).toEqual([]);
    // Content-Type named: the body still goes with its length, as one request.
    expect(statuses(await exchange(t.port, post(['Content-Type: text/plain', 'Connection: close, content-type'], smuggled)))).toEqual([200]);
    expect(t.seen.map((r) => [r.method, r.target, r.body.toString(), headerOf(r, 'content-type')])).toEqual([['POST', '/orders', smuggled, undefined]]);
    // Options and hop-by-hop fields, and names the request does not carry.
    t.seen.length = 0;
    for (const connection of ['Connection: keep-alive', 'Connection: TE\r\nTE: trailers', 'Connection: x-not-sent']) {
      const out = await exchange(t.port, get('/orders/1', connection, 'Connection: close'));
      expect({ connection, statuses: statuses(out) }).toEqual({ connection, statuses: [200] });
    }
    expect(t.seen.map((r) => [r.target, headerOf(r, 'te')])).toEqual([['/orders/1', undefined], ['/orders/1', undefined], ['/orders/1', undefined]]);
  });

  it('keeps the framing of an answer whose Connection names content-length, on the fast path and on node\'s (HTTP/1.0)', async () => {
    const t = await stack(form, (_req, s) => s.write(answer('200 OK', ['Connection: content-length, x-up', 'X-Up: 1', 'Content-Length: 2'], 'ok')));
    try {
      const out = await exchange(t.port, get('/orders/1') + get('/orders/2', 'Connection: close'));
      expect(statuses(out)).toEqual([200, 200]);
      expect(out.match(/^content-length: 2\r$/gim)).toHaveLength(2);
      expect(out).not.toMatch(/^x-up:/im);
      const old = await exchange(t.port, `GET /orders/3 HTTP/1.0\r\nHost: orders\r\n${XFCC}\r\n\r\n`);
      expect(statuses(old)).toEqual([200]);
      expect(old).toMatch(/^content-length: 2\r$/im);
      expect(old.endsWith('\r\n\r\nok')).toBe(true);
    } finally {
      await t.close();
    }
  });

  it("answers a denied HEAD with a head alone, so the next answer on the connection is read as itself", async () => {
    const t = shared();
    // No caller identity: denied. Then a call that is allowed, on the same connection.
    const out = await exchange(t.port, 'HEAD /orders/1 HTTP/1.1\r\nHost: orders\r\n\r\n' + get('/orders/2', 'Connection: close'));
    expect(statuses(out)).toEqual([403, 200]);
    expect(out).toMatch(/^content-length: \d+\r\n(?:[^\r]*\r\n)*\r\nHTTP\/1\.1 200 /m);
    expect(out).not.toContain('"reasons"');
    expect(t.seen.map((r) => r.target)).toEqual(['/orders/2']);
  });

  it('passes a JSON body whose keys differ only by case when the policy reads none of them (free-form maps hold such pairs); where it reads one, see proxy-body-selection', async () => {
    const t = shared();
    const bodies = ['{"env":{"Path":"C:","PATH":"/bin"}}', '{"headers":{"X-Id":"1","x-id":"2"}}', '{"amount":1,"Amount":999}'];
    for (const body of bodies) {
      const out = await exchange(t.port, post(['Content-Type: application/json', 'Connection: close'], body));
      expect({ body, statuses: statuses(out) }).toEqual({ body, statuses: [200] });
    }
    expect(t.seen.map((r) => r.body.toString())).toEqual(bodies);
  });

  it('refuses a JSON body that declares a charset other than UTF-8 before reading it: an app could decode it otherwise', async () => {
    const t = shared();
    // UTF-7 that express's json parser decodes to {"amount":999,…}, while as UTF-8 it is {"amount":1,…}.
    const utf7 = '{"amount":1,"note":"+ACIALAAiAGEAbQBvAHUAbgB0ACIAOgA5ADkAOQAsACIAeAAiADoAIg-"}';
    const foreign = ['application/json; charset=utf-7', 'application/json;charset="UTF-7"', 'application/json; charset=utf-8; charset=utf-7', 'application/json; charset=utf-16', 'application/vnd.x+json; CHARSET=utf-7-imap', 'application/json; charset='];
    for (const type of foreign) {
      const out = await exchange(t.port, post([`Content-Type: ${type}`], utf7) + get('/orders/1', 'Connection: close'));
      expect({ type, statuses: statuses(out) }).toEqual({ type, statuses: [415] });
      expect(out).toContain('a body the sidecar reads must be UTF-8');
    }
      // Bytes the app would inflate before reading them (body-parser inflates gzip, deflate and br).
    for (const coding of ['gzip', 'deflate', 'br', 'identity, gzip']) {
      const out = await exchange(t.port, post(['Content-Type: application/json', `Content-Encoding: ${coding}`], '{"amount":1}'));
      expect({ coding, statuses: statuses(out) }).toEqual({ coding, statuses: [415] });
      expect(out).toContain('must not be content-encoded');
    }
    expect(t.seen).toEqual([]);
    for (const type of ['application/json; charset=utf-8', 'application/json; charset="UTF-8"', 'application/json', 'text/plain; charset=utf-7']) {
      const out = await exchange(t.port, post([`Content-Type: ${type}`, 'Connection: close'], utf7));
      expect({ type, statuses: statuses(out) }).toEqual({ type, statuses: [200] });
    }
    expect(statuses(await exchange(t.port, post(['Content-Type: application/json', 'Content-Encoding: identity', 'Connection: close'], utf7)))).toEqual([200]);
    expect(t.seen.map((r) => r.body.toString())).toEqual([utf7, utf7, utf7, utf7, utf7]);
  });
});
