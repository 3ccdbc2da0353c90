// The audit filter: one model for "which events", parsed from the same names on the CLI
// (`--since 1h --workload orders`) and over HTTP (`?since=1h&workload=orders`).
import type { Outcome } from '../../formats/decision-event.js';

/** Sort orders: by event time or by ingestion order (seq); `-` = newest first. */
export type SortOrder = 'time' | '-time' | 'seq' | '-seq';

/** Which events. Every list is "any of"; fields combine with AND. Times are event timestamps. */
export interface EventFilter {
  /** Inclusive lower bound, ms since epoch. */
  from?: number;
  /** Exclusive upper bound, ms since epoch. */
  to?: number;
  workload?: string[];
  namespace?: string[];
  /** Source principal (SPIFFE ID, JWT subject, "anonymous"). */
  principal?: string[];
  decision?: Outcome[];
  method?: string[];
  pathPrefix?: string;
  /** OpenAPI operation id (the event's `result.operation`). */
  operation?: string[];
  /** MCP tool (the event's `input.mcp.tool`). */
  tool?: string[];
  /** Bundle revision that decided. */
  revision?: string[];
  decisionId?: string[];
  /** Only events ingested after this seq (what `tail` polls with). */
  afterSeq?: number;
  sort: SortOrder;
  limit: number;
}

/** Default and maximum number of events one query returns. */
export const DEFAULT_LIMIT = 100;
export const MAX_LIMIT = 10_000;

/** A filter value that cannot be used; `param` is the flag/parameter name without dashes. */
export class FilterError extends Error {
  override name = 'FilterError';
  constructor(
    readonly param: string,
    message: string,
  ) {
    super(message);
  }
}

/** The names a filter accepts, identical for CLI flags (`--name`) and HTTP query parameters. */
export const FILTER_PARAMS = [
  'since', 'from', 'to', 'workload', 'namespace', 'principal', 'decision', 'method', 'path-prefix',
  'operation', 'tool', 'revision', 'decision-id', 'after-seq', 'sort', 'limit',
] as const;

/** Raw values by name, as a CLI or a URL query gives them (repeatable names come as arrays). */
export type RawFilter = Partial<Record<string, string | string[] | undefined>>;

const OUTCOMES: readonly Outcome[] = ['allow', 'deny', 'dry-run-deny'];
const SORTS: readonly SortOrder[] = ['time', '-time', 'seq', '-seq'];
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** Parse a duration like `90s`, `15m`, `1h30m`, `7d`, `2w` into milliseconds. */
export function parseDuration(text: string, param: string): number {
  const t = text.trim();
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/gy;
  let total = 0;
  let at = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(t)) !== null) {
    total += Number(m[1]) * (UNIT_MS[m[2]!] ?? 0);
    at = re.lastIndex;
  }
  if (t === '' || at !== t.length || total <= 0) {
    throw new FilterError(param, `${param}: "${text}" is not a duration; use a number and a unit (ms, s, m, h, d, w), e.g. 90s, 15m, 1h30m, 7d`);
  }
  return total;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** Parse an RFC 3339 timestamp with an explicit offset (`2026-11-25T10:00:00Z`) into ms since epoch. */
export function parseTime(text: string, param: string): number {
  const ms = RFC3339.test(text.trim()) ? Date.parse(text.trim().replace(' ', 'T')) : NaN;
  if (Number.isNaN(ms)) {
    throw new FilterError(param, `${param}: "${text}" is not an RFC 3339 time; write it like 2026-11-25T10:00:00Z or 2026-11-25T11:00:00+01:00`);
  }
  return ms;
}

// Comma-separated values are split, except for principals (a JWT subject may hold a comma).
function list(raw: string | string[] | undefined, split = true): string[] | undefined {
  if (raw === undefined) return undefined;
  const values = (Array.isArray(raw) ? raw : [raw]).flatMap((v) => (split ? v.split(',') : [v])).map((v) => v.trim()).filter((v) => v !== '');
  return values.length ? values : undefined;
}

function single(raw: string | string[] | undefined, param: string): string | undefined {
  if (raw === undefined) return undefined;
  if (Array.isArray(raw)) {
    if (raw.length > 1) throw new FilterError(param, `${param}: given ${raw.length} times; give it once`);
    return raw[0];
  }
  return raw;
}

function integer(raw: string | undefined, param: string, min: number, max: number): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new FilterError(param, `${param}: "${raw}" must be a whole number from ${min} to ${max}`);
  }
  return n;
}

/**
 * Build a filter from raw name → value(s). Unknown names, malformed times and bad values throw a
 * FilterError naming the parameter. `now` anchors `since`.
 */
export function parseFilter(raw: RawFilter, now: number, defaults: { sort?: SortOrder; limit?: number } = {}): EventFilter {
  for (const [name, value] of Object.entries(raw)) {
    if (value !== undefined && !(FILTER_PARAMS as readonly string[]).includes(name)) {
      throw new FilterError(name, `unknown filter "${name}"; known filters: ${FILTER_PARAMS.join(', ')}`);
    }
  }
  const f: EventFilter = { sort: defaults.sort ?? '-time', limit: defaults.limit ?? DEFAULT_LIMIT };
  const since = single(raw.since, 'since');
  const from = single(raw.from, 'from');
  const to = single(raw.to, 'to');
  if (since !== undefined && from !== undefined) throw new FilterError('since', 'since: give either since or from, not both');
  if (since !== undefined) f.from = now - parseDuration(since, 'since');
  if (from !== undefined) f.from = parseTime(from, 'from');
  if (to !== undefined) f.to = parseTime(to, 'to');
  if (f.from !== undefined && f.to !== undefined && f.from >= f.to) {
    throw new FilterError(to !== undefined ? 'to' : 'from', `to: ${new Date(f.to).toISOString()} is not after from ${new Date(f.from).toISOString()}`);
  }
  const assign = (key: 'workload' | 'namespace' | 'principal' | 'operation' | 'tool' | 'revision' | 'decisionId', name: string) => {
    const v = list(raw[name], key !== 'principal');
    if (v) f[key] = v;
  };
  assign('workload', 'workload');
  assign('namespace', 'namespace');
  assign('principal', 'principal');
  assign('operation', 'operation');
  assign('tool', 'tool');
  assign('revision', 'revision');
  assign('decisionId', 'decision-id');
  const decision = list(raw.decision);
  if (decision) {
    for (const d of decision) {
      if (!(OUTCOMES as readonly string[]).includes(d)) throw new FilterError('decision', `decision: "${d}" is not one of ${OUTCOMES.join(', ')}`);
    }
    f.decision = decision as Outcome[];
  }
  const method = list(raw.method);
  if (method) {
    for (const m of method) if (!/^[A-Za-z]+$/.test(m)) throw new FilterError('method', `method: "${m}" is not an HTTP method`);
    f.method = method.map((m) => m.toUpperCase());
  }
  const pathPrefix = single(raw['path-prefix'], 'path-prefix');
  if (pathPrefix !== undefined) {
    if (!pathPrefix.startsWith('/')) throw new FilterError('path-prefix', `path-prefix: "${pathPrefix}" must start with /`);
    f.pathPrefix = pathPrefix;
  }
  const afterSeq = integer(single(raw['after-seq'], 'after-seq'), 'after-seq', 0, Number.MAX_SAFE_INTEGER);
  if (afterSeq !== undefined) f.afterSeq = afterSeq;
  const sort = single(raw.sort, 'sort');
  if (sort !== undefined) {
    if (!(SORTS as readonly string[]).includes(sort)) throw new FilterError('sort', `sort: "${sort}" is not one of ${SORTS.join(', ')}`);
    f.sort = sort as SortOrder;
  }
  const limit = integer(single(raw.limit, 'limit'), 'limit', 1, MAX_LIMIT);
  if (limit !== undefined) f.limit = limit;
  return f;
}

/** The filter written back as raw parameters (what the HTTP client sends to an engine). */
export function filterToParams(f: EventFilter): URLSearchParams {
  const p = new URLSearchParams();
  if (f.from !== undefined) p.set('from', new Date(f.from).toISOString());
  if (f.to !== undefined) p.set('to', new Date(f.to).toISOString());
  const add = (name: string, values: string[] | undefined) => values?.forEach((v) => p.append(name, v));
  add('workload', f.workload);
  add('namespace', f.namespace);
  add('principal', f.principal);
  add('decision', f.decision);
  add('method', f.method);
  if (f.pathPrefix !== undefined) p.set('path-prefix', f.pathPrefix);
  add('operation', f.operation);
  add('tool', f.tool);
  add('revision', f.revision);
  add('decision-id', f.decisionId);
  if (f.afterSeq !== undefined) p.set('after-seq', String(f.afterSeq));
  p.set('sort', f.sort);
  p.set('limit', String(f.limit));
  return p;
}

/** "Top denied" counts policy denials, enforced or dry-run, unless a decision filter says otherwise. */
export function deniedByDefault(f: EventFilter): EventFilter {
  return f.decision ? f : { ...f, decision: ['deny', 'dry-run-deny'] };
}

/** Defaults for aggregates: "top" lists 10 rows, the graph up to 1,000 edges. */
export const TOP_DEFAULTS = { limit: 10 } as const;
export const GRAPH_DEFAULTS = { limit: 1000 } as const;
