// JSON text as Go's encoding/json writes it, for builtins whose output bytes OPA takes from it (signed
// JWTs, json.marshal_with_options): object keys sorted by code point, `<`, `>`, `&`, U+2028 and U+2029
// escaped, no spaces.
import { compareCodePoints, type JsonValue } from './sprintf.js';

const GO_ESCAPES: Record<string, string> = { '<': '\\u003c', '>': '\\u003e', '&': '\\u0026', '\u2028': '\\u2028', '\u2029': '\\u2029' };

function goString(s: string): string {
  return JSON.stringify(s).replace(/[<>&\u2028\u2029]/g, (c) => GO_ESCAPES[c]!);
}

/** The compact JSON text Go's json.Marshal gives for a value decoded from JSON. */
export function goJson(value: JsonValue): string {
  if (value === null || typeof value !== 'object') return typeof value === 'string' ? goString(value) : JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(goJson).join(',')}]`;
  const keys = Object.keys(value).sort(compareCodePoints);
  return `{${keys.map((k) => `${goString(k)}:${goJson(value[k]!)}`).join(',')}}`;
}
