import express from 'express';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DecisionEvent } from '../formats/decision-event.js';
import type { PolicyInput } from '../formats/input.js';
import { DecisionLog } from '../runtime/decision-log.js';
import { closeServer, copyPolicies, listenLocal, logCollector, type PolicyCopy } from '../test/support/proxy-fixtures.js';
import { BundleSource } from './bundle-source.js';
import { DecisionPipeline } from './decide.js';
import { startPlugin, trustPolicy, type Plugin } from './plugin.js';

let plugin: Plugin;

beforeAll(async () => {
  const policies = await copyPolicies(['storefront'], (repo) => {
    const manifest = join(repo, 'workloads/storefront/workload.yaml');
    writeFileSync(manifest, readFileSync(manifest, 'utf8').replace('mode: enforce', 'mode: dry-run'));
  });
  plugin = await startPlugin({
    workload: 'storefront',
    bundleFile: join(policies.out, 'storefront.tar.gz'),
    verificationKey: readFileSync(join(policies.out, 'verification-key.pem'), 'utf8'),
    identity: {},
    logger: pino({ level: 'silent' }),
  });
});

afterAll(() => plugin?.close());

const anonymous = (method: string, path: string): PolicyInput => ({
  source: { principal: 'anonymous', authn: 'none', claims: {}, address: '127.0.0.1' },
  destination: plugin.gate.pipeline.destination,
  request: { method, path, segments: path.split('/').filter(Boolean), query: {}, headers: {} },
});

describe('dry-run mode from the bundle manifest', () => {
  it('lets a call the policy denies through and records it as dry-run-deny', () => {
    expect(plugin.source.current?.mode).toBe('dry-run');
    const v = plugin.gate.pipeline.decide(anonymous('POST', '/checkout'), { kind: 'http', via: 'proxy' });
    expect(v).toMatchObject({ allow: true, outcome: 'dry-run-deny' });
    expect(v.decision?.allow).toBe(false);
  });

  it('still allows what the policy allows', () => {
    expect(plugin.gate.pipeline.decide(anonymous('GET', '/products'), { kind: 'http', via: 'proxy' })).toMatchObject({ allow: true, outcome: 'allow' });
  });

  it('still refuses what never reached the policy', () => {
    const v = plugin.gate.pipeline.refuse(anonymous('GET', '/'), { kind: 'http', via: 'proxy' }, 'request refused: test', 400);
    expect(v).toMatchObject({ allow: false, outcome: 'deny', status: 400 });
  });
});

describe('masking in the decision event', () => {
  let orders: PolicyCopy;
  let engine: http.Server;
  let url: string;
  const received: DecisionEvent[] = [];

  beforeAll(async () => {
    orders = await copyPolicies(['orders', 'ops-mcp']);
    const app = express();
    app.use('/logs', logCollector(received).router);
    engine = http.createServer(app);
    url = `http://127.0.0.1:${await listenLocal(engine)}`;
  });
  afterAll(async () => {
    await closeServer(engine);
    rmSync(orders.dir, { recursive: true, force: true });
  });

  // The real pipeline over the orders bundle, shipping to a collecting engine: the event one call becomes.
  async function eventOf(method: string, path: string, body: unknown, mcp?: PolicyInput['mcp']): Promise<DecisionEvent> {
    const workload = mcp ? 'ops-mcp' : 'orders';
    const source = new BundleSource({ workload, trust: trustPolicy({ verificationKey: readFileSync(join(orders.out, 'verification-key.pem'), 'utf8') }) });
    await source.loadFile(join(orders.out, `${workload}.tar.gz`));
    const log = new DecisionLog({ engine: url, logger: pino({ level: 'silent' }), flushIntervalMs: 60_000 });
    const pipeline = new DecisionPipeline({ destination: { workload, namespace: mcp ? 'agents' : 'shop', principal: '' }, source, log });
    const input: PolicyInput = {
      source: { principal: 'anonymous', authn: 'none', claims: {}, address: '127.0.0.1' },
      destination: pipeline.destination,
      request: { method, path, segments: path.split('/').filter(Boolean), query: {}, headers: { authorization: 'Bearer secret' }, ...(body !== undefined ? { body } : {}) },
      ...(mcp ? { mcp } : {}),
    };
    const v = pipeline.decide(input, { kind: mcp ? 'mcp' : 'http', via: 'proxy' });
    await log.close();
    return received.find((e) => e.decision_id === v.decisionId)!;
  }

  it('masks the fields the addressed operation marks sensitive', async () => {
    const e = await eventOf('POST', '/orders', { payment: { card_number: '4111111111111111' }, item: 'book' });
    expect(e.result).toMatchObject({ allow: false, operation: 'createOrder' });
    expect((e.input as { request: { body: unknown } }).request.body).toEqual({ payment: { card_number: '**masked**' }, item: 'book' });
    expect(e.masked).toEqual(['/input/request/headers/authorization', '/input/request/body/payment/card_number']);
  });

  it('masks every field any operation marks sensitive when the call addresses no operation', async () => {
    // No route matches: the policy names no operation, so no one operation's list applies.
    const e = await eventOf('POST', '/refunds', { payment: { card_number: '4111111111111111' } });
    expect(e.result).toMatchObject({ allow: false });
    expect((e.result as { operation?: string }).operation).toBeUndefined();
    expect((e.input as { request: { body: unknown } }).request.body).toEqual({ payment: { card_number: '**masked**' } });
  });

  it('masks the sensitive arguments of a tool, and of every tool when the call names one the spec lacks', async () => {
    const known = await eventOf('POST', '/mcp', undefined, { method: 'tools/call', tool: 'refund_order', arguments: { id: '1', amount: 5, card_token: 'tok_live_1' } });
    expect((known.input as { mcp: { arguments: unknown } }).mcp.arguments).toEqual({ id: '1', amount: 5, card_token: '**masked**' });
    const unknown = await eventOf('POST', '/mcp', undefined, { method: 'tools/call', tool: 'refund_ordr', arguments: { card_token: 'tok_live_2' } });
    expect(unknown.result).toMatchObject({ allow: false });
    expect((unknown.input as { mcp: { arguments: unknown } }).mcp.arguments).toEqual({ card_token: '**masked**' });
    expect(unknown.masked).toContain('/input/mcp/arguments/card_token');
  });
});
