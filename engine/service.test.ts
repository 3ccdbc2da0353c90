// The engine service follows its bundles folder: a workload built after the engine started may log
// its decisions as soon as its bundle is served; without a client CA the audit routes stay off.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyPolicies, type PolicyCopy } from '../test/support/proxy-fixtures.js';
import { makeEvent } from '../test/support/decision-events.js';
import { createCa, type TestCa } from '../test/support/tls.js';
import { EngineConnection } from '../runtime/engine-connection.js';
import { startEngineService, type EngineService } from './service.js';

const ORDERS = 'spiffe://cluster.local/ns/shop/sa/orders';
const OPS_MCP = 'spiffe://cluster.local/ns/agents/sa/ops-mcp';
const silent = pino({ level: 'silent' });

let ca: TestCa;
let policies: PolicyCopy;
let dir: string;
let service: EngineService | undefined;

beforeAll(async () => {
  ca = await createCa();
  policies = await copyPolicies(['orders']);
  dir = mkdtempSync(join(tmpdir(), 'warden-service-'));
}, 120_000);

afterAll(async () => {
  await service?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('engine service', () => {
  it('lets a workload log once its bundle appears in the index, and only then', async () => {
    const server = await ca.server('127.0.0.1');
    service = await startEngineService({
      bundlesDir: policies.out,
      host: '127.0.0.1',
      port: 0,
      rescanMs: 100,
      storeUrl: `sqlite:${join(dir, 'audit.db')}`,
      tls: { cert: server.cert, key: server.key, clientCa: ca.cert },
      logger: silent,
    });
    expect(service.writers()).toEqual({ [ORDERS]: ['orders'] });
    const svid = await ca.client(OPS_MCP);
    const conn = new EngineConnection(service.url, { ca: ca.cert, ...svid });
    const post = () => conn.request('logs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify([makeEvent({ workload: 'ops-mcp', namespace: 'agents' })])) });
    try {
      expect((await post()).status).toBe(403);
      await policies.build(['orders', 'ops-mcp']);
      const deadline = Date.now() + 10_000;
      while (!service.writers()[OPS_MCP] && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      expect(service.writers()).toEqual({ [ORDERS]: ['orders'], [OPS_MCP]: ['ops-mcp'] });
      const r = await post();
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body.toString('utf8'))).toMatchObject({ stored: 1, rejected: [] });
    } finally {
      conn.close();
    }
  });

  it('does not open the store or mount /logs without a client CA', async () => {
    const server = await ca.server('127.0.0.1');
    const plain = await startEngineService({ bundlesDir: policies.out, host: '127.0.0.1', port: 0, storeUrl: `sqlite:${join(dir, 'never.db')}`, tls: { cert: server.cert, key: server.key }, logger: silent });
    const conn = new EngineConnection(plain.url, { ca: ca.cert });
    try {
      expect(plain.store).toBeUndefined();
      expect(existsSync(join(dir, 'never.db'))).toBe(false);
      expect((await conn.request('bundles/orders')).status).toBe(200);
      expect((await conn.request('logs', { method: 'POST', body: Buffer.from('[]') })).status).toBe(404);
    } finally {
      conn.close();
      await plain.close();
    }
  });
});
