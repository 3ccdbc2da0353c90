// OPA's total order over values (Go's ast.Compare): null < booleans < numbers < strings < arrays <
// objects < sets; numbers by exact value, strings by code point, arrays element-wise then by length,
// objects by their sorted keys, then values, sets by their sorted members. Values are plain JSON (sets
// as arrays, as non-exact host builtins receive them) or exact RegoValues / OpaJson (bigint).
// Builtins that return sets use it to return them sorted and without duplicates, as OPA holds them.
import { RegoNumber, RegoObject, RegoSet } from './rego-value.js';

const RANK = { null: 0, boolean: 1, number: 2, string: 3, array: 4, object: 5, set: 6 } as const;

function rank(v: unknown): number {
  if (v === null || v === undefined) return RANK.null;
  if (Array.isArray(v)) return RANK.array;
  switch (typeof v) {
    case 'boolean':
      return RANK.boolean;
    case 'number':
    case 'bigint':
      return RANK.number;
    case 'string':
      return RANK.string;
  }
  if (v instanceof RegoNumber) return RANK.number;
  if (v instanceof RegoSet) return RANK.set;
  return RANK.object;
}

// A number's exact value: JavaScript compares bigint with number exactly.
function numeric(v: unknown): number | bigint {
  if (v instanceof RegoNumber) return v.isInteger ? BigInt(v.text) : Number(v.text);
  return v as number | bigint;
}

function compareSequences(x: readonly unknown[], y: readonly unknown[]): number {
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const c = compareValues(x[i], y[i]);
    if (c !== 0) return c;
  }
  return x.length - y.length;
}

/** Go orders strings by UTF-8 bytes, which is code point order (JS's default sort is UTF-16). */
export function compareCodePoints(a: string, b: string): number {
  const ai = a[Symbol.iterator]();
  const bi = b[Symbol.iterator]();
  for (;;) {
    const x = ai.next();
    const y = bi.next();
    if (x.done) return y.done ? 0 : -1;
    if (y.done) return 1;
    const d = (x.value.codePointAt(0) ?? 0) - (y.value.codePointAt(0) ?? 0);
    if (d !== 0) return d;
  }
}

/** Negative, zero or positive as `a` sorts before, with, or after `b` in OPA's order. */
export function compareValues(a: unknown, b: unknown): number {
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== rb) return ra - rb;
  if (ra === RANK.null) return 0;
  if (ra === RANK.boolean) return a === b ? 0 : a ? 1 : -1;
  if (ra === RANK.number) {
    const x = numeric(a);
    const y = numeric(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (ra === RANK.string) return compareCodePoints(a as string, b as string);
  if (ra === RANK.array) return compareSequences(a as unknown[], b as unknown[]);
  if (ra === RANK.set) return compareSequences([...(a as RegoSet).members].sort(compareValues), [...(b as RegoSet).members].sort(compareValues));
  const x = entries(a);
  const y = entries(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const c = compareValues(x[i]![0], y[i]![0]) || compareValues(x[i]![1], y[i]![1]);
    if (c !== 0) return c;
  }
  return x.length - y.length;
}

// An object's entries sorted by key in OPA's order (string keys sort by code point).
function entries(o: unknown): Array<[unknown, unknown]> {
  const list: Array<[unknown, unknown]> = o instanceof RegoObject ? o.entries : Object.entries(o as Record<string, unknown>);
  return [...list].sort(([p], [q]) => (typeof p === 'string' && typeof q === 'string' ? compareCodePoints(p, q) : compareValues(p, q)));
}

/** A set's members as OPA holds them: sorted, each once. */
export function sortedSet<T>(values: readonly T[]): T[] {
  const sorted = [...values].sort(compareValues);
  return sorted.filter((v, i) => i === 0 || compareValues(sorted[i - 1], v) !== 0);
}
