// `warden explain` and GET /audit/decisions/<id>/explain against the real system of `warden up`, once on
// SQLite and once on PostgreSQL: the engine (HTTPS, audit store holding the revision archive), the workloads behind their sidecars and the admission
// webhook, filled by the demo scenario plus a refund with a masked card token. Each explanation is
// checked against what `opa eval --explain full` itself says for the same bundle and input.
import { execFile, spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ID, startStack, type Stack } from '../cli/up-stack.js';
import { startEngineService } from '../engine/service.js';
import { startPostgres, type PostgresServer } from './support/postgres.js';
import { runScenario } from '../cli/up-scenario.js';
import { examplePolicies } from './support/example-policies.js';
import type { Explanation } from '../engine/explain/explanation.js';
import { repoRoot } from '../engine/toolchain/paths.js';
import type { StoredEvent } from '../engine/audit/store.js';
import { extractPolicy, opaBinary } from './support/opa.js';

const execFileP = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'warden-explain-test-'));
let stack: Stack;
let events: StoredEvent[];
let refundId: string;
let scopeId: string;

/** A refund_order call through the ops-mcp sidecar with the official MCP client; returns its decision id. */
async function mcpCall(sub: string, scope: string, args: Record<string, unknown>): Promise<string> {
  const ids: string[] = [];
  const token = await stack.token(sub, 'ops-mcp', { scope });
  const client = new Client({ name: sub, version: '1.0.0' });
  const fetchRecording = async (input: string | URL | Request, init?: RequestInit) => {
    const res = await fetch(input, init);
    ids.push(...(res.headers.get('x-warden-decision-id') ?? '').split(',').filter(Boolean));
    return res;
  };
  await client.connect(new StreamableHTTPClientTransport(new URL(`${stack.workloads['ops-mcp'].url}/mcp`), { requestInit: { headers: { authorization: `Bearer ${token}` } }, fetch: fetchRecording }));
  await expect(client.callTool({ name: 'refund_order', arguments: args })).rejects.toThrow();
  await client.close();
  return ids[ids.length - 1]!;
}

function get(path: string, who: 'auditor' | 'storefront' | 'none' = 'auditor'): Promise<{ status: number; text: string }> {
  const u = new URL(path, stack.engine.url);
  const cert = who === 'none' ? {} : { cert: stack.certs[who].cert, key: stack.certs[who].key };
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: u.hostname, port: u.port, path: u.pathname + u.search, ca: stack.ca.cert, agent: false, ...cert }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end();
  });
}

const explain = async (id: string) => {
  const r = await get(`/audit/decisions/${id}/explain`);
  expect(r.status, r.text).toBe(200);
  return JSON.parse(r.text) as Explanation;
};
const find = (pred: (s: StoredEvent) => boolean) => {
  const s = events.find(pred);
  expect(s, 'the scenario stored this decision').toBeDefined();
  return s!.event;
};

/** `opa eval --explain full` run by the test itself (stock OPA) over the served bundle's Rego and data and the stored input. */
async function opaSays(workload: string, input: unknown): Promise<{ result: { allow: boolean; reasons: string[] }; rules: Set<string> }> {
  const out = join(dir, `opa-${workload}-${Math.random().toString(36).slice(2)}`);
  await extractPolicy(readFileSync(join(dir, 'bundles', `${workload}.tar.gz`)), join(out, 'b'));
  writeFileSync(join(out, 'input.json'), JSON.stringify(input));
  const { stdout } = await execFileP(opaBinary, ['eval', '-d', join(out, 'b'), '-i', join(out, 'input.json'), '-f', 'json', '--explain', 'full', 'data.warden.decision'], { maxBuffer: 64 << 20 });
  const body = JSON.parse(stdout) as { result: Array<{ expressions: Array<{ value: { allow: boolean; reasons: string[] } }> }>; explanation: Array<{ Op: string; Node?: { head?: { name?: string } }; Location?: { file: string; row: number } }> };
  const rules = new Set(body.explanation.filter((e) => e.Op === 'Exit' && e.Node?.head?.name && ['deny', 'grants', 'decision'].includes(e.Node.head.name)).map((e) => `${e.Location!.file.slice(join(out, 'b').length + 1)}:${e.Location!.row}`));
  return { result: body.result[0]!.expressions[0]!.value, rules };
}

/** The explanation and OPA agree: same result, and every rule named is one OPA's trace shows holding. */
async function expectMatchesOpa(x: Explanation, workload: string, input: unknown): Promise<void> {
  const opa = await opaSays(workload, input);
  expect(x.opa?.allow).toBe(opa.result.allow);
  expect(x.opa?.reasons.sort()).toEqual([...opa.result.reasons].sort());
  const named = x.reasons.map((r) => `${r.rule?.file}:${r.rule?.row}`);
  expect(named.length).toBeGreaterThan(0);
  for (const n of named) expect([...opa.rules]).toContain(n);
  const held = (x.opa?.held ?? []).filter((r) => ['deny', 'grants', 'decision'].includes(r.name)).map((r) => `${r.file}:${r.row}`);
  expect(new Set(held)).toEqual(opa.rules);
}

const lineOf = (file: string, text: string) => readFileSync(join(repoRoot, file), 'utf8').split('\n').findIndex((l) => l.includes(text)) + 1;

let postgres: PostgresServer | undefined;

beforeAll(async () => {
  // The run's shared build, copied: its bundles, and its signing key for a later rebuild here.
  cpSync((await examplePolicies()).dir, dir, { recursive: true });
}, 240_000);

afterAll(async () => {
  await postgres?.stop();
  rmSync(dir, { recursive: true, force: true });
});

// The same system and cases on each audit store backend: the embedded default and the cluster-scale one.
const backends = [
  { name: 'SQLite', storeUrl: () => Promise.resolve(undefined) },
  {
    name: 'PostgreSQL',
    storeUrl: async () => {
      postgres = await startPostgres({ settings: { fsync: 'off' } });
      return postgres.createDatabase('explain');
    },
  },
];

describe.each(backends)('warden explain on $name', (backend) => {
  beforeAll(async () => {
    const storeUrl = await backend.storeUrl();
    stack = await startStack({ bundlesDir: join(dir, 'bundles'), stateDir: join(dir, `state-${backend.name}`), enginePort: 0, webhookPort: 0, ...(storeUrl ? { storeUrl } : {}) });
    await runScenario(stack, () => undefined);
    // A refund above the limit, with the card token the spec marks sensitive (masked before it leaves the
    // pod); and a refund by an agent whose token lacks the scope the tool's grant needs.
    refundId = await mcpCall('support-agent', 'tools:read tools:write', { id: '42', amount: 900, card_token: 'tok_4242_secret' });
    scopeId = await mcpCall('readonly-agent', 'tools:read', { id: '42', amount: 10 });
    await stack.flush();
    events = await stack.engine.store!.query({ sort: 'seq', limit: 1000 });
  }, 240_000);

  afterAll(async () => {
    await stack?.close();
  });

  it('on the drop_table refusal of the scenario, names the destructive-tool rule and the grant that would allow the call (a real CLI process)', async () => {
    const e = find((s) => s.event.input?.mcp !== undefined && (s.event.input.mcp as { tool?: string }).tool === 'drop_table');
    const f = stack.files;
    const child = spawn(process.execPath, [join(repoRoot, 'bin', 'warden.js'), 'explain', e.decision_id, '--engine', stack.engine.url, '--engine-ca', f.ca, '--engine-cert', f.auditorCert, '--engine-key', f.auditorKey, '-o', 'table'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise((r) => child.once('exit', r));
    expect(code, err).toBe(0);
    const destructive = lineOf('engine/compiler/rego/core.rego', 'is destructive and no grant marked destructive');
    expect(out).toContain(`warden/core.rego:${destructive}  tool drop_table is destructive and no grant marked destructive: true covers this caller`);
    expect(out).toContain('the closest is x-warden-authz.allow[0] (grants the workload identity spiffe://cluster.local/ns/platform/sa/dba-bot only; the caller authenticated with a JWT (subject support-agent))');
    expect(out).toMatch(/x-warden-authz\.allow\[1\].*\n\s+✗ grants nothing: the tool is destructive and this grant lacks "destructive": true/);
    await expectMatchesOpa(await explain(e.decision_id), 'ops-mcp', e.input);
  }, 60_000);

  it('explains an HTTP denial: the workload rule that denied it, and the grant that covered the caller', async () => {
    const e = find((s) => s.event.kind === 'http' && (s.event.result as { operation?: string } | undefined)?.operation === 'deleteOrder');
    const x = await explain(e.decision_id);
    expect(x.bundle).toMatchObject({ name: 'orders', found: 'archive', revision: e.bundles.orders!.revision });
    expect(x.replay.allow).toBe(false);
    expect(x.reasons).toEqual([{ reason: 'changing orders as a person requires multi-factor authentication', rule: expect.objectContaining({ file: 'workload/policy.rego', row: lineOf('policies/workloads/orders/policy.rego', 'changing orders as a person requires multi-factor') }) }]);
    expect(x.wouldAllow?.summary).toMatch(/^x-warden-authz\.allow\[0\] covers the caller, but the call was denied by: changing orders as a person requires multi-factor authentication$/);
    await expectMatchesOpa(x, 'orders', e.input);
  });

  it('explains an MCP denial by scope: "needs scope …; the token has …"', async () => {
    const e = events.find((s) => s.event.decision_id === scopeId)!.event;
    const x = await explain(scopeId);
    expect(x.call).toBe('tools/call refund_order');
    expect(x.wouldAllow?.summary).toBe('no grant of tool refund_order covers the caller; the closest is x-warden-authz.allow[0] (needs scope `tools:write`; the token has `tools:read`)');
    expect(x.wouldAllow?.grants[0]).toMatchObject({ covers: false, where: expect.stringMatching(/^warden\/generated\.rego:\d+$/), conditions: [{ rego: 'data.warden.core.has_scopes(["tools:write"])', held: false }] });
    await expectMatchesOpa(x, 'ops-mcp', e.input);
  });

  it('explains an MCP tool denial by the workload Rego (query with DELETE) and confirms the replay', async () => {
    const e = find((s) => (s.event.input?.mcp as { tool?: string } | undefined)?.tool === 'query' && s.event.outcome === 'deny');
    const x = await explain(e.decision_id);
    expect(x.call).toBe('tools/call query');
    expect(x.replay).toMatchObject({ status: 'masked-confirmed', allow: false });
    expect(x.reasons[0]).toMatchObject({ reason: 'query: only a single read-only SELECT statement is allowed', rule: { file: 'workload/policy.rego', row: lineOf('policies/workloads/ops-mcp/policy.rego', 'only a single read-only SELECT') } });
    await expectMatchesOpa(x, 'ops-mcp', e.input);
  });

  it('says plainly when a masked field makes the replay inexact, and explains as far as the unmasked input allows', async () => {
    const e = events.find((s) => s.event.decision_id === refundId)!.event;
    expect(e.masked).toContain('/input/mcp/arguments/card_token');
    const x = await explain(refundId);
    expect(x.masked).toContain('/input/mcp/arguments/card_token');
    expect(x.replay.status).toBe('masked-confirmed');
    expect(x.replay.note).toContain('/input/mcp/arguments/card_token');
    expect(x.replay.note).toContain('not exact');
    expect(x.reasons[0]!.reason).toBe('refund_order: refunds above 500 need a person, not an agent');
    expect(JSON.stringify(x)).not.toContain('tok_4242_secret');
    await expectMatchesOpa(x, 'ops-mcp', e.input);
    const md = await get(`/audit/decisions/${refundId}/explain?format=markdown`);
    expect(md.text).toContain('**masked-confirmed**');
  });

  it('explains an admission refusal finding by finding: the rule source, the field and the exemption path', async () => {
    const e = find((s) => s.event.kind === 'admission' && s.event.outcome === 'deny');
    const x = await explain(e.decision_id);
    const latest = x.findings?.find((f) => f.rule === 'no-latest-tag');
    const ruleLine = lineOf('policies/admission/guardrails.rego', '"rule": "no-latest-tag"');
    expect(latest).toMatchObject({ set: 'guardrails', field: 'spec.template.spec.containers[0].image', source: `admission/guardrails.rego:${ruleLine}`, exemption: expect.stringContaining('guardrails.rules.no-latest-tag: warn | dry-run') });
    expect(x.findings?.find((f) => f.set === 'coverage')?.exemption).toContain('exemptNamespaces');
    // OPA, over the same guardrails and the refused pod, finishes the violations rule that holds this line.
    const pod = { metadata: { labels: { app: 'payments' } }, spec: { serviceAccountName: 'payments', securityContext: { runAsNonRoot: true }, containers: [{ name: 'app', image: 'nginx:latest', resources: { limits: { cpu: '500m', memory: '256Mi' }, requests: { cpu: '100m', memory: '128Mi' } } }] } };
    const input = join(dir, 'admission-input.json');
    writeFileSync(input, JSON.stringify({ kind: 'Deployment', namespace: 'shop', name: 'payments', operation: 'CREATE', path: 'spec.template.spec', pod }));
    const adm = join(repoRoot, 'policies', 'admission');
    const { stdout } = await execFileP(opaBinary, ['eval', '-d', join(adm, 'guardrails.rego'), '-d', join(adm, 'data.json'), '-i', input, '-f', 'json', '--explain', 'full', 'data.warden.admission.violations'], { maxBuffer: 64 << 20 });
    const trace = (JSON.parse(stdout) as { explanation: Array<{ Op: string; Node?: { head?: { name?: string } }; Location?: { row: number } }> }).explanation;
    const heads = trace.filter((t) => t.Op === 'Exit' && t.Node?.head?.name === 'violations').map((t) => t.Location!.row);
    const holding = Math.max(...heads.filter((r) => r <= ruleLine));
    expect(ruleLine - holding).toBeLessThan(12);
    expect(x.replay.note).toContain('not replayed');
  });

  it('answers 404 for an unknown decision, 401 without a client certificate and 403 to a workload that is not a reader', async () => {
    expect((await get('/audit/decisions/0000-no-such-decision/explain')).status).toBe(404);
    expect((await get(`/audit/decisions/${events[0]!.event.decision_id}/explain`, 'none')).status).toBe(401);
    expect((await get(`/audit/decisions/${events[0]!.event.decision_id}/explain`, 'storefront')).status).toBe(403);
    expect((await get('/audit/decisions/..%2F..%2Fetc/explain')).status).toBe(400);
  });

  it("explains on another engine replica sharing the store a decision whose revision only the first served", async () => {
    // Replica B serves no bundle at all: what it explains with can only come from the shared store.
    const empty = join(dir, `replica-${backend.name}`);
    mkdirSync(empty, { recursive: true });
    const serving = await stack.ca.server('127.0.0.1');
    const b = await startEngineService({ bundlesDir: empty, host: '127.0.0.1', port: 0, storeUrl: stack.files.store, tls: { cert: serving.cert, key: serving.key, clientCa: stack.ca.cert }, readers: [ID.auditor], logger: pino({ level: 'silent' }) });
    try {
      const e = find((s) => (s.event.input?.mcp as { tool?: string } | undefined)?.tool === 'drop_table');
      const r = await get(`${b.url}/audit/decisions/${e.decision_id}/explain`);
      expect(r.status, r.text).toBe(200);
      const x = JSON.parse(r.text) as Explanation;
      expect(x.bundle).toMatchObject({ name: 'ops-mcp', found: 'archive', revision: e.bundles['ops-mcp']!.revision });
      expect(x.replay.status).toBe('masked-confirmed');
    } finally {
      await b.close();
    }
  });

  it("serves the console's pages from this store: feed, graph edges, a denial, a workload with its pods' drop counters, admission refusals", async () => {
    const drop = find((s) => (s.event.input?.mcp as { tool?: string } | undefined)?.tool === 'drop_table');
    const feed = await get('/ui/feed?decision=deny&workload=ops-mcp');
    expect(feed.status).toBe(200);
    expect(feed.text).toContain(`/ui/decisions/${drop.decision_id}`);
    const graph = JSON.parse((await get('/ui/api/graph')).text) as { edges: Array<{ source: string; destination: string; deny: number; allow: number }> };
    const edge = (from: string, to: string) => graph.edges.find((g) => g.source === from && g.destination === to);
    expect(edge(ID.storefront, 'orders')?.allow).toBeGreaterThan(0);
    expect(edge('support-agent', 'ops-mcp')?.deny).toBeGreaterThan(0);
    expect(edge('anonymous', 'storefront')).toBeDefined();
    const decision = await get(`/ui/decisions/${drop.decision_id}`);
    expect(decision.text).toContain('grants the workload identity spiffe://cluster.local/ns/platform/sa/dba-bot only; the caller authenticated with a JWT');
    const workload = await get('/ui/workloads/ops-mcp');
    expect(workload.text).toContain('tool:drop_table');
    // The ops-mcp sidecar reported its drop counter with its decision log: no event lost.
    expect(workload.text).toMatch(/<table id="drops">.*<td class="outcome">0<\/td>/s);
    expect(workload.text).toContain('0 event(s) lost for good by 1 pod(s)');
    const admission = await get('/ui/admission');
    expect(admission.text).toMatch(/<code>guardrails\/no-latest-tag<\/code><\/td><td>shop<\/td><td>1</);
  });
});
