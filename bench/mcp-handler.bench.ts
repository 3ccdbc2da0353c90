// The MCP handler's own work on one call, in-process: `McpHandler.fastPost` (parse, decide with the real
// ops-mcp bundle, re-encode, upstream head) and the answer's check or rewrite, for tools/call and
// tools/list with JSON and event-stream answers. No sockets and no other process: the figure the wire
// benchmark (mcp.bench.ts) cannot separate from the machine's scheduling. Between the two halves the
// event loop turns once, as while the server answers (a tools/list's view is worked out then).
//
// Each kind is measured warm (calls back to back) and cold: before each half of a call, a 32 MiB sweep
// (BENCH_EVICT_MB; the development VM's L3 is 32 MiB) pushes the handler's code and data out of the CPU
// caches, as the client, the server and the kernel do between two calls of a sidecar on a small node.
// The cold figures are what the wire benchmark's one-call-at-a-time latencies are made of; beside them,
// one policy evaluation of a tools/call, and of a policy that decides nothing (`decision := {"allow":
// true}`): OPA's WASM round trip alone (input JSON in, opa_eval, result out), the floor under any
// per-call decision; and single steps of JavaScript every call takes (JSON.parse, JSON.stringify, …), each
// the first of its kind after a sweep. The handler, the runtime and the policy come from the build (dist/,
// shipped.ts), as `warden proxy` runs them. Prints figures, never fails. Run: npx tsx bench/mcp-handler.bench.ts
import type { Figure } from './figure.js';
import { fileURLToPath } from 'node:url';
import { DECISION_ENTRYPOINT } from '../formats/decision.js';
import type { BodyRewrite, WholeAnswer } from '../proxy-plugin/fast-path.js';
import type { Decide } from '../proxy-plugin/mcp/handler.js';
import { opsMcpArchive } from '../test/support/mcp-fixtures.js';
import { buildWasm } from '../test/support/opa.js';
import { cacheSweep } from './cache-sweep.js';
import { mcpCallKinds } from './mcp-kinds.js';
import { shipped } from './shipped.js';

const { McpHandler } = await shipped<typeof import('../proxy-plugin/mcp/handler.js')>('proxy-plugin/mcp/handler.js');
const { mcpSpec } = await shipped<typeof import('../proxy-plugin/mcp/spec.js')>('proxy-plugin/mcp/spec.js');
const { hostBuiltins } = await shipped<typeof import('../runtime/builtins.js')>('runtime/builtins.js');
const { InputSelection } = await shipped<typeof import('../runtime/input-selection.js')>('runtime/input-selection.js');
const { Policy } = await shipped<typeof import('../runtime/policy.js')>('runtime/policy.js');
const { openBundle } = await shipped<typeof import('../runtime/bundle.js')>('runtime/bundle.js');

// The example ops-mcp bundle, its signature checked, loaded by the build's runtime (as
// test/support/mcp-fixtures.ts loads it with the sources).
async function loadOpsMcp() {
  const { archive, verify } = await opsMcpArchive();
  return Policy.load(await openBundle(archive, verify), { builtins: hostBuiltins });
}

/** One kind of call: p50 of the request half, the answer half and both, microseconds. */
interface Row {
  kind: string;
  /** The first calls of a fresh handler (the JIT and the WASM still warming up). */
  first: { request: number; answer: number };
  /** After many calls. */
  warm: { request: number; answer: number };
  /** After many calls, with the CPU caches swept before each half. */
  cold: { request: number; answer: number };
}

/** One step timed alone, warm and with the caches swept first, microseconds (p50). */
interface Step {
  name: string;
  warm: number;
  cold: number;
}

const p50 = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
const turn = () => new Promise((r) => setImmediate(r));
const us = (from: bigint) => Number(process.hrtime.bigint() - from) / 1000;

/** Run the benchmark and print a table. */
export async function run(opts: { cold?: number; warm?: number; log?: (s: string) => void } = {}): Promise<{ rows: Row[]; steps: Step[] }> {
  const firstCalls = opts.cold ?? 300;
  const warmCalls = opts.warm ?? Number(process.env.BENCH_CALLS ?? 2000);
  const sweptCalls = Math.min(warmCalls, 400);
  const { mib: evictMiB, sweep: evict } = cacheSweep();
  // p50 of `f` over `warmCalls` calls back to back, and over `sweptCalls` calls each after a sweep.
  const step = (name: string, f: () => unknown): Step => {
    const w: number[] = [];
    const c: number[] = [];
    for (let i = 0; i < warmCalls; i++) {
      const t0 = process.hrtime.bigint();
      f();
      w.push(us(t0));
    }
    for (let i = 0; i < sweptCalls; i++) {
      evict();
      const t0 = process.hrtime.bigint();
      f();
      c.push(us(t0));
    }
    return { name, warm: p50(w), cold: p50(c) };
  };
  const out = opts.log ?? ((s: string) => console.log(s));
  const policy = await loadOpsMcp();
  const decide: Decide = (input) => {
    const decision = policy.decide(DECISION_ENTRYPOINT, input);
    return { allow: decision.allow, decisionId: 'bench', decision, reasons: decision.reasons };
  };
  const kinds = mcpCallKinds(mcpSpec(policy.bundle)!);
  const source = { principal: 'bench-agent', authn: 'jwt' as const, claims: { sub: 'bench-agent', scope: 'tools:read tools:write' }, address: '127.0.0.1' };
  const request = { method: 'POST', path: '/mcp', segments: ['mcp'], query: {}, headers: {} };
  const rows: Row[] = [];
  for (const k of kinds) {
    const handler = new McpHandler({ destination: { workload: 'ops-mcp', namespace: 'agents', principal: '' }, upstream: () => Promise.reject(new Error('not used')) });
    const body = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 5, method: k.method, params: k.params }));
    const answer = Buffer.from(k.answer);
    const one = async (cold: boolean): Promise<[number, number]> => {
      if (cold) evict();
      const t0 = process.hrtime.bigint();
      const o = handler.fastPost({ method: 'POST', path: '/mcp', query: '', headers: { 'content-type': 'application/json' }, body }, { source, request, policy, decide });
      const requestUs = us(t0);
      if (!('forward' in o)) throw new Error(`${k.kind} was not forwarded`);
      await turn();
      if (cold) evict();
      const t1 = process.hrtime.bigint();
      const a: BodyRewrite | WholeAnswer | undefined = o.forward.answer?.(200, ['content-type', k.type]);
      if (a && 'whole' in a) a.end(answer);
      else if (a) {
        a.push(answer);
        a.end();
      }
      return [requestUs, us(t1)];
    };
    const measure = async (n: number, cold = false) => {
      const r: number[] = [];
      const a: number[] = [];
      for (let i = 0; i < n; i++) {
        const [x, y] = await one(cold);
        r.push(x);
        a.push(y);
      }
      return { request: p50(r), answer: p50(a) };
    };
    const first = await measure(firstCalls);
    const warm = await measure(warmCalls);
    rows.push({ kind: k.kind, first, warm, cold: await measure(sweptCalls, true) });
  }
  // One evaluation alone, warm and swept: the ops-mcp bundle, and the same runtime on a policy that decides nothing.
  const nothing = await Policy.load(
    { ...policy.bundle, wasm: await buildWasm('package warden\n\ndecision := {"allow": true, "reasons": ["nothing to decide"]}\n', [DECISION_ENTRYPOINT]), data: {}, inputs: InputSelection.whole },
    { builtins: hostBuiltins },
  );
  const input = { source, destination: { workload: 'ops-mcp', namespace: 'agents', principal: '' }, request, mcp: { method: 'tools/call', tool: 'get_order', arguments: { id: '42' } } };
  // Then single JavaScript steps every call takes at least once: the first use of one after a sweep pays
  // for bringing its code and data back (a second use in the same call is warm).
  const text = JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'get_order', arguments: { id: '42' } } });
  const message = JSON.parse(text) as Record<string, unknown>;
  const decoder = new TextDecoder();
  const bytes = Buffer.from(text);
  const steps: Step[] = [
    step('evaluation, ops-mcp', () => policy.decide(DECISION_ENTRYPOINT, input)),
    step('evaluation, decides nothing', () => nothing.decide(DECISION_ENTRYPOINT, input)),
    step('JSON.parse of the call', () => JSON.parse(text)),
    step('JSON.stringify of the call', () => JSON.stringify(message)),
    step('Buffer.from of the call', () => Buffer.from(text)),
    step('TextDecoder.decode of the call', () => decoder.decode(bytes)),
    step('an object spread', () => ({ ...message, id: 6 })),
    step('new Date().toISOString()', () => new Date().toISOString()),
  ];
  out(`MCP handler in-process (ops-mcp bundle, decision evaluated without the decision log): p50 of the first ${firstCalls} calls of a fresh handler, of ${warmCalls} calls after them (warm), and of ${sweptCalls} calls with a ${evictMiB} MiB cache sweep before each half (cold)`);
  for (const r of rows) out(`${r.kind.padEnd(18)} first calls: request ${r.first.request.toFixed(1)} µs + answer ${r.first.answer.toFixed(1)} µs; warm: request ${r.warm.request.toFixed(1)} µs + answer ${r.warm.answer.toFixed(1)} µs; cold: request ${r.cold.request.toFixed(1)} µs + answer ${r.cold.answer.toFixed(1)} µs`);
  out(`one step alone, p50 warm / cold: ${steps.map((e) => `${e.name} ${e.warm.toFixed(1)} / ${e.cold.toFixed(1)} µs`).join('; ')}`);
  return { rows, steps };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await run();

/** The run as table figures for `npm run bench`. */
export function figures({ rows, steps }: { rows: Row[]; steps: Step[] }): Figure[] {
  return [
    ...rows.flatMap((r) => [
      { suite: 'mcp-handler', name: `${r.kind} request + answer, warm p50`, value: r.warm.request + r.warm.answer, unit: 'µs', detail: `request ${r.warm.request.toFixed(1)} µs (decision included), answer ${r.warm.answer.toFixed(1)} µs; in-process, no sockets` },
      { suite: 'mcp-handler', name: `${r.kind} request + answer, first calls p50`, value: r.first.request + r.first.answer, unit: 'µs', detail: `request ${r.first.request.toFixed(1)} µs, answer ${r.first.answer.toFixed(1)} µs` },
      { suite: 'mcp-handler', name: `${r.kind} request + answer, cold p50`, value: r.cold.request + r.cold.answer, unit: 'µs', detail: `request ${r.cold.request.toFixed(1)} µs, answer ${r.cold.answer.toFixed(1)} µs; CPU caches swept before each half, as between a sidecar's calls on the wire` },
    ]),
    ...steps.map((e) => ({ suite: 'mcp-handler', name: `${e.name}, cold p50`, value: e.cold, unit: 'µs', detail: `warm ${e.warm.toFixed(1)} µs; CPU caches swept before each` })),
  ];
}
