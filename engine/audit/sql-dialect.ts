// The two SQL dialects the audit store speaks, and what every table module of it builds SQL with: column
// types, bind placeholders, and the hour buckets of the rollups (edge_hours, refusal_hours).
/** The two SQL dialects the audit store speaks. */
export type Dialect = 'sqlite' | 'postgres';

/** The SQL types of the audit tables' columns in a dialect: seq and times, name ids, text. */
export function columnTypes(d: Dialect) {
  return {
    int: d === 'sqlite' ? 'INTEGER' : 'BIGINT',
    id: d === 'sqlite' ? 'INTEGER' : 'INT',
    text: d === 'sqlite' ? 'TEXT' : 'TEXT COLLATE "C"',
  };
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

/** The width of one rollup bucket (edge_hours, refusal_hours): an hour of event time. */
export const HOUR_MS = 3_600_000;

/** The hour bucket of an event time (floored, also before 1970), in JS as in hourSql. */
export function edgeHour(ts: number): number {
  return Math.floor(ts / HOUR_MS);
}

/** The same floor in SQL (both dialects truncate integer division towards zero). */
export const hourSql = (col: string) => `((${col} - (((${col} % ${HOUR_MS}) + ${HOUR_MS}) % ${HOUR_MS})) / ${HOUR_MS})`;
