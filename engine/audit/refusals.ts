// Admission refusals, indexed beside the events: one row per (refused object, rule that refused it)
// in admission_refusals, written in the append's transaction, trimmed by retention in prune's, checked
// by `verify` against the events. The console's admission page groups these rows (rule, namespace)
// and lists one group's refusals from them, so its cost follows the refusals in the window, never the
// other traffic stored around them. A side table, not an index on events: the events table keeps one
// index besides decision_id (table.ts), and refusals are a few rows among millions of calls.
import type { DecisionEvent } from '../../formats/decision-event.js';
// (table.ts imports this module's DDL in turn: each uses the other's exports only inside functions.)
import { columnTypes, Params, type Dialect } from './table.js';

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
  ];
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

function windowWhere(w: RefusalWindow, p: Params): string[] {
  const c: string[] = [];
  if (w.from !== undefined) c.push(`ts >= ${p.add(w.from)}`);
  if (w.to !== undefined) c.push(`ts < ${p.add(w.to)}`);
  if (w.namespace?.length) c.push(`namespace IN (${w.namespace.map((n) => `(SELECT id FROM audit_names WHERE value = ${p.add(n)})`).join(', ')})`);
  return c;
}

/**
 * The groups of a window, largest first, up to `limit` (an object refused by two rules is in two groups).
 * `+rule` (an expression) keeps SQLite from walking the group index for its order, which reads every
 * refusal ever stored; the window's range of the time index is read instead.
 */
export function selectRefusalGroups(d: Dialect, w: RefusalWindow, limit: number): { sql: string; values: unknown[] } {
  const p = new Params(d);
  const where = windowWhere(w, p);
  return {
    sql: `SELECT r.value AS rule, ns.value AS namespace, g.n AS count, g.latest AS latest
      FROM (SELECT +rule AS rule, +namespace AS namespace, COUNT(*) AS n, MAX(ts) AS latest FROM admission_refusals ${where.length ? `WHERE ${where.join(' AND ')}` : ''} GROUP BY +rule, +namespace) AS g
      JOIN audit_names AS r ON r.id = g.rule JOIN audit_names AS ns ON ns.id = g.namespace
      ORDER BY g.n DESC, r.value, ns.value LIMIT ${p.add(limit)}`,
    values: p.values,
  };
}

/** How many objects were refused in a window (each counted once, whatever number of rules refused it). */
export function selectRefusedObjects(d: Dialect, w: RefusalWindow): { sql: string; values: unknown[] } {
  const p = new Params(d);
  const where = windowWhere(w, p);
  return { sql: `SELECT COUNT(DISTINCT seq) AS n FROM admission_refusals ${where.length ? `WHERE ${where.join(' AND ')}` : ''}`, values: p.values };
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
