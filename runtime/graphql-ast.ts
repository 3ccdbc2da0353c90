// OPA's graphql builtins take a query or schema either as text or as the AST object graphql.parse_query /
// graphql.parse_schema return (gqlparser's AST, pruned). The runtime validates with graphql-js, which reads
// text, so an AST object is printed back to GraphQL text first. The object may come from input: every
// name, operation and literal is checked against GraphQL's grammar and every string is quoted, so that no
// value can smuggle syntax into the document that is then validated.
import { BuiltinError, isObject } from './builtin-operand.js';
import type { JsonValue } from './sprintf.js';

type Json = { [key: string]: JsonValue };

const NAME = /^[_A-Za-z][_0-9A-Za-z]*$/;
const INT = /^-?(?:0|[1-9][0-9]*)$/;
const FLOAT = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$/;
const OPERATIONS = new Set(['query', 'mutation', 'subscription']);

class Printer {
  constructor(private readonly builtin: string) {}

  private fail(what: string): never {
    throw new BuiltinError(this.builtin, `invalid GraphQL AST object: ${what}`);
  }

  private obj(x: JsonValue | undefined, where: string): Json {
    if (x === undefined) return {};
    return isObject(x) ? x : this.fail(`${where} must be an object`);
  }

  private list(x: JsonValue | undefined, where: string): Json[] {
    if (x === undefined) return [];
    return Array.isArray(x) ? x.map((e) => this.obj(e, where)) : this.fail(`${where} must be an array`);
  }

  private name(x: JsonValue | undefined, where: string): string {
    return typeof x === 'string' && NAME.test(x) ? x : this.fail(`${where} must be a GraphQL name, got ${JSON.stringify(x ?? null)}`);
  }

  private names(x: JsonValue | undefined, where: string): string[] {
    if (x === undefined) return [];
    return Array.isArray(x) ? x.map((n) => this.name(n, where)) : this.fail(`${where} must be an array`);
  }

  private description(x: JsonValue | undefined): string {
    if (x === undefined || x === '') return '';
    return typeof x === 'string' ? `${JSON.stringify(x)} ` : this.fail('Description must be a string');
  }

  value(v: Json): string {
    const raw = v.Raw ?? '';
    if (typeof raw !== 'string') this.fail('Value.Raw must be a string');
    const children = this.list(v.Children, 'Value.Children');
    switch (v.Kind ?? 0) {
      case 0: return `$${this.name(raw, 'variable')}`;
      case 1: return INT.test(raw) ? raw : this.fail(`bad Int ${JSON.stringify(raw)}`);
      case 2: return FLOAT.test(raw) ? raw : this.fail(`bad Float ${JSON.stringify(raw)}`);
      case 3: case 4: return JSON.stringify(raw);
      case 5: return raw === 'true' || raw === 'false' ? raw : this.fail(`bad Boolean ${JSON.stringify(raw)}`);
      case 6: return 'null';
      case 7: return ['true', 'false', 'null'].includes(raw) ? this.fail(`bad enum value ${raw}`) : this.name(raw, 'enum value');
      case 8: return `[${children.map((c) => this.value(this.obj(c.Value, 'Value'))).join(', ')}]`;
      case 9: return `{${children.map((c) => `${this.name(c.Name, 'object field')}: ${this.value(this.obj(c.Value, 'Value'))}`).join(', ')}}`;
    }
    return this.fail(`unknown Value.Kind ${JSON.stringify(v.Kind)}`);
  }

  type(t: Json): string {
    const inner = t.Elem !== undefined ? `[${this.type(this.obj(t.Elem, 'Type.Elem'))}]` : this.name(t.NamedType, 'Type.NamedType');
    return t.NonNull === true ? `${inner}!` : inner;
  }

  private args(a: JsonValue | undefined): string {
    const list = this.list(a, 'Arguments');
    return list.length ? `(${list.map((x) => `${this.name(x.Name, 'argument')}: ${this.value(this.obj(x.Value, 'Value'))}`).join(', ')})` : '';
  }

  private directives(d: JsonValue | undefined): string {
    return this.list(d, 'Directives').map((x) => ` @${this.name(x.Name, 'directive')}${this.args(x.Arguments)}`).join('');
  }

  private selections(s: JsonValue | undefined): string {
    const list = this.list(s, 'SelectionSet');
    if (!list.length) return '';
    return ` { ${list.map((x) => {
      if (x.Alias !== undefined) {
        const [alias, name] = [this.name(x.Alias, 'Alias'), this.name(x.Name, 'field')];
        return `${alias === name ? '' : `${alias}: `}${name}${this.args(x.Arguments)}${this.directives(x.Directives)}${this.selections(x.SelectionSet)}`;
      }
      if (x.SelectionSet !== undefined || x.TypeCondition !== undefined) {
        const on = x.TypeCondition === undefined || x.TypeCondition === '' ? '' : ` on ${this.name(x.TypeCondition, 'TypeCondition')}`;
        return `...${on}${this.directives(x.Directives)}${this.selections(x.SelectionSet)}`;
      }
      return `...${this.name(x.Name, 'fragment spread')}${this.directives(x.Directives)}`;
    }).join(' ')} }`;
  }

  private variables(v: JsonValue | undefined): string {
    const list = this.list(v, 'VariableDefinitions');
    return list.length ? `(${list.map((x) => `$${this.name(x.Variable, 'Variable')}: ${this.type(this.obj(x.Type, 'Type'))}${x.DefaultValue === undefined ? '' : ` = ${this.value(this.obj(x.DefaultValue, 'DefaultValue'))}`}${this.directives(x.Directives)}`).join(', ')})` : '';
  }

  query(q: Json): string {
    const ops = this.list(q.Operations, 'Operations').map((o) => {
      const op = o.Operation ?? 'query';
      if (typeof op !== 'string' || !OPERATIONS.has(op)) this.fail(`unknown operation ${JSON.stringify(op)}`);
      const name = o.Name === undefined || o.Name === '' ? '' : ` ${this.name(o.Name, 'operation name')}`;
      return `${op}${name}${this.variables(o.VariableDefinitions)}${this.directives(o.Directives)}${this.selections(o.SelectionSet)}`;
    });
    const frags = this.list(q.Fragments, 'Fragments').map((f) => `fragment ${this.name(f.Name, 'fragment')}${this.variables(f.VariableDefinition)} on ${this.name(f.TypeCondition, 'TypeCondition')}${this.directives(f.Directives)}${this.selections(f.SelectionSet)}`);
    return [...ops, ...frags].join('\n');
  }

  private inputValues(v: JsonValue | undefined): string {
    const list = this.list(v, 'Arguments');
    return list.length ? `(${list.map((x) => this.inputValue(x)).join(', ')})` : '';
  }

  private inputValue(x: Json): string {
    return `${this.description(x.Description)}${this.name(x.Name, 'argument')}: ${this.type(this.obj(x.Type, 'Type'))}${x.DefaultValue === undefined ? '' : ` = ${this.value(this.obj(x.DefaultValue, 'DefaultValue'))}`}${this.directives(x.Directives)}`;
  }

  private definition(d: Json, extend: boolean): string {
    const kind = d.Kind;
    const head = `${extend ? 'extend ' : this.description(d.Description)}`;
    const name = this.name(d.Name, 'type name');
    const interfaces = this.names(d.Interfaces, 'Interfaces');
    const impl = interfaces.length ? ` implements ${interfaces.join(' & ')}` : '';
    const fields = this.list(d.Fields, 'Fields');
    const block = (items: string[]) => (items.length ? ` { ${items.join(' ')} }` : '');
    switch (kind) {
      case 'SCALAR': return `${head}scalar ${name}${this.directives(d.Directives)}`;
      case 'OBJECT': case 'INTERFACE':
        return `${head}${kind === 'OBJECT' ? 'type' : 'interface'} ${name}${impl}${this.directives(d.Directives)}${block(fields.map((f) => `${this.description(f.Description)}${this.name(f.Name, 'field')}${this.inputValues(f.Arguments)}: ${this.type(this.obj(f.Type, 'Type'))}${this.directives(f.Directives)}`))}`;
      case 'UNION': {
        const types = this.names(d.Types, 'Types');
        return `${head}union ${name}${this.directives(d.Directives)}${types.length ? ` = ${types.join(' | ')}` : ''}`;
      }
      case 'ENUM':
        return `${head}enum ${name}${this.directives(d.Directives)}${block(this.list(d.EnumValues, 'EnumValues').map((e) => `${this.description(e.Description)}${this.name(e.Name, 'enum value')}${this.directives(e.Directives)}`))}`;
      case 'INPUT_OBJECT': return `${head}input ${name}${this.directives(d.Directives)}${block(fields.map((f) => this.inputValue(f)))}`;
    }
    return this.fail(`unknown definition Kind ${JSON.stringify(kind ?? null)}`);
  }

  schema(s: Json): string {
    const schemas = (key: string, extend: boolean) => this.list(s[key], key).map((x) => {
      const ops = this.list(x.OperationTypes, 'OperationTypes').map((o) => {
        if (typeof o.Operation !== 'string' || !OPERATIONS.has(o.Operation)) this.fail(`unknown operation ${JSON.stringify(o.Operation ?? null)}`);
        return `${o.Operation}: ${this.name(o.Type, 'operation type')}`;
      });
      return `${extend ? 'extend ' : this.description(x.Description)}schema${this.directives(x.Directives)}${ops.length ? ` { ${ops.join(' ')} }` : ''}`;
    });
    const directives = this.list(s.Directives, 'Directives').map((d) => `${this.description(d.Description)}directive @${this.name(d.Name, 'directive')}${this.inputValues(d.Arguments)}${d.IsRepeatable === true ? ' repeatable' : ''} on ${this.names(d.Locations, 'Locations').join(' | ')}`);
    return [
      ...schemas('Schema', false), ...schemas('SchemaExtension', true), ...directives,
      ...this.list(s.Definitions, 'Definitions').map((d) => this.definition(d, false)),
      ...this.list(s.Extensions, 'Extensions').map((d) => this.definition(d, true)),
    ].join('\n');
  }
}

/** GraphQL text for a query or schema given as text or as OPA's AST object (a query when it has Operations or Fragments). */
export function graphqlText(builtin: string, doc: JsonValue): string {
  if (typeof doc === 'string') return doc;
  if (!isObject(doc)) throw new BuiltinError(builtin, 'operand must be a string or a GraphQL AST object');
  const printer = new Printer(builtin);
  return 'Operations' in doc || 'Fragments' in doc ? printer.query(doc) : printer.schema(doc);
}
