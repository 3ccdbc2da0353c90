// Validation for every format that crosses a process boundary: one ajv instance, schemas compiled
// once (on first use: a process compiles only the schemas it meets, so a sidecar does not spend its
// start compiling the engine's), errors turned into messages that name the field path and what was
// expected.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { UserError } from './user-error.js';

const addFormats = addFormatsModule as unknown as { default: (ajv: Ajv) => Ajv };

let shared: Ajv | undefined;

/** The shared ajv instance (made on first use): all errors, strict schemas, standard formats. */
function sharedAjv(): Ajv {
  if (!shared) {
    // Our schemas are checked against JSON Schema's meta-schema by compileAllValidators (run by the
    // tests), not on every start: compiling the meta-schema (and even adding it, `meta`) was most of a
    // sidecar's schema time.
    shared = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true, validateSchema: false, meta: false });
    addFormats.default(shared);
  }
  return shared;
}

/** One problem found in a document: the JSON path where it is and what is wrong. */
export interface SchemaIssue {
  path: string;
  message: string;
}

/** Thrown by `Validator.parse` with every issue found; `where` names the document (file or request). */
export class SchemaError extends UserError {
  constructor(
    readonly where: string,
    readonly issues: SchemaIssue[],
  ) {
    super(`${where}: ${issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ')}`);
    this.name = 'SchemaError';
  }
}

function describe(e: ErrorObject): SchemaIssue {
  const path = e.instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, seg) => (/^\d+$/.test(seg) ? `${acc}[${seg}]` : acc ? `${acc}.${seg}` : seg), '');
  switch (e.keyword) {
    case 'additionalProperties':
      return { path, message: `unknown field "${String(e.params.additionalProperty)}"` };
    case 'required':
      return { path, message: `missing required field "${String(e.params.missingProperty)}"` };
    case 'enum':
      return { path, message: `must be one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}` };
    default:
      return { path, message: e.message ?? e.keyword };
  }
}

/** A compiled schema with a typed `parse` (throws SchemaError) and a non-throwing `check`. */
export interface Validator<T> {
  parse(value: unknown, where: string): T;
  check(value: unknown): SchemaIssue[];
}

// Every validator made so far, to compile them all at once (compileAllValidators).
const made: Array<{ schema: object; compile: () => ValidateFunction }> = [];

// The $ids of the made schemas already added to the shared instance.
const added = new Set<string>();
const idOf = (schema: object): string | undefined => {
  const id = (schema as { $id?: unknown }).$id;
  return typeof id === 'string' ? id : undefined;
};

// Compile one schema on the shared instance. Every schema made so far is added (not compiled) first, so
// that a `$ref` to another format's `$id` resolves whichever of the two is compiled first.
function compileShared(schema: object): ValidateFunction {
  const ajv = sharedAjv();
  for (const m of made) {
    const id = idOf(m.schema);
    if (id !== undefined && !added.has(id)) {
      ajv.addSchema(m.schema);
      added.add(id);
    }
  }
  const id = idOf(schema);
  return id !== undefined ? ajv.getSchema(id)! : ajv.compile(schema);
}

/** A Validator for type T; the schema is compiled once, when it first validates. */
export function validator<T>(schema: object): Validator<T> {
  let compiled: ValidateFunction | undefined;
  const compile = () => (compiled ??= compileShared(schema));
  made.push({ schema, compile });
  const fn = (value: unknown): boolean => compile()(value);
  const issues = (): SchemaIssue[] => dedupe((compiled!.errors ?? []).map(describe));
  return {
    parse(value, where) {
      if (!fn(value)) throw new SchemaError(where, issues());
      return value as T;
    },
    check(value) {
      return fn(value) ? [] : issues();
    },
  };
}

function dedupe(list: SchemaIssue[]): SchemaIssue[] {
  const seen = new Set<string>();
  return list.filter((i) => {
    const k = `${i.path}\0${i.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/**
 * Check every schema the imported modules made against JSON Schema's meta-schema and compile it (a
 * schema ajv refuses throws, naming it); how many there are. For tests: a start skips the meta-schema.
 */
export function compileAllValidators(): number {
  const checker = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
  addFormats.default(checker);
  for (const { schema, compile } of made) {
    if (!checker.validateSchema(schema)) throw new Error(`schema ${JSON.stringify(schema).slice(0, 120)}… is not valid JSON Schema: ${checker.errorsText(checker.errors)}`);
    compile();
  }
  return made.length;
}
