// The MCP handler registered in the real sidecar: per-call decisions, masking and drift events end to end.
import { readFileSync, mkdtempSync, cpSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRepo } from '../engine/compiler/build.js';
import type { DecisionEvent } from '../formats/decision-event.js';
import { startPlugin, type Plugin } from '../proxy-plugin/plugin.js';
import { createSidecar, type SidecarServer } from '../proxy-plugin/sidecar.js';
import { mcpCallHandler } from '../proxy-plugin/mcp/call-adapter.js';
import { httpUpstream } from '../proxy-plugin/mcp/upstream.js';
import type { ActiveBundle } from '../proxy-plugin/bundle-source.js';
import { ISSUER, AUDIENCE, startMcpServer, tokenIssuer, type TestMcpServer, type TokenIssuer } from './mcp-fixtures.js';

let plugin: Plugin;
let server: TestMcpServer;
let sidecar: SidecarServer;
let issuer: TokenIssuer;
const events: DecisionEvent[] = [];

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-mcp-sidecar-'));
  cpSync(resolve('policies'), join(dir, 'policies'), { recursive: true });
  const built = await buildRepo({ repo: 'policies', out: 'bundles', cwd: dir, only: ['ops-mcp'], cacheDir: resolve('.warden/cache/opa') });
  issuer = await tokenIssuer();
  server = await startMcpServer({ json: false, extraTool: 'export_customers' });
  plugin = await startPlugin({
    workload: 'ops-mcp',
    bundleFile: resolve(dir, built.workloads[0]!.bundle),
    verificationKey: readFileSync(built.verificationKey, 'utf8'),
    identity: { jwt: { keys: async () => issuer.publicKey, issuer: ISSUER, audience: AUDIENCE, algorithms: ['ES256'], clockToleranceSec: 5 } },
    logger: pino({ level: 'silent' }),
  });
  const record = plugin.log.record.bind(plugin.log);
  plugin.log.record = (e) => { events.push(e); record(e); };
  const mcp = mcpCallHandler<ActiveBundle>({ upstream: httpUpstream(server.url), recordDrift: (e) => plugin.log.record(e) });
  sidecar = createSidecar({ upstream: new URL(server.url), gate: plugin.gate, handlers: [mcp], logger: pino({ level: 'silent' }) });
  await new Promise<void>((ok) => sidecar.listen(0, '127.0.0.1', ok));
});
afterAll(async () => {
  sidecar?.closeAllConnections();
  await new Promise((ok) => sidecar?.close(ok));
  await plugin?.close();
  await server?.close();
});

describe('MCP through the real sidecar', () => {
  it('decides tool calls per caller and logs them with sensitive arguments masked', async () => {
    const token = await issuer.sign('support-lead', 'tools:read tools:write');
    const client = new Client({ name: 'agent', version: '1' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${(sidecar.address() as AddressInfo).port}/mcp`), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(['get_order', 'query', 'refund_order', 'search_orders']);
    await client.callTool({ name: 'refund_order', arguments: { id: '1', amount: 5, card_token: 'tok_secret' } });
    await expect(client.callTool({ name: 'drop_table', arguments: { table: 't' } })).rejects.toMatchObject({ code: -32003 });
    await client.close();
    const refund = events.find((e) => (e.input?.mcp as { tool?: string } | undefined)?.tool === 'refund_order')!;
    expect(refund.kind).toBe('mcp');
    expect((refund.input!.mcp as { arguments: Record<string, unknown> }).arguments.card_token).not.toBe('tok_secret');
    expect(refund.masked).toContain('/input/mcp/arguments/card_token');
    expect(events.some((e) => e.kind === 'drift')).toBe(true);
    expect(events.find((e) => (e.input?.mcp as { tool?: string } | undefined)?.tool === 'drop_table')?.outcome).toBe('deny');
  });
});
