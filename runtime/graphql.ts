// graphql.* builtins. The reference `graphql` package parses and validates; its AST is then reshaped
// into what OPA returns, the JSON of vektah/gqlparser's AST with empty and null fields pruned
// (v1/topdown/graphql.go). Validation is graphql-js's, which can differ from gqlparser's rules: the
// conformance suite lists the cases where it does.
import {
  buildASTSchema,
  Kind,
  parse,
  validate as validateQuery,
  validateSchema,
  type GraphQLSchema,
  type ArgumentNode,
  type ConstDirectiveNode,
  type DefinitionNode,
  type DirectiveNode,
  type DocumentNode,
  type FieldDefinitionNode,
  type InputValueDefinitionNode,
  type SelectionNode,
  type TypeNode,
  type ValueNode,
  type VariableDefinitionNode,
} from 'graphql';
import { specifiedSDLRules } from 'graphql/validation/specifiedRules.js';
import { validateSDL } from 'graphql/validation/validate.js';
import { BuiltinError } from './builtin-operand.js';
import { graphqlText } from './graphql-ast.js';
import type { JsonValue } from './sprintf.js';

type Json = { [key: string]: JsonValue };

// A document with no definitions at all: gqlparser reads it as an empty (valid) query; graphql-js's parser
// refuses it.
const EMPTY_DOCUMENT = /^(?:[\s,\uFEFF]|#[^\n\r]*)*$/;

function parseDocument(builtin: string, doc: JsonValue): DocumentNode {
  const text = graphqlText(builtin, doc);
  if (EMPTY_DOCUMENT.test(text)) return { kind: Kind.DOCUMENT, definitions: [] };
  try {
    // gqlparser reads variables declared on fragments (an experimental syntax graphql-js keeps behind a flag).
    return parse(text, { noLocation: true, allowLegacyFragmentVariables: true });
  } catch (err) {
    throw new BuiltinError(builtin, (err as Error).message);
  }
}

// OPA's pruning: no nulls, no empty arrays or objects (after pruning), anywhere.
function prune(v: unknown): JsonValue | undefined {
  if (v === null || v === undefined) return undefined;
  if (Array.isArray(v)) {
    const out = v.map(prune).filter((x): x is JsonValue => x !== undefined);
    return out.length ? out : undefined;
  }
  if (typeof v === 'object') {
    const out: Json = {};
    for (const [k, x] of Object.entries(v)) {
      const p = prune(x);
      if (p !== undefined) out[k] = p;
    }
    return Object.keys(out).length ? out : undefined;
  }
  return v as JsonValue;
}

const VALUE_KIND: Record<string, number> = {
  [Kind.VARIABLE]: 0, [Kind.INT]: 1, [Kind.FLOAT]: 2, [Kind.STRING]: 3, [Kind.BOOLEAN]: 5, [Kind.NULL]: 6, [Kind.ENUM]: 7, [Kind.LIST]: 8, [Kind.OBJECT]: 9,
};

function value(v: ValueNode | undefined): unknown {
  if (!v) return undefined;
  const base = { ExpectedTypeHasDefault: false };
  switch (v.kind) {
    case Kind.VARIABLE:
      return { ...base, Kind: 0, Raw: v.name.value };
    case Kind.INT:
    case Kind.FLOAT:
    case Kind.ENUM:
      return { ...base, Kind: VALUE_KIND[v.kind], Raw: v.value };
    case Kind.STRING:
      return { ...base, Kind: v.block ? 4 : 3, Raw: v.value };
    case Kind.BOOLEAN:
      return { ...base, Kind: 5, Raw: String(v.value) };
    case Kind.NULL:
      return { ...base, Kind: 6, Raw: 'null' };
    case Kind.LIST:
      return { ...base, Kind: 8, Raw: '', Children: v.values.map((c) => ({ Name: '', Value: value(c) })) };
    case Kind.OBJECT:
      return { ...base, Kind: 9, Raw: '', Children: v.fields.map((f) => ({ Name: f.name.value, Value: value(f.value) })) };
  }
}

function type(t: TypeNode): unknown {
  if (t.kind === Kind.NON_NULL_TYPE) return { ...(type(t.type) as object), NonNull: true };
  if (t.kind === Kind.LIST_TYPE) return { NamedType: '', Elem: type(t.type), NonNull: false };
  return { NamedType: t.name.value, NonNull: false };
}

const args = (a: readonly ArgumentNode[] | undefined) => a?.map((x) => ({ Name: x.name.value, Value: value(x.value) }));
const directives = (d: readonly (DirectiveNode | ConstDirectiveNode)[] | undefined) => d?.map((x) => ({ Name: x.name.value, Arguments: args(x.arguments), Location: '' }));

function selections(s: readonly SelectionNode[] | undefined): unknown {
  return s?.map((x) => {
    if (x.kind === Kind.FIELD) return { Alias: x.alias?.value ?? x.name.value, Name: x.name.value, Arguments: args(x.arguments), Directives: directives(x.directives), SelectionSet: selections(x.selectionSet?.selections) };
    if (x.kind === Kind.FRAGMENT_SPREAD) return { Name: x.name.value, Directives: directives(x.directives) };
    return { TypeCondition: x.typeCondition?.name.value ?? '', Directives: directives(x.directives), SelectionSet: selections(x.selectionSet.selections) };
  });
}

const variables = (v: readonly VariableDefinitionNode[] | undefined) =>
  v?.map((x) => ({ Description: '', Variable: x.variable.name.value, Type: type(x.type), DefaultValue: value(x.defaultValue), Directives: directives(x.directives), Used: false }));

/** The query document as OPA's graphql.parse_query returns it. */
function queryAst(doc: DocumentNode): JsonValue {
  const ops: unknown[] = [];
  const frags: unknown[] = [];
  for (const d of doc.definitions) {
    if (d.kind === Kind.OPERATION_DEFINITION) {
      ops.push({ Description: d.description?.value ?? '', Operation: d.operation, Name: d.name?.value ?? '', VariableDefinitions: variables(d.variableDefinitions), Directives: directives(d.directives), SelectionSet: selections(d.selectionSet.selections) });
    } else if (d.kind === Kind.FRAGMENT_DEFINITION) {
      frags.push({ Description: d.description?.value ?? '', Name: d.name.value, VariableDefinition: variables(d.variableDefinitions), TypeCondition: d.typeCondition.name.value, Directives: directives(d.directives), SelectionSet: selections(d.selectionSet.selections) });
    } else throw new BuiltinError('graphql.parse_query', `a query document cannot hold a ${d.kind}`);
  }
  return prune({ Operations: ops, Fragments: frags }) ?? {};
}

const inputValues = (v: readonly InputValueDefinitionNode[] | undefined) =>
  v?.map((x) => ({ Description: x.description?.value ?? '', Name: x.name.value, DefaultValue: value(x.defaultValue), Type: type(x.type), Directives: directives(x.directives) }));

const fields = (f: readonly (FieldDefinitionNode | InputValueDefinitionNode)[] | undefined) =>
  f?.map((x) =>
    x.kind === Kind.FIELD_DEFINITION
      ? { Description: x.description?.value ?? '', Name: x.name.value, Arguments: inputValues(x.arguments), Type: type(x.type), Directives: directives(x.directives) }
      : { Description: x.description?.value ?? '', Name: x.name.value, DefaultValue: value(x.defaultValue), Type: type(x.type), Directives: directives(x.directives) },
  );

const TYPE_KIND: Partial<Record<string, string>> = {
  [Kind.SCALAR_TYPE_DEFINITION]: 'SCALAR', [Kind.SCALAR_TYPE_EXTENSION]: 'SCALAR',
  [Kind.OBJECT_TYPE_DEFINITION]: 'OBJECT', [Kind.OBJECT_TYPE_EXTENSION]: 'OBJECT',
  [Kind.INTERFACE_TYPE_DEFINITION]: 'INTERFACE', [Kind.INTERFACE_TYPE_EXTENSION]: 'INTERFACE',
  [Kind.UNION_TYPE_DEFINITION]: 'UNION', [Kind.UNION_TYPE_EXTENSION]: 'UNION',
  [Kind.ENUM_TYPE_DEFINITION]: 'ENUM', [Kind.ENUM_TYPE_EXTENSION]: 'ENUM',
  [Kind.INPUT_OBJECT_TYPE_DEFINITION]: 'INPUT_OBJECT', [Kind.INPUT_OBJECT_TYPE_EXTENSION]: 'INPUT_OBJECT',
};

function typeDefinition(d: DefinitionNode): unknown {
  const x = d as DefinitionNode & Record<string, unknown>;
  const desc = (x.description as { value: string } | undefined)?.value ?? '';
  return {
    Kind: TYPE_KIND[d.kind],
    Description: desc,
    Name: (x.name as { value: string }).value,
    Directives: directives(x.directives as ConstDirectiveNode[] | undefined),
    Interfaces: (x.interfaces as Array<{ name: { value: string } }> | undefined)?.map((i) => i.name.value),
    Fields: fields(x.fields as FieldDefinitionNode[] | undefined),
    Types: (x.types as Array<{ name: { value: string } }> | undefined)?.map((t) => t.name.value),
    EnumValues: (x.values as Array<{ name: { value: string }; description?: { value: string }; directives?: ConstDirectiveNode[] }> | undefined)?.map((e) => ({ Description: e.description?.value ?? '', Name: e.name.value, Directives: directives(e.directives) })),
    BuiltIn: false,
  };
}

/** The schema document as OPA's graphql.parse_schema returns it. */
function schemaAst(doc: DocumentNode): JsonValue {
  const out: Record<string, unknown[]> = { Schema: [], SchemaExtension: [], Directives: [], Definitions: [], Extensions: [] };
  for (const d of doc.definitions) {
    if (d.kind === Kind.SCHEMA_DEFINITION || d.kind === Kind.SCHEMA_EXTENSION) {
      const s = { Description: d.kind === Kind.SCHEMA_DEFINITION ? (d.description?.value ?? '') : '', Directives: directives(d.directives), OperationTypes: d.operationTypes?.map((o) => ({ Operation: o.operation, Type: o.type.name.value })) };
      out[d.kind === Kind.SCHEMA_DEFINITION ? 'Schema' : 'SchemaExtension']!.push(s);
    } else if (d.kind === Kind.DIRECTIVE_DEFINITION) {
      out.Directives!.push({ Description: d.description?.value ?? '', Name: d.name.value, Arguments: inputValues(d.arguments), Locations: d.locations.map((l) => l.value), IsRepeatable: d.repeatable });
    } else if (TYPE_KIND[d.kind]) {
      out[d.kind.endsWith('Extension') ? 'Extensions' : 'Definitions']!.push(typeDefinition(d));
    } else throw new BuiltinError('graphql.parse_schema', `a schema document cannot hold a ${d.kind}`);
  }
  return prune(out) ?? {};
}

// gqlparser's schema rules, as far as graphql-js has them: its SDL rules except that an extension may
// extend a type the document does not define, and no Query root type is required.
const SDL_RULES = specifiedSDLRules.filter((r) => r.name !== 'PossibleTypeExtensionsRule');
const NOT_GQLPARSER = /^Query root type must be provided\.$/;

const DEFINITION_OF: Partial<Record<string, Kind>> = {
  [Kind.SCALAR_TYPE_EXTENSION]: Kind.SCALAR_TYPE_DEFINITION, [Kind.OBJECT_TYPE_EXTENSION]: Kind.OBJECT_TYPE_DEFINITION,
  [Kind.INTERFACE_TYPE_EXTENSION]: Kind.INTERFACE_TYPE_DEFINITION, [Kind.UNION_TYPE_EXTENSION]: Kind.UNION_TYPE_DEFINITION,
  [Kind.ENUM_TYPE_EXTENSION]: Kind.ENUM_TYPE_DEFINITION, [Kind.INPUT_OBJECT_TYPE_EXTENSION]: Kind.INPUT_OBJECT_TYPE_DEFINITION,
};

// gqlparser lets an extension stand for a type the document never defines (federated schemas do this):
// the first extension of such a type becomes its definition. Used for validation only; parse_schema
// still returns the document as written.
function extensionsDefined(doc: DocumentNode): DocumentNode {
  const defined = new Set(doc.definitions.flatMap((d) => ('name' in d && d.name && !d.kind.endsWith('Extension') ? [d.name.value] : [])));
  const definitions = doc.definitions.map((d) => {
    const kind = DEFINITION_OF[d.kind];
    if (!kind || !('name' in d) || !d.name || defined.has(d.name.value)) return d;
    defined.add(d.name.value);
    return { ...d, kind } as DefinitionNode;
  });
  return { ...doc, definitions };
}

function schemaErrors(written: DocumentNode): readonly Error[] {
  const doc = extensionsDefined(written);
  const sdl = validateSDL(doc, undefined, SDL_RULES);
  if (sdl.length) return sdl;
  try {
    return validateSchema(buildASTSchema(doc, { assumeValidSDL: true })).filter((e) => !NOT_GQLPARSER.test(e.message));
  } catch (err) {
    return [err as Error];
  }
}

// graphql-js's validate(), whose schema assertion (a Query root type is required to validate a query,
// as gqlparser requires one too) throws rather than reports.
function validate(schema: GraphQLSchema, query: DocumentNode): readonly Error[] {
  // An empty query asks nothing of the schema: gqlparser accepts it even without a Query type.
  if (query.definitions.length === 0) return [];
  try {
    return validateQuery(schema, query);
  } catch (err) {
    return [err as Error];
  }
}

function checkedSchema(builtin: string, text: JsonValue) {
  const doc = parseDocument(builtin, text);
  const errors = schemaErrors(doc);
  if (errors.length) throw new BuiltinError(builtin, errors[0]!.message);
  return { doc, schema: buildASTSchema(extensionsDefined(doc), { assumeValidSDL: true }) };
}

/** Every graphql.* builtin. */
export const graphqlBuiltins: Record<string, (...args: JsonValue[]) => JsonValue> = {
  'graphql.parse_query': (q) => queryAst(parseDocument('graphql.parse_query', q)),
  'graphql.parse_schema': (s) => schemaAst(parseDocument('graphql.parse_schema', s)),
  'graphql.schema_is_valid': (s) => {
    try {
      return schemaErrors(parseDocument('graphql.schema_is_valid', s)).length === 0;
    } catch {
      return false;
    }
  },
  'graphql.is_valid': (q, s) => {
    try {
      const { schema } = checkedSchema('graphql.is_valid', s);
      return validate(schema, parseDocument('graphql.is_valid', q)).length === 0;
    } catch {
      return false;
    }
  },
  'graphql.parse': (q, s) => {
    const { doc, schema } = checkedSchema('graphql.parse', s);
    const query = parseDocument('graphql.parse', q);
    const errors = validate(schema, query);
    if (errors.length) throw new BuiltinError('graphql.parse', errors[0]!.message);
    return [queryAst(query), schemaAst(doc)];
  },
  'graphql.parse_and_verify': (q, s) => {
    try {
      const { doc, schema } = checkedSchema('graphql.parse_and_verify', s);
      const query = parseDocument('graphql.parse_and_verify', q);
      if (validate(schema, query).length) return [false, {}, {}];
      return [true, queryAst(query), schemaAst(doc)];
    } catch {
      return [false, {}, {}];
    }
  },
};
