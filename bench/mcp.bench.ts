// MCP benchmark, shipped configuration: the latency and CPU an MCP `tools/call` (and `tools/list`) costs
// through `warden proxy`, against calling the same server directly and through the gate-off sidecar, in
// the same run, with the real SDK client. As in a pod, the client (this process), the proxy and the MCP
// server (the real SDK server) are processes of their own, and the proxy ships its decision events to an
// engine (`--engine`, as `warden inject` starts it; so its local decision lines are denials only). Direct, pass-through and proxied calls
// alternate so all see the same machine state. Prints figures, never fails.
// Run: npx tsx bench/mcp.bench.ts   (BENCH_CALLS: calls per target measured; BENCH_WARMUP: warm-up calls per kind
// through each proxy, default 2000)
import type { Figure } from './figure.js';
import { setMaxListeners } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exportJWK } from 'jose';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { DECISION_ENTRYPOINT } from '../formats/decision.js';
import type { PolicyInput } from '../formats/input.js';
import { AUDIENCE, ISSUER, loadOpsMcpPolicy, tokenIssuer } from '../test/support/mcp-fixtures.js';
import { copyPolicies } from '../test/support/proxy-fixtures.js';
import { engineStandIn } from './engine-stand-in.js';
import { warmupCalls } from './mcp-kinds.js';
import { startPodProcess } from './pod-process.js';
import { startWardenProxy } from './warden-cli.js';

/** Figures for one kind of call, microseconds. */
export interface McpCallFigures {
  answers: 'json' | 'sse';
  method: 'tools/call' | 'tools/list';
  /**
   * Each call new to the policy (a `query` whose `sql`, which the policy reads, differs every time), so
   * no evaluation is answered with a remembered result (Policy.evaluate); otherwise every call repeats
   * one `get_order` (whose `id` the policy does not read) or one `tools/list`, as an agent repeating a call does.
   */
  fresh: boolean;
  calls: number;
  directP50: number;
  /** Through the sidecar without policy (gate off) in its own process: an HTTP hop, no MCP parsing, no policy. */
  passthroughP50: number;
  proxiedP50: number;
  /** proxied − direct. */
  addedP50: number;
  /** proxied − pass-through: what the MCP handler itself costs beyond the extra hop. */
  handlerP50: number;
  /**
   * The median of the paired differences: each proxied call less the pass-through call just before it
   * (same machine state). Steadier than the difference of the two medians on a busy machine.
   */
  handlerPairedP50: number;
  directP99: number;
  proxiedP99: number;
  /** CPU per call of the pass-through's process and of warden proxy's, µs. */
  passthroughCpu: number;
  proxiedCpu: number;
  /** The part of proxiedCpu spent off warden proxy's main thread (V8 still compiling shows here), µs. */
  proxiedBackgroundCpu: number;
  /**
   * Mean time each proxy held a call, by its own clock (warden_proxy_held_seconds; the pass-through's
   * the same way): request head to forwarding plus answer's first bytes to last write, µs. Neither the
   * client's nor the server's time is in it, so it moves far less with the machine than the p50s do.
   */
  passthroughHeld: number;
  proxiedHeld: number;
  /**
   * The same calls under load (`inFlight` at a time, each proxy in turn): CPU per call of each proxy
   * process, µs, and the latency p50. Calls one at a time leave every process idle between them, so each
   * call starts on cold caches; under load the proxies stay warm, as a busy pod's sidecar does.
   */
  load: { inFlight: number; calls: number; passthroughCpu: number; proxiedCpu: number; passthroughP50: number; proxiedP50: number };
}

/** Everything the benchmark measured. */
export interface McpBenchResult {
  figures: McpCallFigures[];
  /** One `warden/decision` evaluation of a tools/call, microseconds. */
  decisionP50: number;
  /** Calls per kind through each proxy before measuring. */
  warmup: number;
  /**
   * `tools/call` (JSON answers) measured on a sidecar just started, before the warm-up: `calls` calls after
   * FIRST_CALLS, as the proxies were measured before a warm-up was added.
   */
  justStarted: { calls: number; paired: number; handlerP50: number; proxiedBackgroundCpu: number };
}

/** Calls of each kind through all three targets at once before anything is measured (keep-alive sockets, the client's code). */
const FIRST_CALLS = 50;

function pct(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

async function timed(f: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await f();
  return Number(process.hrtime.bigint() - t0) / 1000;
}

/** Run the benchmark and print a table. */
export async function run(opts: { calls?: number; log?: (s: string) => void } = {}): Promise<McpBenchResult> {
  const calls = opts.calls ?? Number(process.env.BENCH_CALLS ?? 500);
  // Calls per kind through each proxy before measuring, one at a time (warmupCalls says why). The proxy's
  // CPU off its main thread during the measured calls (V8's compiler threads among others) shows whether
  // the warm-up sufficed; the first kind is also measured just after the start (`justStarted`).
  const warmup = warmupCalls();
  let justStarted: McpBenchResult['justStarted'] | undefined;
  const inFlight = Number(process.env.BENCH_IN_FLIGHT ?? 8);
  const out = opts.log ?? ((s: string) => console.log(s));
  // Each SDK client transport's AbortSignal gathers a listener per fetch it made (the SDK's, not ours); thousands
  // of calls on one transport would print a MaxListenersExceededWarning per call.
  setMaxListeners(0);
  const [policy, issuer, policies] = await Promise.all([loadOpsMcpPolicy(), tokenIssuer(), copyPolicies(['ops-mcp'])]);
  const token = await issuer.sign('bench-agent', 'tools:read tools:write');
  const jwks = join(policies.dir, 'agents-jwks.json');
  writeFileSync(jwks, JSON.stringify({ keys: [{ ...(await exportJWK(issuer.publicKey)), alg: 'ES256', use: 'sig' }] }));
  const figures: McpCallFigures[] = [];
  const engine = await engineStandIn(policies.out);
  try {
    for (const answers of ['json', 'sse'] as const) {
      // Three processes as in a pod: the MCP server (the SDK's), `warden proxy` as users start it, and the
      // pass-through (the same sidecar code with the gate off), so the two hops compare alike.
      const stops: Array<() => Promise<void>> = [];
      try {
        const server = startPodProcess<{ upstreamPort: number }>(['mcp-server', answers]);
        stops.unshift(server.stop);
        const origin = `http://127.0.0.1:${(await server.ready).upstreamPort}`;
        const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
        const passthrough = startPodProcess<{ passthroughPort: number }>(['proxies', new URL(origin).port], prof);
        stops.unshift(passthrough.stop);
        const proxy = await startWardenProxy(['--workload', 'ops-mcp', '--engine', engine.url, '--bundle', join(policies.out, 'ops-mcp.tar.gz'), '--verification-key', join(policies.out, 'verification-key.pem'),
          '--upstream', origin, '--admin', '127.0.0.1:0', '--jwks', jwks, '--issuer', ISSUER, '--audience', AUDIENCE, '--spill', join(policies.dir, `mcp-${answers}.spill`)]);
        stops.unshift(proxy.close);
        const { passthroughPort } = await passthrough.ready;
        const connect = async (base: string): Promise<Client> => {
          const c = new Client({ name: 'bench', version: '1' });
          await c.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
          stops.unshift(() => c.close());
          return c;
        };
        const direct = await connect(origin);
        const proxied = await connect(`http://127.0.0.1:${proxy.port}`);
        const passed = await connect(`http://127.0.0.1:${passthroughPort}`);
        let n = 0;
        const kinds = [
          { method: 'tools/call' as const, fresh: false, f: (c: Client) => c.callTool({ name: 'get_order', arguments: { id: '42' } }) },
          { method: 'tools/list' as const, fresh: false, f: (c: Client) => c.listTools() },
          // JSON answers only: the bench's run time.
          ...(answers === 'json' ? [{ method: 'tools/call' as const, fresh: true, f: (c: Client) => c.callTool({ name: 'query', arguments: { sql: `SELECT status FROM orders WHERE id = ${n++}` } }) }] : []),
        ];
        type Kind = (typeof kinds)[number];
        // Calls through each proxy, `inFlight` at a time; CPU per call of each proxy process and the latencies.
        const loaded = async (k: Kind, count: number) => {
          const r = { pass: { cpu: 0, lat: [] as number[] }, proxy: { cpu: 0, lat: [] as number[] } };
          for (const [which, client, cpu] of [['pass', passed, async () => (await passthrough.stats()).cpu], ['proxy', proxied, async () => proxy.cpuMicros()]] as const) {
            const before = await cpu();
            let left = count;
            await Promise.all(Array.from({ length: inFlight }, async () => {
              while (left-- > 0) r[which].lat.push(await timed(() => k.f(client)));
            }));
            r[which].cpu += (await cpu()) - before;
          }
          return r;
        };
        // `calls` calls through each target one at a time, alternating direct / pass-through / proxied.
        const oneAtATime = async (k: Kind) => {
          const d: number[] = [];
          const p: number[] = [];
          const t: number[] = [];
          const statsBefore = await passthrough.stats();
          const heldBefore = await proxy.held();
          const cpuBefore = [statsBefore.cpu, proxy.cpuMicros(), proxy.backgroundCpuMicros()];
          for (let i = 0; i < calls; i++) {
            d.push(await timed(() => k.f(direct)));
            t.push(await timed(() => k.f(passed)));
            p.push(await timed(() => k.f(proxied)));
          }
          const statsAfter = await passthrough.stats();
          const cpuAfter = [statsAfter.cpu, proxy.cpuMicros(), proxy.backgroundCpuMicros()];
          const heldAfter = await proxy.held();
          const perCall = (seconds: number, n: number) => (n > 0 ? (seconds / n) * 1e6 : NaN);
          return {
            d,
            p,
            t,
            paired: pct(p.map((x, i) => x - t[i]!), 50),
            passthroughCpu: (cpuAfter[0]! - cpuBefore[0]!) / calls,
            proxiedCpu: (cpuAfter[1]! - cpuBefore[1]!) / calls,
            proxiedBackgroundCpu: (cpuAfter[2]! - cpuBefore[2]!) / calls,
            passthroughHeld: perCall(statsAfter.heldSeconds - statsBefore.heldSeconds, statsAfter.heldCalls - statsBefore.heldCalls),
            proxiedHeld: perCall(heldAfter.seconds - heldBefore.seconds, heldAfter.calls - heldBefore.calls),
          };
        };
        for (const [index, k] of kinds.entries()) {
          for (let i = 0; i < FIRST_CALLS; i++) await Promise.all([k.f(direct), k.f(proxied), k.f(passed)]);
          // The first kind measured on a sidecar just started too, before the warm-up: what a pod's first
          // seconds cost while V8 still compiles (the figures below are a sidecar that has served a while).
          if (answers === 'json' && index === 0) {
            const s = await oneAtATime(k);
            justStarted = { calls, paired: s.paired, handlerP50: pct(s.p, 50) - pct(s.t, 50), proxiedBackgroundCpu: s.proxiedBackgroundCpu };
          }
          // Each proxy's calls one at a time, as the calls measured next (V8 optimizes for the paths and
          // timings it sees); the two proxies side by side, which halves the time the warm-up takes.
          await Promise.all([passed, proxied].map(async (client) => {
            for (let i = 0; i < warmup; i++) await k.f(client);
          }));
          const s = await oneAtATime(k);
          const { d, p, t } = s;
          const directP50 = pct(d, 50);
          const proxiedP50 = pct(p, 50);
          const passthroughP50 = pct(t, 50);
          // Under load: each proxy in turn, twice, `inFlight` calls at a time; CPU read around each phase.
          const rounds = [await loaded(k, calls), await loaded(k, calls)];
          const load = {
            inFlight,
            calls: 2 * calls,
            passthroughCpu: (rounds[0]!.pass.cpu + rounds[1]!.pass.cpu) / (2 * calls),
            proxiedCpu: (rounds[0]!.proxy.cpu + rounds[1]!.proxy.cpu) / (2 * calls),
            passthroughP50: pct([...rounds[0]!.pass.lat, ...rounds[1]!.pass.lat], 50),
            proxiedP50: pct([...rounds[0]!.proxy.lat, ...rounds[1]!.proxy.lat], 50),
          };
          figures.push({ answers, method: k.method, fresh: k.fresh, calls, directP50, passthroughP50, proxiedP50, addedP50: proxiedP50 - directP50, handlerP50: proxiedP50 - passthroughP50, handlerPairedP50: s.paired, directP99: pct(d, 99), proxiedP99: pct(p, 99), passthroughCpu: s.passthroughCpu, proxiedCpu: s.proxiedCpu, proxiedBackgroundCpu: s.proxiedBackgroundCpu, passthroughHeld: s.passthroughHeld, proxiedHeld: s.proxiedHeld, load });
        }
      } finally {
        for (const stop of stops) await stop();
      }
    }
  } finally {
    await engine.close();
  }
  const input: PolicyInput = {
    source: { principal: 'bench-agent', authn: 'jwt', claims: { sub: 'bench-agent', scope: 'tools:read tools:write' }, address: '127.0.0.1' },
    destination: { workload: 'ops-mcp', namespace: 'agents', principal: 'spiffe://cluster.local/ns/agents/sa/ops-mcp' },
    request: { method: 'POST', path: '/mcp', segments: ['mcp'], query: {}, headers: {} },
    mcp: { method: 'tools/call', tool: 'refund_order', arguments: { id: '42', amount: 20 } },
  };
  const evals: number[] = [];
  for (let i = 0; i < 5000; i++) {
    const t0 = process.hrtime.bigint();
    policy.decide(DECISION_ENTRYPOINT, input);
    evals.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  const result: McpBenchResult = { figures, decisionP50: pct(evals, 50), warmup, justStarted: justStarted! };
  const us = (n: number) => `${n.toFixed(0).padStart(7)} µs`;
  const kind = (f: McpCallFigures) => `${f.method}${f.fresh ? '*' : ''}`.padEnd(11);
  out(`MCP benchmark (shipped configuration: \`bin/warden.js proxy\` in its own process, events to an engine stand-in): per kind, ${FIRST_CALLS} calls through each target, ${warmup} warm-up calls through each proxy, then ${calls} calls per target alternating direct/pass-through/proxied, SDK client → 127.0.0.1, Streamable HTTP`);
  out('client (this process), MCP server (the SDK server), warden proxy and the pass-through (sidecar with the gate off): four processes');
  out(`${'answers'.padEnd(8)} ${'method'.padEnd(11)} ${'direct p50'.padStart(11)} ${'pass p50'.padStart(11)} ${'proxied p50'.padStart(11)} ${'added p50'.padStart(11)} ${'handler p50'.padStart(11)} ${'paired p50'.padStart(11)} ${'direct p99'.padStart(11)} ${'proxied p99'.padStart(11)} ${'pass CPU'.padStart(11)} ${'proxy CPU'.padStart(11)}`);
  for (const f of figures) out(`${f.answers.padEnd(8)} ${kind(f)} ${us(f.directP50)}  ${us(f.passthroughP50)}  ${us(f.proxiedP50)}  ${us(f.addedP50)}  ${us(f.handlerP50)}  ${us(f.handlerPairedP50)}  ${us(f.directP99)}  ${us(f.proxiedP99)}  ${us(f.passthroughCpu)}  ${us(f.proxiedCpu)}`);
  out('tools/call* = a `query` whose sql, read by the policy, is new at each call (no result reused); otherwise one `get_order` (id not read by the policy) or `tools/list`, repeated');
  out('added = proxied − direct; handler = proxied − pass-through (MCP parsing, JWT check, decisions, rewriting; target ≤ 150 µs); paired = median of each proxied call less the pass-through call just before it; CPU = the proxy process\'s CPU time per call');
  out("time each proxy held a call by its own clock (mean; request head to forwarding + answer's first bytes to last write; the handler's own time = warden proxy − pass-through):");
  for (const f of figures) out(`${f.answers.padEnd(8)} ${kind(f)} held: warden proxy ${us(f.proxiedHeld)}, pass-through ${us(f.passthroughHeld)}, handler ${us(f.proxiedHeld - f.passthroughHeld)}`);
  out(`under load (${inFlight} calls in flight, ${2 * calls} calls per proxy, each proxy in turn): CPU per call of each proxy process (the handler's own CPU = warden proxy − pass-through), and latency p50`);
  for (const f of figures) {
    const l = f.load;
    out(`${f.answers.padEnd(8)} ${kind(f)} CPU: warden proxy ${us(l.proxiedCpu)}, pass-through ${us(l.passthroughCpu)}, handler ${us(l.proxiedCpu - l.passthroughCpu)} (${(l.proxiedCpu / l.passthroughCpu).toFixed(2)}×); p50 through warden proxy ${us(l.proxiedP50)}, through the pass-through ${us(l.passthroughP50)}`);
  }
  out("warden proxy's CPU per call off its main thread during the calls one at a time (V8's compiler and GC threads, libuv's pool gzipping the shipped events; while V8 still compiles the sidecar's code it shows here, in 10 ms ticks):");
  for (const f of figures) out(`${f.answers.padEnd(8)} ${kind(f)} ${us(f.proxiedBackgroundCpu)}`);
  const j = result.justStarted;
  out(`just started (tools/call, JSON answers, ${j.calls} calls after the first ${FIRST_CALLS}, before the warm-up): paired p50 ${us(j.paired)}, handler p50 ${us(j.handlerP50)}; off the main thread ${us(j.proxiedBackgroundCpu)} per call`);
  out(`policy decision alone for a tools/call (warden/decision, argument rules included): p50 ${result.decisionP50.toFixed(1)} µs`);
  return result;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await run();

/** The run as table figures for `npm run bench`. */
export function figures(r: McpBenchResult): Figure[] {
  const out: Figure[] = r.figures.flatMap((f) => figuresOf(f, `${f.method}${f.fresh ? ', new input each call' : ''}`, r.warmup));
  out.push({ suite: 'mcp', name: 'tools/call (json) handler cost just started, paired p50', value: r.justStarted.paired, unit: 'µs', detail: `a sidecar just started: ${r.justStarted.calls} calls after the first ${FIRST_CALLS}, before the warm-up; V8's threads ${r.justStarted.proxiedBackgroundCpu.toFixed(0)} µs per call` });
  out.push({ suite: 'mcp', name: 'tools/call decision p50', value: r.decisionP50, unit: 'µs' });
  return out;
}

function figuresOf(f: McpCallFigures, method: string, warmup: number): Figure[] {
  return [
    { suite: 'mcp', name: `${method} (${f.answers}) direct p50`, value: f.directP50, unit: 'µs', detail: `${f.calls} calls after ${warmup} warm-up calls through each proxy` },
    { suite: 'mcp', name: `${method} (${f.answers}) through plugin p50`, value: f.proxiedP50, unit: 'µs', detail: `added ${f.addedP50.toFixed(0)} µs; pass-through ${f.passthroughP50.toFixed(0)} µs` },
    { suite: 'mcp', name: `${method} (${f.answers}) handler cost p50`, value: f.handlerP50, unit: 'µs', detail: `shipped configuration: warden proxy − the gate-off sidecar, each in its own process; paired differences p50 ${f.handlerPairedP50.toFixed(0)} µs; target ≤ 150 µs` },
    { suite: 'mcp', name: `${method} (${f.answers}) handler time held, mean`, value: f.proxiedHeld - f.passthroughHeld, unit: 'µs', detail: `by each proxy's own clock: warden proxy ${f.proxiedHeld.toFixed(0)} µs, pass-through ${f.passthroughHeld.toFixed(0)} µs per call` },
    { suite: 'mcp', name: `${method} (${f.answers}) proxy CPU per call`, value: f.proxiedCpu, unit: 'µs', detail: `warden proxy's process (${f.proxiedBackgroundCpu.toFixed(0)} µs off its main thread); pass-through ${f.passthroughCpu.toFixed(0)} µs` },
    { suite: 'mcp', name: `${method} (${f.answers}) handler CPU per call under load`, value: f.load.proxiedCpu - f.load.passthroughCpu, unit: 'µs', detail: `${f.load.inFlight} in flight: warden proxy ${f.load.proxiedCpu.toFixed(0)} µs, pass-through ${f.load.passthroughCpu.toFixed(0)} µs per call; p50 ${f.load.proxiedP50.toFixed(0)} / ${f.load.passthroughP50.toFixed(0)} µs` },
  ];
}
