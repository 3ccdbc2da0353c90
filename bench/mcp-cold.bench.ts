// MCP handler cost on cold caches: `warden proxy` as shipped (dist/sidecar.js, an injected pod's flags,
// events to an engine stand-in) against the gate-off sidecar, both in one process with a raw MCP server
// and client (bench/mcp-cold-pod.ts), a 32 MiB cache sweep before each call. The wire bench (mcp.bench.ts)
// runs them as a pod's processes; on a small VM its figures swing 2× with the scheduler, while this one
// holds within ~5% between back-to-back runs in a quiet spell (±10–25% in a busy one): the figure to
// compare changes with (the VM's own speed still moves both proxies over minutes, so alternate before and
// after, and read medians). Prints figures, never fails.
// Run: npx tsx bench/mcp-cold.bench.ts   (BENCH_CALLS per kind and phase, default 400; BENCH_WARMUP calls per kind
// first, default 2000)
import type { Figure } from './figure.js';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ColdKind } from './mcp-cold-pod.js';

const pod = fileURLToPath(new URL('./mcp-cold-pod.ts', import.meta.url));

/** Run the benchmark and print a table. */
export async function run(opts: { log?: (s: string) => void } = {}): Promise<{ kinds: ColdKind[] }> {
  const out = opts.log ?? ((s: string) => console.log(s));
  const child = fork(pod, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const kinds = await new Promise<ColdKind[]>((resolve, reject) => {
    child.once('message', (m) => resolve(m as ColdKind[]));
    child.once('exit', (code) => reject(new Error(`bench/mcp-cold-pod.ts exited with ${code} before reporting`)));
  });
  const us = (n: number) => `${n.toFixed(0).padStart(5)} µs`;
  out('MCP handler cost on cold caches: warden proxy as shipped (dist/sidecar.js, --engine) and the gate-off sidecar in one process, raw MCP client and server, a cache sweep before each call; p50');
  for (const k of kinds) {
    out(`${k.kind.padEnd(18)} cold: warden proxy ${us(k.cold.warden)}, pass-through ${us(k.cold.passthrough)}, handler ${us(k.cold.warden - k.cold.passthrough)} (paired ${us(k.cold.paired)}; request half ${us(k.cold.wardenRequest)} / ${us(k.cold.passthroughRequest)})   warm: handler ${us(k.warm.warden - k.warm.passthrough)} (${us(k.warm.warden)} / ${us(k.warm.passthrough)})`);
  }
  return { kinds };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await run();

/** The run as table figures for `npm run bench`. */
export function figures({ kinds }: { kinds: ColdKind[] }): Figure[] {
  return kinds.flatMap((k) => [
    { suite: 'mcp-cold', name: `${k.kind} handler cost, cold p50`, value: k.cold.warden - k.cold.passthrough, unit: 'µs', detail: `shipped warden proxy ${k.cold.warden.toFixed(0)} µs − gate-off sidecar ${k.cold.passthrough.toFixed(0)} µs, one process, caches swept before each call; paired ${k.cold.paired.toFixed(0)} µs; target ≤ 150 µs` },
    { suite: 'mcp-cold', name: `${k.kind} handler cost, warm p50`, value: k.warm.warden - k.warm.passthrough, unit: 'µs', detail: `${k.warm.warden.toFixed(0)} µs − ${k.warm.passthrough.toFixed(0)} µs, calls back to back after the warm-up` },
  ]);
}
