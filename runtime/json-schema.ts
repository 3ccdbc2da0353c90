// json.verify_schema and json.match_schema with ajv, in the shape OPA's gojsonschema-based builtins
// answer: [ok, error text] and [ok, [{error, type, field, desc}]]. ajv's messages are reworded to
// gojsonschema's for the common cases (wrong type, missing property); other failures keep ajv's text.
import { rememberAtMost } from './bounded-map.js';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { BuiltinError, isObject, typeName } from './builtin-operand.js';
import type { JsonValue } from './sprintf.js';

const addFormats = addFormatsModule as unknown as { default: (ajv: Ajv) => Ajv };

// Lenient as gojsonschema is: unknown keywords are annotations, not errors.
const ajv = new Ajv({ allErrors: true, strict: false, validateSchema: true, allowUnionTypes: true });
addFormats.default(ajv);

const PRIMITIVES = ['array', 'boolean', 'integer', 'number', 'null', 'object', 'string'];

// Compiled schemas by their JSON text: compiling is far dearer than validating. Bounded.
const compiled = new Map<string, ValidateFunction>();
const MAX_COMPILED = 64;

function schemaValue(builtin: string, x: JsonValue): JsonValue {
  if (typeof x !== 'string') return x;
  try {
    return JSON.parse(x) as JsonValue;
  } catch {
    throw new BuiltinError(builtin, 'schema is not valid JSON');
  }
}

// gojsonschema rejects an unknown primitive type before anything else, with this text.
function unknownType(schema: JsonValue): string | undefined {
  if (Array.isArray(schema)) {
    for (const s of schema) {
      const u = unknownType(s);
      if (u) return u;
    }
  } else if (isObject(schema)) {
    for (const [k, v] of Object.entries(schema)) {
      const types = k === 'type' ? (Array.isArray(v) ? v : [v]) : [];
      const bad = types.find((t) => typeof t === 'string' && !PRIMITIVES.includes(t));
      if (bad !== undefined) return `has a primitive type that is NOT VALID -- given: /${bad as string}/ Expected valid values are:[${PRIMITIVES.join(' ')}]`;
      const u = typeof v === 'object' ? unknownType(v) : undefined;
      if (u) return u;
    }
  }
  return undefined;
}

function compile(builtin: string, x: JsonValue): ValidateFunction {
  const schema = schemaValue(builtin, x);
  const key = JSON.stringify(schema);
  let v = compiled.get(key);
  if (v) return v;
  const bad = unknownType(schema);
  if (bad) throw new BuiltinError(builtin, `jsonschema: ${bad}`);
  if (!isObject(schema) && typeof schema !== 'boolean') throw new BuiltinError(builtin, `jsonschema: schema must be an object or a boolean, got ${typeName(schema)}`);
  try {
    v = ajv.compile(schema as object);
  } catch (err) {
    throw new BuiltinError(builtin, `jsonschema: ${(err as Error).message}`);
  }
  rememberAtMost(compiled, key, v, MAX_COMPILED);
  return v;
}

/** json.verify_schema(schema): [true, null], or [false, why] for a schema that does not compile. */
export function verifySchema(schema: JsonValue): JsonValue {
  try {
    compile('json.verify_schema', schema);
    return [true, null];
  } catch (err) {
    if (!(err instanceof BuiltinError)) throw err;
    return [false, err.message.replace(/^json\.verify_schema: /, '')];
  }
}

function goType(v: unknown): string {
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeName(v);
}

// gojsonschema's field names: "(root)", or the path joined with dots.
function field(e: ErrorObject): string {
  const parts = e.instancePath.split('/').slice(1).map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'));
  if (e.keyword === 'required') return parts.length ? parts.join('.') : '(root)';
  return parts.length ? parts.join('.') : '(root)';
}

function describe(e: ErrorObject, document: JsonValue): { type: string; desc: string } {
  if (e.keyword === 'type') {
    const at = e.instancePath.split('/').slice(1).reduce<unknown>((v, k) => (v as Record<string, unknown>)?.[k.replaceAll('~1', '/').replaceAll('~0', '~')], document);
    const expected = ([] as string[]).concat(e.params.type as string | string[]).join('/');
    return { type: 'invalid_type', desc: `Invalid type. Expected: ${expected}, given: ${goType(at)}` };
  }
  if (e.keyword === 'required') return { type: 'required', desc: `${e.params.missingProperty as string} is required` };
  return { type: e.keyword, desc: e.message ?? e.keyword };
}

/** json.match_schema(document, schema): [true, []] or [false, the errors as gojsonschema reports them]. */
export function matchSchema(document: JsonValue, schema: JsonValue): JsonValue {
  const validate = compile('json.match_schema', schema);
  const doc = typeof document === 'string' ? schemaValue('json.match_schema', document) : document;
  if (validate(doc)) return [true, []];
  const errors = (validate.errors ?? []).map((e) => {
    const f = field(e);
    const { type, desc } = describe(e, doc);
    return { error: `${f}: ${desc}`, type, field: f, desc };
  });
  return [false, errors];
}
