// An agent, through `warden proxy` run as a real process, against a real MCP server: the command a
// user deploys enforces per tool call, with identity from a JWT verified against a JWKS file.
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { exportJWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWarden, stopWardens } from './support/warden-process.js';
import { AUDIENCE, ISSUER, startMcpServer, tokenIssuer, type TestMcpServer, type TokenIssuer } from './support/mcp-fixtures.js';
import { copyPolicies } from './support/proxy-fixtures.js';

const children: ChildProcess[] = [];
let server: TestMcpServer;
let issuer: TokenIssuer;
let proxyUrl: string;

const start = (args: string[], ready: RegExp) => startWarden(args, ready, children);

async function agent(scope: string): Promise<Client> {
  const client = new Client({ name: 'cli-test-agent', version: '1.0.0' });
  const headers = { authorization: `Bearer ${await issuer.sign('agent-' + scope.replace(/\W+/g, '-'), scope)}` };
  await client.connect(new StreamableHTTPClientTransport(new URL(`${proxyUrl}/mcp`), { requestInit: { headers } }));
  return client;
}

beforeAll(async () => {
  const policies = await copyPolicies(['ops-mcp']);
  server = await startMcpServer({ json: true });
  issuer = await tokenIssuer();
  const jwks = join(policies.dir, 'jwks.json');
  writeFileSync(jwks, JSON.stringify({ keys: [{ ...(await exportJWK(issuer.publicKey)), alg: 'ES256', use: 'sig', kid: 'test' }] }));
  const proxy = await start(
    ['proxy', '--workload', 'ops-mcp', '--upstream', new URL(server.url).origin, '--listen', '127.0.0.1:0', '--bundle', join(policies.out, 'ops-mcp.tar.gz'),
      '--verification-key', join(policies.out, 'verification-key.pem'), '--spill', join(policies.dir, 'spill.ndjson'),
      '--jwks', jwks, '--issuer', ISSUER, '--audience', AUDIENCE],
    /on ([\d.]+:\d+)/,
  );
  proxyUrl = `http://${proxy[1]}`;
});

afterAll(async () => {
  await stopWardens(children);
  await server?.close();
});

describe('warden proxy in front of an MCP server', () => {
  it('offers a read-only agent only the read-only tools and refuses the rest per call', async () => {
    const client = await agent('tools:read');
    const tools = (await client.listTools()).tools.map((t) => t.name).sort();
    expect(tools).toEqual(['get_order', 'query', 'search_orders']);
    const ok = await client.callTool({ name: 'get_order', arguments: { id: '42' } });
    expect(ok.isError).toBeFalsy();
    await expect(client.callTool({ name: 'refund_order', arguments: { id: '42', amount: 10 } })).rejects.toThrow(/Forbidden by policy/);
    await client.close();
  });

  it('never lets a writer agent drop a table, and the server never sees the attempt', async () => {
    const client = await agent('tools:read tools:write');
    expect((await client.listTools()).tools.map((t) => t.name)).not.toContain('drop_table');
    await expect(client.callTool({ name: 'drop_table', arguments: { table: 'orders' } })).rejects.toThrow(/Forbidden by policy/);
    expect(server.ran).not.toContain('drop_table');
    await client.close();
  });

  it('decides each of hundreds of SQL statements on its own: the server sees exactly the read-only ones', async () => {
    // Every statement is new, so none is answered from a remembered result: each decision runs the two
    // regular expressions of policies/lib/sql.rego, on a WASM heap kept between evaluations and reset as it fills.
    const client = await agent('tools:read');
    const allowed: string[] = [];
    const refused: string[] = [];
    for (let i = 0; i < 120; i++) {
      const read = `SELECT status FROM orders WHERE id = ${i}`;
      const write = [`DELETE FROM orders WHERE id = ${i}`, `SELECT ${i}; DROP TABLE orders`, `SELECT * INTO backup_${i} FROM orders`][i % 3]!;
      expect((await client.callTool({ name: 'query', arguments: { sql: read } })).isError).toBeFalsy();
      allowed.push(read);
      await expect(client.callTool({ name: 'query', arguments: { sql: write } })).rejects.toThrow(/Forbidden by policy/);
      refused.push(write);
    }
    const mine = new Set([...allowed, ...refused]);
    const seen = server.received
      .map((m) => (m as { method?: string; params?: { name?: string; arguments?: { sql?: unknown } } }))
      .filter((m) => m?.method === 'tools/call' && m.params?.name === 'query' && mine.has(String(m.params.arguments?.sql)))
      .map((m) => String(m.params!.arguments!.sql));
    expect(seen).toEqual(allowed);
    await client.close();
  });
});
