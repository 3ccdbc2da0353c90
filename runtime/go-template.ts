// strings.render_template: Go's text/template, as OPA runs it (template.New("template").Parse, then
// Execute over the variables, "<no value>" replaced by "<undefined>"). No maintained JavaScript port of
// text/template exists on npm, so this is the subset written by hand:
//
// - text, comments `{{/* */}}`, trim markers `{{-` and `-}}`;
// - pipelines of fields (`.a.b`, `$.a`, `$x.a`), variables (`$x := …`, `$x = …`), literals (strings,
//   raw strings, numbers, true/false/nil), parenthesised pipelines and `|`;
// - `if` / `else if` / `else`, `range` (slices, maps in key order, `$i, $v :=`, `else`, `break`,
//   `continue`), `with` / `else with`, `end`;
// - the functions and, or, not, len, index, eq, ne, lt, le, gt, ge, print, println, printf.
//
// Anything else (define, template, block, html, js, urlquery, slice, call, methods) fails the
// evaluation with an error that names it, rather than render something OPA would not. Values follow OPA's
// conversion: objects become Go maps, arrays slices, and numbers json.Number (printed as their text,
// compared as strings, as Go does).
import { BuiltinError, isObject } from './builtin-operand.js';
import { sprintfGoArgs, type GoArg, type JsonValue } from './sprintf.js';

const BUILTIN = 'strings.render_template';

/** A JSON number as OPA hands it to text/template: a json.Number, which Go treats as a string kind. */
class GoNumber {
  constructor(readonly text: string) {}
}
/** A number written in the template itself (an untyped constant in Go). */
type Value = string | number | boolean | null | undefined | GoNumber | Value[] | { [key: string]: Value };

// ---- lexing and parsing

type Node =
  | { kind: 'text'; text: string }
  | { kind: 'action'; pipe: Pipe }
  | { kind: 'if'; pipe: Pipe; then: Node[]; else: Node[] }
  | { kind: 'with'; pipe: Pipe; then: Node[]; else: Node[] }
  | { kind: 'range'; pipe: Pipe; then: Node[]; else: Node[] }
  | { kind: 'break' }
  | { kind: 'continue' };
type Pipe = { decl: string[]; assign: boolean; commands: Arg[][] };
type Arg =
  | { kind: 'field'; base: 'dot' | string; path: string[] }
  | { kind: 'literal'; value: Value }
  | { kind: 'func'; name: string }
  | { kind: 'pipe'; pipe: Pipe; path: string[] };

const FUNCTIONS = new Set(['and', 'or', 'not', 'len', 'index', 'eq', 'ne', 'lt', 'le', 'gt', 'ge', 'print', 'println', 'printf']);

function fail(message: string): never {
  throw new BuiltinError(BUILTIN, `template: ${message}`);
}

function unsupported(what: string): never {
  throw new Error(`${BUILTIN}: ${what} is not supported by Warden's runtime (a subset of Go's text/template; see docs/opa-conformance.md)`);
}

// Splits the template into text and the insides of its actions, applying the trim markers.
function segments(src: string): Array<{ text: string } | { action: string }> {
  const out: Array<{ text: string } | { action: string }> = [];
  let pos = 0;
  while (pos < src.length) {
    const open = src.indexOf('{{', pos);
    if (open < 0) {
      out.push({ text: src.slice(pos) });
      break;
    }
    let text = src.slice(pos, open);
    let start = open + 2;
    if (/^- /.test(src.slice(start)) || src.slice(start).startsWith('-\t') || src.slice(start).startsWith('-\n') || src.slice(start).startsWith('-\r')) {
      text = text.replace(/[ \t\r\n]+$/, '');
      start += 1;
    }
    out.push({ text });
    let end: number;
    if (/^\s*\/\*/.test(src.slice(start))) {
      const close = src.indexOf('*/', start);
      if (close < 0) fail('unclosed comment');
      end = src.indexOf('}}', close);
    } else end = closeOfAction(src, start);
    if (end < 0) fail('unclosed action');
    let inner = src.slice(start, end);
    pos = end + 2;
    if (/[ \t\r\n]-$/.test(inner)) {
      inner = inner.slice(0, -1);
      const m = /^[ \t\r\n]+/.exec(src.slice(pos));
      if (m) pos += m[0].length;
    }
    if (!/^\s*\/\*[\s\S]*\*\/\s*$/.test(inner)) out.push({ action: inner });
  }
  return out.filter((s) => !('text' in s) || s.text !== '');
}

// The `}}` closing an action, skipping those inside quoted strings.
function closeOfAction(src: string, from: number): number {
  for (let i = from; i < src.length; i++) {
    const c = src[i];
    if (c === '"') {
      for (i++; i < src.length && src[i] !== '"'; i++) if (src[i] === '\\') i++;
    } else if (c === '`') i = src.indexOf('`', i + 1);
    else if (c === "'") {
      for (i++; i < src.length && src[i] !== "'"; i++) if (src[i] === '\\') i++;
    } else if (src.startsWith('}}', i)) return i;
    if (i < 0) return -1;
  }
  return -1;
}

const TOKEN = /\s*(?:("(?:[^"\\]|\\.)*")|(`[^`]*`)|('(?:[^'\\]|\\.)+')|(:=|=|\||\(|\)|,)|(\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)|((?:\.[A-Za-z0-9_]+)+|\.)|([+-]?(?:0[xX][0-9a-fA-F_]+|\d[\d_]*(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?))|([A-Za-z_][A-Za-z0-9_]*))/y;

function tokens(action: string): string[] {
  const out: string[] = [];
  TOKEN.lastIndex = 0;
  for (;;) {
    if (/^\s*$/.test(action.slice(TOKEN.lastIndex))) return out;
    const at = TOKEN.lastIndex;
    const m = TOKEN.exec(action);
    if (!m) fail(`unexpected ${JSON.stringify(action.slice(at).trim().slice(0, 20))} in action`);
    out.push(m.slice(1).find((g) => g !== undefined)!);
  }
}

class Parser {
  private toks: string[] = [];
  private k = 0;
  private readonly segs: Array<{ text: string } | { action: string }>;
  private s = 0;

  constructor(src: string) {
    this.segs = segments(src);
  }

  // Parses nodes until one of the `stops` keywords; returns the nodes and the stopping action's tokens.
  list(stops: string[]): [Node[], string[] | undefined] {
    const nodes: Node[] = [];
    while (this.s < this.segs.length) {
      const seg = this.segs[this.s++]!;
      if ('text' in seg) {
        nodes.push({ kind: 'text', text: seg.text });
        continue;
      }
      const toks = tokens(seg.action);
      const keyword = toks[0] ?? '';
      if (stops.includes(keyword)) return [nodes, toks];
      if (keyword === 'end' || keyword === 'else') fail(`unexpected {{${keyword}}}`);
      if (keyword === 'if' || keyword === 'with' || keyword === 'range') nodes.push(this.control(keyword, toks.slice(1)));
      else if (keyword === 'break' || keyword === 'continue') nodes.push({ kind: keyword });
      else if (['define', 'template', 'block'].includes(keyword)) unsupported(`{{${keyword}}}`);
      else if (keyword === '') fail('missing value for command');
      else nodes.push({ kind: 'action', pipe: this.pipe(toks) });
    }
    if (stops.length > 0) fail('unexpected EOF');
    return [nodes, undefined];
  }

  private control(kind: 'if' | 'with' | 'range', toks: string[]): Node {
    const pipe = this.pipe(toks);
    const [then, stop] = this.list(['else', 'end']);
    let otherwise: Node[] = [];
    if (stop?.[0] === 'else') {
      if (stop.length > 1) {
        // `else if …` / `else with …`: a nested control that shares this one's end.
        if (stop[1] !== kind || kind === 'range') fail(`unexpected ${stop[1]} after else`);
        otherwise = [this.control(kind, stop.slice(2))];
      } else {
        const [nodes, end] = this.list(['end']);
        if (end!.length > 1) fail('unexpected tokens after end');
        otherwise = nodes;
      }
    } else if (stop!.length > 1) fail('unexpected tokens after end');
    return { kind, pipe, then, else: otherwise };
  }

  private pipe(toks: string[]): Pipe {
    this.toks = toks;
    this.k = 0;
    return this.pipeline(false);
  }

  private pipeline(nested: boolean): Pipe {
    const decl: string[] = [];
    let assign = false;
    // `$x :=`, `$x =`, `$i, $v :=`
    const t = this.toks;
    if (/^\$[A-Za-z0-9_]*$/.test(t[this.k] ?? '')) {
      if (t[this.k + 1] === ':=' || t[this.k + 1] === '=') {
        decl.push(t[this.k]!);
        assign = t[this.k + 1] === '=';
        this.k += 2;
      } else if (t[this.k + 1] === ',' && /^\$/.test(t[this.k + 2] ?? '') && (t[this.k + 3] === ':=' || t[this.k + 3] === '=')) {
        decl.push(t[this.k]!, t[this.k + 2]!);
        assign = t[this.k + 3] === '=';
        this.k += 4;
      }
    }
    const commands: Arg[][] = [[]];
    while (this.k < t.length) {
      const tok = t[this.k++]!;
      if (tok === ')') {
        if (!nested) fail('unexpected right paren');
        return { decl, assign, commands: check(commands) };
      }
      if (tok === '|') commands.push([]);
      else if (tok === '(') {
        const pipe = this.pipeline(true);
        // a field chain right after the parenthesis: (pipeline).a.b
        const chain = /^(?:\.[A-Za-z0-9_]+)+$/.test(t[this.k] ?? '') ? t[this.k++]!.slice(1).split('.') : [];
        commands[commands.length - 1]!.push({ kind: 'pipe', pipe, path: chain });
      } else commands[commands.length - 1]!.push(argument(tok));
    }
    if (nested) fail('unclosed left paren');
    return { decl, assign, commands: check(commands) };
  }
}

function check(commands: Arg[][]): Arg[][] {
  if (commands.some((c) => c.length === 0)) fail('missing value for command');
  return commands;
}

const ESCAPES: Record<string, string> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\', '"': '"' };

// Go's strconv.Unquote of a double-quoted string: its escapes, not JSON's (\x, \a, \v and octal are Go's; \/ is not).
function unquote(tok: string): string {
  return tok.slice(1, -1).replace(/\\(?:([abfnrtv\\"])|x([0-9a-fA-F]{2})|([0-7]{3})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|([\s\S]?))/g, (_m, c: string | undefined, x?: string, o?: string, u?: string, big?: string) => {
    if (c !== undefined) return ESCAPES[c]!;
    const code = x ? parseInt(x, 16) : o ? parseInt(o, 8) : u ? parseInt(u, 16) : big ? parseInt(big, 16) : -1;
    // \x and octal escapes are bytes in Go; a byte beyond ASCII would make invalid UTF-8, which JSON strings cannot carry.
    if (code < 0 || ((x || o) && code > 0x7f) || code > 0x10ffff || (code >= 0xd800 && code < 0xe000)) fail(`invalid syntax in quoted string ${tok}`);
    return String.fromCodePoint(code);
  });
}

function argument(tok: string): Arg {
  if (tok === '.') return { kind: 'field', base: 'dot', path: [] };
  if (tok.startsWith('.')) return { kind: 'field', base: 'dot', path: tok.slice(1).split('.') };
  if (tok.startsWith('$')) {
    const [name, ...path] = tok.split('.');
    return { kind: 'field', base: name!, path };
  }
  if (tok.startsWith('"')) return { kind: 'literal', value: unquote(tok) };
  if (tok.startsWith('`')) return { kind: 'literal', value: tok.slice(1, -1) };
  if (tok.startsWith("'")) return { kind: 'literal', value: (JSON.parse(`"${tok.slice(1, -1).replace(/"/g, '\\"')}"`) as string).codePointAt(0)! };
  if (/^[+-]?[\d.]/.test(tok)) return { kind: 'literal', value: Number(tok.replaceAll('_', '')) };
  if (tok === 'true' || tok === 'false') return { kind: 'literal', value: tok === 'true' };
  if (tok === 'nil') return { kind: 'literal', value: null };
  if (FUNCTIONS.has(tok)) return { kind: 'func', name: tok };
  if (['html', 'js', 'urlquery', 'slice', 'call'].includes(tok)) unsupported(`the function ${tok}`);
  return fail(`function "${tok}" not defined`);
}

// ---- executing

class Break {}
class Continue {}

function goValue(x: JsonValue | bigint): Value {
  if (typeof x === 'bigint') return new GoNumber(x.toString());
  if (typeof x === 'number') return new GoNumber(goNumberText(x));
  if (Array.isArray(x)) return x.map(goValue);
  if (isObject(x)) return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, goValue(v)]));
  return x;
}

// OPA's JSON text of a number (what json.Number holds).
function goNumberText(n: number): string {
  return Number.isInteger(n) && Math.abs(n) < 1e21 ? BigInt(n).toString() : String(n).replace('e+', 'e');
}

function truth(v: Value): boolean {
  if (v === undefined || v === null || v === false || v === '' || v === 0) return false;
  if (Array.isArray(v)) return v.length > 0;
  if (v instanceof GoNumber) return v.text !== '';
  if (typeof v === 'object') return Object.keys(v).length > 0;
  return true;
}

/** fmt.Sprint of a value, as text/template prints it. */
function print(v: Value): string {
  if (v === undefined) return '<no value>';
  if (v === null) return '<nil>';
  if (v instanceof GoNumber) return v.text;
  if (Array.isArray(v)) return `[${v.map(print).join(' ')}]`;
  if (typeof v === 'object') return `map[${Object.keys(v).sort().map((k) => `${k}:${print(v[k])}`).join(' ')}]`;
  return String(v);
}

function typeOf(v: Value): string {
  if (v instanceof GoNumber) return 'json.Number';
  if (Array.isArray(v)) return '[]interface {}';
  if (v === null || v === undefined) return 'nil';
  if (typeof v === 'object') return 'map[string]interface {}';
  return typeof v === 'number' ? (Number.isInteger(v) ? 'int' : 'float64') : typeof v === 'boolean' ? 'bool' : 'string';
}

// Go's eq/lt on basic kinds: json.Number is a string kind; an untyped number only meets numbers.
function comparable(v: Value): ['string', string] | ['number', number] | ['bool', boolean] {
  if (typeof v === 'string') return ['string', v];
  if (v instanceof GoNumber) return ['string', v.text];
  if (typeof v === 'number') return ['number', v];
  if (typeof v === 'boolean') return ['bool', v];
  return fail(`invalid type for comparison: ${typeOf(v)}`);
}

function compare(name: string, a: Value, b: Value): number {
  const [ka, x] = comparable(a);
  const [kb, y] = comparable(b);
  if (ka !== kb) fail(`error calling ${name}: incompatible types for comparison`);
  if (ka === 'bool' && name !== 'eq' && name !== 'ne') fail(`error calling ${name}: invalid type for comparison`);
  return x < y ? -1 : x > y ? 1 : 0;
}

function call(name: string, args: Value[]): Value {
  const arity = (n: number): void => {
    if (args.length !== n) fail(`wrong number of args for ${name}: want ${n} got ${args.length}`);
  };
  switch (name) {
    case 'and': case 'or': {
      if (args.length === 0) fail(`wrong number of args for ${name}: want at least 1 got 0`);
      for (const a of args) if (truth(a) === (name === 'or')) return a;
      return args[args.length - 1];
    }
    case 'not': arity(1); return !truth(args[0]);
    case 'len': {
      arity(1);
      const v = args[0];
      if (typeof v === 'string') return Buffer.byteLength(v, 'utf8');
      if (v instanceof GoNumber) return v.text.length;
      if (Array.isArray(v)) return v.length;
      if (v && typeof v === 'object') return Object.keys(v).length;
      return fail(v === undefined || v === null ? 'error calling len: len of nil pointer' : `error calling len: len of type ${typeOf(v)}`);
    }
    case 'index': {
      let v = args[0];
      if (v === undefined || v === null) fail('error calling index: index of untyped nil');
      for (const key of args.slice(1)) {
        if (Array.isArray(v)) {
          if (typeof key !== 'number' || !Number.isInteger(key)) fail('error calling index: cannot index slice/array with this index');
          if (key < 0 || key >= v.length) fail(`error calling index: index out of range: ${key}`);
          v = v[key];
        } else if (v && typeof v === 'object' && !(v instanceof GoNumber)) {
          if (typeof key !== 'string') fail('error calling index: value has type int; should be string');
          v = Object.hasOwn(v, key) ? v[key] : undefined;
        } else fail(`error calling index: can't index item of type ${typeOf(v)}`);
      }
      return v;
    }
    case 'eq': {
      if (args.length < 2) fail('error calling eq: missing argument for comparison');
      return args.slice(1).some((b) => compare('eq', args[0], b) === 0);
    }
    case 'ne': arity(2); return compare('ne', args[0], args[1]) !== 0;
    case 'lt': arity(2); return compare('lt', args[0], args[1]) < 0;
    case 'le': arity(2); return compare('le', args[0], args[1]) <= 0;
    case 'gt': arity(2); return compare('gt', args[0], args[1]) > 0;
    case 'ge': arity(2); return compare('ge', args[0], args[1]) >= 0;
    // fmt.Sprint adds a space between operands when neither is a string.
    case 'print': return args.map((a, i) => (i > 0 && typeof a !== 'string' && typeof args[i - 1] !== 'string' ? ' ' : '') + print(a)).join('');
    case 'println': return `${args.map(print).join(' ')}\n`;
    case 'printf': {
      if (typeof args[0] !== 'string') fail('error calling printf: format must be a string');
      return sprintfGoArgs(args[0], args.slice(1).map(goArg));
    }
  }
  return fail(`function "${name}" not defined`);
}

// printf's operands as Go's fmt sees them. Go's fmt of booleans, nil, maps and slices is not what OPA's
// sprintf (Rego values) does, and templates rarely printf them: those are refused, not approximated.
function goArg(v: Value): GoArg {
  if (typeof v === 'string') return { type: 'string', value: v };
  if (v instanceof GoNumber) return { type: 'json.Number', value: v.text };
  if (typeof v === 'number') return Number.isInteger(v) ? { type: 'int64', value: BigInt(v) } : { type: 'float64', value: v };
  return unsupported(`printf of ${typeOf(v)}`);
}

// Go runs a template to the end, however long (`{{range 100000000000}}` in opa eval never returns). A pod
// must not: loop iterations and output are bounded, beyond which the call is a builtin error.
const MAX_ITERATIONS = 1_000_000;
const MAX_OUTPUT = 1 << 24;

class Execution {
  private vars: Array<[string, Value]>;
  private out = '';
  private iterations = 0;

  constructor(private readonly data: Value) {
    this.vars = [['$', data]];
  }

  run(nodes: Node[]): string {
    this.walk(nodes, this.data);
    return this.out;
  }

  private write(text: string): void {
    if (this.out.length + text.length > MAX_OUTPUT) fail(`output longer than ${MAX_OUTPUT} characters`);
    this.out += text;
  }

  private lookup(name: string): Value {
    for (let i = this.vars.length - 1; i >= 0; i--) if (this.vars[i]![0] === name) return this.vars[i]![1];
    return fail(`undefined variable: ${name}`);
  }

  private walk(nodes: Node[], dot: Value): void {
    const mark = this.vars.length;
    for (const n of nodes) {
      if (n.kind === 'text') this.write(n.text);
      else if (n.kind === 'action') {
        const v = this.pipe(n.pipe, dot);
        // A nil interface printed by itself is "<no value>"; inside a slice or map it is "<nil>".
        if (n.pipe.decl.length === 0) this.write(v === null ? '<no value>' : print(v));
      } else if (n.kind === 'break') throw new Break();
      else if (n.kind === 'continue') throw new Continue();
      else if (n.kind === 'range') this.range(n, dot);
      else {
        const mark2 = this.vars.length;
        const v = this.pipe(n.pipe, dot);
        if (truth(v)) this.walk(n.then, n.kind === 'with' ? v : dot);
        else this.walk(n.else, dot);
        this.vars.length = mark2;
      }
    }
    this.vars.length = mark;
  }

  private range(n: Extract<Node, { kind: 'range' }>, dot: Value): void {
    const mark = this.vars.length;
    const v = this.pipe({ ...n.pipe, decl: [] }, dot);
    let entries: Iterable<[Value, Value]>;
    if (Array.isArray(v)) entries = v.map((x, i) => [i, x]);
    else if (v && typeof v === 'object' && !(v instanceof GoNumber)) entries = Object.keys(v).sort().map((k) => [k, v[k]]);
    else if (v === undefined || v === null) entries = [];
    else if (typeof v === 'number' && Number.isInteger(v)) entries = integers(v);
    else return fail(`range can't iterate over ${print(v)}`);
    if (Array.isArray(entries) ? entries.length === 0 : v as number <= 0) {
      this.walk(n.else, dot);
      return;
    }
    for (const [key, elem] of entries) {
      if (++this.iterations > MAX_ITERATIONS) fail(`range: more than ${MAX_ITERATIONS} iterations in one template`);
      const [a, b] = n.pipe.decl;
      if (b !== undefined) this.vars.push([a!, key], [b, elem]);
      else if (a !== undefined) this.vars.push([a, elem]);
      try {
        this.walk(n.then, elem);
      } catch (err) {
        if (err instanceof Break) break;
        if (!(err instanceof Continue)) throw err;
      } finally {
        this.vars.length = mark;
      }
    }
  }

  private pipe(p: Pipe, dot: Value): Value {
    let v: Value;
    let first = true;
    for (const command of p.commands) {
      v = this.command(command, dot, first ? undefined : [v]);
      first = false;
    }
    for (const name of p.decl) {
      if (p.assign) {
        const i = this.vars.findLastIndex(([n]) => n === name);
        if (i < 0) fail(`undefined variable: ${name}`);
        this.vars[i]![1] = v;
      } else this.vars.push([name, v]);
    }
    return v;
  }

  private command(args: Arg[], dot: Value, piped: Value[] | undefined): Value {
    const [head, ...rest] = args;
    if (head!.kind === 'func') return call(head!.name, [...rest.map((a) => this.arg(a, dot)), ...(piped ?? [])]);
    if (rest.length > 0 || piped) fail(`can't give argument to non-function ${describe(head!)}`);
    if (head!.kind === 'literal' && head!.value === null) fail('nil is not a command');
    return this.arg(head!, dot);
  }

  private arg(a: Arg, dot: Value): Value {
    if (a.kind === 'literal') return a.value;
    if (a.kind === 'func') return call(a.name, []);
    const base = a.kind === 'pipe' ? this.pipe(a.pipe, dot) : a.base === 'dot' ? dot : this.lookup(a.base);
    return field(base, a.path);
  }
}

function* integers(n: number): Generator<[number, number]> {
  for (let i = 0; i < n; i++) yield [i, i];
}

function describe(a: Arg): string {
  if (a.kind === 'literal') return print(a.value);
  if (a.kind === 'field') return `${a.base === 'dot' ? '' : a.base}.${a.path.join('.')}`;
  return a.kind;
}

// A field chain: a missing map key is "no value"; a field of nothing, or of a non-map, is an error.
function field(base: Value, path: string[]): Value {
  let v = base;
  for (const name of path) {
    // A missing key stays "no value" down the chain; a field of null or of a non-map is an error.
    if (v === undefined) return undefined;
    if (v === null) fail(`nil pointer evaluating interface {}.${name}`);
    if (typeof v !== 'object' || Array.isArray(v) || v instanceof GoNumber) fail(`can't evaluate field ${name} in type interface {}`);
    v = Object.hasOwn(v, name) ? v[name] : undefined;
  }
  return v;
}

/** strings.render_template(template, vars): the template rendered over the variables, as OPA does it. */
export function renderTemplate(template: unknown, vars: unknown): string {
  if (typeof template !== 'string') throw new BuiltinError(BUILTIN, 'operand 1 must be string');
  if (!isObject(vars)) throw new BuiltinError(BUILTIN, 'operand 2 must be object');
  const [nodes] = new Parser(template).list([]);
  return new Execution(goValue(vars)).run(nodes).replaceAll('<no value>', '<undefined>');
}
