// Policy diff review on a throwaway Git repository: widening, refactoring and narrowing commits.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PolicyInput } from '../formats/input.js';
import { failsOn } from '../engine/cli/diff.js';
import { toHtml, toMarkdown } from '../engine/diff/render.js';
import { review } from '../engine/diff/review.js';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { SqliteStore } from '../engine/audit/sqlite-store.js';
import { repoRoot } from '../engine/toolchain/paths.js';
import { makeEvent } from './support/decision-events.js';
import { policyWorkspace, type PolicyWorkspace } from './support/policy-repo.js';

const execFileP = promisify(execFile);

const storefront = { principal: 'spiffe://cluster.local/ns/shop/sa/storefront', authn: 'mtls' as const, claims: {}, address: '10.0.0.7' };
const destination = { workload: 'orders', namespace: 'shop', principal: 'spiffe://cluster.local/ns/shop/sa/orders' };
const recordedCall = (method: string, path: string): PolicyInput => ({
  source: storefront,
  destination,
  request: { method, path, segments: path.slice(1).split('/'), query: {}, headers: {} },
});

describe('warden diff', () => {
  let ws: PolicyWorkspace;
  let base: string;
  beforeAll(() => {
    ws = policyWorkspace();
    base = ws.git('rev-parse', 'HEAD');
  });
  afterAll(() => ws.remove());

  it('reports a widening (destructive tool granted to a new caller) as deny → allow for exactly those calls', async () => {
    ws.edit('workloads/ops-mcp/mcp-tools.json', '{ "scopes": ["tools:write"], "description": "NOT a grant: lacks destructive: true (compiler warns)" }', '{ "scopes": ["tools:write"], "destructive": true }');
    ws.edit('workloads/ops-mcp/policy_test.rego', 'test_writer_cannot_drop_tables if', 'writer_could_not_drop_tables if');
    const head = ws.commit('let writers drop tables');
    const r = await review({ repo: ws.repo, base, head, cwd: ws.dir });
    const flips = r.workloads.flatMap((w) => w.flips);
    expect(flips.map((f) => [f.workload, f.target, f.direction, f.callers])).toEqual([['ops-mcp', 'tool:drop_table', 'deny-to-allow', ['jwt{scope=tools:write}']]]);
    expect(flips[0]!.headReasons[0]).toMatch(/tool drop_table granted by x-warden-authz\.allow\[1\] \(policies\/workloads\/ops-mcp\/mcp-tools\.json:\d+\)/);
    expect(r.workloads.filter((w) => w.status === 'unchanged').map((w) => w.workload).sort()).toEqual(['orders', 'storefront']);
    expect(failsOn(r, 'deny-to-allow')).toBe(true);
    expect(failsOn(r, 'allow-to-deny')).toBe(false);
    const md = toMarkdown(r);
    expect(md).toContain('| 🔓 deny → allow | `tool:drop_table` | `jwt{scope=tools:write}` | 1 |');
    expect(md).toContain('**·→✓**');
    // The same review as one self-contained HTML page: no script, no external resource, the flip highlighted.
    const page = toHtml(r);
    expect(page).toMatch(/^<!doctype html>/);
    expect(page).not.toMatch(/<script|<link|src=|href="http/);
    expect(page).toContain('<td class="widen">deny → allow</td><td><code>tool:drop_table</code></td><td><code>jwt{scope=tools:write}</code> </td>');
    expect(page).toContain('<td class="flip">·→✓</td>');
    base = head;
  });

  it('reports no flipped decision for a pure refactor of the Rego', async () => {
    ws.edit('workloads/ops-mcp/policy.rego', 'refund_limit := 500', '# The most an agent may refund on its own.\nrefund_limit := 250 + 250');
    ws.edit('workloads/orders/policy.rego', '\trequests.is_write\n\tinput.source.authn == "jwt"', '\tinput.source.authn == "jwt"\n\trequests.is_write');
    const head = ws.commit('refactor');
    const r = await review({ repo: ws.repo, base, head, cwd: ws.dir });
    expect(r.workloads.filter((w) => w.status === 'changed').map((w) => w.workload).sort()).toEqual(['ops-mcp', 'orders']);
    expect(r.workloads.flatMap((w) => w.flips)).toEqual([]);
    expect(failsOn(r, 'any')).toBe(false);
    base = head;
  });

  it('reports a narrowing as allow → deny with the recorded calls it would break', async () => {
    ws.edit('workloads/orders/openapi.yaml', '          - principal: spiffe://cluster.local/ns/shop/sa/storefront\n          - principal: spiffe://cluster.local/ns/agents/sa/ops-mcp', '          - principal: spiffe://cluster.local/ns/agents/sa/ops-mcp');
    ws.edit('workloads/orders/policy_test.rego', 'test_storefront_reads_an_order if', 'storefront_read_an_order if');
    const head = ws.commit('storefront no longer reads single orders');
    const recorded = [recordedCall('GET', '/orders/17'), recordedCall('GET', '/orders/18'), recordedCall('GET', '/orders'), recordedCall('POST', '/orders')];
    const r = await review({ repo: ws.repo, base, head, cwd: ws.dir, recorded: (w) => (w === 'orders' ? recorded : []) });
    const flips = r.workloads.flatMap((w) => w.flips);
    expect(flips).toHaveLength(1);
    expect(flips[0]).toMatchObject({ workload: 'orders', target: 'getOrder', direction: 'allow-to-deny', callers: [storefront.principal] });
    // one spec probe, the fixture GET /orders/1001 and the two recorded GET /orders/{id} calls; the others still pass
    expect(flips[0]!.count).toBe(4);
    expect(flips[0]!.origins.sort()).toEqual(['fixture', 'recorded', 'spec']);
    expect(r.recordedCalls).toBe(4);
  });

  it('replays recorded calls from an audit store through the CLI and fails CI on a narrowing when asked', async () => {
    const db = join(ws.dir, 'audit.db');
    const store = SqliteStore.open(db);
    const now = new Date();
    await store.append(
      [17, 18, 19].map((n) => makeEvent({ workload: 'orders', principal: storefront.principal, path: `/orders/${n}`, time: now })),
      Date.now(),
    );
    await store.close();
    const r = await execFileP(process.execPath, [join(repoRoot, 'bin/warden.js'), 'diff', '--repo', ws.repo, '--base', 'HEAD~1', '--head', 'HEAD', '--store', `sqlite:${db}`, '--since', '1h', '--format', 'json', '--fail-on', 'allow-to-deny'], { cwd: ws.dir }).then(
      () => ({ code: 0, stdout: '' }),
      (e: { code: number; stdout: string }) => e,
    );
    expect(r.code).toBe(3);
    const review = JSON.parse(r.stdout) as { recordedCalls: number; totals: Record<string, number> };
    expect(review.recordedCalls).toBe(3);
    expect(review.totals['allow-to-deny']).toBe(5);
  });

  it('says clearly when a ref does not exist or a revision does not compile', async () => {
    await expect(review({ repo: ws.repo, base: 'no-such-branch', head: 'HEAD', cwd: ws.dir })).rejects.toThrow(/git ref "no-such-branch" does not exist/);
    ws.edit('workloads/orders/policy.rego', 'allow if requests.is_probe', 'allow if requests.is_probe {');
    const broken = ws.commit('broken');
    await expect(review({ repo: ws.repo, base: 'HEAD~1', head: broken, cwd: ws.dir })).rejects.toThrow(/the head revision .* does not compile:[\s\S]*policy\.rego:\d+: rego_parse_error/);
  });

  it('replays a recorded call the sidecar refused for a key that differs only by case as that refusal, on both revisions', async () => {
    const own = policyWorkspace();
    const base = own.git('rev-parse', 'HEAD');
    own.edit('workloads/ops-mcp/policy.rego', 'refund_limit := 500', 'refund_limit := 400');
    const head = own.commit('smaller refunds');
    const writer = { principal: 'support-agent', authn: 'jwt' as const, claims: { sub: 'support-agent', scope: 'tools:read tools:write' }, address: '10.1.0.5' };
    const refund = (args: Record<string, unknown>): PolicyInput => ({
      source: writer,
      destination: { workload: 'ops-mcp', namespace: 'agents', principal: 'spiffe://cluster.local/ns/agents/sa/ops-mcp' },
      request: { method: 'POST', path: '/mcp', segments: ['mcp'], query: {}, headers: {} },
      mcp: { method: 'tools/call', tool: 'refund_order', arguments: args },
    });
    try {
      const r = await review({ repo: own.repo, base, head, cwd: own.dir, recorded: (w) => (w === 'ops-mcp' ? [refund({ id: '1', Amount: 450 }), refund({ id: '2', amount: 450 })] : []) });
      // The refused call flips nothing (refused on both); the plain one is the narrowing.
      const flips = r.workloads.flatMap((w) => w.flips).filter((f) => f.origins.includes('recorded'));
      expect(flips.map((f) => [f.target, f.direction, f.count])).toEqual([['tool:refund_order', 'allow-to-deny', expect.any(Number)]]);
      expect(r.recordedCalls).toBe(2);
    } finally {
      own.remove();
    }
  });
});
