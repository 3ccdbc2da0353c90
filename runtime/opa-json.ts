// Values as OPA's JSON output prints them (OpaJson), the form results reach Warden's callers in: sets
// as arrays sorted in OPA's value order, integers beyond 2^53 exact (bigint). Reads the module's value
// text (rego-value.ts) cheaply when it is plain JSON, which a decision almost always is.
import { RegoNumber, RegoObject, RegoSet, parseValueText, valueText, type OpaJson, type RegoValue } from './rego-value.js';
import { compareValues } from './value-order.js';

/** The value as OPA's JSON output prints it: sets become arrays in OPA's order, numbers exact. */
export function toOpaJson(v: RegoValue): OpaJson {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(toOpaJson);
  if (v instanceof RegoSet) return [...v.members].sort(compareValues).map(toOpaJson);
  if (v instanceof RegoNumber) {
    if (!v.isInteger) return Number(v.text);
    const n = BigInt(v.text);
    return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
  }
  const out: { [key: string]: OpaJson } = {};
  // A key that is not a string is written as its JSON text, as OPA's JSON output does.
  if (v instanceof RegoObject) for (const [k, x] of v.entries) out[typeof k === 'string' ? k : jsonText(toOpaJson(k))] = toOpaJson(x);
  else for (const [k, x] of Object.entries(v)) out[k] = toOpaJson(x);
  return out;
}

// Value text JSON.parse reads exactly: it fails on set literals and non-string keys by itself, so only
// numbers it would round need a look: 16 digits in a row (integers from 2^53 on; long fractions,
// which are read the same either way) or a three-digit exponent. Text that matches only costs the
// slower exact reader.
const MAY_ROUND = /\d{16}|[eE][+-]?\d{3}/;

/**
 * The value of `text` when JSON.parse reads it exactly; undefined when it holds what JSON lacks (a set
 * literal, a non-string key, a number spelling) or a number JSON.parse would round.
 */
export function readPlainJson(text: string): OpaJson | undefined {
  if (MAY_ROUND.test(text)) return undefined;
  try {
    return JSON.parse(text) as OpaJson;
  } catch {
    return undefined;
  }
}

/** Reads a result's value text as OpaJson: plain JSON (the common case) through JSON.parse. */
export function readValueText(text: string): OpaJson {
  const plain = readPlainJson(text);
  return plain !== undefined ? plain : toOpaJson(parseValueText(text));
}

/**
 * JSON text of an OpaJson value; integers beyond 2^53 (bigint) written exactly. Handed a RegoSet, it
 * writes value text (a set literal), which only OPA's module reads: keep sets out of what leaves.
 */
export function jsonText(v: OpaJson): string {
  try {
    return JSON.stringify(v);
  } catch (err) {
    if (!(err instanceof TypeError)) throw err;
    return valueText(v); // a bigint (or a RegoSet) made JSON.stringify throw
  }
}
