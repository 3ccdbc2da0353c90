// OPA's total order over values as they reach the host (sets arrive as arrays): null < booleans <
// numbers < strings < arrays < objects; strings by code point, arrays element-wise then by length,
// objects by their sorted keys, then values. Host builtins that return sets use it to return them
// sorted and without duplicates, as OPA prints them.
import { compareCodePoints, type JsonValue } from './sprintf.js';

const RANK = { null: 0, boolean: 1, number: 2, string: 3, array: 4, object: 5 } as const;

function rank(v: unknown): number {
  if (v === null || v === undefined) return RANK.null;
  if (Array.isArray(v)) return RANK.array;
  return RANK[typeof v as 'boolean' | 'number' | 'string' | 'object'];
}

/** Negative, zero or positive as `a` sorts before, with, or after `b` in OPA's order. */
export function compareValues(a: unknown, b: unknown): number {
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== rb) return ra - rb;
  if (ra === RANK.null) return 0;
  if (ra === RANK.boolean || ra === RANK.number) return a === b ? 0 : (a as number) < (b as number) ? -1 : 1;
  if (ra === RANK.string) return compareCodePoints(a as string, b as string);
  if (ra === RANK.array) {
    const x = a as unknown[];
    const y = b as unknown[];
    for (let i = 0; i < Math.min(x.length, y.length); i++) {
      const c = compareValues(x[i], y[i]);
      if (c !== 0) return c;
    }
    return x.length - y.length;
  }
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  const xk = Object.keys(x).sort(compareCodePoints);
  const yk = Object.keys(y).sort(compareCodePoints);
  for (let i = 0; i < Math.min(xk.length, yk.length); i++) {
    const c = compareCodePoints(xk[i]!, yk[i]!) || compareValues(x[xk[i]!], y[yk[i]!]);
    if (c !== 0) return c;
  }
  return xk.length - yk.length;
}

/** A set's members as OPA holds them: sorted, each once. */
export function sortedSet(values: readonly JsonValue[]): JsonValue[] {
  const sorted = [...values].sort(compareValues);
  return sorted.filter((v, i) => i === 0 || compareValues(sorted[i - 1], v) !== 0);
}
