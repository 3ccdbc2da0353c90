// What every host builtin shares: the error OPA would report, operand checks named the way OPA names
// them, the one way to hand back integers beyond 2^53, and the mark of builtins that take exact values.
import { RegoNumber, RegoObject, RegoSet, type RegoValue } from './rego-value.js';
import type { JsonValue } from './sprintf.js';

/**
 * What a host builtin returns: a JSON value, undefined (no value), an ArrayBuffer holding value text
 * (loaded verbatim: how integers beyond 2^53 such as nanosecond timestamps go back unrounded), or, from
 * a builtin marked `exact`, a RegoValue (sets, exact numbers).
 */
export type HostResult = JsonValue | RegoValue | ArrayBuffer | undefined;

/** A builtin call OPA would fail with an error (Go's evaluator then leaves the expression undefined). */
export class BuiltinError extends Error {
  constructor(builtin: string, message: string) {
    super(`${builtin}: ${message}`);
    this.name = 'BuiltinError';
  }
}

/** The operand as a string, or the error OPA reports for another type. */
export function str(builtin: string, x: unknown): string {
  if (typeof x !== 'string') throw new BuiltinError(builtin, `operand must be string, got ${typeName(x)}`);
  return x;
}

/** OPA's name for a value's type (sets reach builtins that do not take exact values as arrays). */
export function typeName(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return 'array';
  if (x instanceof RegoSet) return 'set';
  if (x instanceof RegoNumber) return 'number';
  if (x instanceof RegoObject) return 'object';
  return typeof x;
}

/** An object operand with string keys (not null, not an array, not an exact set, number or non-string-keyed object). */
export function isObject(x: unknown): x is { [key: string]: JsonValue } {
  return typeof x === 'object' && x !== null && !Array.isArray(x) && !(x instanceof RegoSet) && !(x instanceof RegoNumber) && !(x instanceof RegoObject);
}

/** Exactly one JSON text (surrounding whitespace allowed), as Go's json.Unmarshal takes it and JSON.parse does. */
export function isJsonText(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** An integer result: a plain number when exact as a double, else its JSON text for the SDK to load. */
export function bigNumber(n: bigint): HostResult {
  if (n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(n);
  const bytes = new TextEncoder().encode(n.toString());
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

const EXACT_VALUES = Symbol('warden.exactValues');

/**
 * Marks a builtin as taking exact values: its arguments arrive as RegoValues (sets as RegoSet,
 * integers beyond 2^53 and numbers spelt with a fraction or exponent as RegoNumber), read from the
 * module's value text. Others get plain JSON, which costs less; any builtin may return a RegoValue.
 */
export function exact<F extends (...args: never[]) => unknown>(f: F): F {
  return Object.assign(f, { [EXACT_VALUES]: true });
}

/** True when the builtin was marked with `exact`. */
export function takesExactValues(f: unknown): boolean {
  return typeof f === 'function' && EXACT_VALUES in f;
}

/** JSON text of a value holding big integers (bigint anywhere inside), every digit kept; its object keys must be the caller's own names. */
export function exactJsonText(value: unknown): string {
  // JSON.stringify cannot write a bigint: each becomes a string marked by a leading NUL and "B", then
  // unwrapped into a bare number. A string of the value's own that starts with NUL gets an "S" after it,
  // taken out again, so that no string in the value (a certificate's subject, say) can pass for a number.
  const text = JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `\u0000B${v.toString()}` : typeof v === 'string' && v.startsWith('\u0000') ? `\u0000S${v.slice(1)}` : v));
  return text.replace(/"\\u0000(?:B(-?\d+)"|S)/g, (_m, digits: string | undefined) => (digits === undefined ? '"\\u0000' : digits));
}

/** A result given as JSON text (for the SDK to load as it is: big integers stay exact). */
export function jsonTextResult(text: string): ArrayBuffer {
  const bytes = new TextEncoder().encode(text);
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

/** A result holding big integers (bigint anywhere inside), as JSON text with every digit kept. */
export function exactJson(value: unknown): ArrayBuffer {
  return jsonTextResult(exactJsonText(value));
}

/** Go's base64.StdEncoding.DecodeString (standard alphabet, padded; newlines ignored), or undefined when `s` is not that. */
export function decodeBase64Std(s: string): Buffer | undefined {
  const t = s.replace(/[\r\n]/g, '');
  return /^[A-Za-z0-9+/]*={0,2}$/.test(t) && t.length % 4 === 0 ? Buffer.from(t, 'base64') : undefined;
}

/** decodeBase64Std, where text that is not base64 is a builtin error (Go's "illegal base64 data"). */
export function base64Std(builtin: string, s: string): Buffer {
  const bytes = decodeBase64Std(s);
  if (!bytes) throw new BuiltinError(builtin, 'illegal base64 data');
  return bytes;
}
