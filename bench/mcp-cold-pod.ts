// The pod of bench/mcp-cold.bench.ts, in one process: `warden proxy` as users start it (bin/warden.js,
// which refuses a stale dist/ and runs the shipped dist/sidecar.js, with the flags an injected pod
// passes), the gate-off sidecar (the pass-through), a raw MCP server and a raw client. One process, so
// that the scheduler's wake-ups and run queues, which dominate the wire bench on a small VM, are out of
// the figure; instead, before each call, a cache sweep (bench/cache-sweep.ts) pushes every cache level
// out. What is left is the CPU work of each proxy on cold caches. It reports over IPC and exits: warden
// proxy runs until its process ends, as in a pod.
import net from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportJWK } from 'jose';
import pino from 'pino';
import { ChunkedEnd, parseRequestHead, parseResponseHead } from '../proxy-plugin/http1.js';
import { mcpSpec } from '../proxy-plugin/mcp/spec.js';
import { AUDIENCE, ISSUER, loadOpsMcpPolicy, tokenIssuer } from '../test/support/mcp-fixtures.js';
import { copyPolicies } from '../test/support/proxy-fixtures.js';
import { cacheSweep } from './cache-sweep.js';
import { engineStandIn } from './engine-stand-in.js';
import { median } from './figure.js';
import { mcpCallKinds, warmupCalls } from './mcp-kinds.js';
import { shipped } from './shipped.js';
import { PROXY_READY } from './warden-cli.js';

/** What one kind of call measured, p50 in microseconds. */
export interface ColdKind {
  kind: string;
  warm: { warden: number; passthrough: number; paired: number };
  cold: { warden: number; passthrough: number; paired: number; wardenRequest: number; passthroughRequest: number };
}

const calls = Number(process.env.BENCH_CALLS ?? 400);
const { sweep: evict } = cacheSweep();
const listen = (s: net.Server, port = 0) => new Promise<number>((resolve) => s.listen(port, '127.0.0.1', () => resolve((s.address() as net.AddressInfo).port)));
const p50 = median;
const since = (t: bigint) => Number(process.hrtime.bigint() - t) / 1000;

const kinds = mcpCallKinds(mcpSpec((await loadOpsMcpPolicy()).bundle)!);
let current = kinds[0]!;
// When the server had the request in full (its answer is written at once): the end of a call's request half.
let received = 0n;

// The MCP server, raw: reads each request by its Content-Length and answers the current kind's answer.
const server = net.createServer((s) => {
  s.setNoDelay(true);
  let buf = '';
  s.on('data', (d: Buffer) => {
    buf += d.toString('latin1');
    for (;;) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const length = parseRequestHead(buf.slice(0, end))?.contentLength ?? 0;
      if (buf.length < end + 4 + length) return;
      buf = buf.slice(end + 4 + length);
      received = process.hrtime.bigint();
      const body = Buffer.from(current.answer);
      s.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\ncontent-type: ${current.type}\r\ncontent-length: ${body.length}\r\n\r\n`, 'latin1'), body]));
    }
  });
});
const serverPort = await listen(server);
const origin = `http://127.0.0.1:${serverPort}`;

const policies = await copyPolicies(['ops-mcp']);
const issuer = await tokenIssuer();
const token = await issuer.sign('bench-agent', 'tools:read tools:write');
const jwks = join(policies.dir, 'agents-jwks.json');
writeFileSync(jwks, JSON.stringify({ keys: [{ ...(await exportJWK(issuer.publicKey)), alg: 'ES256', use: 'sig' }] }));
const engine = await engineStandIn(policies.out);

// warden proxy as users start it: its port from the line it prints once it serves with its bundle.
const ready = new Promise<number>((resolve) => {
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    const m = PROXY_READY.exec(String(chunk));
    if (m) resolve(Number(m[1]));
    return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stderr.write;
});
process.argv = [process.argv[0]!, 'warden', 'proxy', '--workload', 'ops-mcp', '--engine', engine.url, '--bundle', join(policies.out, 'ops-mcp.tar.gz'), '--verification-key', join(policies.out, 'verification-key.pem'),
  '--upstream', origin, '--admin', '127.0.0.1:0', '--jwks', jwks, '--issuer', ISSUER, '--audience', AUDIENCE, '--spill', join(policies.dir, 'cold.spill'), '--listen', '127.0.0.1:0'];
// The command's own entry, by a computed specifier (a JavaScript file the type checker does not read); it
// never settles while warden proxy serves.
void import(new URL('../bin/warden.js', import.meta.url).href);
const wardenPort = await ready;
// The pass-through is the sidecar's code as built (dist/), as warden proxy runs it (shipped.ts).
const { createSidecar } = await shipped<typeof import('../proxy-plugin/sidecar.js')>('proxy-plugin/sidecar.js');
const passthroughPort = await listen(createSidecar({ upstream: new URL(origin), gate: null, logger: pino({ level: 'silent' }), limits: { keepAliveTimeoutMs: 30_000 } }) as unknown as net.Server);

// A keep-alive client that sends the current kind's request, with the MCP SDK client's header fields,
// and resolves once the whole answer is in, framed as its head says (read by the sidecar's own HTTP/1
// parser: Content-Length, or chunked for a rewritten event stream). A call not answered within 10 s, or
// answered with a head that does not parse, fails the run.
async function client(port: number): Promise<() => Promise<string>> {
  const s = net.connect(port, '127.0.0.1');
  s.setNoDelay(true);
  await new Promise((resolve) => s.once('connect', resolve));
  let buf: Buffer = Buffer.alloc(0);
  let done: ((answer: string) => void) | undefined;
  s.on('data', (d: Buffer) => {
    buf = buf.length > 0 ? Buffer.concat([buf, d]) : d;
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return;
    const head = parseResponseHead(buf.toString('latin1', 0, end), 'POST');
    if (typeof head === 'string' || head.framing === 'close') return void s.destroy(new Error(`127.0.0.1:${port} answered ${typeof head === 'string' ? head : 'to the close'}`));
    const body = buf.subarray(end + 4);
    const length = head.framing === 'length' ? head.contentLength : new ChunkedEnd().feed(body);
    if (length < 0 || body.length < length) return;
    const answer = buf.toString('latin1', 0, end + 4 + length);
    buf = buf.subarray(end + 4 + length);
    done?.(answer);
  });
  return () =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer from 127.0.0.1:${port} within 10 s (${current.kind})`)), 10_000);
      done = (answer) => {
        clearTimeout(timer);
        resolve(answer);
      };
      const body = JSON.stringify({ method: current.method, params: current.params, jsonrpc: '2.0', id: 5 });
      s.write(`POST /mcp HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\nconnection: keep-alive\r\nmcp-protocol-version: 2025-11-25\r\nauthorization: Bearer ${token}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\naccept-language: *\r\nsec-fetch-mode: cors\r\nuser-agent: node\r\naccept-encoding: gzip, deflate\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`, 'latin1');
    });
}
const throughWarden = await client(wardenPort);
const throughPass = await client(passthroughPort);

const results: ColdKind[] = [];
for (const k of kinds) {
  current = k;
  for (const [name, call] of [['warden proxy', throughWarden], ['pass-through', throughPass]] as const) {
    const answer = await call();
    if (!answer.startsWith('HTTP/1.1 200')) throw new Error(`${k.kind} through ${name} was answered ${answer.slice(0, 200)}`);
  }
  const phase = async (cold: boolean) => {
    const w: number[] = [];
    const p: number[] = [];
    const wr: number[] = [];
    const pr: number[] = [];
    for (let i = 0; i < calls; i++) {
      if (cold) evict();
      let t0 = process.hrtime.bigint();
      await throughPass();
      p.push(since(t0));
      pr.push(Number(received - t0) / 1000);
      if (cold) evict();
      t0 = process.hrtime.bigint();
      await throughWarden();
      w.push(since(t0));
      wr.push(Number(received - t0) / 1000);
    }
    return { warden: p50(w), passthrough: p50(p), paired: p50(w.map((x, i) => x - p[i]!)), wardenRequest: p50(wr), passthroughRequest: p50(pr) };
  };
  // Warm-up: the JIT, the WASM tiers and the connections, for this kind (warmupCalls): a cold cache is the
  // figure here, not a cold JIT.
  for (let i = 0, n = warmupCalls(); i < n; i++) {
    await throughWarden();
    await throughPass();
  }
  const warm = await phase(false);
  results.push({ kind: k.kind, warm: { warden: warm.warden, passthrough: warm.passthrough, paired: warm.paired }, cold: await phase(true) });
}
await engine.close();
// Forked by the bench: over IPC; run alone (`node --import tsx bench/mcp-cold-pod.ts`, e.g. under --cpu-prof): printed.
if (process.send) process.send(results);
else console.log(JSON.stringify(results, null, 1));
process.exit(0);
