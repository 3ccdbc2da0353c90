// The MCP handler registered in the real sidecar: per-call decisions, masking and drift events end to end.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMcpServer, startProxy, tokenIssuer, type TestMcpServer, type TestProxy, type TokenIssuer } from './support/mcp-fixtures.js';

let server: TestMcpServer;
let proxy: TestProxy;
let issuer: TokenIssuer;

beforeAll(async () => {
  issuer = await tokenIssuer();
  server = await startMcpServer({ json: false, extraTool: 'export_customers' });
  proxy = await startProxy(server.url, issuer);
});
afterAll(async () => {
  await proxy?.close();
  await server?.close();
});

describe('MCP through the real sidecar', () => {
  it('decides tool calls per caller and logs them with sensitive arguments masked', async () => {
    const token = await issuer.sign('support-lead', 'tools:read tools:write');
    const client = new Client({ name: 'agent', version: '1' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${proxy.url}/mcp`), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(['get_order', 'query', 'refund_order', 'search_orders']);
    await client.callTool({ name: 'refund_order', arguments: { id: '1', amount: 5, card_token: 'tok_secret' } });
    await expect(client.callTool({ name: 'drop_table', arguments: { table: 't' } })).rejects.toMatchObject({ code: -32003 });
    await client.close();
    const refund = proxy.events.find((e) => (e.input?.mcp as { tool?: string } | undefined)?.tool === 'refund_order')!;
    expect(refund.kind).toBe('mcp');
    expect((refund.input!.mcp as { arguments: Record<string, unknown> }).arguments.card_token).not.toBe('tok_secret');
    expect(refund.masked).toContain('/input/mcp/arguments/card_token');
    expect(proxy.events.some((e) => e.kind === 'drift')).toBe(true);
    expect(proxy.events.find((e) => (e.input?.mcp as { tool?: string } | undefined)?.tool === 'drop_table')?.outcome).toBe('deny');
  });
});
