// The `input` paths a workload's Rego can read, found with OPA's own parser (`opa parse --format json`)
// over every module the bundle ships: the core, the generated module, the library and the workload's
// Rego. The pod builds only these parts of the input (runtime/input-selection.ts), so the list must
// over-approximate: every reference is walked, and whatever is not a plain path falls back to more.
//  - `input.a.b[x].c` reads all of `input.a.b` (the path stops at the first part that is not a string
//    constant: a variable, a number, a call);
//  - an expression that is a ground path alone (`if input.mcp`, `not input.mcp`) tests its truth only,
//    not what it holds (TRUTH);
//  - `object.get(input.a, "k", d)` (or a constant path `["k", "j"]`) reads `input.a.k` only;
//  - `input` standing alone (passed whole to a builtin, `walk(input)`, `x := input`, `import input`)
//    or a `with input… as` override reads the whole input;
//  - only the rules the entrypoints can reach count (a library function no rule calls reads nothing):
//    a reference to `data` reaches every rule under its ground part, an imported name or a rule's bare
//    name in its own package reaches that rule, and `data` alone reaches every rule;
//  - a part of the input passed to one of the bundle's own functions is followed into the function:
//    `f(input.request)` with `f(r) if r.method == "GET"` reads `input.request.method`. A part passed to
//    a builtin, bound to a variable, to a function argument that is a pattern or to a parameter variable
//    that occurs twice (`f(x, x)`, `f(x, [x])`: the arguments must be equal) is read whole. When any
//    `with` replaces something other than the input (a function could then be another), or the calls
//    nest deeper than MAX_CALL_DEPTH, arguments are read whole instead of followed.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { InputPath } from '../../formats/bundle-manifest.js';
import { CALLER_JSON } from '../../formats/input.js';
import { runOpa } from '../toolchain/opa.js';
import { CompileError } from './compile-error.js';

/** Version of this analysis: part of its cache key, so that a build never reuses another version's paths. */
export const INPUT_PATHS_VERSION = 8;

/**
 * The member a truth test's path ends in. `if input.mcp` asks only whether the value is there and is not
 * false; it is recorded as the path to a member named "" under it, and the runtime keeps the value's
 * kind: an object stays an object holding only its selected members (a "" one, if it has one), anything
 * else is kept whole, `false` included. So the test reads as on the full input, and the call's
 * `arguments` under `input.mcp` stay out unless a rule reads them. A runtime that knows nothing of this
 * reads the path as any other: it is one, and keeps a little more.
 */
export const TRUTH = '';

// Calls followed inside calls before the arguments are taken whole (recursion is refused by OPA; this
// bounds the work on long chains).
const MAX_CALL_DEPTH = 8;

interface Term {
  type?: unknown;
  value?: unknown;
}

// One module's names: its package path and its imports of `data` (alias → path under data).
interface Scope {
  pkg: string[];
  imports: Map<string, string[]>;
}

interface FunctionRule {
  params: unknown[];
  /** Variables that occur more than once in the parameters (`f(x, x)`, `f(x, [x])`): their arguments must be equal, so each is read whole. */
  repeated: ReadonlySet<string>;
  rule: Record<string, unknown>;
  scope: Scope;
}

const isTerm = (v: unknown): v is Term => typeof v === 'object' && v !== null && !Array.isArray(v) && typeof (v as Term).type === 'string';
const isVar = (t: unknown, name?: string): t is Term & { value: string } => isTerm(t) && t.type === 'var' && typeof t.value === 'string' && (name === undefined || t.value === name);
const isRef = (t: unknown): t is Term & { value: unknown[] } => isTerm(t) && t.type === 'ref' && Array.isArray(t.value);
const isString = (t: unknown): t is Term & { value: string } => isTerm(t) && t.type === 'string' && typeof t.value === 'string';

// The leading string parts of a reference after its head.
function groundPrefix(parts: readonly unknown[]): string[] {
  const out: string[] = [];
  for (let i = 1; i < parts.length && isString(parts[i]); i++) out.push((parts[i] as { value: string }).value);
  return out;
}

function scopeOf(ast: Record<string, unknown>): Scope {
  const pkgRef = (ast.package as { path?: unknown[] } | undefined)?.path ?? [];
  const pkg = pkgRef.slice(1).flatMap((t) => (isString(t) ? [t.value] : []));
  const imports = new Map<string, string[]>();
  for (const imp of (ast.imports as Array<{ path?: unknown; alias?: string }> | undefined) ?? []) {
    if (!isRef(imp.path) || !isVar(imp.path.value[0], 'data')) continue;
    const path = groundPrefix(imp.path.value);
    const alias = imp.alias ?? path[path.length - 1];
    if (alias !== undefined) imports.set(alias, path);
  }
  return { pkg, imports };
}

// A rule's place under `data`: its package and its head's reference up to the first part that is not a
// string (`a.b[x] contains y` in package p: p.a.b).
function rulePath(rule: Record<string, unknown>, scope: Scope): string[] {
  const head = rule.head as { ref?: unknown[]; name?: string } | undefined;
  const ref = head?.ref ?? [{ type: 'var', value: head?.name }];
  const parts = isVar(ref[0]) ? [ref[0].value, ...groundPrefix(ref)] : [];
  return [...scope.pkg, ...parts];
}

// A rule head without the name it defines.
const headParts = (head: Record<string, unknown>): Record<string, unknown> => ({ ...head, name: undefined, ref: Array.isArray(head.ref) ? head.ref.slice(1) : undefined });

// The variables that occur more than once in a function's parameters, patterns included.
function repeatedVars(params: readonly unknown[]): Set<string> {
  const seen = new Set<string>();
  const repeated = new Set<string>();
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(visit);
    if (typeof node !== 'object' || node === null) return;
    if (isVar(node)) {
      if (node.value === '_') return;
      if (seen.has(node.value)) repeated.add(node.value);
      seen.add(node.value);
      return;
    }
    Object.values(node).forEach(visit);
  };
  visit(params);
  return repeated;
}

const overlaps = (a: readonly string[], b: readonly string[]): boolean => a.every((x, i) => i >= b.length || x === b[i]);

// The rules the roots (data paths of the entrypoints) reach, each module's as indexes into its rules;
// a reference reaches every rule whose path it lies under or that lies under it.
function reachableRules(modules: ReadonlyArray<Record<string, unknown>>, scopes: readonly Scope[], roots: readonly string[][]): Array<Set<number>> {
  const entries = modules.flatMap((ast, m) => ((ast.rules as Array<Record<string, unknown>> | undefined) ?? []).map((rule, r) => ({ m, r, rule, path: rulePath(rule, scopes[m]!) })));
  const reached = modules.map(() => new Set<number>());
  const work: typeof entries = [];
  const reach = (path: readonly string[]) => {
    for (const e of entries) {
      if (reached[e.m]!.has(e.r) || !overlaps(path, e.path)) continue;
      reached[e.m]!.add(e.r);
      work.push(e);
    }
  };
  // Every prefix of a rule's path, worked out once: a name in a package names a rule when package + name is one.
  const prefixes = new Set(entries.flatMap((e) => e.path.map((_, i) => e.path.slice(0, i + 1).join('\0'))));
  // What a name in module m stands for under `data`, if anything: `data`, an import's alias, a rule of its package.
  const named = (name: string, m: number): string[] | undefined => {
    const scope = scopes[m]!;
    if (name === 'data') return [];
    if (scope.imports.has(name)) return scope.imports.get(name)!;
    const local = [...scope.pkg, name];
    return prefixes.has(local.join('\0')) ? local : undefined;
  };
  const scan = (node: unknown, m: number): void => {
    if (Array.isArray(node)) return node.forEach((n) => scan(n, m));
    if (typeof node !== 'object' || node === null) return;
    if (isVar(node)) {
      const base = named(node.value, m);
      if (base) reach(base);
      return;
    }
    if (isRef(node) && isVar(node.value[0])) {
      const base = named(node.value[0].value, m);
      const rest = groundPrefix(node.value);
      if (base) reach([...base, ...rest]);
      return scan(node.value.slice(1 + rest.length), m);
    }
    // A rule's head names what it defines (the first part of its ref), which reaches nothing; the rest of its
    // ref (`p[data.x.k] := 1`), its key, value and arguments may.
    for (const [k, v] of Object.entries(node)) scan(k === 'head' && typeof v === 'object' && v !== null ? headParts(v as Record<string, unknown>) : v, m);
  };
  for (const root of roots) reach(root);
  for (let e = work.pop(); e; e = work.pop()) scan(e.rule, e.m);
  return reached;
}

/**
 * The input paths parsed modules (OPA's JSON AST, as `opa parse --format json` prints it) read together:
 * the rules `roots` (data paths of the entrypoints, `warden/decision` as ['warden', 'decision']) reach, or
 * every rule when no roots are given.
 */
export function inputPathsOfModules(asts: readonly unknown[], roots?: readonly string[][]): InputPath[] {
  const modules = asts.filter((a): a is Record<string, unknown> => typeof a === 'object' && a !== null);
  const functions = new Map<string, FunctionRule[]>();
  const scopes = modules.map(scopeOf);
  const reached = roots ? reachableRules(modules, scopes, roots) : undefined;
  modules.forEach((ast, m) => {
    for (const rule of (ast.rules as Array<Record<string, unknown>> | undefined) ?? []) {
      const head = rule.head as { args?: unknown[]; ref?: unknown[]; name?: string } | undefined;
      if (!head?.args?.length) continue;
      const ref = head.ref ?? [{ type: 'var', value: head.name }];
      const name = [...scopes[m]!.pkg, ...ref.flatMap((t) => (isVar(t) || isString(t) ? [t.value] : []))].join('\0');
      functions.set(name, [...(functions.get(name) ?? []), { params: head.args, repeated: repeatedVars(head.args), rule, scope: scopes[m]! }]);
    }
  });
  const paths: InputPath[] = [];
  // A `with` that replaces anything but the input may replace a function: then follow none.
  let follow = true;
  const findWith = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(findWith);
    else if (typeof node === 'object' && node !== null) {
      const o = node as Record<string, unknown>;
      if (o.target !== undefined && !(isRef(o.target) && isVar(o.target.value[0], 'input')) && !isVar(o.target, 'input')) follow = false;
      Object.values(o).forEach(findWith);
    }
  };
  findWith(modules);

  // The bundle's own function a call names, if it names one (as OPA resolves it: data path, import, package).
  // A name resolves in its own package only: `object.get(…)` in package p is the builtin even when a
  // package p.object defines `get` (a package is not a rule of its parent; `data.p.object.get(…)` names it).
  const resolve = (op: unknown, scope: Scope): FunctionRule[] | undefined => {
    if (!isRef(op) || !isVar(op.value[0])) return undefined;
    const rest = groundPrefix(op.value);
    if (rest.length !== op.value.length - 1) return undefined;
    const head = op.value[0].value;
    const pkg = scope.pkg.join('\0');
    const found =
      head === 'data'
        ? (functions.get(rest.join('\0')) ?? [])
        : [
            ...(functions.get([...scope.pkg, head, ...rest].join('\0')) ?? []).filter((f) => f.scope.pkg.join('\0') === pkg),
            ...(scope.imports.has(head) ? (functions.get([...scope.imports.get(head)!, ...rest].join('\0')) ?? []) : []),
          ];
    return found.length > 0 ? found : undefined;
  };

  // The input path an argument is exactly (`input`, `input.a.b`, a parameter bound to one), if it is one.
  const pathOfArg = (arg: unknown, env: ReadonlyMap<string, InputPath>): InputPath | undefined => {
    if (isVar(arg)) return arg.value === 'input' ? [] : env.get(arg.value);
    if (!isRef(arg) || !isVar(arg.value[0])) return undefined;
    const base = arg.value[0].value === 'input' ? [] : env.get(arg.value[0].value);
    const rest = groundPrefix(arg.value);
    return base && rest.length === arg.value.length - 1 ? [...base, ...rest] : undefined;
  };

  const call = (op: unknown, args: unknown[], env: ReadonlyMap<string, InputPath>, scope: Scope, depth: number): boolean => {
    const defs = follow && depth < MAX_CALL_DEPTH ? resolve(op, scope) : undefined;
    if (!defs) return false;
    for (const def of defs) {
      const bound = new Map<string, InputPath>();
      args.forEach((arg, i) => {
        const path = pathOfArg(arg, env);
        const param = def.params[i];
        if (path !== undefined && isVar(param) && param.value !== '_' && !def.repeated.has(param.value) && i < def.params.length) bound.set(param.value, path);
        else walk(arg, env, scope, depth);
      });
      const { head, ...rest } = def.rule;
      const { args: _unused, ...headRest } = (head ?? {}) as Record<string, unknown>;
      walk([headRest, rest], bound, def.scope, depth + 1);
    }
    return true;
  };

  // `object.get(x, "k", default)`, or with a constant path `["k", "j"]`, where x is a path of the input:
  // it reads x.k, not all of x. The pruned x holds x.k whole where x has it, and x's other members not at
  // all, so the builtin finds the key or gives the default as on the full input (a non-object x is kept
  // whole). Not when a `with` could replace the builtin.
  const objectGet = (op: unknown, args: unknown[], env: ReadonlyMap<string, InputPath>, scope: Scope, depth: number): boolean => {
    if (!follow || args.length !== 3 || !isRef(op) || op.value.length !== 2 || !isVar(op.value[0], 'object') || !isString(op.value[1]) || op.value[1].value !== 'get') return false;
    const base = pathOfArg(args[0], env);
    const key = args[1];
    const keys = isString(key) ? [key.value] : isTerm(key) && key.type === 'array' && Array.isArray(key.value) && key.value.every(isString) ? key.value.map((k) => k.value) : undefined;
    if (base === undefined || keys === undefined) return false;
    paths.push([...base, ...keys]);
    walk(args[2], env, scope, depth);
    return true;
  };

  function walk(node: unknown, env: ReadonlyMap<string, InputPath>, scope: Scope, depth: number): void {
    if (Array.isArray(node)) {
      for (const n of node) walk(n, env, scope, depth);
      return;
    }
    if (typeof node !== 'object' || node === null) return;
    if (isVar(node)) {
      const path = node.value === 'input' ? [] : env.get(node.value);
      if (path) paths.push(path);
      return;
    }
    const o = node as Record<string, unknown>;
    // A truth test: an expression that is one ground path alone (`if input.mcp`, `not input.mcp`).
    if (isTerm(o.terms) && o.with === undefined) {
      const path = pathOfArg(o.terms, env);
      if (path !== undefined) {
        paths.push([...path, TRUTH]);
        return;
      }
    }
    // `with input… as v` replaces what the rule under it reads: take the whole input rather than model it.
    if (o.target !== undefined && isRef(o.target) && isVar(o.target.value[0], 'input')) paths.push([]);
    if (isRef(node) && isVar(node.value[0])) {
      const head = node.value[0].value;
      const base = head === 'input' ? [] : env.get(head);
      if (base) {
        const rest = groundPrefix(node.value);
        paths.push([...base, ...rest]);
        // A dynamic part may itself read the input (`input.a[input.b]`).
        walk(node.value.slice(rest.length + 1), env, scope, depth);
      } else walk(node.value.slice(1), env, scope, depth);
      return;
    }
    // A call, as a term (`f(x)` inside an expression) or as a whole expression (`f(x)` alone).
    if (isTerm(node) && node.type === 'call' && Array.isArray(node.value) && (call(node.value[0], node.value.slice(1), env, scope, depth) || objectGet(node.value[0], node.value.slice(1), env, scope, depth))) return;
    if (Array.isArray(o.terms) && (call(o.terms[0], o.terms.slice(1), env, scope, depth) || objectGet(o.terms[0], o.terms.slice(1), env, scope, depth))) {
      walk(o.with, env, scope, depth);
      return;
    }
    for (const v of Object.values(o)) walk(v, env, scope, depth);
  }

  modules.forEach((ast, m) => {
    if (!reached) return walk(ast, new Map(), scopes[m]!, 0);
    // The module's imports (`import input.a`) and the rules the roots reach.
    walk(ast.imports, new Map(), scopes[m]!, 0);
    ((ast.rules as unknown[] | undefined) ?? []).forEach((rule, r) => {
      if (reached[m]!.has(r)) walk(rule, new Map(), scopes[m]!, 0);
    });
  });
  return minimalPaths(paths);
}

/** The paths with every one that lies under another removed, sorted; `[[]]` absorbs everything. */
export function minimalPaths(paths: readonly InputPath[]): InputPath[] {
  const sorted = [...paths].sort((a, b) => a.length - b.length);
  const kept: InputPath[] = [];
  for (const p of sorted) if (!kept.some((k) => k.length <= p.length && k.every((part, i) => part === p[i]))) kept.push(p);
  return kept.sort((a, b) => (a.join('\0') < b.join('\0') ? -1 : a.join('\0') > b.join('\0') ? 1 : 0));
}

/**
 * The keys the modules may name inside the caller's JSON: every string constant of their rules (a
 * reference's part, `k == "amount"`, a set of keys, an object pattern's or object.get's key), sorted, and
 * under `input` only the parts inside the caller's JSON (`total` of `input.request.body.total`, not
 * `method` of `input.request.method`). Where the pod keeps a part of the caller's JSON whole, it refuses a
 * key there that differs only by case from one of these (runtime/input-selection.ts): the Rego might read
 * the one while a case-insensitive app reads the other. Keys built at evaluation (`concat`, `sprintf`)
 * are not seen.
 */
export function namedKeysOfModules(asts: readonly unknown[]): string[] {
  const keys = new Set<string>();
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(visit);
    if (typeof node !== 'object' || node === null) return;
    if (isRef(node) && isVar(node.value[0], 'input')) {
      // `input.request.method` names Warden's structure, not a key a body could spell.
      const from = callerKeysFrom(groundPrefix(node.value));
      for (const part of node.value.slice(1 + Math.min(from, node.value.length))) visit(part);
      return;
    }
    if (isString(node)) keys.add(node.value);
    Object.values(node).forEach(visit);
  };
  // Rules only: an import names modules (`rego.v1`), not keys.
  for (const ast of asts) if (typeof ast === 'object' && ast !== null) visit((ast as Record<string, unknown>).rules);
  return [...keys].sort();
}

// Where the caller's own JSON begins in a path under `input` (the index of its first key), or past the
// path's end when it does not reach it: the body, the query, an MCP call's arguments.
function callerKeysFrom(path: readonly string[]): number {
  const root = CALLER_JSON.find((r) => r.every((part, i) => path[i] === part));
  return root ? root.length : Number.MAX_SAFE_INTEGER;
}

/** What a bundle's Rego reads of the input: its paths (inputPathsOfModules) and the keys it names (namedKeysOfModules). */
export interface InputRead {
  paths: InputPath[];
  keys: string[];
}

/**
 * The input paths a bundle's Rego modules (path in bundle → source) can read, parsed by `opa parse`: those
 * the entrypoints (`warden/decision`) reach, or every rule's when none are given.
 */
export async function inputPathsOf(modules: ReadonlyMap<string, string>, where: string, entrypoints?: readonly string[]): Promise<InputPath[]> {
  return (await inputReadOf(modules, where, entrypoints)).paths;
}

/** The paths (as inputPathsOf) and the keys the modules name (namedKeysOfModules). */
export async function inputReadOf(modules: ReadonlyMap<string, string>, where: string, entrypoints?: readonly string[]): Promise<InputRead> {
  const dir = mkdtempSync(join(tmpdir(), 'warden-input-paths-'));
  try {
    const names = [...modules.keys()].filter((f) => f.endsWith('.rego'));
    const parsed = await Promise.all(
      names.map(async (name, i) => {
        const file = join(dir, `${i}.rego`);
        writeFileSync(file, modules.get(name)!);
        const r = await runOpa(['parse', '--format', 'json', file]);
        if (r.code !== 0) throw new CompileError([], `${where}: \`opa parse\` could not read ${name} to find the input it reads:\n${(r.stderr || r.stdout).split(file).join(name).trim()}`);
        return JSON.parse(r.stdout) as unknown;
      }),
    );
    // Keys named by the workload's Rego and the library: Warden's own modules (`warden/`: the core, the
    // generated grants) read the caller's JSON only through paths under `input`, which the paths cover.
    const own = parsed.filter((_, i) => !names[i]!.startsWith('warden/'));
    return { paths: inputPathsOfModules(parsed, entrypoints?.map((e) => e.split('/'))), keys: namedKeysOfModules(own) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
