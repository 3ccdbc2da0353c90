// The MCP handler behind the sidecar's CallHandler interface: every JSON-RPC call is one decision of
// the sidecar's pipeline, and drift lands in the decision log as a valid `drift` event.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DECISION_ENTRYPOINT } from '../formats/decision.js';
import { decisionEvent, type DecisionEvent, type EventKind } from '../formats/decision-event.js';
import type { PolicyInput } from '../formats/input.js';
import { mcpCallHandler, type BundleLike, type PipelineLike, type VerdictLike } from '../proxy-plugin/mcp/call-adapter.js';
import { httpUpstream } from '../proxy-plugin/mcp/upstream.js';
import type { Policy } from '../runtime/policy.js';
import { loadOpsMcpPolicy, startMcpServer, type TestMcpServer } from './support/mcp-fixtures.js';
import { until } from './support/until.js';

// The sidecar's pipeline is on another branch; this one has the same shape and evaluates the real policy.
class RecordingPipeline implements PipelineLike<BundleLike> {
  readonly decided: Array<{ kind: EventKind; input: PolicyInput; verdict: VerdictLike }> = [];
  readonly destination = { workload: 'ops-mcp', namespace: 'agents', principal: 'spiffe://cluster.local/ns/agents/sa/ops-mcp' };
  decide(input: PolicyInput, ctx: { kind: EventKind; bundle?: BundleLike | undefined }): VerdictLike {
    const d = ctx.bundle!.policy.decide(DECISION_ENTRYPOINT, input);
    const verdict = { decisionId: `d-${this.decided.length + 1}`, allow: d.allow, reasons: d.reasons, decision: d };
    this.decided.push({ kind: ctx.kind, input, verdict });
    return verdict;
  }
}

describe('the MCP handler as the sidecar CallHandler', () => {
  let policy: Policy;
  let server: TestMcpServer;
  let proxy: Server;
  let url: string;
  const pipeline = new RecordingPipeline();
  const events: DecisionEvent[] = [];

  beforeAll(async () => {
    policy = await loadOpsMcpPolicy();
    server = await startMcpServer({ json: true, extraTool: 'export_customers' });
    const mcp = mcpCallHandler<BundleLike>({ upstream: httpUpstream(server.url), recordDrift: (e) => events.push(e) });
    const source = { principal: 'support-lead', authn: 'jwt' as const, claims: { sub: 'support-lead', scope: 'tools:read tools:write' }, address: '127.0.0.1' };
    proxy = createServer(async (req, res) => {
      const u = new URL(req.url ?? '/', 'http://127.0.0.1');
      const call = {
        req,
        res,
        request: { method: req.method ?? 'GET', path: u.pathname, segments: u.pathname.split('/').filter(Boolean), query: {}, rawQuery: u.search.slice(1), headers: {} },
        source,
        bundle: { policy, revision: policy.bundle.revision },
        pipeline,
        via: 'proxy' as const,
      };
      if (!mcp.owns(call)) return void res.writeHead(404).end();
      await mcp.handle(call);
    });
    await new Promise<void>((ok) => proxy.listen(0, '127.0.0.1', ok));
    url = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}/mcp`;
  });
  afterAll(async () => {
    proxy?.closeAllConnections();
    await new Promise((ok) => proxy?.close(ok));
    await server?.close();
  });

  it('makes one pipeline decision per JSON-RPC call and logs drift as a valid drift event', async () => {
    const post = (body: unknown, sid?: string) =>
      fetch(url, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...(sid ? { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-03-26' } : {}) } });
    const init = await post({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } });
    const sid = init.headers.get('mcp-session-id') ?? '';
    expect(init.headers.get('x-warden-decision-id')).toBe('d-1');
    const r = await post([
      { jsonrpc: '2.0', id: 1, method: 'tools/list' },
      { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'refund_order', arguments: { id: '1', amount: 3, card_token: 'tok_123' } } },
      { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'drop_table', arguments: { table: 't' } } },
    ], sid);
    const answers = (await r.json()) as Array<{ id: number; result?: { tools?: Array<{ name: string }> }; error?: { code: number } }>;
    expect(answers.map((a) => a.id)).toEqual([1, 2, 3]);
    expect(answers[0]!.result?.tools?.map((t) => t.name).sort()).toEqual(['get_order', 'query', 'refund_order', 'search_orders']);
    expect(answers[2]!.error?.code).toBe(-32003);
    expect(pipeline.decided.slice(1).map((d) => [d.kind, d.input.mcp?.method, d.input.mcp?.tool, d.verdict.allow])).toEqual([
      ['mcp', 'tools/list', undefined, true],
      ['mcp', 'tools/call', 'refund_order', true],
      ['mcp', 'tools/call', 'drop_table', false],
    ]);
    expect(pipeline.decided[2]!.input.mcp?.arguments).toEqual({ id: '1', amount: 3, card_token: 'tok_123' });
    expect(events).toHaveLength(1);
    expect(decisionEvent.check(events[0])).toEqual([]);
    expect(events[0]).toMatchObject({ kind: 'drift', outcome: 'deny', labels: { workload: 'ops-mcp', namespace: 'agents' }, result: { action: 'block', drift: { added: ['export_customers'] } } });
  });

  it('gives each call\'s drift event its own bundle revision, even when calls overlap across a bundle swap', async () => {
    const drifts: DecisionEvent[] = [];
    const direct = httpUpstream(server.url);
    // The first tools/list waits upstream until the second (under the newer bundle) has been decided and sent.
    let releaseFirst!: () => void;
    const secondSent = new Promise<void>((r) => (releaseFirst = r));
    const gated: typeof direct = async (r) => {
      const body = r.body?.toString() ?? '';
      if (body.includes('"id":100')) await secondSent;
      const res = direct(r);
      if (body.includes('"id":200')) releaseFirst();
      return res;
    };
    const mcp = mcpCallHandler<BundleLike>({ upstream: gated, recordDrift: (e) => drifts.push(e) });
    const source = { principal: 'support-lead', authn: 'jwt' as const, claims: { sub: 'support-lead', scope: 'tools:read' }, address: '127.0.0.1' };
    let n = 0;
    const swapping = createServer(async (req, res) => {
      const u = new URL(req.url ?? '/', 'http://127.0.0.1');
      // initialize and the first tools/list start under rev-A; the swap to rev-B happens before the second.
      const revision = n++ < 2 ? 'rev-A' : 'rev-B';
      const request = { method: req.method ?? 'GET', path: u.pathname, segments: ['mcp'], query: {}, rawQuery: '', headers: {} };
      await mcp.handle({ req, res, request, source, bundle: { policy, revision }, pipeline, via: 'proxy' as const });
    });
    await new Promise<void>((ok) => swapping.listen(0, '127.0.0.1', ok));
    const at = `http://127.0.0.1:${(swapping.address() as AddressInfo).port}/mcp`;
    const post = (body: unknown, sid?: string) =>
      fetch(at, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...(sid ? { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-03-26' } : {}) } });
    try {
      const init = await post({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } });
      const sid = init.headers.get('mcp-session-id') ?? '';
      const first = post({ jsonrpc: '2.0', id: 100, method: 'tools/list' }, sid);
      await until('the first call to wait upstream', () => (n >= 2 ? true : undefined));
      const second = post({ jsonrpc: '2.0', id: 200, method: 'tools/list' }, sid);
      await Promise.all([first, second]);
      await until('both drift events', () => (drifts.length >= 2 ? true : undefined));
      // The second call finishes first; the first still names the bundle it was decided with.
      expect(drifts.map((e) => Object.values(e.bundles)[0]?.revision)).toEqual(['rev-B', 'rev-A']);
    } finally {
      swapping.closeAllConnections();
      await new Promise((ok) => swapping.close(ok));
    }
  });
});
