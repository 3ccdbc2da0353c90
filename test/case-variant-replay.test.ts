// A call the sidecar refused for a key that differs only by case from one the policy reads (400,
// recorded like any decision), replayed by `warden diff` and explained by `warden explain`, both run as
// real CLI processes over the audit store of the system `warden up` runs (engine, sidecars, SQLite).
// The refusal must come back as a refusal: never as an internal error (exit 2), never as a flip unless
// one revision refuses the call and the other does not.
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack } from '../cli/up-stack.js';
import type { StoredEvent } from '../engine/audit/store.js';
import type { Review } from '../engine/diff/review.js';
import type { Explanation } from '../engine/explain/explanation.js';
import { repoRoot } from '../engine/toolchain/paths.js';
import type { DecisionEvent } from '../formats/decision-event.js';
import { examplePolicies } from './support/example-policies.js';
import { policyWorkspace, type PolicyWorkspace } from './support/policy-repo.js';

const execFileP = promisify(execFile);

async function warden(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await execFileP(process.execPath, [join(repoRoot, 'bin', 'warden.js'), ...args], { cwd, maxBuffer: 64 << 20 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

// The refusal runtime/input-selection.ts words, for a key of the caller's MCP arguments.
const refused = (key: string, read: string) => `request refused: the key "${key}" differs only by case from "${read}", which the policy reads: readers differ on which one counts`;

const dir = mkdtempSync(join(tmpdir(), 'warden-case-variant-replay-'));
let store: string;
let ws: PolicyWorkspace;
// The policy commits: as served (A), refunds above 400 denied (B), and a rule that reads `reason` (C).
const rev = { a: '', b: '', c: '' };
// Decision ids: the sidecar's refusal, and an allow recorded as a sidecar from before the check recorded one.
const ids = { refused: '', earlier: '' };
let recordedCalls = 0;

// The refund_order calls the review replays, as recorded calls and as fixtures: a case variant of
// `amount` (refused on every revision), a plain refund of 450 (allowed at 500, denied at 400) and a
// refund of 100 with `Reason` (allowed until a revision reads `reason`).
const ARGUMENTS = [{ id: '41', Amount: 450 }, { id: '42', amount: 450 }, { id: '43', amount: 100, Reason: 'charged twice' }];

beforeAll(async () => {
  cpSync((await examplePolicies()).dir, dir, { recursive: true });
  const stack = await startStack({ bundlesDir: join(dir, 'bundles'), stateDir: join(dir, 'state'), enginePort: 0, webhookPort: 0 });
  store = stack.files.store;
  try {
    // Each refund through the ops-mcp sidecar with the official MCP client, as an agent allowed to refund.
    const call = async (args: Record<string, unknown>): Promise<string> => {
      const seen: string[] = [];
      const token = await stack.token('support-agent', 'ops-mcp', { scope: 'tools:read tools:write' });
      const client = new Client({ name: 'support-agent', version: '1.0.0' });
      const fetchRecording = async (input: string | URL | Request, init?: RequestInit) => {
        const res = await fetch(input, init);
        seen.push(...(res.headers.get('x-warden-decision-id') ?? '').split(',').filter(Boolean));
        return res;
      };
      await client.connect(new StreamableHTTPClientTransport(new URL(`${stack.workloads['ops-mcp'].url}/mcp`), { requestInit: { headers: { authorization: `Bearer ${token}` } }, fetch: fetchRecording }));
      await client.callTool({ name: 'refund_order', arguments: args }).catch(() => undefined);
      await client.close();
      return seen[seen.length - 1]!;
    };
    const answers: string[] = [];
    for (const args of ARGUMENTS) answers.push(await call(args));
    ids.refused = answers[0]!;
    await stack.flush();
    const stored = async () => stack.engine.store!.query({ sort: 'seq', limit: 1000 });
    const plain = (await stored()).find((s) => s.event.decision_id === answers[1])!.event;
    // What a sidecar from before the check recorded for `{amount: 450, AMOUNT: 100000}`: the policy read
    // `amount` and allowed it (mcp-go, last match winning, refunded 100,000). Shipped by the ops-mcp pod's own log.
    const input = plain.input as { mcp: { arguments: Record<string, unknown> } };
    const earlier: DecisionEvent = { ...plain, decision_id: `${plain.decision_id}-earlier`, input: { ...plain.input, mcp: { ...input.mcp, arguments: { ...input.mcp.arguments, AMOUNT: 100000 } } } };
    ids.earlier = earlier.decision_id;
    stack.workloads['ops-mcp'].plugin.log.record(earlier);
    await stack.flush();
    const events: StoredEvent[] = await stored();
    expect(events.find((s) => s.event.decision_id === ids.earlier)?.event.outcome).toBe('allow');
    const refusal = events.find((s) => s.event.decision_id === ids.refused)!.event;
    expect(refusal).toMatchObject({ outcome: 'deny', error: refused('Amount', 'amount') });
    expect(refusal.result).toBeUndefined();
    recordedCalls = events.filter((s) => s.event.kind === 'http' || s.event.kind === 'mcp').length;
  } finally {
    await stack.close();
  }

  ws = policyWorkspace();
  const destination = { workload: 'ops-mcp', namespace: 'agents', principal: 'spiffe://cluster.local/ns/agents/sa/ops-mcp' };
  const fixture = (args: Record<string, unknown>) => ({
    source: { principal: 'fixture-agent', authn: 'jwt', claims: { sub: 'fixture-agent', scope: 'tools:read tools:write' }, address: '10.1.0.5' },
    destination,
    request: { method: 'POST', path: '/mcp', segments: ['mcp'], query: {}, headers: {} },
    mcp: { method: 'tools/call', tool: 'refund_order', arguments: args },
  });
  mkdirSync(join(ws.repo, 'workloads/ops-mcp/fixtures'));
  ws.write('workloads/ops-mcp/fixtures/refunds.json', `${JSON.stringify(ARGUMENTS.map(fixture), null, 2)}\n`);
  rev.a = ws.commit('refund fixtures');
  ws.edit('workloads/ops-mcp/policy.rego', 'refund_limit := 500', 'refund_limit := 400');
  rev.b = ws.commit('smaller refunds');
  ws.edit('workloads/ops-mcp/policy.rego', 'numeric_amount if', 'deny contains "refund_order: the reason must not be empty" if {\n\trefund\n\tinput.mcp.arguments.reason == ""\n}\n\nnumeric_amount if');
  rev.c = ws.commit('a refund reason, when given, must say something');
}, 240_000);

afterAll(() => {
  ws?.remove();
  rmSync(dir, { recursive: true, force: true });
});

const diff = (base: string, head: string, format: string) => warden(['diff', '--repo', ws.repo, '--base', base, '--head', head, '--store', store, '--since', '1h', '--format', format], ws.dir);
const refundFlips = (r: Review) => r.workloads.flatMap((w) => w.flips).filter((f) => f.target === 'tool:refund_order');

describe('warden diff over recorded and fixture calls holding a case-variant key', () => {
  it('replays a refused call as refused on both revisions: no flip, no error, the other calls as usual', async () => {
    const json = await diff(rev.a, rev.b, 'json');
    expect(json.code, json.stderr).toBe(0);
    expect(json.stderr).toBe('');
    const r = JSON.parse(json.stdout) as Review;
    expect(r.recordedCalls).toBe(recordedCalls);
    // Only the plain refund of 450 flips, once recorded and once as a fixture; the variants (`Amount`, and
    // `AMOUNT` beside `amount`) are refused on both sides, and the refund of 100 passes on both.
    expect(refundFlips(r).map((f) => [f.direction, f.count, [...f.origins].sort(), f.headReasons])).toEqual([['allow-to-deny', 2, ['fixture', 'recorded'], ['refund_order: refunds above 400 need a person, not an agent']]]);
    expect(r.totals).toEqual({ 'deny-to-allow': 0, 'allow-to-deny': 2 });
    const md = await diff(rev.a, rev.b, 'markdown');
    expect(md.code, md.stderr).toBe(0);
    expect(md.stdout).toContain('| 🔒 allow → deny | `tool:refund_order` | `fixture-agent`, `support-agent` | 2 | refund_order: refunds above 400 need a person, not an agent |');
    expect(md.stdout).not.toContain('request refused');
  }, 120_000);

  it('shows a case variant refused on one revision only as a flip with the refusal as its reason', async () => {
    const json = await diff(rev.b, rev.c, 'json');
    expect(json.code, json.stderr).toBe(0);
    const r = JSON.parse(json.stdout) as Review;
    const flips = refundFlips(r);
    expect(flips.map((f) => [f.direction, f.count, [...f.origins].sort(), f.headReasons])).toEqual([['allow-to-deny', 2, ['fixture', 'recorded'], [refused('Reason', 'reason')]]]);
    expect(flips[0]!.example.mcp?.arguments).toMatchObject({ Reason: 'charged twice' });
    expect(flips[0]!.baseReasons[0]).toMatch(/^tool refund_order granted by x-warden-authz\.allow\[0\]/);
    const terminal = await diff(rev.b, rev.c, 'terminal');
    expect(terminal.code, terminal.stderr).toBe(0);
    expect(terminal.stdout).toContain('allow → deny  tool:refund_order  2 call(s)  callers: fixture-agent, support-agent');
    expect(terminal.stdout).toContain(`now: ${refused('Reason', 'reason')}`);
  }, 120_000);
});

describe('warden explain on a case-variant refusal, from the audit store', () => {
  it('prints the refusal the sidecar recorded and exits 0', async () => {
    const table = await warden(['explain', ids.refused, '--store', store, '-o', 'table'], dir);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toContain(`decision ${ids.refused}: DENY (enforce)`);
    expect(table.stdout).toContain(`  replay    not-replayable: the call was refused before the policy decided: ${refused('Amount', 'amount')}; there is nothing to replay`);
    expect(table.stdout).toContain(`  error     ${refused('Amount', 'amount')}`);
    const json = await warden(['explain', ids.refused, '--store', store, '-o', 'json'], dir);
    expect(json.code, json.stderr).toBe(0);
    const x = JSON.parse(json.stdout) as Explanation;
    expect(x.stored).toEqual({ reasons: [], error: refused('Amount', 'amount') });
    expect(x.bundle.found).toBe('archive');
  }, 60_000);

  it('replays an allow recorded before the check as the refusal it now is, and prints it', async () => {
    const json = await warden(['explain', ids.earlier, '--store', store, '-o', 'json'], dir);
    expect(json.code, json.stderr).toBe(0);
    const x = JSON.parse(json.stdout) as Explanation;
    expect(x.stored.allow).toBe(true);
    // (masked: the token the agent presented, not a key the refund rules read)
    expect(x.replay).toMatchObject({ status: 'masked-differs', allow: false, reasons: [refused('AMOUNT', 'amount')] });
    const table = await warden(['explain', ids.earlier, '--store', store, '-o', 'table'], dir);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toContain('  replay    masked-differs: an exact replay is impossible: ');
    // The views for a person say what the replay gave, not only that it differs.
    expect(table.stdout).toContain(`  replayed  deny: ${refused('AMOUNT', 'amount')}\n`);
    const md = await warden(['explain', ids.earlier, '--store', store, '-o', 'markdown'], dir);
    expect(md.code, md.stderr).toBe(0);
    expect(md.stdout).toContain(`| replayed | deny: ${refused('AMOUNT', 'amount')} |`);
  }, 60_000);
});
