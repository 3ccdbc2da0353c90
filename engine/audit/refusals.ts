// Admission refusals, indexed beside the events: one row per (refused object, rule that refused it)
// in admission_refusals, written in the append's transaction, trimmed by retention in prune's, checked
// by `verify` against the events. The console's admission page groups these rows (rule, namespace)
// and lists one group's refusals from them, so its cost follows the refusals in the window, never the
// other traffic stored around them. A side table, not an index on events: the events table keeps one
// index besides decision_id (table.ts), and refusals are a few rows among millions of calls. An hourly
// count rollup of it, refusal_hours (kept, trimmed and checked the same way), serves the whole hours of
// a window, so a storm of refusals costs the page hours, not refusals.
import type { DecisionEvent } from '../../formats/decision-event.js';
import { columnTypes, HOUR_MS, hourSql, Params, type Dialect } from './sql-dialect.js';

/** The workload label the engine files the admission webhooks' events under (docs/engine.md). */
export const ADMISSION_WORKLOAD = 'admission';

/** The group a refusal with no enforcing finding is filed under: the webhook's own error, or no reason given. */
const NO_FINDING = { error: 'review/error', none: 'unknown' } as const;

/**
 * The rules that refused an object (`set/rule` of each enforcing finding, once each), or none when the
 * event is not an admission refusal. A refusal without an enforcing finding is filed under the
 * webhook's error (review/error) or `unknown`, so every refusal is in exactly one group or more.
 */
export function refusalRules(e: DecisionEvent): string[] {
  if (e.kind !== 'admission' || e.labels.workload !== ADMISSION_WORKLOAD || e.outcome !== 'deny') return [];
  const findings = Array.isArray(e.result?.findings) ? (e.result.findings as unknown[]) : [];
  const rules = new Set<string>();
  for (const f of findings) {
    const { set, rule, mode } = (f ?? {}) as { set?: unknown; rule?: unknown; mode?: unknown };
    if (mode === 'enforce') rules.add(`${String(set)}/${String(rule)}`);
  }
  if (!rules.size) rules.add(e.error ? NO_FINDING.error : NO_FINDING.none);
  return [...rules].sort();
}

/**
 * The table and its two indexes: (rule, namespace, ts, seq) lists one group newest first and finds its
 * latest refusal; (ts, rule, namespace) groups a window from its entries alone. seq first in the key,
 * so retention deletes a prefix and verify reads the rows of a seq range.
 */
export function refusalTableStatements(d: Dialect): string[] {
  const { int, id } = columnTypes(d);
  return [
    `CREATE TABLE IF NOT EXISTS admission_refusals (
      seq ${int} NOT NULL,
      rule ${id} NOT NULL,
      namespace ${id} NOT NULL,
      ts ${int} NOT NULL,
      PRIMARY KEY (seq, rule)
    )${d === 'sqlite' ? ' WITHOUT ROWID' : ''}`,
    'CREATE INDEX IF NOT EXISTS admission_refusals_group ON admission_refusals (rule, namespace, ts, seq)',
    'CREATE INDEX IF NOT EXISTS admission_refusals_ts ON admission_refusals (ts, rule, namespace)',
    `CREATE TABLE IF NOT EXISTS refusal_hours (
      hour ${int} NOT NULL,
      rule ${id} NOT NULL,
      namespace ${id} NOT NULL,
      n ${int} NOT NULL,
      PRIMARY KEY (hour, rule, namespace)
    )${d === 'sqlite' ? ' WITHOUT ROWID' : ''}`,
  ];
}

/** The rule id refusal_hours counts refused objects under (each once, however many rules refused it); no name has id 0. */
export const OBJECTS = 0;

/** Add counts to refusal_hours (hour, rule, namespace, n): an append's buckets (VALUES in SQLite, unnest arrays in PostgreSQL). */
export function refusalHoursAddSql(d: Dialect, groups: number): string {
  const conflict = 'ON CONFLICT (hour, rule, namespace) DO UPDATE SET n = refusal_hours.n + excluded.n';
  if (d === 'postgres') return `INSERT INTO refusal_hours (hour, rule, namespace, n) SELECT * FROM unnest($1::bigint[], $2::int[], $3::int[], $4::bigint[]) ${conflict}`;
  return `INSERT INTO refusal_hours (hour, rule, namespace, n) VALUES ${Array.from({ length: groups }, () => '(?, ?, ?, ?)').join(', ')} ${conflict}`;
}

/** refusal_hours as admission_refusals says it should be, as SELECT hour, rule, namespace, n (per rule, and the objects under OBJECTS). */
const countedHours = () => `SELECT ${hourSql('ts')} AS hour, rule, namespace, COUNT(*) AS n FROM admission_refusals GROUP BY ${hourSql('ts')}, rule, namespace
  UNION ALL SELECT ${hourSql('ts')} AS hour, ${OBJECTS} AS rule, namespace, COUNT(DISTINCT seq) AS n FROM admission_refusals GROUP BY ${hourSql('ts')}, namespace`;

/** Rebuild refusal_hours from admission_refusals (opening a store of an older layout), in the caller's transaction. */
export function refusalHoursFillStatements(): string[] {
  return ['DELETE FROM refusal_hours', `INSERT INTO refusal_hours (hour, rule, namespace, n) SELECT hour, rule, namespace, n FROM (${countedHours()}) AS c`];
}

/**
 * Retention, in prune's transaction before the refusal rows go: subtract the counts of the rows it
 * deletes (seq ≤ the bound, the first two statements' parameter) from refusal_hours, then drop emptied
 * buckets. (`WHERE true`: SQLite reads an upsert's ON after a bare FROM as a join's.)
 */
export function refusalHoursPruneStatements(d: Dialect): string[] {
  const bound = d === 'sqlite' ? '?' : '$1';
  const gone = (rule: string, count: string, group: string) =>
    `SELECT ${hourSql('ts')} AS hour, ${rule} AS rule, namespace, -${count} AS n FROM admission_refusals WHERE seq <= ${bound} GROUP BY ${hourSql('ts')}, ${group}`;
  return [
    `INSERT INTO refusal_hours (hour, rule, namespace, n) SELECT hour, rule, namespace, n FROM (${gone('rule', 'COUNT(*)', 'rule, namespace')}) AS c WHERE true
      ON CONFLICT (hour, rule, namespace) DO UPDATE SET n = refusal_hours.n + excluded.n`,
    `INSERT INTO refusal_hours (hour, rule, namespace, n) SELECT hour, rule, namespace, n FROM (${gone(String(OBJECTS), 'COUNT(DISTINCT seq)', 'namespace')}) AS c WHERE true
      ON CONFLICT (hour, rule, namespace) DO UPDATE SET n = refusal_hours.n + excluded.n`,
    'DELETE FROM refusal_hours WHERE n <= 0',
  ];
}

/** A refusal_hours bucket whose count differs from the refusal rows it covers. */
export interface RefusalHourDrift {
  hour: number;
  /** The rule's name; `(objects)` for the refused objects' count; null when the id names nothing. */
  rule: string | null;
  namespace: string | null;
  stored: number;
  counted: number;
}

/** The refusal_hours buckets that disagree with admission_refusals (verification), oldest first, up to `limit` ($1 / ?). */
export function selectRefusalHoursDrift(d: Dialect): string {
  const limit = d === 'sqlite' ? '?' : '$1';
  return `SELECT x.hour, CASE WHEN x.rule = ${OBJECTS} THEN '(objects)' ELSE r.value END AS rule, ns.value AS namespace, x.stored, x.counted
    FROM (SELECT hour, rule, namespace, SUM(stored) AS stored, SUM(counted) AS counted FROM (
        SELECT hour, rule, namespace, n AS stored, 0 AS counted FROM refusal_hours
        UNION ALL
        SELECT hour, rule, namespace, 0 AS stored, n AS counted FROM (${countedHours()}) AS c
      ) AS u GROUP BY hour, rule, namespace HAVING SUM(stored) <> SUM(counted)) AS x
    LEFT JOIN audit_names AS r ON r.id = x.rule LEFT JOIN audit_names AS ns ON ns.id = x.namespace
    ORDER BY x.hour, x.rule, x.namespace LIMIT ${limit}`;
}

/** Rows of admission_refusals one append adds: flat [seq, rule id, namespace id, ts, …]. */
export class RefusalRows {
  readonly values: number[] = [];

  add(seq: number, rule: number, namespace: number, ts: number): void {
    this.values.push(seq, rule, namespace, ts);
  }

  get length(): number {
    return this.values.length / 4;
  }

  /** At most `per` rows per list (SQLite's VALUES lists). */
  chunks(per: number): number[][] {
    const out: number[][] = [];
    for (let at = 0; at < this.values.length; at += per * 4) out.push(this.values.slice(at, at + per * 4));
    return out;
  }

  /** One array per column, for PostgreSQL's unnest. */
  columns(): number[][] {
    const cols: number[][] = [[], [], [], []];
    this.values.forEach((v, k) => cols[k % 4]!.push(v));
    return cols;
  }
}

/** INSERT of `rows` refusal rows (VALUES in SQLite, unnest arrays in PostgreSQL). */
export function insertRefusalsSql(d: Dialect, rows: number): string {
  const cols = 'INSERT INTO admission_refusals (seq, rule, namespace, ts)';
  if (d === 'postgres') return `${cols} SELECT * FROM unnest($1::bigint[], $2::int[], $3::int[], $4::bigint[])`;
  return `${cols} VALUES ${Array.from({ length: rows }, () => '(?, ?, ?, ?)').join(', ')}`;
}

/** Retention: the refusal rows of the events it deletes (seq ≤ the bound), in prune's transaction. */
export const pruneRefusalsSql = (d: Dialect) => `DELETE FROM admission_refusals WHERE seq <= ${d === 'sqlite' ? '?' : '$1'}`;

/** The admission refusals stored after seq $1, up to $2 of them, in seq order (filling the table on open). */
export function selectAdmissionDenials(d: Dialect): string {
  const [after, limit] = d === 'sqlite' ? ['?', '?'] : ['$1', '$2'];
  const name = (v: string) => `(SELECT id FROM audit_names WHERE value = '${v}')`;
  return `SELECT seq, namespace, ts, event FROM events WHERE seq > ${after} AND workload = ${name(ADMISSION_WORKLOAD)} AND outcome = ${name('deny')} AND kind = ${name('admission')} ORDER BY seq LIMIT ${limit}`;
}

/** A time window of refusals, and optionally the namespaces to keep. */
export interface RefusalWindow {
  /** Inclusive, ms since the epoch. */
  from?: number;
  /** Exclusive, ms since the epoch. */
  to?: number;
  namespace?: string[];
}

/** One group of admission refusals over a window. */
export interface RefusalGroup {
  rule: string;
  namespace: string;
  count: number;
  /** The newest refusal's event time, ms since the epoch. */
  latest: number;
}

/** Where a page of one group's refusals ends: the oldest one shown (the next page starts below it). */
export interface RefusalCursor {
  ts: number;
  seq: number;
}

/** One page of a group's refusals, newest first. */
export interface RefusalPage {
  rule: string;
  namespace: string;
  window: RefusalWindow;
  before?: RefusalCursor;
  limit: number;
}

function namespaceIn(w: RefusalWindow, p: Params): string[] {
  return w.namespace?.length ? [`namespace IN (${w.namespace.map((n) => `(SELECT id FROM audit_names WHERE value = ${p.add(n)})`).join(', ')})`] : [];
}

const where = (c: string[]) => (c.length ? `WHERE ${c.join(' AND ')}` : '');

/**
 * A window as the parts that count it, in the order their SQL is written (SQLite binds by position): the
 * partial hour at its start and at its end from admission_refusals (`rows`), the whole hours between from
 * refusal_hours (`hours`); a window inside one hour reads admission_refusals alone.
 */
function windowParts(w: RefusalWindow, p: Params, rows: (conds: string[]) => string, hours: (conds: string[]) => string): string[] {
  const first = w.from === undefined ? undefined : Math.ceil(w.from / HOUR_MS);
  const end = w.to === undefined ? undefined : Math.floor(w.to / HOUR_MS);
  const range = (from: number | undefined, to: number | undefined) => [
    ...(from !== undefined ? [`ts >= ${p.add(from)}`] : []),
    ...(to !== undefined ? [`ts < ${p.add(to)}`] : []),
    ...namespaceIn(w, p),
  ];
  if (first !== undefined && end !== undefined && first >= end) return [rows(range(w.from, w.to))];
  const parts: string[] = [];
  if (first !== undefined && w.from! < first * HOUR_MS) parts.push(rows(range(w.from, first * HOUR_MS)));
  parts.push(hours([...(first !== undefined ? [`hour >= ${p.add(first)}`] : []), ...(end !== undefined ? [`hour < ${p.add(end)}`] : []), ...namespaceIn(w, p)]));
  if (end !== undefined && end * HOUR_MS < w.to!) parts.push(rows(range(end * HOUR_MS, w.to)));
  return parts;
}

/**
 * The groups of a window, largest first, up to `limit` (an object refused by two rules is in two
 * groups): counts from the rollup's whole hours and the refusal rows of the partial ones, each group's
 * latest refusal from the group index (one seek per group). `+rule` (an expression) keeps SQLite from
 * walking the group index for its order, which reads every refusal ever stored, instead of the window's
 * range of the time index.
 */
export function selectRefusalGroups(d: Dialect, w: RefusalWindow, limit: number): { sql: string; values: unknown[] } {
  const p = new Params(d);
  const latest = [`x.rule = g.rule`, `x.namespace = g.namespace`, ...(w.from !== undefined ? [`x.ts >= ${p.add(w.from)}`] : []), ...(w.to !== undefined ? [`x.ts < ${p.add(w.to)}`] : [])];
  const parts = windowParts(
    w,
    p,
    (c) => `SELECT +rule AS rule, +namespace AS namespace, COUNT(*) AS n FROM admission_refusals ${where(c)} GROUP BY +rule, +namespace`,
    (c) => `SELECT rule, namespace, n FROM refusal_hours ${where([`rule <> ${OBJECTS}`, ...c])}`,
  );
  return {
    sql: `SELECT r.value AS rule, ns.value AS namespace, g.n AS count, (SELECT MAX(x.ts) FROM admission_refusals AS x WHERE ${latest.join(' AND ')}) AS latest
      FROM (SELECT rule, namespace, SUM(n) AS n FROM (${parts.join(' UNION ALL ')}) AS u GROUP BY rule, namespace) AS g
      JOIN audit_names AS r ON r.id = g.rule JOIN audit_names AS ns ON ns.id = g.namespace
      ORDER BY g.n DESC, r.value, ns.value LIMIT ${p.add(limit)}`,
    values: p.values,
  };
}

/** How many objects were refused in a window (each counted once, whatever number of rules refused it). */
export function selectRefusedObjects(d: Dialect, w: RefusalWindow): { sql: string; values: unknown[] } {
  const p = new Params(d);
  const parts = windowParts(
    w,
    p,
    (c) => `SELECT COUNT(DISTINCT seq) AS n FROM admission_refusals ${where(c)}`,
    (c) => `SELECT SUM(n) AS n FROM refusal_hours ${where([`rule = ${OBJECTS}`, ...c])}`,
  );
  return { sql: `SELECT COALESCE(SUM(n), 0) AS n FROM (${parts.join(' UNION ALL ')}) AS u`, values: p.values };
}

/** One page of a group's refusals, newest first (ts, then seq), as stored events: read through the group index. */
export function selectRefusalPage(d: Dialect, q: RefusalPage): { sql: string; values: unknown[] } {
  const p = new Params(d);
  const c = [`r.rule = (SELECT id FROM audit_names WHERE value = ${p.add(q.rule)})`, `r.namespace = (SELECT id FROM audit_names WHERE value = ${p.add(q.namespace)})`];
  if (q.window.from !== undefined) c.push(`r.ts >= ${p.add(q.window.from)}`);
  if (q.window.to !== undefined) c.push(`r.ts < ${p.add(q.window.to)}`);
  if (q.before) c.push(`(r.ts < ${p.add(q.before.ts)} OR (r.ts = ${p.add(q.before.ts)} AND r.seq < ${p.add(q.before.seq)}))`);
  return {
    sql: `SELECT e.seq, e.received_at, e.event FROM admission_refusals AS r JOIN events AS e ON e.seq = r.seq WHERE ${c.join(' AND ')} ORDER BY r.ts DESC, r.seq DESC LIMIT ${p.add(q.limit)}`,
    values: p.values,
  };
}

/** A stored refusal row with its names (what verify compares with the events). */
export interface RefusalRow {
  seq: number;
  rule: string | null;
  namespace: string | null;
  ts: number;
}

/** The refusal rows with $1 < seq ≤ $2, in seq and rule order, names as text. */
export function selectRefusalRows(d: Dialect): string {
  const [after, upTo] = d === 'sqlite' ? ['?', '?'] : ['$1', '$2'];
  return `SELECT r.seq, rn.value AS rule, ns.value AS namespace, r.ts FROM admission_refusals AS r
    LEFT JOIN audit_names AS rn ON rn.id = r.rule LEFT JOIN audit_names AS ns ON ns.id = r.namespace
    WHERE r.seq > ${after} AND r.seq <= ${upTo} ORDER BY r.seq, rn.value`;
}
