// One behaviour suite for both audit store backends: a real SQLite file and a real PostgreSQL server.
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decisionEvent } from '../../formats/decision-event.js';
import { makeEvent, makeEvents } from '../../test/support/decision-events.js';
import { startPostgres, type PostgresServer } from '../../test/support/postgres.js';
import { canonical, chainHash, GENESIS_HASH, loadCheckpointSigner, signCheckpoint, type CheckpointSigner } from './chain.js';
import { checkpointHead } from './checkpoints.js';
import { parseFilter, type RawFilter } from './query.js';
import { applyRetention } from './retention.js';
import { openStore } from './open-store.js';
import type { AuditStore } from './store.js';
import { SCHEMA_VERSION } from './table.js';
import { verifyStore } from './verify.js';
import type { RefusalWindow } from './refusals.js';

interface Backend {
  name: string;
  /** A URL for a new, empty store. */
  fresh(): Promise<string>;
  /** Run SQL on the store's database behind Warden's back (the store is closed first). */
  tamper(url: string, sql: string): Promise<void>;
  /** Read rows with SQL of its own, beside the open store. */
  rows(url: string, sql: string): Promise<unknown[]>;
  setup?(): Promise<void>;
  teardown?(): Promise<void>;
}

const tmp = mkdtempSync(join(tmpdir(), 'warden-audit-store-'));
let dbCount = 0;
let server: PostgresServer | undefined;

const backends: Backend[] = [
  {
    name: 'SQLite',
    fresh: () => Promise.resolve(`sqlite:${join(tmp, `audit-${++dbCount}.db`)}`),
    tamper: (url, sql) => {
      const db = new Database(url.slice('sqlite:'.length));
      db.exec(sql);
      db.close();
      return Promise.resolve();
    },
    rows: (url, sql) => {
      const db = new Database(url.slice('sqlite:'.length), { readonly: true });
      try {
        return Promise.resolve(db.prepare(sql).all());
      } finally {
        db.close();
      }
    },
  },
  {
    name: 'PostgreSQL',
    setup: async () => {
      server = await startPostgres({ settings: { fsync: 'off' } });
    },
    teardown: async () => {
      await server?.stop();
    },
    fresh: () => server!.createDatabase(`audit_${++dbCount}`),
    tamper: async (url, sql) => {
      await pgRows(url, sql);
    },
    rows: async (url, sql) => (await pgRows(url, sql)).map((r) => ({ ...r, seq: Number(r.seq) })),
  },
];

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function pgRows(url: string, sql: string): Promise<Array<Record<string, unknown>>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<Record<string, unknown>>(sql)).rows;
  } finally {
    await client.end();
  }
}

const NOW = Date.UTC(2026, 10, 25, 12, 0, 0);
// Outcome is stored as a name id: a tamperer who wants "deny" in a store that holds none adds the name.
const NAME_DENY = `INSERT INTO audit_names (value) VALUES ('deny') ON CONFLICT (value) DO NOTHING`;
const filter = (raw: RawFilter = {}) => parseFilter(raw, NOW);

describe.each(backends)('audit store on $name', (backend) => {
  let signer: CheckpointSigner;
  const open: AuditStore[] = [];
  const openNew = async () => {
    const url = await backend.fresh();
    const store = await openStore(url);
    open.push(store);
    return { url, store };
  };
  const reopen = async (url: string) => {
    const store = await openStore(url);
    open.push(store);
    return store;
  };

  beforeAll(async () => {
    await backend.setup?.();
    signer = (await loadCheckpointSigner(join(tmp, `key-${backend.name}.jwk`), { create: true })).signer;
  });
  afterAll(async () => {
    for (const s of open) await s.close();
    await backend.teardown?.();
  });

  it('returns exactly the events each filter selects, newest first', async () => {
    const { store } = await openNew();
    const events = [
      makeEvent({ id: 'evt-a-000001', time: '2026-11-25T09:00:00.000Z', workload: 'orders', method: 'GET', path: '/orders/1', operation: 'getOrder' }),
      makeEvent({ id: 'evt-b-000002', time: '2026-11-25T10:00:00.000Z', workload: 'orders', outcome: 'deny', method: 'DELETE', path: '/orders/2', operation: 'deleteOrder', principal: 'spiffe://cluster.local/ns/shop/sa/agent' }),
      makeEvent({ id: 'evt-c-000003', time: '2026-11-25T11:00:00.000Z', workload: 'db-mcp', namespace: 'data', tool: 'drop_table', outcome: 'deny', principal: 'spiffe://cluster.local/ns/shop/sa/agent', revision: 'rev-2' }),
      makeEvent({ id: 'evt-d-000004', time: '2026-11-25T11:30:00.000Z', workload: 'db-mcp', namespace: 'data', tool: 'select', outcome: 'dry-run-deny', revision: 'rev-2' }),
      makeEvent({ id: 'evt-e-000005', time: '2026-11-25T11:45:00.000Z', workload: 'payments', path: '/payments/refunds/9', method: 'POST', operation: 'refund' }),
    ];
    const r = await store.append(events, NOW);
    expect(r).toMatchObject({ stored: 5, duplicates: [] });

    const ids = async (raw: RawFilter) => (await store.query(filter(raw))).map((s) => s.event.decision_id);
    expect(await ids({})).toEqual(['evt-e-000005', 'evt-d-000004', 'evt-c-000003', 'evt-b-000002', 'evt-a-000001']);
    expect(await ids({ sort: 'time' })).toEqual(['evt-a-000001', 'evt-b-000002', 'evt-c-000003', 'evt-d-000004', 'evt-e-000005']);
    expect(await ids({ limit: '2' })).toEqual(['evt-e-000005', 'evt-d-000004']);
    expect(await ids({ workload: 'orders' })).toEqual(['evt-b-000002', 'evt-a-000001']);
    expect(await ids({ namespace: 'data' })).toEqual(['evt-d-000004', 'evt-c-000003']);
    expect(await ids({ principal: 'spiffe://cluster.local/ns/shop/sa/agent' })).toEqual(['evt-c-000003', 'evt-b-000002']);
    expect(await ids({ decision: 'deny' })).toEqual(['evt-c-000003', 'evt-b-000002']);
    expect(await ids({ decision: ['deny', 'dry-run-deny'] })).toEqual(['evt-d-000004', 'evt-c-000003', 'evt-b-000002']);
    expect(await ids({ method: 'delete' })).toEqual(['evt-b-000002']);
    expect(await ids({ 'path-prefix': '/payments/' })).toEqual(['evt-e-000005']);
    expect(await ids({ 'path-prefix': '/Payments/' })).toEqual([]);
    expect(await ids({ operation: 'getOrder' })).toEqual(['evt-a-000001']);
    expect(await ids({ tool: 'drop_table' })).toEqual(['evt-c-000003']);
    expect(await ids({ revision: 'rev-2' })).toEqual(['evt-d-000004', 'evt-c-000003']);
    expect(await ids({ 'decision-id': 'evt-b-000002' })).toEqual(['evt-b-000002']);
    expect(await ids({ from: '2026-11-25T10:00:00Z', to: '2026-11-25T11:30:00Z' })).toEqual(['evt-c-000003', 'evt-b-000002']);
    expect(await ids({ since: '1h' })).toEqual(['evt-e-000005', 'evt-d-000004', 'evt-c-000003']);
    expect(await ids({ workload: 'db-mcp', decision: 'deny', since: '2h' })).toEqual(['evt-c-000003']);
    // The stored event is the event that was sent.
    const [got] = await store.query(filter({ 'decision-id': 'evt-c-000003' }));
    expect(got?.event).toEqual(events[2]);
  });

  it('stores non-ASCII text as text that reads back, filters and verifies as sent', async () => {
    const { url, store } = await openNew();
    const odd = [
      makeEvent({ path: '/bestellungen/größe/日本語', principal: 'spiffe://cluster.local/ns/shop/sa/ägent', reasons: ['nicht erlaubt 🚫'], outcome: 'deny' }),
      makeEvent({ tool: 'résumé_lookup', reasons: ['lone \ud800 surrogate'], outcome: 'deny' }),
      makeEvent({ path: '/plain' }),
    ];
    expect(await store.append(odd, NOW)).toMatchObject({ stored: 3 });
    expect((await store.query(filter({ sort: 'seq' }))).map((s) => s.event)).toEqual(odd.map((e) => JSON.parse(JSON.stringify(e)) as unknown));
    expect((await store.query(filter({ principal: 'spiffe://cluster.local/ns/shop/sa/ägent' }))).map((s) => s.event.decision_id)).toEqual([odd[0]!.decision_id]);
    expect((await store.query(filter({ 'path-prefix': '/bestellungen/größe/' }))).map((s) => s.event.decision_id)).toEqual([odd[0]!.decision_id]);
    expect((await store.query(filter({ tool: 'résumé_lookup' }))).map((s) => s.event.decision_id)).toEqual([odd[1]!.decision_id]);
    expect(await verifyStore(store, signer.publicJwk)).toMatchObject({ ok: true, events: 3 });
    // Stored as text, not bytes: SQL on the column (a person's ad hoc query) sees the JSON.
    const sql = url.startsWith('sqlite:')
      ? `SELECT seq FROM events WHERE typeof(event) = 'text' AND json_extract(event, '$.input.request.path') = '/bestellungen/größe/日本語'`
      : `SELECT seq FROM events WHERE event LIKE '%"path":"/bestellungen/größe/日本語"%'`; // (jsonb refuses the escaped lone surrogate of seq 2)
    expect(await backend.rows(url, sql)).toEqual([{ seq: 1 }]);
  });

  it('stores the same batch sent twice once, and reports the repeats as duplicates', async () => {
    const { store } = await openNew();
    const batch = makeEvents(20);
    expect(await store.append(batch, NOW)).toMatchObject({ stored: 20, duplicates: [] });
    const again = await store.append(batch, NOW);
    expect(again.stored).toBe(0);
    expect(again.duplicates).toEqual(batch.map((e) => e.decision_id));
    const withRepeat = [...makeEvents(2), batch[0]!];
    withRepeat.push(withRepeat[0]!);
    const mixed = await store.append(withRepeat, NOW);
    expect(mixed.stored).toBe(2);
    expect(mixed.duplicates.sort()).toEqual([batch[0]!.decision_id, withRepeat[0]!.decision_id].sort());
    expect((await store.bounds())?.count).toBe(22);
    expect((await verifyStore(store, signer.publicJwk)).problems).toEqual([]);
  });

  it('loses nothing acknowledged across a close and reopen, and keeps the chain going', async () => {
    const { url, store } = await openNew();
    const first = makeEvents(50);
    await store.append(first, NOW);
    await checkpointHead(store, signer, () => NOW);
    const id = store.id;
    await store.close();
    const again = await reopen(url);
    expect(again.id).toBe(id);
    expect((await again.query(filter({ limit: '1000', sort: 'seq' }))).map((s) => s.event)).toEqual(first);
    await again.append(makeEvents(10), NOW);
    const report = await verifyStore(again, signer.publicJwk);
    expect(report).toMatchObject({ ok: true, events: 60, first_seq: 1, last_seq: 60, checkpoints: 1 });
  });

  it('stores nothing of a batch that fails, and forgets the names that batch created', async () => {
    const { store } = await openNew();
    const fresh = makeEvent({ workload: 'brand-new-workload', namespace: 'brand-new-ns' });
    // A timestamp that is not a time cannot be stored: the whole batch, names included, rolls back.
    const broken = { ...makeEvent(), timestamp: 'not a time' };
    await expect(store.append([fresh, broken], NOW)).rejects.toThrow();
    expect(await store.bounds()).toBeUndefined();
    const again = makeEvent({ workload: 'brand-new-workload', namespace: 'brand-new-ns' });
    expect(await store.append([again], NOW)).toMatchObject({ stored: 1 });
    expect((await store.query(filter({ workload: 'brand-new-workload' }))).map((e) => e.event)).toEqual([again]);
    expect((await verifyStore(store)).problems).toEqual([]);
  });

  it('keeps one chain when appends run concurrently', async () => {
    const { store } = await openNew();
    await Promise.all(Array.from({ length: 8 }, () => store.append(makeEvents(100), NOW)));
    const report = await verifyStore(store);
    expect(report).toMatchObject({ ok: true, events: 800, last_seq: 800 });
  });

  it('counts the top denied principals, operations and tools', async () => {
    const { store } = await openNew();
    const agent = 'spiffe://cluster.local/ns/shop/sa/agent';
    const batch = [
      ...makeEvents(3, () => ({ principal: agent, outcome: 'deny', operation: 'deleteOrder' })),
      ...makeEvents(2, () => ({ outcome: 'deny', operation: 'refund', workload: 'payments' })),
      ...makeEvents(4, () => ({ principal: agent, outcome: 'deny', workload: 'db-mcp', tool: 'drop_table' })),
      ...makeEvents(1, () => ({ principal: agent, outcome: 'dry-run-deny', workload: 'db-mcp', tool: 'truncate' })),
      ...makeEvents(5, () => ({ principal: agent, outcome: 'allow', operation: 'getOrder' })),
    ];
    await store.append(batch, NOW);
    const denied = filter({ decision: 'deny' });
    expect(await store.top('principal', denied)).toEqual([
      { key: agent, count: 7 },
      { key: 'spiffe://cluster.local/ns/shop/sa/frontend', count: 2 },
    ]);
    expect(await store.top('operation', denied)).toEqual([
      { key: 'deleteOrder', workload: 'orders', count: 3 },
      { key: 'refund', workload: 'payments', count: 2 },
    ]);
    expect(await store.top('tool', filter({ decision: ['deny', 'dry-run-deny'] }))).toEqual([
      { key: 'drop_table', workload: 'db-mcp', count: 4 },
      { key: 'truncate', workload: 'db-mcp', count: 1 },
    ]);
  });

  it('aggregates who talks to whom with allow and deny counts', async () => {
    const { store } = await openNew();
    const fe = 'spiffe://cluster.local/ns/shop/sa/frontend';
    const agent = 'spiffe://cluster.local/ns/shop/sa/agent';
    await store.append(
      [
        ...makeEvents(6, () => ({ principal: fe, workload: 'orders' })),
        ...makeEvents(1, () => ({ principal: fe, workload: 'orders', outcome: 'deny' })),
        ...makeEvents(2, () => ({ principal: agent, workload: 'db-mcp', namespace: 'data', outcome: 'deny', tool: 'drop_table' })),
        ...makeEvents(1, () => ({ principal: agent, workload: 'db-mcp', namespace: 'data', outcome: 'dry-run-deny', tool: 'x' })),
      ],
      NOW,
    );
    expect(await store.edges(filter())).toEqual([
      { source: fe, destination: 'orders', namespace: 'shop', allow: 6, deny: 1, dry_run_deny: 0, total: 7 },
      { source: agent, destination: 'db-mcp', namespace: 'data', allow: 0, deny: 2, dry_run_deny: 1, total: 3 },
    ]);
  });

  describe('the hourly edge rollup', () => {
    const hour = 3_600_000;
    const fe = 'spiffe://cluster.local/ns/shop/sa/frontend';
    const agent = 'spiffe://cluster.local/ns/shop/sa/agent';
    // 120 events over the 6 hours before NOW, 20 minutes apart plus a few seconds, so every hour holds events and windows cut hours in two.
    const spread = () =>
      makeEvents(120, (i) => ({
        time: new Date(NOW - 6 * hour + i * 3 * 60_000 + (i % 7) * 1000),
        principal: i % 3 === 0 ? agent : fe,
        workload: i % 4 === 0 ? 'db-mcp' : 'orders',
        outcome: i % 5 === 0 ? 'deny' : i % 11 === 0 ? 'dry-run-deny' : 'allow',
        ...(i % 4 === 0 ? { tool: 'query' } : {}),
      }));
    // The aggregate counted by hand from the events, as the events table alone would answer it.
    const expected = (events: ReturnType<typeof makeEvents>, f: ReturnType<typeof filter>) => {
      const edges = new Map<string, { source: string; destination: string; namespace: string; allow: number; deny: number; dry_run_deny: number; total: number }>();
      for (const e of events) {
        const t = Date.parse(e.timestamp);
        const source = (e.input as { source: { principal: string } }).source.principal;
        if ((f.from !== undefined && t < f.from) || (f.to !== undefined && t >= f.to)) continue;
        if ((f.workload && !f.workload.includes(e.labels.workload)) || (f.principal && !f.principal.includes(source)) || (f.decision && !f.decision.includes(e.outcome))) continue;
        if (f.tool && !f.tool.includes(String((e.input as { mcp?: { tool?: string } }).mcp?.tool))) continue;
        const key = `${source} ${e.labels.workload}`;
        const edge = edges.get(key) ?? { source, destination: e.labels.workload, namespace: e.labels.namespace, allow: 0, deny: 0, dry_run_deny: 0, total: 0 };
        edge[e.outcome === 'dry-run-deny' ? 'dry_run_deny' : e.outcome] += 1;
        edge.total += 1;
        edges.set(key, edge);
      }
      return [...edges.values()].sort((a, b) => b.total - a.total || a.source.localeCompare(b.source) || a.destination.localeCompare(b.destination)).slice(0, f.limit);
    };
    const windows: RawFilter[] = [
      {},
      { since: '1h' },
      { since: '150m' },
      { since: '6h' },
      { from: new Date(NOW - 5 * hour).toISOString(), to: new Date(NOW - 2 * hour).toISOString() },
      { from: new Date(NOW - 5 * hour + 61_000).toISOString(), to: new Date(NOW - 2 * hour - 59_000).toISOString() },
      { from: new Date(NOW - 4 * hour + 5000).toISOString(), to: new Date(NOW - 4 * hour + 1_200_000).toISOString() },
      { since: '4h', workload: 'db-mcp' },
      { since: '5h', principal: agent, decision: 'deny' },
      { since: '3h', tool: 'query' },
      { since: '6h', limit: '1' },
      { since: '150m', limit: '3' },
    ];
    const rollupTotal = async (url: string) => Number(((await backend.rows(url, 'SELECT COALESCE(SUM(n), 0) AS n FROM edge_hours')) as Array<{ n: unknown }>)[0]!.n);

    it('is kept by every append: edge_hours counts every event, and each window aggregates as the events do', async () => {
      const { url, store } = await openNew();
      const events = spread();
      await store.append(events.slice(0, 50), NOW);
      await store.append(events.slice(50), NOW);
      expect(await rollupTotal(url)).toBe(120);
      for (const w of windows) {
        const f = filter(w);
        const want = expected(events, f);
        const got = await store.edges(f);
        expect(got, JSON.stringify(w)).toEqual(want);
        // The console's summary: the same edges, and what the whole window holds (the part left out included).
        const all = expected(events, { ...f, limit: 100_000 });
        expect(await store.edgeSummary(f), JSON.stringify(w)).toEqual({ edges: want, edgeCount: all.length, eventCount: all.reduce((n, e) => n + e.total, 0) });
      }
    });

    it('loses the counts of the events retention deletes, in the same transaction', async () => {
      const { url, store } = await openNew();
      const events = spread();
      await store.append(events, NOW);
      const r = await applyRetention(store, signer, { maxRows: 45 }, { now: () => NOW, batchSize: 20 });
      expect(r.deleted).toBe(75);
      expect(await rollupTotal(url)).toBe(45);
      for (const w of windows) expect(await store.edges(filter(w)), JSON.stringify(w)).toEqual(expected(events.slice(75), filter(w)));
    });

    it('is built on open for a store of layout 2, which has none', async () => {
      const { url, store } = await openNew();
      const events = spread();
      await store.append(events, NOW);
      await store.close();
      await backend.tamper(url, `DROP TABLE edge_hours; UPDATE audit_meta SET value = '2' WHERE key = 'schema_version'`);
      const again = await reopen(url);
      expect(await rollupTotal(url)).toBe(120);
      expect(await backend.rows(url, "SELECT value FROM audit_meta WHERE key = 'schema_version'")).toMatchObject([{ value: SCHEMA_VERSION }]);
      for (const w of windows) expect(await again.edges(filter(w)), JSON.stringify(w)).toEqual(expected(events, filter(w)));
    });
  });

  describe('the admission refusal index', () => {
    const hour = 3_600_000;
    // An admission decision as the webhook sends it (recordAdmission): workload `admission`, the object's namespace.
    const admissionEvent = (i: number, spec: { time: number; namespace: string; outcome?: 'allow' | 'deny'; findings?: Array<{ set: string; rule: string; mode: string }>; error?: string }) =>
      decisionEvent.parse(
        {
          decision_id: `adm-${process.pid}-${String(i).padStart(6, '0')}`,
          timestamp: new Date(spec.time).toISOString(),
          kind: 'admission',
          outcome: spec.outcome ?? 'deny',
          mode: 'enforce',
          labels: { workload: 'admission', namespace: spec.namespace, source: 'admission' },
          bundles: {},
          path: 'warden/admission',
          input: { operation: 'CREATE', namespace: spec.namespace, name: `app-${i}`, request: { userInfo: { username: 'ci@example.com' } } },
          result: { allowed: spec.outcome === 'allow', findings: spec.findings ?? [] },
          ...(spec.error ? { error: spec.error } : {}),
        },
        'test admission event',
      );
    /**
     * 60 admission decisions interleaved with 240 calls over the 6 hours before NOW. The rules each refusal is
     * filed under, written out here (not derived by the code under test): every 5th is refused by two rules,
     * every 7th has only a warning (filed as unknown), every 11th failed with an error (review/error), every
     * 9th was admitted. Calls to a proxied workload that happens to be named `admission` are not refusals.
     */
    const scenario = () => {
      const events: ReturnType<typeof makeEvents> = [];
      const filed: Array<{ id: string; seq: number; ts: number; namespace: string; rules: string[] }> = [];
      for (let i = 0; i < 60; i++) {
        const time = NOW - 6 * hour + i * 6 * 60_000 + (i % 4) * 1000;
        events.push(...makeEvents(4, (k) => ({ time: new Date(time - 1000 + k * 100), outcome: k === 0 ? 'deny' : 'allow', ...(k === 1 ? { workload: 'admission' } : {}) })));
        const namespace = `ns-${i % 3}`;
        const admitted = i % 9 === 0;
        const rules = admitted ? [] : i % 11 === 0 ? ['review/error'] : i % 7 === 0 ? ['unknown'] : i % 5 === 0 ? ['guardrails/image-digest', `guardrails/r-${i % 4}`].sort() : [`guardrails/r-${i % 4}`];
        const findings = i % 11 === 0 ? [] : i % 7 === 0 ? [{ set: 'guardrails', rule: 'no-latest-tag', mode: 'warn' }] : rules.map((r) => ({ set: 'guardrails', rule: r.split('/')[1]!, mode: 'enforce' }));
        events.push(admissionEvent(i, { time, namespace, outcome: admitted ? 'allow' : 'deny', findings, ...(i % 11 === 0 ? { error: 'bundle not loaded' } : {}) }));
        if (!admitted) filed.push({ id: events[events.length - 1]!.decision_id, seq: events.length, ts: time, namespace, rules });
      }
      return { events, filed };
    };
    const expectedGroups = (filed: ReturnType<typeof scenario>['filed'], w: RefusalWindow) => {
      const groups = new Map<string, { rule: string; namespace: string; count: number; latest: number }>();
      const objects = new Set<number>();
      for (const f of filed) {
        if ((w.from !== undefined && f.ts < w.from) || (w.to !== undefined && f.ts >= w.to) || (w.namespace && !w.namespace.includes(f.namespace))) continue;
        objects.add(f.seq);
        for (const rule of f.rules) {
          const g = groups.get(`${rule} ${f.namespace}`) ?? { rule, namespace: f.namespace, count: 0, latest: 0 };
          g.count += 1;
          g.latest = Math.max(g.latest, f.ts);
          groups.set(`${rule} ${f.namespace}`, g);
        }
      }
      const sorted = [...groups.values()].sort((a, b) => b.count - a.count || (a.rule < b.rule ? -1 : a.rule > b.rule ? 1 : a.namespace < b.namespace ? -1 : 1));
      return { groups: sorted, objects: objects.size };
    };
    // Whole hours, partial hours at either end or both, a window inside one hour, no start, namespaces.
    const windows: RefusalWindow[] = [
      {},
      { from: NOW - 3 * hour },
      { from: NOW - 5 * hour, to: NOW - 2 * hour - 1 },
      { from: NOW - 5 * hour + 61_000, to: NOW - hour - 59_000 },
      { from: NOW - 4 * hour + 5000, to: NOW - 4 * hour + 1_200_000 },
      { to: NOW - 3 * hour + 30_000 },
      { namespace: ['ns-1'] },
      { from: NOW - 4 * hour - 1, namespace: ['ns-0', 'ns-2'] },
    ];
    const hoursTotal = async (url: string) => Number(((await backend.rows(url, 'SELECT COALESCE(SUM(n), 0) AS n FROM refusal_hours WHERE rule = 0')) as Array<{ n: unknown }>)[0]!.n);

    it('is kept by every append: groups by rule and namespace, and lists one group newest first, a page at a time', async () => {
      const { url, store } = await openNew();
      const { events, filed } = scenario();
      await store.append(events.slice(0, 100), NOW);
      // A sender's retry repeats decisions already stored: they are not counted twice.
      expect((await store.append(events.slice(90), NOW)).duplicates).toHaveLength(10);
      for (const w of windows) expect(await store.refusalGroups(w, 500), JSON.stringify(w)).toEqual(expectedGroups(filed, w));
      expect(await hoursTotal(url)).toBe(filed.length);
      expect((await store.refusalGroups({}, 2)).groups).toEqual(expectedGroups(filed, {}).groups.slice(0, 2));
      for (const [rule, namespace] of [['guardrails/r-1', 'ns-1'], ['guardrails/image-digest', 'ns-0'], ['unknown', 'ns-1'], ['review/error', 'ns-2']] as const) {
        const want = filed.filter((f) => f.namespace === namespace && f.rules.includes(rule)).sort((a, b) => b.ts - a.ts || b.seq - a.seq).map((f) => f.id);
        expect(want.length, `${rule} in ${namespace}`).toBeGreaterThan(1);
        const got: string[] = [];
        let before: { ts: number; seq: number } | undefined;
        for (let pages = 0; pages < 20; pages++) {
          const page = await store.refusals({ rule, namespace, window: {}, limit: 2, ...(before ? { before } : {}) });
          got.push(...page.map((s) => s.event.decision_id));
          if (page.length < 2) break;
          const last = page[page.length - 1]!;
          before = { ts: Date.parse(last.event.timestamp), seq: last.seq };
        }
        expect(got, `${rule} in ${namespace}`).toEqual(want);
      }
      const recent = await store.refusals({ rule: 'guardrails/r-1', namespace: 'ns-1', window: { from: NOW - 2 * hour }, limit: 100 });
      expect(recent.map((s) => s.event.decision_id)).toEqual(filed.filter((f) => f.namespace === 'ns-1' && f.rules.includes('guardrails/r-1') && f.ts >= NOW - 2 * hour).reverse().map((f) => f.id));
      expect(await store.refusals({ rule: 'no-such/rule', namespace: 'ns-1', window: {}, limit: 10 })).toEqual([]);
      expect(await verifyStore(store, signer.publicJwk)).toMatchObject({ ok: true });
    });

    it('loses the refusals of the events retention deletes, in the same transaction', async () => {
      const { url, store } = await openNew();
      const { events, filed } = scenario();
      await store.append(events, NOW);
      const r = await applyRetention(store, signer, { maxRows: 150 }, { now: () => NOW, batchSize: 40 });
      expect(r.deleted).toBe(150);
      expect(await hoursTotal(url)).toBe(filed.filter((f) => f.seq > 150).length);
      for (const w of windows) expect(await store.refusalGroups(w, 500), JSON.stringify(w)).toEqual(expectedGroups(filed.filter((f) => f.seq > 150), w));
      expect(await verifyStore(store, signer.publicJwk)).toMatchObject({ ok: true });
    });

    it('is built on open for a store of layout 3, which has none', async () => {
      const { url, store } = await openNew();
      const { events, filed } = scenario();
      await store.append(events, NOW);
      await store.close();
      await backend.tamper(url, `DROP TABLE admission_refusals; DROP TABLE refusal_hours; UPDATE audit_meta SET value = '3' WHERE key = 'schema_version'`);
      const again = await reopen(url);
      expect(await hoursTotal(url)).toBe(filed.length);
      expect(await backend.rows(url, "SELECT value FROM audit_meta WHERE key = 'schema_version'")).toMatchObject([{ value: SCHEMA_VERSION }]);
      for (const w of windows) expect(await again.refusalGroups(w, 500), JSON.stringify(w)).toEqual(expectedGroups(filed, w));
      expect(await verifyStore(again, signer.publicJwk)).toMatchObject({ ok: true });
    });

    it('has verify name each refusal row edited, removed or made up to make the admission page lie', async () => {
      const { url, store } = await openNew();
      const { events, filed } = scenario();
      await store.append(events, NOW);
      await store.close();
      const [a, b, c] = [filed[3]!, filed.find((f, i) => i > 5 && f.namespace === 'ns-1')!, filed[20]!];
      await backend.tamper(
        url,
        `DELETE FROM admission_refusals WHERE seq = ${a.seq};
         UPDATE admission_refusals SET namespace = (SELECT id FROM audit_names WHERE value = 'ns-0') WHERE seq = ${b.seq};
         INSERT INTO admission_refusals (seq, rule, namespace, ts) SELECT 2, rule, namespace, ts FROM admission_refusals WHERE seq = ${c.seq};
         INSERT INTO admission_refusals (seq, rule, namespace, ts) SELECT 100000, rule, namespace, ts FROM admission_refusals WHERE seq = ${c.seq}`,
      );
      const report = await verifyStore(await reopen(url), signer.publicJwk);
      expect(report.ok).toBe(false);
      // The hourly counts still say what the rows said when stored: they disagree with the edited rows too.
      const hours = report.problems.filter((p) => p.seq === 0);
      expect(hours.length).toBeGreaterThan(0);
      for (const p of hours) expect(p.message).toMatch(/^refusal rollup, hour from .* holds \d+ but the refusal index counts \d+ /);
      expect(report.problems.filter((p) => p.seq !== 0).map((p) => [p.kind, p.seq, p.message.replace(/^.*?: /, '')])).toEqual([
        ['rollup', 2, expect.stringMatching(/^holds guardrails\/r-\d in ns-\d at \d+ but the event says nothing/)],
        ['rollup', a.seq, `holds nothing but the event says ${a.rules.map((r) => `${r} in ${a.namespace} at ${a.ts}`).join(', ')} (admission_refusals was edited; the admission page shows it)`],
        ['rollup', b.seq, expect.stringMatching(/^holds .* in ns-0 at .* but the event says .* in ns-1 at /)],
        ['rollup', 100000, expect.stringContaining('which is no stored event')],
      ]);
    });

    it('has verify name an hourly refusal count edited to make the admission page lie, while the refusal rows agree with the events', async () => {
      const { url, store } = await openNew();
      const { events } = scenario();
      await store.append(events, NOW);
      await store.close();
      await backend.tamper(url, `UPDATE refusal_hours SET n = n + 100 WHERE rule = (SELECT id FROM audit_names WHERE value = 'guardrails/r-1') AND namespace = (SELECT id FROM audit_names WHERE value = 'ns-1') AND hour = ${Math.floor((NOW - 5 * hour) / hour)}; UPDATE refusal_hours SET n = 0 WHERE rule = 0 AND hour = ${Math.floor((NOW - hour) / hour)} AND namespace = (SELECT id FROM audit_names WHERE value = 'ns-2')`);
      const report = await verifyStore(await reopen(url), signer.publicJwk);
      expect(report.problems.map((p) => [p.kind, p.seq, p.message.replace(/ \(refusal_hours.*$/, '')])).toEqual([
        ['rollup', 0, expect.stringMatching(/^refusal rollup, hour from 2026-11-25T07:00:00.000Z: guardrails\/r-1 in ns-1 holds 10\d but the refusal index counts \d$/)],
        ['rollup', 0, expect.stringMatching(/^refusal rollup, hour from 2026-11-25T11:00:00.000Z: \(objects\) in ns-2 holds 0 but the refusal index counts [1-9]$/)],
      ]);
    });
  });

  it('returns events after a seq in ingestion order (what tail polls)', async () => {
    const { store } = await openNew();
    const batch = makeEvents(5);
    await store.append(batch, NOW);
    const after = await store.query(filter({ 'after-seq': '3', sort: 'seq' }));
    expect(after.map((s) => [s.seq, s.event.decision_id])).toEqual([
      [4, batch[3]!.decision_id],
      [5, batch[4]!.decision_id],
    ]);
  });

  it('applies retention by row count and by age without breaking verification', async () => {
    const { store } = await openNew();
    const hour = 3_600_000;
    await store.append(makeEvents(30), NOW - 48 * hour);
    await store.append(makeEvents(30), NOW - 2 * hour);
    await checkpointHead(store, signer, () => NOW);
    await store.append(makeEvents(40), NOW);

    const byAge = await applyRetention(store, signer, { maxAgeMs: 24 * hour }, { now: () => NOW, batchSize: 7 });
    expect(byAge).toMatchObject({ deleted: 30, firstSeq: 31 });
    expect(byAge.batches).toBe(5);
    expect(await verifyStore(store, signer.publicJwk)).toMatchObject({ ok: true, first_seq: 31, last_seq: 100 });

    const bySize = await applyRetention(store, signer, { maxRows: 25 }, { now: () => NOW, batchSize: 10 });
    expect(bySize).toMatchObject({ deleted: 45, firstSeq: 76 });
    expect((await store.bounds())?.count).toBe(25);
    await store.append(makeEvents(5), NOW);
    expect(await verifyStore(store, signer.publicJwk)).toMatchObject({ ok: true, events: 30, first_seq: 76, last_seq: 105 });
  });

  it('keeps the newest event even when every event is past the age limit', async () => {
    const { store } = await openNew();
    await store.append(makeEvents(5), NOW - 1_000_000);
    const r = await applyRetention(store, signer, { maxAgeMs: 1000 }, { now: () => NOW });
    expect(r.deleted).toBe(4);
    await store.append(makeEvents(1), NOW);
    expect(await verifyStore(store, signer.publicJwk)).toMatchObject({ ok: true, first_seq: 5, last_seq: 6 });
  });

  describe('a store written by the version 1 layout (every column as text, canonical JSON)', () => {
    // The version 1 DDL and row format as earlier Wardens wrote them, so the migration is tested against real old stores.
    const v1Store = async (events: ReturnType<typeof makeEvents>) => {
      const url = await backend.fresh();
      const [int, text] = backend.name === 'SQLite' ? ['INTEGER', 'TEXT'] : ['BIGINT', 'TEXT COLLATE "C"'];
      const q = (v: string | null) => (v === null ? 'NULL' : `'${v.replace(/'/g, "''")}'`);
      const sql = [
        `CREATE TABLE audit_meta (key ${text} PRIMARY KEY, value ${text} NOT NULL)`,
        `INSERT INTO audit_meta (key, value) VALUES ('store_id', 'v1-store')`,
        `CREATE TABLE events (seq ${int} PRIMARY KEY, decision_id ${text} NOT NULL UNIQUE, ts ${int} NOT NULL, received_at ${int} NOT NULL,
          workload ${text} NOT NULL, namespace ${text} NOT NULL, outcome ${text} NOT NULL, kind ${text} NOT NULL, principal ${text}, method ${text},
          path ${text}, operation ${text}, tool ${text}, revision ${text}, event ${text} NOT NULL, prev_hash ${text} NOT NULL, hash ${text} NOT NULL)`,
        `CREATE INDEX events_ts_edges ON events (ts, principal, workload, namespace, outcome)`,
        `CREATE INDEX events_principal_ts ON events (principal, ts)`,
        `CREATE TABLE checkpoints (seq ${int} PRIMARY KEY, hash ${text} NOT NULL, time ${text} NOT NULL, reason ${text} NOT NULL, jws ${text} NOT NULL)`,
      ];
      let prev = GENESIS_HASH;
      events.forEach((e, i) => {
        const text = canonical(e);
        const hash = chainHash(prev, text);
        const input = e.input as { source: { principal: string }; request: { method: string; path: string }; mcp?: { tool: string } };
        const operation = (e.result as { operation?: string }).operation ?? null;
        sql.push(
          `INSERT INTO events VALUES (${i + 1}, ${q(e.decision_id)}, ${Date.parse(e.timestamp)}, ${NOW}, ${q(e.labels.workload)}, ${q(e.labels.namespace)}, ${q(e.outcome)}, ${q(e.kind)},
            ${q(input.source.principal)}, ${q(input.request.method)}, ${q(input.request.path)}, ${q(operation)}, ${q(input.mcp?.tool ?? null)}, ${q(Object.values(e.bundles)[0]!.revision)},
            ${q(text)}, '${prev}', '${hash}')`,
        );
        prev = hash;
      });
      const cp = await signCheckpoint(signer, { store: 'v1-store', seq: events.length, hash: prev, time: new Date(NOW).toISOString(), reason: 'periodic' });
      sql.push(`INSERT INTO checkpoints VALUES (${cp.seq}, '${cp.hash}', '${cp.time}', 'periodic', '${cp.jws}')`);
      await backend.tamper(url, sql.join(';\n'));
      return url;
    };

    it('is migrated on open: same store id, same events, queries and aggregates work, the chain and its checkpoint verify', async () => {
      const events = [
        ...makeEvents(4, (i) => ({ outcome: i === 0 ? 'deny' : 'allow', operation: 'getOrder' })),
        ...makeEvents(3, () => ({ workload: 'db-mcp', namespace: 'data', tool: 'drop_table', outcome: 'deny', principal: 'spiffe://cluster.local/ns/shop/sa/agent' })),
      ];
      const store = await reopen(await v1Store(events));
      expect(store.id).toBe('v1-store');
      expect((await store.query(filter({ sort: 'seq' }))).map((s) => s.event)).toEqual(events);
      expect((await store.query(filter({ tool: 'drop_table' }))).map((s) => s.event.decision_id)).toEqual(events.slice(4).map((e) => e.decision_id).reverse());
      expect(await store.top('principal', filter({ decision: 'deny' }))).toEqual([
        { key: 'spiffe://cluster.local/ns/shop/sa/agent', count: 3 },
        { key: 'spiffe://cluster.local/ns/shop/sa/frontend', count: 1 },
      ]);
      expect(await verifyStore(store, signer.publicJwk)).toMatchObject({ ok: true, events: 7, checkpoints: 1, problems: [] });
      await store.append(makeEvents(3), NOW);
      expect(await verifyStore(store, signer.publicJwk)).toMatchObject({ ok: true, events: 10, last_seq: 10 });
    });

    it('still has its tampering detected after the migration', async () => {
      const events = makeEvents(5);
      const url = await v1Store(events);
      await backend.tamper(url, `UPDATE events SET event = replace(event, '"outcome":"allow"', '"outcome":"deny"') WHERE seq = 3`);
      const report = await verifyStore(await reopen(url), signer.publicJwk);
      expect(report.problems).toEqual([expect.objectContaining({ kind: 'edited', seq: 3, decision_id: events[2]!.decision_id })]);
    });

    // A rolling update: a newer engine upgrades the store while this one still has it open. Appending
    // would leave the newer layout's tables behind, so this one refuses, and stores nothing.
    it('refuses to append once another Warden moved the open store to a newer layout, and keeps nothing of the batch', async () => {
      const { url, store } = await openNew();
      expect(await store.append(makeEvents(2), NOW)).toMatchObject({ stored: 2 });
      await backend.tamper(url, `UPDATE audit_meta SET value = '5' WHERE key = 'schema_version'`);
      await expect(store.append(makeEvents(3), NOW)).rejects.toThrow(/moved to table layout version 5 by another Warden while this one \(layout 4\) had it open/);
      expect(await backend.rows(url, 'SELECT seq FROM events ORDER BY seq')).toEqual([{ seq: 1 }, { seq: 2 }]);
    });

    it('refuses a store whose layout is newer than this Warden knows, naming it', async () => {
      const { url, store } = await openNew();
      await store.close();
      await backend.tamper(url, `UPDATE audit_meta SET value = '99' WHERE key = 'schema_version'`);
      await expect(openStore(url)).rejects.toThrow(/has table layout version 99, which this Warden \(layout 4\) cannot read/);
    });
  });

  describe('tamper evidence', () => {
    const rollup = (r: Awaited<ReturnType<typeof verifyStore>>) => r.problems.filter((p) => p.kind === 'rollup');
    const eventProblems = (r: Awaited<ReturnType<typeof verifyStore>>) => r.problems.filter((p) => p.kind !== 'rollup');
    const tampered = async (sql: string, opts: { rows?: number; checkpointAt?: number } = {}) => {
      const { url, store } = await openNew();
      const events = makeEvents(opts.rows ?? 10);
      await store.append(events.slice(0, opts.checkpointAt ?? events.length), NOW);
      await checkpointHead(store, signer, () => NOW);
      if (opts.checkpointAt !== undefined) await store.append(events.slice(opts.checkpointAt), NOW);
      expect((await verifyStore(store, signer.publicJwk)).ok).toBe(true);
      await store.close();
      await backend.tamper(url, sql);
      const again = await reopen(url);
      return { report: await verifyStore(again, signer.publicJwk), events };
    };

    it('names the event whose content was edited', async () => {
      const { report, events } = await tampered(`UPDATE events SET event = replace(event, '"outcome":"allow"', '"outcome":"deny"') WHERE seq = 4`);
      expect(report.ok).toBe(false);
      expect(report.problems).toEqual([
        expect.objectContaining({ kind: 'edited', seq: 4, decision_id: events[3]!.decision_id, message: expect.stringContaining('content no longer matches its hash') }),
      ]);
    });

    it('names the event whose query column was edited to make queries lie', async () => {
      const { report, events } = await tampered(`${NAME_DENY}; UPDATE events SET outcome = (SELECT id FROM audit_names WHERE value = 'deny') WHERE seq = 6`);
      // The rollup still counts what the events said when stored: it disagrees with the edited column too.
      expect(rollup(report).map((p) => p.message.replace(/^.*: /, ''))).toEqual([
        expect.stringMatching(/shop\/orders allow holds 10 but the events count 9/),
        expect.stringMatching(/shop\/orders deny holds 0 but the events count 1/),
      ]);
      expect(eventProblems(report)).toEqual([
        expect.objectContaining({ kind: 'edited', seq: 6, decision_id: events[5]!.decision_id, message: expect.stringContaining('query column outcome holds "deny" but the event says "allow"') }),
      ]);
    });

    it('names every event whose name was changed in the shared names table', async () => {
      const { report, events } = await tampered(`UPDATE audit_names SET value = 'payments' WHERE value = 'orders'`, { rows: 3 });
      expect(report.problems).toEqual(
        events.map((e, i) => expect.objectContaining({ kind: 'edited', seq: i + 1, decision_id: e.decision_id, message: expect.stringContaining('query column workload holds "payments" but the event says "orders"') })),
      );
    });

    it('detects an edit that only changes the stored text, not the event it parses to', async () => {
      const { report, events } = await tampered(`UPDATE events SET event = replace(event, '"outcome":"allow"', '"outcome": "allow"') WHERE seq = 2`);
      expect(report.problems).toEqual([expect.objectContaining({ kind: 'edited', seq: 2, decision_id: events[1]!.decision_id, message: expect.stringContaining('content no longer matches its hash') })]);
    });

    it('names the deleted event by its seq and its neighbours', async () => {
      const { report, events } = await tampered('DELETE FROM events WHERE seq = 5');
      expect(rollup(report)).toHaveLength(1);
      expect(eventProblems(report)).toEqual([
        expect.objectContaining({
          kind: 'deleted',
          seq: 5,
          message: `event seq 5 was deleted between decision ${events[3]!.decision_id} (seq 4) and decision ${events[5]!.decision_id} (seq 6)`,
        }),
      ]);
    });

    it('detects the deletion of the first events and of the newest events', async () => {
      const head = await tampered('DELETE FROM events WHERE seq <= 2');
      expect(eventProblems(head.report)).toEqual([expect.objectContaining({ kind: 'deleted', seq: 1, message: expect.stringContaining('events seq 1..2 are missing') })]);
      const tail = await tampered('DELETE FROM events WHERE seq >= 9');
      expect(eventProblems(tail.report)).toEqual([expect.objectContaining({ kind: 'deleted', seq: 9, message: expect.stringContaining('events seq 9..10 were deleted') })]);
    });

    it('names both events when two were swapped', async () => {
      const { report, events } = await tampered('UPDATE events SET seq = -1 WHERE seq = 3; UPDATE events SET seq = 3 WHERE seq = 4; UPDATE events SET seq = 4 WHERE seq = -1');
      expect(report.problems.map((p) => [p.kind, p.seq, p.decision_id])).toEqual([
        ['reordered', 3, events[3]!.decision_id],
        ['reordered', 4, events[2]!.decision_id],
      ]);
    });

    it('catches a rewrite that recomputed every hash, through the signed checkpoint', async () => {
      // Rewrite event 2 and re-chain everything after it, as an attacker with the formula would.
      const { url, store } = await openNew();
      const events = makeEvents(6);
      await store.append(events, NOW);
      await checkpointHead(store, signer, () => NOW);
      await store.close();
      const { chainHash, GENESIS_HASH } = await import('./chain.js');
      const forged = events.map((e, i) => (i === 1 ? { ...e, outcome: 'deny' as const, result: { allow: false, reasons: ['forged'] } } : e));
      let prev = GENESIS_HASH;
      const statements: string[] = [NAME_DENY];
      forged.forEach((e, i) => {
        const text = JSON.stringify(e);
        const hash = chainHash(prev, text);
        statements.push(`UPDATE events SET event = '${text.replace(/'/g, "''")}', outcome = (SELECT id FROM audit_names WHERE value = '${e.outcome}'), prev_hash = '${prev}', hash = '${hash}' WHERE seq = ${i + 1}`);
        prev = hash;
      });
      for (const s of statements) await backend.tamper(url, s);
      const report = await verifyStore(await reopen(url), signer.publicJwk);
      expect(eventProblems(report)).toEqual([expect.objectContaining({ kind: 'rewritten', seq: 6 })]);
    });

    it('names the rollup bucket edited to make the graph lie, while the chain itself verifies', async () => {
      const { report } = await tampered(`UPDATE edge_hours SET n = n + 40`, { rows: 3 });
      expect(eventProblems(report)).toEqual([]);
      expect(report.ok).toBe(false);
      expect(rollup(report)).toEqual([
        expect.objectContaining({ seq: 0, message: expect.stringMatching(/^edge rollup, hour from 2026-11-25T10:00:00.000Z: spiffe:\/\/cluster.local\/ns\/shop\/sa\/frontend → shop\/orders allow holds 43 but the events count 3 /) }),
      ]);
    });

    it('rejects a checkpoint that was not signed by the given key', async () => {
      const other = (await loadCheckpointSigner(join(tmp, `other-${backend.name}.jwk`), { create: true })).signer;
      const { store } = await openNew();
      await store.append(makeEvents(3), NOW);
      await checkpointHead(store, other, () => NOW);
      const report = await verifyStore(store, signer.publicJwk);
      expect(report.problems).toEqual([expect.objectContaining({ kind: 'bad-checkpoint', seq: 3 })]);
    });
  });
});
