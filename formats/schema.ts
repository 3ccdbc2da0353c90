// Validation for every format that crosses a process boundary: one ajv instance, schemas compiled
// once, errors turned into messages that name the field path and what was expected.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { UserError } from './user-error.js';

const addFormats = addFormatsModule as unknown as { default: (ajv: Ajv) => Ajv };

/** The shared ajv instance: all errors, strict schemas, standard formats. */
export const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
addFormats.default(ajv);

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

/** Compile a JSON Schema once into a Validator for type T. */
export function validator<T>(schema: object): Validator<T> {
  const fn: ValidateFunction = ajv.compile(schema);
  const issues = (): SchemaIssue[] => dedupe((fn.errors ?? []).map(describe));
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
