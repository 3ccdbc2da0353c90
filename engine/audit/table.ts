// The events table both backends hold: which event fields become indexed columns, the DDL per SQL
// dialect (and the migration from the version 1 layout), and the SQL a filter turns into. The whole
// event is kept as JSON text next to the columns, so the columns only serve queries and `verify` can
// re-derive and compare them. Repeated names (workload, principal, revision…) are stored once in
// audit_names and referred to by integer id.
import type { DecisionEvent } from '../../formats/decision-event.js';
import type { EventFilter } from './query.js';
import { refusalTableStatements } from './refusals.js';
import { columnTypes, hourSql, HOUR_MS, Params, type Dialect } from './sql-dialect.js';

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

/** The chain head: the newest row's seq and hash (both backends, inside and outside an append). */
export const SELECT_HEAD = 'SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1';

/** Column names in the order rows are written. */
export const COLUMN_NAMES = [
  'seq', 'decision_id', 'ts', 'received_at', 'workload', 'namespace', 'outcome', 'kind', 'principal',
  'method', 'path', 'operation', 'tool', 'revision', 'event', 'prev_hash', 'hash',
] as const;

/**
 * The columns stored as an integer id into audit_names instead of their text: they repeat a few hundred
 * values over millions of events, so ids keep rows and every index on them narrow. `path` stays text
 * (nearly every value is new) and is never indexed.
 */
export const NAMED_COLUMNS = ['workload', 'namespace', 'outcome', 'kind', 'principal', 'method', 'operation', 'tool', 'revision'] as const;

/**
 * Version of the table layout, kept in audit_meta; stores without it hold the version 1 layout.
 * Version 3 added the hourly edge rollup (edge_hours) and the revision archive: a version 2 Warden
 * appending to a version 3 store would leave the rollup behind, so it must refuse the store, and does.
 * Version 4 added the admission refusals' table (refusals.ts), kept by every append for the same reason.
 */
export const SCHEMA_VERSION = '4';

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

/** The events table under `name` (a migration builds it beside the old one, then renames it). */
function eventsTable(d: Dialect, name: string): string {
  const { int, id, text } = columnTypes(d);
  return `CREATE TABLE IF NOT EXISTS ${name} (
      seq ${int} PRIMARY KEY,
      decision_id ${text} NOT NULL UNIQUE,
      ts ${int} NOT NULL,
      received_at ${int} NOT NULL,
      workload ${id} NOT NULL,
      namespace ${id} NOT NULL,
      outcome ${id} NOT NULL,
      kind ${id} NOT NULL,
      principal ${id},
      method ${id},
      path ${text},
      operation ${id},
      tool ${id},
      revision ${id},
      event ${text} NOT NULL,
      prev_hash ${text} NOT NULL,
      hash ${text} NOT NULL
    )`;
}

/** The per-filter indexes of layout 2 that SQLite stores no longer keep (dropped on open). */
const SQLITE_RETIRED_INDEXES = ['events_ts_edges', 'events_workload_ts', 'events_principal_ts', 'events_outcome_ts', 'events_operation_ts', 'events_tool_ts', 'events_revision_ts'];

/**
 * Indexes, chosen from the queries, per backend (the table is the same).
 *
 * SQLite, the embedded single-node store, keeps one index besides decision_id: time followed by every
 * filter column. "Filter X, newest first, limit N" walks it from the newest entry and tests X on the
 * index entry itself (name ids, a few bytes each), reading a row only for a match; time ranges are
 * index ranges; the graph and top aggregates read nothing else. One entry per event appended near the
 * end of the index is what lets ingestion keep up: each per-filter index dirties one page per distinct
 * value per batch (a page per principal), which made index upkeep most of an append. The price is that a
 * filter matching few events over a long range reads the whole range (~100 ms per million events here).
 *
 * PostgreSQL, the cluster-scale store holding far more events, keeps an index per common filter paired
 * with ts, so a rare value is found without a range scan; operation/tool indexes are partial because
 * most events lack one. Its indexes end with seq to serve the `ts, seq` tiebreak without a sort.
 */
function indexStatements(d: Dialect): string[] {
  if (d === 'sqlite') {
    return [
      ...SQLITE_RETIRED_INDEXES.map((name) => `DROP INDEX IF EXISTS ${name}`),
      `CREATE INDEX IF NOT EXISTS events_ts_filters ON events (ts, workload, namespace, principal, outcome, method, operation, tool, revision)`,
    ];
  }
  return [
    `CREATE INDEX IF NOT EXISTS events_ts_edges ON events (ts, principal, workload, namespace, outcome, seq)`,
    `CREATE INDEX IF NOT EXISTS events_workload_ts ON events (workload, ts, seq)`,
    `CREATE INDEX IF NOT EXISTS events_principal_ts ON events (principal, ts, seq)`,
    `CREATE INDEX IF NOT EXISTS events_outcome_ts ON events (outcome, ts, seq)`,
    `CREATE INDEX IF NOT EXISTS events_operation_ts ON events (operation, ts, seq) WHERE operation IS NOT NULL`,
    `CREATE INDEX IF NOT EXISTS events_tool_ts ON events (tool, ts, seq) WHERE tool IS NOT NULL`,
    `CREATE INDEX IF NOT EXISTS events_revision_ts ON events (revision, ts, seq)`,
  ];
}

/** DDL of a store at SCHEMA_VERSION; idempotent, so it runs on every open. */
export function schemaStatements(d: Dialect): string[] {
  const { int, text } = columnTypes(d);
  return [
    `CREATE TABLE IF NOT EXISTS audit_meta (key ${text} PRIMARY KEY, value ${text} NOT NULL)`,
    d === 'sqlite'
      ? `CREATE TABLE IF NOT EXISTS audit_names (id INTEGER PRIMARY KEY, value TEXT NOT NULL UNIQUE)`
      : `CREATE TABLE IF NOT EXISTS audit_names (id INT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, value ${text} NOT NULL UNIQUE)`,
    eventsTable(d, 'events'),
    ...indexStatements(d),
    `CREATE TABLE IF NOT EXISTS checkpoints (
      seq ${int} PRIMARY KEY,
      hash ${text} NOT NULL,
      time ${text} NOT NULL,
      reason ${text} NOT NULL,
      jws ${text} NOT NULL
    )`,
    edgeHoursTable(d),
    ...refusalTableStatements(d),
    ...revisionTables(d),
  ];
}

/**
 * What opening a store must do to its tables, from what it finds: nothing, the version 1 rewrite (then
 * the rollup and refusal fills), the rollup and refusal fills (a version 2 store, which has neither),
 * or the refusal fill alone (a version 3 store).
 */
export type SchemaAction = 'create-or-current' | 'migrate-v1' | 'migrate-v2' | 'migrate-v3';

/** Whether an action must rebuild edge_hours from the events (layouts before 3 have none). */
export const fillsRollup = (a: SchemaAction) => a === 'migrate-v1' || a === 'migrate-v2';

/** The layout version as audit_meta holds it; every append reads it again in its own transaction. */
export const SELECT_LAYOUT = "SELECT value FROM audit_meta WHERE key = 'schema_version'";

const LAYOUT_CHANGED = 'the audit store was moved to table layout version';

/**
 * Refuse an append to a store whose layout moved on while this Warden had it open (a newer engine
 * upgraded it during a rolling update): appending would leave the newer layout's tables behind. The
 * caller's transaction rolls back; the pods keep the events and send them again.
 */
export function checkLayoutUnchanged(version: string | undefined): void {
  if (version === SCHEMA_VERSION) return;
  throw new Error(`${LAYOUT_CHANGED} ${version ?? '(none)'} by another Warden while this one (layout ${SCHEMA_VERSION}) had it open: this engine stores nothing more; replace it with a Warden at least as new (the pods keep their events until one takes them)`);
}

/** Whether an error is checkLayoutUnchanged's (also after it crossed from the writer thread as its message). */
export const isLayoutChanged = (err: unknown): boolean => err instanceof Error && err.message.startsWith(LAYOUT_CHANGED);

/**
 * Decide from whether an events table exists and the schema_version in audit_meta (undefined when
 * absent). A store written by a newer Warden is refused rather than misread.
 */
export function schemaAction(hasEvents: boolean, version: string | undefined, location: string): SchemaAction {
  if (version === undefined) return hasEvents ? 'migrate-v1' : 'create-or-current';
  if (version === '2') return 'migrate-v2';
  if (version === '3') return 'migrate-v3';
  if (version !== SCHEMA_VERSION) {
    throw new Error(`audit store ${location} has table layout version ${version}, which this Warden (layout ${SCHEMA_VERSION}) cannot read; run a Warden at least as new as the one that wrote it`);
  }
  return 'create-or-current';
}

/**
 * Rewrite a version 1 store (every query column as text) into the current layout, in the caller's
 * transaction: names are collected into audit_names, rows copied with their ids, the old table
 * dropped. seq, event text and hashes are copied as they are, so the chain and its checkpoints still
 * verify. Run before schemaStatements, which then adds what is missing (audit_names, indexes).
 */
export function migrationStatements(d: Dialect): string[] {
  const { text } = columnTypes(d);
  const id = (col: string) => `(SELECT id FROM audit_names WHERE value = old.${col})`;
  const cols = COLUMN_NAMES.map((c) => ((NAMED_COLUMNS as readonly string[]).includes(c) ? id(c) : `old.${c}`));
  return [
    d === 'sqlite'
      ? `CREATE TABLE IF NOT EXISTS audit_names (id INTEGER PRIMARY KEY, value TEXT NOT NULL UNIQUE)`
      : `CREATE TABLE IF NOT EXISTS audit_names (id INT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, value ${text} NOT NULL UNIQUE)`,
    `INSERT INTO audit_names (value) SELECT v FROM (${NAMED_COLUMNS.map((c) => `SELECT ${c} AS v FROM events`).join(' UNION ')}) AS names WHERE v IS NOT NULL ORDER BY v`,
    eventsTable(d, 'events_v2'),
    `INSERT INTO events_v2 (${COLUMN_NAMES.join(', ')}) SELECT ${cols.join(', ')} FROM events AS old ORDER BY old.seq`,
    `DROP TABLE events`,
    `ALTER TABLE events_v2 RENAME TO events`,
  ];
}

/** The WHERE clause (with leading "WHERE", or empty) for a filter. */
export function whereClause(f: Partial<EventFilter>, p: Params): string {
  const c: string[] = [];
  const anyOf = (col: string, values: string[] | undefined) => {
    if (!values?.length) return;
    c.push(values.length === 1 ? `${col} = ${p.add(values[0])}` : `${col} IN (${values.map((v) => p.add(v)).join(', ')})`);
  };
  // A name id column compares with the id of each given name (a name never stored matches nothing).
  // One scalar subquery per name, not `IN (SELECT …)`: the planner then sees a list of N values and
  // estimates its selectivity from the index statistics, as it did when the columns held text.
  const anyName = (col: string, values: string[] | undefined) => {
    if (!values?.length) return;
    const ids = values.map((v) => `(SELECT id FROM audit_names WHERE value = ${p.add(v)})`);
    c.push(ids.length === 1 ? `${col} = ${ids[0]}` : `${col} IN (${ids.join(', ')})`);
  };
  if (f.from !== undefined) c.push(`ts >= ${p.add(f.from)}`);
  if (f.to !== undefined) c.push(`ts < ${p.add(f.to)}`);
  if (f.afterSeq !== undefined) c.push(`seq > ${p.add(f.afterSeq)}`);
  anyName('workload', f.workload);
  anyName('namespace', f.namespace);
  anyName('principal', f.principal);
  anyName('outcome', f.decision);
  anyName('method', f.method);
  anyName('operation', f.operation);
  anyName('tool', f.tool);
  anyName('revision', f.revision);
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

/**
 * The text stored for an event and hashed into the chain: its JSON as sent when the caller has it
 * (AuditStore.append's `sent`, from POST /logs), else JSON.stringify of the parsed event. The chain
 * covers these exact bytes, so verification hashes the stored text as it is, and any edit of it, even
 * whitespace, breaks the link. (Version 1 stores
 * hold canonical JSON, which is hashed the same way.)
 */
export function eventText(e: DecisionEvent): string {
  return JSON.stringify(e);
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

/** Count matching events by one dimension, largest first (counted by id, named afterwards). */
export function selectTop(d: Dialect, by: keyof typeof TOP_KEYS, f: EventFilter): Statement {
  const p = new Params(d);
  const { key, workload } = TOP_KEYS[by];
  const where = whereClause(f, p);
  // `+key` (an expression, not the column) keeps SQLite from walking the key's index in group order
  // with a row lookup per event; the filter's own index (outcome, time, workload) is read instead.
  const nonNull = `${where ? `${where} AND` : 'WHERE'} +${key} IS NOT NULL`;
  const groups = workload ? `+${key}, workload` : `+${key}`;
  return {
    sql: `SELECT k.value AS key${workload ? ', w.value AS workload' : ''}, t.n AS n
      FROM (SELECT ${groups.replace(`+${key}`, `+${key} AS ${key}`)}, COUNT(*) AS n FROM events ${nonNull} GROUP BY ${groups}) AS t
      JOIN audit_names AS k ON k.id = t.${key}${workload ? ' JOIN audit_names AS w ON w.id = t.workload' : ''}
      ORDER BY n DESC, key${workload ? ', workload' : ''} LIMIT ${p.add(f.limit)}`,
    values: p.values,
  };
}

/**
 * The hourly edge rollup: events per (hour of event time, principal, workload, namespace, outcome),
 * principal 0 for none. Appends add their counts in the same transaction as the rows (so it always
 * equals the events table), retention subtracts what it deletes. The graph reads it for the whole
 * hours of its window: a week of traffic becomes a few thousand rows instead of every event.
 */
function edgeHoursTable(d: Dialect): string {
  const { int, id } = columnTypes(d);
  return `CREATE TABLE IF NOT EXISTS edge_hours (
      hour ${int} NOT NULL,
      principal ${id} NOT NULL,
      workload ${id} NOT NULL,
      namespace ${id} NOT NULL,
      outcome ${id} NOT NULL,
      n ${int} NOT NULL,
      PRIMARY KEY (hour, principal, workload, namespace, outcome)
    )${d === 'sqlite' ? ' WITHOUT ROWID' : ''}`;
}

/** The rollup's grouping of events, as SELECT columns (hour, principal, workload, namespace, outcome). */
const ROLLUP_GROUP = `${hourSql('ts')}, COALESCE(principal, 0), workload, namespace, outcome`;

/**
 * The revision archive (engine/bundle-revisions.ts) and the pods' decision-log drop counters, kept in
 * the audit store so every engine replica sees what any of them stored. Blobs are content-addressed
 * (one row per sha256, however many revisions share it); a revision names its blob.
 */
function revisionTables(d: Dialect): string[] {
  const { int, text } = columnTypes(d);
  return [
    `CREATE TABLE IF NOT EXISTS bundle_blobs (sha256 ${text} PRIMARY KEY, bytes ${d === 'sqlite' ? 'BLOB' : 'BYTEA'} NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS bundle_revisions (
      bundle ${text} NOT NULL,
      revision ${text} NOT NULL,
      sha256 ${text} NOT NULL,
      kept_at ${int} NOT NULL,
      PRIMARY KEY (bundle, revision)
    )`,
    `CREATE TABLE IF NOT EXISTS log_senders (
      workload ${text} NOT NULL,
      namespace ${text} NOT NULL,
      instance ${text} NOT NULL,
      dropped ${int} NOT NULL,
      reported_at ${int} NOT NULL,
      PRIMARY KEY (workload, namespace, instance)
    )`,
  ];
}

/** Delete the blobs no kept revision names (after revisions were dropped). */
export const UNNAMED_BLOBS = 'DELETE FROM bundle_blobs WHERE sha256 NOT IN (SELECT sha256 FROM bundle_revisions)';

/** How long a pod's report is kept after its last one (pods come and go; their names do not return). */
export const SENDER_KEEP_MS = 7 * 86_400_000;

/** Record a pod's drop counter (workload, namespace, instance, dropped, reported_at); the newest report wins. */
export const upsertSender = (d: Dialect) => `INSERT INTO log_senders (workload, namespace, instance, dropped, reported_at) VALUES (${d === 'sqlite' ? '?, ?, ?, ?, ?' : '$1, $2, $3, $4, $5'})
  ON CONFLICT (workload, namespace, instance) DO UPDATE SET dropped = excluded.dropped, reported_at = excluded.reported_at WHERE excluded.reported_at >= log_senders.reported_at`;

/** Rebuild edge_hours from the events table (opening a store of an older layout), in the caller's transaction. */
export function rollupFillStatements(): string[] {
  return [
    'DELETE FROM edge_hours',
    `INSERT INTO edge_hours (hour, principal, workload, namespace, outcome, n) SELECT ${ROLLUP_GROUP}, COUNT(*) FROM events GROUP BY ${ROLLUP_GROUP}`,
  ];
}

/**
 * The edge_hours buckets that disagree with the events (verification: a rollup edited in the store
 * would make the graph lie), named, oldest first, up to `limit` ($1 / ?).
 */
export function selectRollupDrift(d: Dialect): string {
  const limit = d === 'sqlite' ? '?' : '$1';
  const keys = 'hour, principal, workload, namespace, outcome';
  return `SELECT x.hour, COALESCE(s.value, 'anonymous') AS source, w.value AS workload, ns.value AS namespace, o.value AS outcome, x.stored, x.counted
    FROM (SELECT ${keys}, SUM(stored) AS stored, SUM(counted) AS counted FROM (
        SELECT ${keys}, n AS stored, 0 AS counted FROM edge_hours
        UNION ALL
        SELECT ${hourSql('ts')} AS hour, COALESCE(principal, 0) AS principal, workload, namespace, outcome, 0 AS stored, COUNT(*) AS counted FROM events GROUP BY ${ROLLUP_GROUP}
      ) AS u GROUP BY ${keys} HAVING SUM(stored) <> SUM(counted)) AS x
    LEFT JOIN audit_names AS s ON s.id = x.principal LEFT JOIN audit_names AS w ON w.id = x.workload
    LEFT JOIN audit_names AS ns ON ns.id = x.namespace LEFT JOIN audit_names AS o ON o.id = x.outcome
    ORDER BY x.hour, source, workload LIMIT ${limit}`;
}

/** Add counts to edge_hours: what an append runs with its rows' counts (VALUES in SQLite, unnest arrays in PostgreSQL). */
export function rollupAddSql(d: Dialect, groups: number): string {
  const cols = 'hour, principal, workload, namespace, outcome, n';
  const conflict = 'ON CONFLICT (hour, principal, workload, namespace, outcome) DO UPDATE SET n = edge_hours.n + excluded.n';
  if (d === 'postgres') return `INSERT INTO edge_hours (${cols}) SELECT * FROM unnest($1::bigint[], $2::int[], $3::int[], $4::int[], $5::int[], $6::bigint[]) ${conflict}`;
  return `INSERT INTO edge_hours (${cols}) VALUES ${Array.from({ length: groups }, () => '(?, ?, ?, ?, ?, ?)').join(', ')} ${conflict}`;
}

/**
 * The buckets of an hourly rollup one append adds to, with their counts: keys of `width` numbers
 * (edge_hours: hour, principal (0 for none), workload, namespace, outcome; refusal_hours: hour, rule,
 * namespace), each a name id but the hour.
 */
export class BucketCounts {
  private readonly counts = new Map<string, number>();

  constructor(private readonly width: number) {}

  add(...key: number[]): void {
    if (key.length !== this.width) throw new Error(`a bucket key has ${this.width} parts, not ${key.length}`);
    const k = key.join(',');
    this.counts.set(k, (this.counts.get(k) ?? 0) + 1);
  }

  /** Rows as flat [...key, n, …] lists of at most `per` rows each. */
  chunks(per: number): number[][] {
    const out: number[][] = [];
    let chunk: number[] = [];
    for (const [key, n] of this.counts) {
      chunk.push(...key.split(',').map(Number), n);
      if (chunk.length === per * (this.width + 1)) {
        out.push(chunk);
        chunk = [];
      }
    }
    if (chunk.length) out.push(chunk);
    return out;
  }

  /** One array per column, for PostgreSQL's unnest. */
  columns(): number[][] {
    const cols: number[][] = Array.from({ length: this.width + 1 }, () => []);
    for (const [key, n] of this.counts) [...key.split(',').map(Number), n].forEach((v, k) => cols[k]!.push(v));
    return cols;
  }
}

/**
 * Subtract the events retention is about to delete (seq ≤ the bound parameter) from edge_hours, then
 * drop emptied buckets; run in prune's transaction before the DELETE.
 */
export function rollupPruneStatements(d: Dialect): string[] {
  const bound = d === 'sqlite' ? '?' : '$1';
  return [
    `INSERT INTO edge_hours (hour, principal, workload, namespace, outcome, n) SELECT ${ROLLUP_GROUP}, -COUNT(*) FROM events WHERE seq <= ${bound} GROUP BY ${ROLLUP_GROUP}
      ON CONFLICT (hour, principal, workload, namespace, outcome) DO UPDATE SET n = edge_hours.n + excluded.n`,
    'DELETE FROM edge_hours WHERE n <= 0',
  ];
}

/** The filter fields the rollup holds; a filter naming any other (method, tool, path…) reads the events. */
const ROLLUP_FIELDS: ReadonlySet<string> = new Set(['from', 'to', 'workload', 'namespace', 'principal', 'decision', 'sort', 'limit']);

/** Whether edge_hours can answer the edge aggregate of this filter. */
export function rollupServes(f: EventFilter): boolean {
  return Object.entries(f).every(([k, v]) => v === undefined || ROLLUP_FIELDS.has(k));
}

/**
 * Source principal → destination workload with counts per outcome, busiest first. The whole hours of
 * the window come from edge_hours, the partial hours at either end from the events (at most two hours
 * of rows, read through the time index); `rollup: false` reads only the events (the bench's baseline).
 * `totals` adds to every row how many edges and events the whole window holds (edge_count, event_count),
 * so a page showing the busiest edges can say what it left out.
 */
export function selectEdges(d: Dialect, f: EventFilter, opts: { rollup?: boolean; totals?: boolean } = {}): Statement {
  const p = new Params(d);
  const outcome = (o: string) => `(SELECT id FROM audit_names WHERE value = '${o}')`;
  // Per (principal, workload, namespace) by ids, counts per outcome; `one` is 1 for an event, n for a rollup bucket.
  const counts = (one: string) =>
    `SUM(CASE WHEN outcome = ${outcome('allow')} THEN ${one} ELSE 0 END) AS allow, SUM(CASE WHEN outcome = ${outcome('deny')} THEN ${one} ELSE 0 END) AS deny, SUM(CASE WHEN outcome = ${outcome('dry-run-deny')} THEN ${one} ELSE 0 END) AS dry_run_deny, SUM(${one}) AS total`;
  // Grouping the events by the COALESCE expression keeps SQLite from walking the principal index for
  // its order (a row lookup per event); it reads the covering time index instead.
  const fromEvents = (range: Partial<EventFilter>) =>
    `SELECT COALESCE(principal, 0) AS principal, workload, namespace, ${counts('1')} FROM events ${whereClause({ ...f, ...range }, p)} GROUP BY COALESCE(principal, 0), workload, namespace`;
  const parts: string[] = [];
  const first = f.from === undefined ? undefined : Math.ceil(f.from / HOUR_MS);
  const end = f.to === undefined ? undefined : Math.floor(f.to / HOUR_MS);
  if ((opts.rollup ?? true) && rollupServes(f) && (first === undefined || end === undefined || first < end)) {
    if (first !== undefined && f.from! < first * HOUR_MS) parts.push(fromEvents({ to: first * HOUR_MS }));
    const names = whereClause({ workload: f.workload, namespace: f.namespace, principal: f.principal, decision: f.decision }, p);
    const hours = [first !== undefined ? `hour >= ${p.add(first)}` : '', end !== undefined ? `hour < ${p.add(end)}` : ''].filter(Boolean);
    const where = [names.replace(/^WHERE /, ''), ...hours].filter(Boolean);
    parts.push(`SELECT principal, workload, namespace, ${counts('n')} FROM edge_hours ${where.length ? `WHERE ${where.join(' AND ')}` : ''} GROUP BY principal, workload, namespace`);
    if (end !== undefined && end * HOUR_MS < f.to!) parts.push(fromEvents({ from: end * HOUR_MS }));
  } else {
    parts.push(fromEvents({}));
  }
  // One part is the aggregate itself; several (partial hours + whole hours) are summed again.
  const byIds =
    parts.length === 1
      ? parts[0]!
      : `SELECT principal, workload, namespace, SUM(allow) AS allow, SUM(deny) AS deny, SUM(dry_run_deny) AS dry_run_deny, SUM(total) AS total FROM (${parts.join(' UNION ALL ')}) AS u GROUP BY principal, workload, namespace`;
  // Names are looked up only for the busiest edges: those at least as busy as the limit-th one (ties
  // kept, so the order by name below is exact). "anonymous" stands for no principal (id 0 matches no
  // name); an edge from a principal literally named "anonymous" merges with it after the cut.
  const cut = `COALESCE((SELECT total FROM t ORDER BY total DESC LIMIT 1 OFFSET ${p.add(f.limit - 1)}), 0)`;
  return {
    sql: `WITH t AS MATERIALIZED (${byIds})
      SELECT COALESCE(s.value, 'anonymous') AS source, dst.value AS destination, ns.value AS namespace,
      SUM(t.allow) AS allow, SUM(t.deny) AS deny, SUM(t.dry_run_deny) AS dry_run_deny, SUM(t.total) AS total${opts.totals ? ', (SELECT COUNT(*) FROM t) AS edge_count, (SELECT SUM(total) FROM t) AS event_count' : ''}
      FROM t
      LEFT JOIN audit_names AS s ON s.id = t.principal
      JOIN audit_names AS dst ON dst.id = t.workload
      JOIN audit_names AS ns ON ns.id = t.namespace
      WHERE t.total >= ${cut}
      GROUP BY COALESCE(s.value, 'anonymous'), dst.value, ns.value
      ORDER BY total DESC, source, destination LIMIT ${p.add(f.limit)}`,
    values: p.values,
  };
}

/** An edge summary from selectEdges(…, { totals: true })'s rows (numbers may come as text from PostgreSQL). */
export function edgeSummaryOf(rows: ReadonlyArray<Record<string, unknown>>): { edges: Array<{ source: string; destination: string; namespace: string; allow: number; deny: number; dry_run_deny: number; total: number }>; edgeCount: number; eventCount: number } {
  return {
    edges: rows.map((r) => ({ source: String(r.source), destination: String(r.destination), namespace: String(r.namespace), allow: Number(r.allow), deny: Number(r.deny), dry_run_deny: Number(r.dry_run_deny), total: Number(r.total) })),
    edgeCount: Number(rows[0]?.edge_count ?? 0),
    eventCount: Number(rows[0]?.event_count ?? 0),
  };
}

/** Rows with seq > $1 in seq order, up to $2, with every name column as its text (what verify reads). */
export function selectChainRows(d: Dialect): string {
  const [after, limit] = d === 'sqlite' ? ['?', '?'] : ['$1', '$2'];
  const cols = COLUMN_NAMES.map((c) => ((NAMED_COLUMNS as readonly string[]).includes(c) ? `n_${c}.value AS ${c}` : `e.${c}`));
  const joins = NAMED_COLUMNS.map((c) => `LEFT JOIN audit_names AS n_${c} ON n_${c}.id = e.${c}`);
  return `SELECT ${cols.join(', ')} FROM (SELECT * FROM events WHERE seq > ${after} ORDER BY seq LIMIT ${limit}) AS e ${joins.join(' ')} ORDER BY e.seq`;
}
