// `warden audit …` as a user runs it: the real CLI process on a real SQLite file and a real HTTPS engine.
import Database from 'better-sqlite3';
import express from 'express';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DecisionEvent } from '../../formats/decision-event.js';
import { makeEvents } from '../../test/support/decision-events.js';
import { createCa } from '../../test/support/tls.js';
import { loadCheckpointSigner, publicKeyPath } from '../audit/chain.js';
import { checkpointHead } from '../audit/checkpoints.js';
import { auditRouter } from '../audit/ingest.js';
import { spiffePeer } from '../audit/peer-identity.js';
import { openStore } from '../audit/open-store.js';
import { repoRoot } from '../toolchain/paths.js';

const tmp = mkdtempSync(join(tmpdir(), 'warden-audit-cli-'));
const db = join(tmp, 'audit.db');
const store = `sqlite:${db}`;
const key = join(tmp, 'checkpoint.jwk');
const AGENT = 'spiffe://cluster.local/ns/shop/sa/agent';
let events: DecisionEvent[];

function warden(args: string[]): { proc: ChildProcess; done: Promise<{ code: number | null; stdout: string; stderr: string }> } {
  const proc = spawn(process.execPath, [join(repoRoot, 'bin', 'warden.js'), ...args], { cwd: tmp, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
  proc.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => proc.on('close', (code) => resolve({ code, stdout, stderr })));
  return { proc, done };
}

const run = (...args: string[]) => warden(args).done;

beforeAll(async () => {
  const s = await openStore(store);
  events = makeEvents(12, (i) => ({
    principal: i < 4 ? AGENT : undefined,
    outcome: i < 4 ? 'deny' : 'allow',
    workload: i % 2 ? 'orders' : 'db-mcp',
    tool: i % 2 ? undefined : 'drop_table',
    operation: i % 2 ? 'deleteOrder' : undefined,
  }));
  await s.append(events, Date.now());
  await checkpointHead(s, (await loadCheckpointSigner(key, { create: true })).signer, Date.now);
  await s.close();
});

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('warden audit', () => {
  it('query prints exactly the matching events as JSON and NDJSON', async () => {
    const json = await run('audit', 'query', '--store', store, '--workload', 'orders', '--decision', 'deny', '--sort', 'seq', '-o', 'json');
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual([events[1], events[3]]);
    const nd = await run('audit', 'query', '--store', store, '--tool', 'drop_table', '--limit', '2', '-o', 'ndjson');
    expect(nd.stdout.trim().split('\n').map((l) => JSON.parse(l) as DecisionEvent)).toEqual([events[10], events[8]]);
  });

  it('names the flag of a malformed time, a bad value, an unknown filter and a bad store URL', async () => {
    const since = await run('audit', 'query', '--store', store, '--since', '5 minutes');
    expect([since.code, since.stderr]).toEqual([1, expect.stringContaining('warden: --since: "5 minutes" is not a duration')]);
    const from = await run('audit', 'query', '--store', store, '--from', '2026-11-25');
    expect(from.stderr).toContain('warden: --from: "2026-11-25" is not an RFC 3339 time');
    const decision = await run('audit', 'top', '--store', store, '--decision', 'maybe');
    expect(decision.stderr).toContain('warden: --decision: "maybe" is not one of allow, deny, dry-run-deny');
    const unknown = await run('audit', 'query', '--store', store, '--colour', 'red');
    expect([unknown.code, unknown.stderr]).toEqual([1, expect.stringContaining("unknown option '--colour'")]);
    const url = await run('audit', 'query', '--store', 'mysql://x');
    expect(url.stderr).toContain('warden: --store: store URL "mysql://x" is not sqlite:<file> or postgres://');
  });

  it('top and graph print the aggregates as JSON, DOT and Mermaid', async () => {
    const top = await run('audit', 'top', '--store', store, '--by', 'principal', '-o', 'json');
    expect(JSON.parse(top.stdout)).toEqual([{ key: AGENT, count: 4 }]);
    const tools = await run('audit', 'top', '--store', store, '--by', 'tool', '-o', 'table');
    expect(tools.stdout).toBe('COUNT  WORKLOAD  TOOL\n2      db-mcp    drop_table\n');
    const dot = await run('audit', 'graph', '--store', store, '-o', 'dot');
    expect(dot.stdout).toMatch(/^digraph warden \{/);
    expect(dot.stdout).toContain(`"principal:${AGENT}" -> "workload:shop/orders" [label="allow 0 / deny 2", color=red];`);
    const mermaid = await run('audit', 'graph', '--store', store, '-o', 'mermaid');
    expect(mermaid.stdout).toMatch(/^flowchart LR\n/);
    expect(mermaid.stdout).toContain('-->|"allow 4 / deny 0"|');
  });

  it('tail prints events stored after it started', async () => {
    const t = warden(['audit', 'tail', '--store', store, '--last', '1', '--interval', '50ms', '-o', 'ndjson']);
    const lines: string[] = [];
    let wanted = 1;
    let onLines: () => void = () => undefined;
    t.proc.stdout!.on('data', (b: Buffer) => {
      lines.push(...b.toString().split('\n').filter(Boolean));
      if (lines.length >= wanted) onLines();
    });
    const got = (n: number) =>
      new Promise<void>((resolve) => {
        wanted = n;
        onLines = resolve;
        if (lines.length >= n) resolve();
      });
    await got(1); // the newest existing event: tail is running
    const s = await openStore(store);
    const fresh = makeEvents(3, () => ({ workload: 'orders' }));
    await s.append(fresh, Date.now());
    await s.close();
    await got(4);
    t.proc.kill('SIGINT');
    expect((await t.done).code).toBe(0);
    expect(lines.map((l) => (JSON.parse(l) as DecisionEvent).decision_id)).toEqual([events[11]!.decision_id, ...fresh.map((e) => e.decision_id)]);
  });

  it('verify passes on an intact store and names the event edited in the SQLite file', async () => {
    const ok = await run('audit', 'verify', '--store', store, '--public-key', publicKeyPath(key));
    expect([ok.code, ok.stdout]).toEqual([0, expect.stringContaining('ok: the chain is intact')]);
    const copy = join(tmp, 'tampered.db');
    const src = new Database(db);
    await src.backup(copy);
    src.close();
    const t = new Database(copy);
    t.prepare(`UPDATE events SET event = replace(event, '"outcome":"deny"', '"outcome":"allow"'), outcome = 'allow' WHERE seq = 2`).run();
    t.close();
    const bad = await run('audit', 'verify', '--store', `sqlite:${copy}`, '--public-key', publicKeyPath(key));
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain(`EDITED         event seq 2 (decision ${events[1]!.decision_id}) was edited: its content no longer matches its hash`);
    // The outcome column was edited too: the hourly edge rollup no longer matches the events either.
    expect(bad.stdout).toMatch(/ROLLUP +edge rollup, hour from .*→ shop\/orders deny holds 2 but the events count 1/);
    expect(bad.stdout).toContain('FAILED: 3 problem(s)');
  });

  it('retention deletes the oldest events and verify still passes', async () => {
    const copy = join(tmp, 'retained.db');
    const src = new Database(db);
    await src.backup(copy);
    src.close();
    const r = await run('audit', 'retention', '--store', `sqlite:${copy}`, '--max-rows', '5', '--key', key, '--batch', '2');
    expect([r.code, r.stdout]).toEqual([0, expect.stringMatching(/^deleted \d+ events in \d+ batches; the log now starts at seq \d+\n$/)]);
    const v = await run('audit', 'verify', '--store', `sqlite:${copy}`, '--public-key', publicKeyPath(key), '-o', 'json');
    expect(JSON.parse(v.stdout)).toMatchObject({ ok: true, events: 5, problems: [] });
  });

  it('queries a running engine over mTLS with --engine', async () => {
    const ca = await createCa();
    const serverCert = await ca.server('127.0.0.1');
    const reader = 'spiffe://cluster.local/ns/warden/sa/cli';
    const client = await ca.client(reader);
    for (const [name, pem] of Object.entries({ 'ca.pem': ca.cert, 'cli.pem': client.cert, 'cli-key.pem': client.key })) writeFileSync(join(tmp, name), pem);
    const s = await openStore(store);
    const app = express().use(auditRouter({ store: s, identify: spiffePeer, writers: {}, readers: [reader] }));
    const server: Server = createServer({ key: serverCert.key, cert: serverCert.cert, ca: ca.cert, requestCert: true, rejectUnauthorized: false }, app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const engine = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const tls = ['--engine', engine, '--engine-ca', 'ca.pem', '--engine-cert', 'cli.pem', '--engine-key', 'cli-key.pem'];
      const q = await run('audit', 'query', ...tls, '--principal', AGENT, '--sort', 'seq', '-o', 'json');
      expect(JSON.parse(q.stdout)).toEqual(events.slice(0, 4));
      const top = await run('audit', 'top', ...tls, '--by', 'operation', '-o', 'json');
      expect(JSON.parse(top.stdout)).toEqual([{ key: 'deleteOrder', workload: 'orders', count: 2 }]);
      const bad = await run('audit', 'query', ...tls, '--since', '1y');
      expect(bad.stderr).toContain('warden: --since: "1y" is not a duration');
      const anonymous = await run('audit', 'query', '--engine', engine, '--engine-ca', 'ca.pem');
      expect([anonymous.code, anonymous.stderr]).toEqual([1, expect.stringContaining('answered 401: unauthenticated')]);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await s.close();
    }
  });
});
