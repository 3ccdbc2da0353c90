// MCP benchmark: the latency an MCP `tools/call` (and `tools/list`) gains by going through the
// McpHandler, against calling the same server directly, in the same run, with the real SDK client.
// Direct and proxied calls alternate so both see the same machine state. Prints figures, never fails.
// Run: npx tsx bench/mcp.bench.ts   (BENCH_CALLS to change the number of calls per target)
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { DECISION_ENTRYPOINT } from '../formats/decision.js';
import type { PolicyInput } from '../formats/input.js';
import { loadOpsMcpPolicy, startMcpServer, startProxy, tokenIssuer } from '../test/mcp-fixtures.js';

/** Figures for one kind of call, microseconds. */
export interface McpCallFigures {
  answers: 'json' | 'sse';
  method: 'tools/call' | 'tools/list';
  calls: number;
  directP50: number;
  proxiedP50: number;
  addedP50: number;
  directP99: number;
  proxiedP99: number;
}

/** Everything the benchmark measured. */
export interface McpBenchResult {
  figures: McpCallFigures[];
  /** One `warden/decision` evaluation of a tools/call, microseconds. */
  decisionP50: number;
}

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
  const out = opts.log ?? ((s: string) => console.log(s));
  const [policy, issuer] = await Promise.all([loadOpsMcpPolicy(), tokenIssuer()]);
  const token = await issuer.sign('bench-agent', 'tools:read tools:write');
  const figures: McpCallFigures[] = [];
  for (const answers of ['json', 'sse'] as const) {
    const server = await startMcpServer({ json: answers === 'json' });
    const proxy = await startProxy(policy, server.url, issuer);
    const connect = async (base: string): Promise<Client> => {
      const c = new Client({ name: 'bench', version: '1' });
      await c.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
      return c;
    };
    const direct = await connect(server.url);
    const proxied = await connect(proxy.url);
    try {
      const kinds = [
        { method: 'tools/call' as const, f: (c: Client) => c.callTool({ name: 'get_order', arguments: { id: '42' } }) },
        { method: 'tools/list' as const, f: (c: Client) => c.listTools() },
      ];
      for (const k of kinds) {
        for (let i = 0; i < 50; i++) await Promise.all([k.f(direct), k.f(proxied)]); // warm-up: JIT, keep-alive sockets
        const d: number[] = [];
        const p: number[] = [];
        for (let i = 0; i < calls; i++) {
          d.push(await timed(() => k.f(direct)));
          p.push(await timed(() => k.f(proxied)));
        }
        const directP50 = pct(d, 50);
        const proxiedP50 = pct(p, 50);
        figures.push({ answers, method: k.method, calls, directP50, proxiedP50, addedP50: proxiedP50 - directP50, directP99: pct(d, 99), proxiedP99: pct(p, 99) });
      }
    } finally {
      await direct.close();
      await proxied.close();
      await proxy.close();
      await server.close();
    }
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
  const result: McpBenchResult = { figures, decisionP50: pct(evals, 50) };
  const us = (n: number) => `${n.toFixed(0).padStart(7)} µs`;
  out(`MCP benchmark: ${calls} calls per target, alternating direct/proxied, SDK client → 127.0.0.1, Streamable HTTP`);
  out(`${'answers'.padEnd(8)} ${'method'.padEnd(11)} ${'direct p50'.padStart(11)} ${'proxied p50'.padStart(11)} ${'added p50'.padStart(11)} ${'direct p99'.padStart(11)} ${'proxied p99'.padStart(11)}`);
  for (const f of figures) out(`${f.answers.padEnd(8)} ${f.method.padEnd(11)} ${us(f.directP50)}  ${us(f.proxiedP50)}  ${us(f.addedP50)}  ${us(f.directP99)}  ${us(f.proxiedP99)}`);
  out(`policy decision alone for a tools/call (warden/decision, argument rules included): p50 ${result.decisionP50.toFixed(1)} µs`);
  return result;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await run();
