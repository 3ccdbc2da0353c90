// The index in table.ts exists for the queries users run: pin that SQLite's planner uses it, so a
// dropped or reordered index shows up here instead of as a full scan of the rows of a million events.
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { deniedByDefault, parseFilter, type RawFilter } from './query.js';
import { selectRefusalGroups, selectRefusalPage, selectRefusedObjects } from './refusals.js';
import { schemaStatements, selectEdges, selectEvents, selectTop, type Statement } from './table.js';

const NOW = Date.UTC(2026, 10, 25, 12, 0, 0);
const db = new Database(':memory:');
for (const s of schemaStatements('sqlite')) db.exec(s);
// Plans depend on statistics: 5,000 rows with the cardinalities of a real cluster (names as audit_names ids), then ANALYZE.
db.transaction(() => {
  const ids = new Map<string, number>();
  const addName = db.prepare('INSERT INTO audit_names (value) VALUES (?)');
  const id = (v: string | null) => (v === null ? null : (ids.get(v) ?? ids.set(v, Number(addName.run(v).lastInsertRowid)).get(v)!));
  const insert = db.prepare(
    `INSERT INTO events (seq, decision_id, ts, received_at, workload, namespace, outcome, kind, principal, method, path, operation, tool, revision, event, prev_hash, hash)
     VALUES (?, ?, ?, 0, ?, ?, ?, ?, ?, ?, '/p', ?, ?, ?, '{}', '', '')`,
  );
  for (let i = 1; i <= 5000; i++) {
    const mcp = i % 3 === 0;
    insert.run(i, `dec-${i}`, NOW - (5000 - i) * 60_000, id(`svc-${i % 40}`), id(`ns-${i % 8}`), id(i % 10 === 0 ? 'deny' : 'allow'), id(mcp ? 'mcp' : 'http'),
      id(`spiffe://c/ns/a/sa/p${(i * 7) % 300}`), id('GET'), id(mcp ? null : `op${i % 30}`), id(mcp ? `tool_${i % 20}` : null), id(`git-${i % 20}`));
  }
})();
db.exec('ANALYZE');
afterAll(() => db.close());

function plan({ sql, values }: Statement): string {
  return db
    .prepare<unknown[], { detail: string }>(`EXPLAIN QUERY PLAN ${sql}`)
    .all(...values)
    .map((r) => r.detail)
    .join('\n');
}

const events = (raw: RawFilter) => plan(selectEvents('sqlite', parseFilter(raw, NOW)));

describe('SQLite query plans', () => {
  it.each([
    ['newest events', {}],
    ['a workload over the last hour', { workload: 'orders', since: '1h' }],
    ['a principal', { principal: 'spiffe://c/ns/a/sa/b', decision: 'deny' }],
    ['an MCP tool', { tool: 'drop_table', since: '24h' }],
    ['an operation', { operation: 'getOrder' }],
    ['a bundle revision', { revision: 'git-1' }],
  ] as Array<[string, RawFilter]>)('walks the time-and-filters index newest first for %s, never sorting the whole result', (_, raw) => {
    const p = events(raw);
    expect(p).toMatch(/USING INDEX events_ts_filters/);
    // Ties on ts are put in seq order as they stream by ("LAST TERM"), which keeps LIMIT's early stop.
    expect(p).not.toMatch(/^SCAN events$|TEMP B-TREE FOR ORDER BY/m);
  });

  it('reads a time range as an index range', () => {
    expect(events({ workload: 'orders', since: '1h' })).toMatch(/USING INDEX events_ts_filters \(ts>\?/);
  });

  it('finds a decision id through its unique index', () => {
    expect(events({ 'decision-id': 'dec-1' })).toMatch(/sqlite_autoindex_events/);
  });

  it('answers who-talks-to-whom from the hourly rollup for whole hours, and from the covering index for the rest', () => {
    // NOW is on the hour: the last hour is one whole bucket, read by the rollup's primary key alone.
    const hour = plan(selectEdges('sqlite', parseFilter({ since: '1h', limit: '1000' }, NOW)));
    expect(hour).toMatch(/SEARCH edge_hours USING PRIMARY KEY \(hour>\?\)/);
    expect(hour).not.toMatch(/events/);
    // 90 minutes: the partial hour from the events' covering index, the whole one from the rollup.
    const partial = plan(selectEdges('sqlite', parseFilter({ since: '90m', limit: '1000' }, NOW)));
    expect(partial).toMatch(/USING COVERING INDEX events_ts_filters \(ts>\? AND ts<\?\)/);
    expect(partial).toMatch(/SEARCH edge_hours USING PRIMARY KEY \(hour>\?\)/);
    // A filter the rollup does not hold, and the events-only baseline, read the covering index.
    expect(plan(selectEdges('sqlite', parseFilter({ since: '1h', tool: 'x', limit: '1000' }, NOW)))).toMatch(/USING COVERING INDEX events_ts_filters \(ts>\?/);
    expect(plan(selectEdges('sqlite', parseFilter({ limit: '1000' }, NOW), { rollup: false }))).toMatch(/COVERING INDEX events_ts_filters/);
  });

  it('reads admission refusals newest first by time from the index, never every row', () => {
    const p = events({ since: '24h', workload: 'admission', decision: 'deny', sort: '-time', limit: '5000' });
    expect(p).toMatch(/SEARCH events USING INDEX events_ts_filters \(ts>\?\)/);
    expect(p).not.toMatch(/^SCAN events$/m);
  });

  it('groups admission refusals from their hourly counts and the partial hours of their index, and lists one group through its index, never reading the events by range', () => {
    // NOW is on the hour: the last day is 24 whole hours of refusal_hours, and each group's latest one seek.
    const day = plan(selectRefusalGroups('sqlite', { from: NOW - 86_400_000 }, 500));
    expect(day).toMatch(/SEARCH refusal_hours USING PRIMARY KEY \(hour>\?\)/);
    expect(day).toMatch(/SEARCH x USING COVERING INDEX admission_refusals_group \(rule=\? AND namespace=\? AND ts>\?\)/);
    expect(day).not.toMatch(/events|SCAN admission_refusals/);
    // Cut at both ends: the partial hours from the refusal index's time entries alone.
    const groups = plan(selectRefusalGroups('sqlite', { from: NOW - 86_400_000 + 90_000, to: NOW - 30_000 }, 500));
    expect(groups.match(/SEARCH admission_refusals USING COVERING INDEX admission_refusals_ts \(ts>\? AND ts<\?\)/g)).toHaveLength(2);
    expect(groups).toMatch(/SEARCH refusal_hours USING PRIMARY KEY \(hour>\? AND hour<\?\)/);
    expect(groups).not.toMatch(/events|SCAN admission_refusals/);
    const objects = plan(selectRefusedObjects('sqlite', { from: NOW - 86_400_000 + 90_000, to: NOW - 30_000 }));
    expect(objects).toMatch(/SEARCH refusal_hours USING PRIMARY KEY \(hour>\? AND hour<\?\)/);
    expect(objects).not.toMatch(/events|SCAN admission_refusals/);
    const list = plan(selectRefusalPage('sqlite', { rule: 'guardrails/no-latest-tag', namespace: 'shop', window: { from: NOW - 86_400_000 }, before: { ts: NOW - 1000, seq: 10 }, limit: 50 }));
    expect(list).toMatch(/SEARCH r USING COVERING INDEX admission_refusals_group \(rule=\? AND namespace=\? AND ts>\?/);
    expect(list).toMatch(/SEARCH e USING INTEGER PRIMARY KEY \(rowid=\?\)/);
    expect(list).not.toMatch(/TEMP B-TREE/);
  });

  it('counts denied principals from the covering index alone', () => {
    const p = plan(selectTop('sqlite', 'principal', deniedByDefault(parseFilter({ since: '24h' }, NOW, { limit: 10 }))));
    expect(p).toMatch(/COVERING INDEX events_ts_filters \(ts>\?/);
    expect(p).not.toMatch(/^SCAN events$/m);
  });

  it('keeps no per-filter index: each one cost a page write per distinct value per batch', () => {
    const names = db.prepare<[], string>("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'").pluck().all();
    expect(names.sort()).toEqual(['events_ts_filters', 'sqlite_autoindex_events_1']);
  });

  it('drops the per-filter indexes an earlier layout 2 store has when it is opened', () => {
    const old = new Database(':memory:');
    for (const s of schemaStatements('sqlite')) old.exec(s);
    old.exec('CREATE INDEX events_principal_ts ON events (principal, ts); CREATE INDEX events_tool_ts ON events (tool, ts) WHERE tool IS NOT NULL');
    for (const s of schemaStatements('sqlite')) old.exec(s);
    expect(old.prepare<[], string>("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' ORDER BY name").pluck().all()).toEqual(['events_ts_filters', 'sqlite_autoindex_events_1']);
    old.close();
  });
});
