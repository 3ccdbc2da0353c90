// The warm-up of the MCP benches, and the four kinds of MCP call the in-process MCP benches time, with the answers a server gives them: a tool
// result as servers write it (JSON text inside the text content, so escaped quotes to read past), and every
// reviewed tool as reviewed (no drift); each as a JSON answer and as one event of a stream.
import type { McpSpec } from '../proxy-plugin/mcp/spec.js';

/**
 * Calls of each kind through each proxy before the MCP benches measure it (BENCH_WARMUP; mcp.bench.ts and
 * mcp-cold-pod.ts). A pod's sidecar serves for hours, and V8 keeps compiling its code through its first few
 * thousand calls: after 50 calls a tools/call cost it ~240 µs more than the pass-through on the wire, after
 * 3,000 ~90 (bench/NOTES.md, 2026-12-07 16:28). Until then the wire bench warmed with 50, the cold-cache
 * one with 300.
 */
export const warmupCalls = (): number => Number(process.env.BENCH_WARMUP ?? 2000);

/** One kind of call: its JSON-RPC method and params, and the server's answer with its Content-Type. */
export interface McpCallKind {
  kind: string;
  method: 'tools/call' | 'tools/list';
  params: Record<string, unknown>;
  type: 'application/json' | 'text/event-stream';
  answer: string;
}

/** The kinds, against a workload's reviewed tools (its bundle's MCP spec). Answers carry id 5. */
export function mcpCallKinds(spec: McpSpec): McpCallKind[] {
  const listed = JSON.stringify({ jsonrpc: '2.0', id: 5, result: { tools: Object.entries(spec.tools).map(([name, t]) => ({ name, description: t.description, inputSchema: t.input_schema, annotations: t.annotations })) } });
  const called = JSON.stringify({ jsonrpc: '2.0', id: 5, result: { content: [{ type: 'text', text: JSON.stringify({ id: '42', status: 'open', items: 2 }) }] } });
  const call = { name: 'get_order', arguments: { id: '42' } };
  return [
    { kind: 'tools/call (json)', method: 'tools/call', params: call, type: 'application/json', answer: called },
    { kind: 'tools/call (sse)', method: 'tools/call', params: call, type: 'text/event-stream', answer: `event: message\ndata: ${called}\n\n` },
    { kind: 'tools/list (json)', method: 'tools/list', params: {}, type: 'application/json', answer: listed },
    { kind: 'tools/list (sse)', method: 'tools/list', params: {}, type: 'text/event-stream', answer: `event: message\ndata: ${listed}\n\n` },
  ];
}
