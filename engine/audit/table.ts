// The events table both backends hold: which event fields become indexed columns, the DDL per SQL
// dialect, and the WHERE/ORDER BY text a filter turns into. The whole event is kept as canonical JSON
// next to the columns, so the columns only serve queries and `verify` can re-derive and compare them.
import type { DecisionEvent } from '../../formats/decision-event.js';
import { canonical } from './chain.js';
import type { EventFilter } from './query.js';

/** The two SQL dialects the audit store speaks. */
export type Dialect = 'sqlite' | 'postgres';

/** The query columns derived from one event (null when the event does not carry the field). */
export interface EventColumns {
  decision_id: string;
  /** Event timestamp, ms since epoch. */
  ts: number;
  workload: string;
  namespace: string;
  outcome: string;
  kind: string;
  principal: string | null;
  method: string | null;
  path: string | null;
  operation: string | null;
  tool: string | null;
  revision: string | null;
}

/** Column names in the order rows are written. */
export const COLUMN_NAMES = [
  'seq', 'decision_id', 'ts', 'received_at', 'workload', 'namespace', 'outcome', 'kind', 'principal',
  'method', 'path', 'operation', 'tool', 'revision', 'event', 'prev_hash', 'hash',
] as const;

function str(v: unknown): string | null {
  return typeof v === 'string' ? v : null;
}

function obj(v: unknown): Record<string, unknown> | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

/** Derive the indexed columns of an event. Admission events name the Kubernetes user as principal. */
export function eventColumns(e: DecisionEvent): EventColumns {
  const input = obj(e.input);
  const source = obj(input?.source);
  const request = obj(input?.request);
  const mcp = obj(input?.mcp);
  const userInfo = obj(request?.userInfo);
  const revision = e.bundles[e.labels.workload]?.revision ?? Object.values(e.bundles)[0]?.revision ?? null;
  return {
    decision_id: e.decision_id,
    ts: Date.parse(e.timestamp),
    workload: e.labels.workload,
    namespace: e.labels.namespace,
    outcome: e.outcome,
    kind: e.kind,
    principal: str(source?.principal) ?? str(userInfo?.username),
    method: str(request?.method),
    path: str(request?.path),
    operation: str(obj(e.result)?.operation),
    tool: str(mcp?.tool),
    revision,
  };
}

/**
 * DDL. Indexes follow the queries: time range (ts, covering the graph aggregate), and each common filter paired with ts so
 * "filter X, newest first, limit N" reads one index range; operation/tool indexes are partial because
 * most events lack one. PostgreSQL text uses the C collation (byte order, like SQLite) and its
 * indexes end with seq to serve the `ts, seq` tiebreak without a sort.
 */
export function schemaStatements(d: Dialect): string[] {
  const int = d === 'sqlite' ? 'INTEGER' : 'BIGINT';
  const text = d === 'sqlite' ? 'TEXT' : 'TEXT COLLATE "C"';
  const tail = d === 'sqlite' ? '' : ', seq';
  return [
    `CREATE TABLE IF NOT EXISTS audit_meta (key ${text} PRIMARY KEY, value ${text} NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS events (
      seq ${int} PRIMARY KEY,
      decision_id ${text} NOT NULL UNIQUE,
      ts ${int} NOT NULL,
      received_at ${int} NOT NULL,
      workload ${text} NOT NULL,
      namespace ${text} NOT NULL,
      outcome ${text} NOT NULL,
      kind ${text} NOT NULL,
      principal ${text},
      method ${text},
      path ${text},
      operation ${text},
      tool ${text},
      revision ${text},
      event ${text} NOT NULL,
      prev_hash ${text} NOT NULL,
      hash ${text} NOT NULL
    )`,
    // The time index also carries the who-talks-to-whom columns, so the graph aggregate over any time
    // range reads only this index, never the wide rows. Appends hit its last page, so the extra width
    // costs bytes, not random writes. It replaces the plain (ts) index of older stores.
    `DROP INDEX IF EXISTS events_ts`,
    `CREATE INDEX IF NOT EXISTS events_ts_edges ON events (ts, principal, workload, namespace, outcome${tail})`,
    `CREATE INDEX IF NOT EXISTS events_workload_ts ON events (workload, ts${tail})`,
    `CREATE INDEX IF NOT EXISTS events_principal_ts ON events (principal, ts${tail})`,
    `CREATE INDEX IF NOT EXISTS events_outcome_ts ON events (outcome, ts${tail})`,
    `CREATE INDEX IF NOT EXISTS events_operation_ts ON events (operation, ts${tail}) WHERE operation IS NOT NULL`,
    `CREATE INDEX IF NOT EXISTS events_tool_ts ON events (tool, ts${tail}) WHERE tool IS NOT NULL`,
    `CREATE INDEX IF NOT EXISTS events_revision_ts ON events (revision, ts${tail})`,
    `CREATE TABLE IF NOT EXISTS checkpoints (
      seq ${int} PRIMARY KEY,
      hash ${text} NOT NULL,
      time ${text} NOT NULL,
      reason ${text} NOT NULL,
      jws ${text} NOT NULL
    )`,
  ];
}

/** Collects bind values and hands out the dialect's placeholder for each. */
export class Params {
  readonly values: unknown[] = [];
  constructor(private readonly dialect: Dialect) {}
  add(v: unknown): string {
    this.values.push(v);
    return this.dialect === 'sqlite' ? '?' : `$${this.values.length}`;
  }
}

/** The WHERE clause (with leading "WHERE", or empty) for a filter. */
export function whereClause(f: Partial<EventFilter>, p: Params): string {
  const c: string[] = [];
  const anyOf = (col: string, values: string[] | undefined) => {
    if (!values?.length) return;
    c.push(values.length === 1 ? `${col} = ${p.add(values[0])}` : `${col} IN (${values.map((v) => p.add(v)).join(', ')})`);
  };
  if (f.from !== undefined) c.push(`ts >= ${p.add(f.from)}`);
  if (f.to !== undefined) c.push(`ts < ${p.add(f.to)}`);
  if (f.afterSeq !== undefined) c.push(`seq > ${p.add(f.afterSeq)}`);
  anyOf('workload', f.workload);
  anyOf('namespace', f.namespace);
  anyOf('principal', f.principal);
  anyOf('outcome', f.decision);
  anyOf('method', f.method);
  anyOf('operation', f.operation);
  anyOf('tool', f.tool);
  anyOf('revision', f.revision);
  anyOf('decision_id', f.decisionId);
  if (f.pathPrefix !== undefined) {
    // substr counts characters in both dialects; exact and case-sensitive, unlike SQLite's LIKE.
    c.push(`substr(path, 1, ${[...f.pathPrefix].length}) = ${p.add(f.pathPrefix)}`);
  }
  return c.length ? `WHERE ${c.join(' AND ')}` : '';
}

/** ORDER BY text for a sort order; seq breaks ties so pages are stable. */
export function orderClause(sort: EventFilter['sort']): string {
  switch (sort) {
    case 'time':
      return 'ORDER BY ts ASC, seq ASC';
    case '-time':
      return 'ORDER BY ts DESC, seq DESC';
    case 'seq':
      return 'ORDER BY seq ASC';
    case '-seq':
      return 'ORDER BY seq DESC';
  }
}

/** The GROUP BY key columns of each "top denied" dimension (operations and tools are per workload). */
export const TOP_KEYS = {
  principal: { key: 'principal', workload: false },
  operation: { key: 'operation', workload: true },
  tool: { key: 'tool', workload: true },
} as const;

/** An event ready to be written: its columns and its canonical text (what the chain hashes). */
export interface PreparedEvent {
  columns: EventColumns;
  text: string;
}

/** Prepare an event for writing; done outside the write lock since it does not depend on the chain. */
export function prepareEvent(e: DecisionEvent): PreparedEvent {
  return { columns: eventColumns(e), text: canonical(e) };
}

/** SQL text plus bind values. */
export interface Statement {
  sql: string;
  values: unknown[];
}

/** Events matching a filter, in its order, up to its limit. */
export function selectEvents(d: Dialect, f: EventFilter): Statement {
  const p = new Params(d);
  const where = whereClause(f, p);
  return { sql: `SELECT seq, received_at, event FROM events ${where} ${orderClause(f.sort)} LIMIT ${p.add(f.limit)}`, values: p.values };
}

/** Count matching events by one dimension, largest first. */
export function selectTop(d: Dialect, by: keyof typeof TOP_KEYS, f: EventFilter): Statement {
  const p = new Params(d);
  const { key, workload } = TOP_KEYS[by];
  const where = whereClause(f, p);
  const groups = workload ? `${key}, workload` : key;
  const nonNull = `${where ? `${where} AND` : 'WHERE'} ${key} IS NOT NULL`;
  return {
    sql: `SELECT ${key} AS key${workload ? ', workload' : ''}, COUNT(*) AS n FROM events ${nonNull} GROUP BY ${groups} ORDER BY n DESC, ${groups} LIMIT ${p.add(f.limit)}`,
    values: p.values,
  };
}

/** Source principal → destination workload with counts per outcome, busiest first. */
export function selectEdges(d: Dialect, f: EventFilter): Statement {
  const p = new Params(d);
  const where = whereClause(f, p);
  const count = (o: string) => `SUM(CASE WHEN outcome = '${o}' THEN 1 ELSE 0 END)`;
  return {
    sql: `SELECT COALESCE(principal, 'anonymous') AS source, workload AS destination, namespace,
      ${count('allow')} AS allow, ${count('deny')} AS deny, ${count('dry-run-deny')} AS dry_run_deny, COUNT(*) AS total
      FROM events ${where} GROUP BY COALESCE(principal, 'anonymous'), workload, namespace
      ORDER BY total DESC, source, destination LIMIT ${p.add(f.limit)}`,
    values: p.values,
  };
}
