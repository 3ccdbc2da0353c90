// The pod of bench/mcp-cold.bench.ts, in one process: `warden proxy` as shipped (dist/sidecar.js, run with
// the flags an injected pod passes), the gate-off sidecar (the pass-through), a raw MCP server and a raw
// client. One process, so that the scheduler's wake-ups and run queues, which dominate the wire bench on
// a small VM, are out of the figure; instead, before each call, a 32 MiB sweep (BENCH_EVICT_MB) pushes
// every cache level out, as the client, the server and the kernel do between a sidecar's calls. What is
// left is the CPU work of each proxy on cold caches. It reports over IPC and exits: warden proxy runs
// until its process ends, as in a pod.
import net from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportJWK } from 'jose';
import pino from 'pino';
import { mcpSpec } from '../proxy-plugin/mcp/spec.js';
import { createSidecar } from '../proxy-plugin/sidecar.js';
import { AUDIENCE, ISSUER, loadOpsMcpPolicy, tokenIssuer } from '../test/support/mcp-fixtures.js';
import { copyPolicies } from '../test/support/proxy-fixtures.js';
import { engineStandIn } from './engine-stand-in.js';
import { mcpCallKinds } from './mcp-kinds.js';

/** What one kind of call measured, p50 in microseconds. */
export interface ColdKind {
  kind: string;
  warm: { warden: number; passthrough: number; paired: number };
  cold: { warden: number; passthrough: number; paired: number; wardenRequest: number; passthroughRequest: number };
}

const calls = Number(process.env.BENCH_CALLS ?? 400);
const sweep = Buffer.alloc(Number(process.env.BENCH_EVICT_MB ?? 32) * 1024 * 1024);
const evict = () => {
  for (let i = 0; i < sweep.length; i += 64) sweep[i] = (sweep[i]! + 1) & 255;
};
const listen = (s: net.Server, port = 0) => new Promise<number>((resolve) => s.listen(port, '127.0.0.1', () => resolve((s.address() as net.AddressInfo).port)));
const p50 = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
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
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(buf.slice(0, end))?.[1] ?? 0);
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

// warden proxy from the shipped bundle: its port from the line it prints once its bundle is loaded.
const ready = new Promise<number>((resolve) => {
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    const m = /^warden proxy: .* on 127\.0\.0\.1:(\d+) .*\(bundle /m.exec(String(chunk));
    if (m) resolve(Number(m[1]));
    return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stderr.write;
});
process.argv = [process.argv[0]!, 'warden', 'proxy', '--workload', 'ops-mcp', '--engine', engine.url, '--bundle', join(policies.out, 'ops-mcp.tar.gz'), '--verification-key', join(policies.out, 'verification-key.pem'),
  '--upstream', origin, '--admin', '127.0.0.1:0', '--jwks', jwks, '--issuer', ISSUER, '--audience', AUDIENCE, '--spill', join(policies.dir, 'cold.spill'), '--listen', '127.0.0.1:0'];
// The shipped file, by a computed specifier: dist/ is built, not type-checked (`npm run build` first).
const shipped = new URL('../dist/sidecar.js', import.meta.url).href;
void import(shipped);
const wardenPort = await ready;
const passthroughPort = await listen(createSidecar({ upstream: new URL(origin), gate: null, logger: pino({ level: 'silent' }), limits: { keepAliveTimeoutMs: 30_000 } }) as unknown as net.Server);

// A keep-alive client that sends the current kind's request, with the MCP SDK client's header fields,
// and resolves once the whole answer is in: framed by Content-Length, or chunked (a rewritten event
// stream), ending with its last chunk. A call not answered within 10 s fails the run.
async function client(port: number): Promise<() => Promise<string>> {
  const s = net.connect(port, '127.0.0.1');
  s.setNoDelay(true);
  await new Promise((resolve) => s.once('connect', resolve));
  let buf = '';
  let done: ((answer: string) => void) | undefined;
  s.on('data', (d: Buffer) => {
    buf += d.toString('latin1');
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return;
    const head = buf.slice(0, end);
    let length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? -1);
    if (length < 0 && /\r\ntransfer-encoding: *chunked/i.test(head)) {
      const last = buf.indexOf('\r\n0\r\n\r\n', end);
      length = last < 0 ? -1 : last + 7 - (end + 4);
    }
    if (length < 0 || buf.length < end + 4 + length) return;
    const answer = buf.slice(0, end + 4 + length);
    buf = buf.slice(end + 4 + length);
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
  // Warm-up: the JIT, the WASM tiers and the connections, for this kind.
  for (let i = 0; i < 300; i++) {
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
