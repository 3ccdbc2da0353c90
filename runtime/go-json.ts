// JSON text as Go's encoding/json writes it, for builtins whose output bytes OPA takes from it (signed
// JWTs, json.marshal_with_options): object keys sorted by code point, `<`, `>`, `&`, U+2028 and U+2029
// escaped, no spaces.
import { BuiltinError } from './builtin-operand.js';
import type { OpaJson } from './rego-value.js';
import { compareCodePoints, type JsonValue } from './sprintf.js';

const GO_ESCAPES: Record<string, string> = { '<': '\\u003c', '>': '\\u003e', '&': '\\u0026', '\u2028': '\\u2028', '\u2029': '\\u2029' };

function goString(s: string): string {
  return JSON.stringify(s).replace(/[<>&\u2028\u2029]/g, (c) => GO_ESCAPES[c]!);
}

/**
 * The JSON text Go's json.Marshal gives for a value decoded from JSON, or json.MarshalIndent's when
 * `indent` is given: every line after the first starts with `prefix`, then `indent` per level.
 */
export function goJson(value: JsonValue | OpaJson, indent?: { prefix: string; indent: string }, depth = 0): string {
  if (value === null || typeof value !== 'object') return typeof value === 'string' ? goString(value) : typeof value === 'bigint' ? value.toString() : JSON.stringify(value);
  const items = Array.isArray(value)
    ? value.map((v) => goJson(v, indent, depth + 1))
    : Object.keys(value)
        .sort(compareCodePoints)
        .map((k) => `${goString(k)}:${indent ? ' ' : ''}${goJson(value[k]!, indent, depth + 1)}`);
  const [open, close] = Array.isArray(value) ? ['[', ']'] : ['{', '}'];
  if (!indent || items.length === 0) return `${open}${items.join(',')}${close}`;
  const line = (d: number) => `\n${indent.prefix}${indent.indent.repeat(d)}`;
  return `${open}${items.map((i) => `${line(depth + 1)}${i}`).join(',')}${line(depth)}${close}`;
}

/** json.marshal_with_options(value, {pretty, indent, prefix}), as OPA reads the options. */
export function marshalWithOptions(value: JsonValue, options: JsonValue): string {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) throw new BuiltinError('json.marshal_with_options', 'operand 2 must be object');
  let prefix = '';
  let indent = '\t';
  let implicit = false;
  let pretty: boolean | undefined;
  for (const key of Object.keys(options).sort(compareCodePoints)) {
    const v = options[key];
    if (key === 'prefix' || key === 'indent') {
      if (typeof v !== 'string') throw new BuiltinError('json.marshal_with_options', `operand 2 key ${key} failed cast to string`);
      if (key === 'prefix') prefix = v;
      else indent = v;
      implicit = true;
    } else if (key === 'pretty') {
      if (typeof v !== 'boolean') throw new BuiltinError('json.marshal_with_options', `operand 2 key ${key} failed cast to bool`);
      pretty = v;
    } else throw new BuiltinError('json.marshal_with_options', `operand 2 object contained unknown key ${key}`);
  }
  return (pretty ?? implicit) ? prefix + goJson(value, { prefix, indent }) : goJson(value);
}
