// The indexes in table.ts exist for the queries users run: pin that SQLite's planner uses them, so a
// dropped or reordered index shows up here instead of as a full scan over a million events.
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { deniedByDefault, parseFilter, type RawFilter } from './query.js';
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
    ['newest events', {}, /events_ts_edges/],
    ['a workload over the last hour', { workload: 'orders', since: '1h' }, /events_workload_ts|events_ts_edges/],
    ['a principal', { principal: 'spiffe://c/ns/a/sa/b', decision: 'deny' }, /events_principal_ts/],
    ['an MCP tool', { tool: 'drop_table', since: '24h' }, /events_tool_ts/],
    ['an operation', { operation: 'getOrder' }, /events_operation_ts/],
    ['a bundle revision', { revision: 'git-1' }, /events_revision_ts/],
    ['a decision id', { 'decision-id': 'dec-1' }, /sqlite_autoindex_events|decision_id/],
  ] as Array<[string, RawFilter, RegExp]>)('reads an index for %s', (_, raw, index) => {
    const p = events(raw);
    expect(p).toMatch(index);
    expect(p).not.toMatch(/^SCAN events$/m);
  });

  it('answers who-talks-to-whom over a time range from the covering index alone', () => {
    expect(plan(selectEdges('sqlite', parseFilter({ since: '1h', limit: '1000' }, NOW)))).toMatch(/USING COVERING INDEX events_ts_edges \(ts>\?/);
    expect(plan(selectEdges('sqlite', parseFilter({ limit: '1000' }, NOW)))).toMatch(/COVERING INDEX/);
  });

  it('counts denied principals from an index over outcome or time, not the principal index in group order', () => {
    const p = plan(selectTop('sqlite', 'principal', deniedByDefault(parseFilter({ since: '24h' }, NOW, { limit: 10 }))));
    expect(p).toMatch(/events_outcome_ts|COVERING INDEX events_ts_edges \(ts>\?/);
    expect(p).not.toMatch(/events_principal_ts|^SCAN events$/m);
  });
});
