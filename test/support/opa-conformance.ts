// OPA's own conformance cases (v1/test/cases/testdata in OPA's source, at the pinned version) run on
// Warden's runtime the way OPA's WASM SDK runner (internal/wasm/sdk/test/e2e) runs them: the same
// exclusions (exceptions.yaml), the query mapped to a WASM entrypoint, the result compared as a set of
// binding rows, `strict_error` cases expected undefined (WASM has no strict mode) and conflict errors
// matched by message. Each case is compiled by the real `opa build -t wasm`; the modules are cached by
// content hash under the per-user cache, so only the first run on a machine pays for the compiles.
import { execFile } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, homedir, tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import * as tar from 'tar';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { REPLAY_LIMITS } from '../../runtime/evaluation-limits.js';
import { Policy } from '../../runtime/policy.js';
import { compareValues } from '../../runtime/value-order.js';
import type { VerifiedBundle } from '../../runtime/bundle.js';
import { InputSelection } from '../../runtime/input-selection.js';
import { opaBinary } from './opa.js';

const run = promisify(execFile);
const root = resolve(import.meta.dirname, '../..');

/** One case as OPA's `cases.TestCase` declares it (the fields the WASM runner reads). */
export interface ConformanceCase {
  file: string;
  regoVersion: 'v0' | 'v1';
  note: string;
  query: string;
  modules: string[];
  data?: Record<string, unknown>;
  input?: unknown;
  input_term?: string;
  want_defined?: boolean;
  want_result?: Array<Record<string, unknown>>;
  want_error_code?: string;
  want_error?: string;
  sort_bindings?: boolean;
  strict_error?: boolean;
  experimental_keywords?: boolean;
  env?: Record<string, string>;
}

/** How one case ended: agreed, disagreed (with what happened), or did not run (with why). */
export type CaseOutcome = { kind: 'agree' } | { kind: 'disagree'; detail: string } | { kind: 'not-run'; reason: string };

/** The pinned OPA module's version (tools.json). */
export async function pinnedOpaVersion(): Promise<string> {
  const pins = JSON.parse(await readFile(join(root, 'tools.json'), 'utf8')) as { opa: { version: string } };
  return pins.opa.version;
}

/** Warden's per-user cache folder, the one bin/setup.js builds the tools into. */
export function cacheRoot(): string {
  return process.env.WARDEN_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'warden');
}

/**
 * The directory of OPA's source at `version` in the Go module cache. setup already built OPA from that
 * module, so `go mod download` only reports where it is (and fetches it on a machine that has none).
 */
export async function opaSourceDir(version: string): Promise<string> {
  let stdout: string;
  try {
    ({ stdout } = await run('go', ['mod', 'download', '-json', `github.com/open-policy-agent/opa@${version}`], { cwd: tmpdir(), maxBuffer: 1 << 20 }));
  } catch (err) {
    throw new Error(`cannot locate OPA ${version}'s source (its conformance cases): \`go mod download\` failed: ${(err as Error).message}. Install Go, or run \`node bin/setup.js --test\` first.`);
  }
  const dir = (JSON.parse(stdout) as { Dir?: string }).Dir;
  if (!dir || !existsSync(join(dir, 'v1/test/cases/testdata'))) throw new Error(`OPA ${version}'s module has no v1/test/cases/testdata (looked in ${dir ?? '(none)'})`);
  return dir;
}

async function yamlFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await yamlFiles(p)));
    else if (e.name.endsWith('.yaml') || e.name.endsWith('.yml')) out.push(p);
  }
  return out.sort();
}

/** Every case under testdata/v0 and testdata/v1, in the order OPA's runner sorts them (by note). */
export async function loadCases(opaDir: string): Promise<ConformanceCase[]> {
  const cases: ConformanceCase[] = [];
  for (const version of ['v0', 'v1'] as const) {
    const base = join(opaDir, 'v1/test/cases/testdata', version);
    const batch: ConformanceCase[] = [];
    for (const file of await yamlFiles(base)) {
      for (const doc of parseAllDocuments(await readFile(file, 'utf8'), { intAsBigInt: true })) {
        if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]!.message}`);
        const body = doc.toJS({ maxAliasCount: -1 }) as { cases?: Array<Omit<ConformanceCase, 'file' | 'regoVersion'>> } | null;
        for (const c of body?.cases ?? []) batch.push({ ...c, modules: c.modules ?? [], file: relative(opaDir, file), regoVersion: version });
      }
    }
    batch.sort((a, b) => (a.note < b.note ? -1 : a.note > b.note ? 1 : 0));
    cases.push(...batch);
  }
  return cases;
}

/** The WASM runner's exclusions: note → reason (exact notes; the file holds no globs today). */
export async function loadExceptions(opaDir: string): Promise<Map<string, string>> {
  const text = await readFile(join(opaDir, 'internal/wasm/sdk/test/e2e/exceptions.yaml'), 'utf8');
  const map = new Map<string, string>();
  for (const [note, reason] of Object.entries((parseYaml(text) as Record<string, string> | null) ?? {})) {
    if (note.includes('*')) throw new Error(`exceptions.yaml: glob pattern ${JSON.stringify(note)} is not supported by this runner; teach it globs`);
    map.set(note, reason);
  }
  return map;
}

// ---- entrypoint mapping

const KEYWORDS = new Set(['data', 'input', 'not', 'some', 'every', 'in', 'with', 'as', 'if', 'contains', 'else', 'default', 'true', 'false', 'null', 'import', 'package', '_']);

// The query with every string literal emptied; a template string's `{…}` parts (which may hold strings
// themselves) go with it: they only read variables.
function withoutStrings(query: string): string {
  let out = '';
  for (let i = 0; i < query.length; i++) {
    const ch = query[i]!;
    if (ch === '`') {
      i = query.indexOf('`', i + 1);
      out += '""';
    } else if (ch === '"' || (ch === '$' && query[i + 1] === '"')) {
      const template = ch === '$';
      if (template) i++;
      let depth = 0;
      for (i++; i < query.length; i++) {
        const c = query[i]!;
        if (c === '\\') i++;
        else if (template && c === '{') depth++;
        else if (template && c === '}') depth--;
        else if (c === '"' && depth > 0) i = query.indexOf('"', i + 1);
        else if (c === '"') break;
      }
      out += '""';
    } else out += ch;
  }
  return out;
}

// The query's own variables (the bindings OPA reports): identifiers outside strings that are not keywords,
// not a ref's later part (`.x`), not a call (`f(`, `a.b(`), not the head of a ref (`x.y` where x is a builtin namespace).
function queryVars(query: string): string[] {
  const stripped = withoutStrings(query);
  // Comprehension bodies bind their own variables.
  let depth = 0;
  let flat = '';
  for (let i = 0; i < stripped.length; i++) {
    const ch = stripped[i]!;
    if (ch === '|' && depth > 0) {
      // drop from the `|` to the bracket that closes it
      let d = 0;
      for (; i < stripped.length; i++) {
        const c = stripped[i]!;
        if (c === '[' || c === '{' || c === '(') d++;
        else if (c === ']' || c === '}' || c === ')') {
          if (d === 0) break;
          d--;
        }
      }
      i--;
      continue;
    }
    if (ch === '[' || ch === '{' || ch === '(') depth++;
    else if (ch === ']' || ch === '}' || ch === ')') depth--;
    flat += ch;
  }
  const vars = new Set<string>();
  for (const m of flat.matchAll(/(?<![.\w$])([A-Za-z_][A-Za-z0-9_]*)(?![\w]*\s*[.(])/g)) {
    const name = m[1]!;
    if (!KEYWORDS.has(name) && !name.startsWith('__')) vars.add(name);
  }
  return [...vars].sort();
}

/** How a case's query is evaluated: a rule's entrypoint whose value binds one variable, or a generated rule collecting the rows. */
export type QueryPlan = { kind: 'ref'; entrypoint: string; variable: string } | { kind: 'rows'; entrypoint: string; module: string; variables: string[] };

const ROWS_PACKAGE = 'wardenconformance';

/** Maps a query to what `opa build -t wasm -e` can compile (OPA's SDK plans the query itself). */
export function planQuery(c: ConformanceCase): QueryPlan | { kind: 'none'; reason: string } {
  const q = c.query.trim();
  const ref = /^data((?:\.[A-Za-z_][A-Za-z0-9_]*)+)\s*=\s*([A-Za-z_][A-Za-z0-9_]*)$/.exec(q);
  if (ref && !KEYWORDS.has(ref[2]!)) return { kind: 'ref', entrypoint: ref[1]!.slice(1).replaceAll('.', '/'), variable: ref[2]! };
  if (/^data\s*=/.test(q) || /=\s*data$/.test(q)) return { kind: 'none', reason: 'the query reads the whole of data, which no WASM entrypoint can' };
  const variables = queryVars(q);
  const row = `{${variables.map((v) => `${JSON.stringify(v)}: ${v}`).join(', ')}}`;
  const body = q.replace(/;\s*/g, '\n');
  const module =
    c.regoVersion === 'v0'
      ? `package ${ROWS_PACKAGE}\n\nrows[${row}] {\n${body}\n}\n`
      : `package ${ROWS_PACKAGE}\n\nrows contains ${row} if {\n${body}\n}\n`;
  return { kind: 'rows', entrypoint: `${ROWS_PACKAGE}/rows`, module, variables };
}

// ---- compiling, cached by content

/** Compiles a case's modules (plus the rows module) with the real `opa build -t wasm`; cached by content hash. */
export async function compileCase(c: ConformanceCase, plan: QueryPlan, opaVersion: string): Promise<{ wasm: Uint8Array } | { error: string }> {
  const modules = plan.kind === 'rows' ? [...c.modules, plan.module] : c.modules;
  const args = ['build', '-t', 'wasm', '-e', plan.entrypoint, ...(c.regoVersion === 'v0' ? ['--v0-compatible'] : [])];
  const key = createHash('sha256').update(JSON.stringify({ opaVersion, args, modules })).digest('hex');
  const dir = join(cacheRoot(), 'opa-conformance', opaVersion, key.slice(0, 2));
  const wasmPath = join(dir, `${key}.wasm`);
  const errorPath = join(dir, `${key}.error`);
  if (existsSync(wasmPath)) return { wasm: await readFile(wasmPath) };
  if (existsSync(errorPath)) return { error: await readFile(errorPath, 'utf8') };
  const work = await mkdtemp(join(tmpdir(), 'warden-conformance-'));
  try {
    const files = modules.map((m, i) => join(work, `module-${i}.rego`));
    await Promise.all(modules.map((m, i) => writeFile(files[i]!, m)));
    const bundle = join(work, 'bundle.tar.gz');
    let result: { wasm: Uint8Array } | { error: string };
    try {
      await run(opaBinary, [...args, '-o', bundle, ...files], { cwd: work, maxBuffer: 64 << 20 });
      await tar.x({ file: bundle, cwd: work, filter: (p) => p.replace(/^\//, '') === 'policy.wasm' });
      result = { wasm: await readFile(join(work, 'policy.wasm')) };
    } catch (err) {
      const e = err as { stderr?: string; stdout?: string; message: string };
      result = { error: (e.stderr || e.stdout || e.message).replaceAll(work + '/', '').trim() };
    }
    await mkdir(dir, { recursive: true });
    const [path, bytes] = 'wasm' in result ? [wasmPath, result.wasm] : [errorPath, result.error];
    const tmp = `${path}.${process.pid}.${randomUUID()}.tmp`; // two cases may share a key
    await writeFile(tmp, bytes);
    await rename(tmp, path);
    return result;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Runs `work` over `items` with at most `limit` at a time, keeping the order of results. */
export async function inParallel<T, R>(items: readonly T[], work: (item: T) => Promise<R>, limit = availableParallelism()): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await work(items[i]!);
      }
    }),
  );
  return out;
}

// ---- values and comparison

// YAML numbers arrive as bigint; Warden's runtime takes and gives integers beyond 2^53 as bigint.
function exactNumbers(v: unknown): unknown {
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v;
  if (Array.isArray(v)) return v.map(exactNumbers);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, exactNumbers(x)]));
  return v;
}

// Numbers compared as OPA does, by numeric value (bigint is written as text JSON can carry).
function toComparable(v: unknown): unknown {
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : { $bigint: v.toString() };
  if (Array.isArray(v)) return v.map(toComparable);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toComparable(x)]));
  return v;
}

function canonicalJson(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([p], [q]) => (p < q ? -1 : 1))) : x,
  );
}

function rowSet(rows: Array<Record<string, unknown>>, sortBindings: boolean): string[] {
  const keys = rows.map((r) =>
    canonicalJson(Object.fromEntries(Object.entries(r).map(([k, v]) => [k, sortBindings && Array.isArray(v) ? [...v].sort(compareValues) : v]))),
  );
  return [...new Set(keys)].sort();
}

/** Why a case cannot run here at all (the same reasons OPA's WASM runner has, plus JSON-only input). */
export function notRunnable(c: ConformanceCase, exceptions: ReadonlyMap<string, string>): string | undefined {
  const exception = exceptions.get(c.note);
  if (exception !== undefined) return `excluded by OPA's WASM runner (exceptions.yaml): ${exception}`;
  if (c.input_term !== undefined) {
    try {
      JSON.parse(c.input_term);
    } catch {
      return 'input_term is a Rego term that JSON cannot express (a pod only ever gets JSON input)';
    }
  }
  if (c.modules.some((m) => m.includes('test.sleep('))) return "calls test.sleep, a builtin OPA's WASM runner registers for itself (not part of OPA)";
  if (c.env && Object.keys(c.env).length > 0) return 'sets environment variables for opa.runtime(), which a pod does not expose';
  return undefined;
}

/** Compiles, loads and evaluates one case on Warden's runtime and compares with what OPA wants. */
export async function runCase(c: ConformanceCase, opaVersion: string): Promise<CaseOutcome> {
  const plan = planQuery(c);
  if (plan.kind === 'none') return { kind: 'not-run', reason: plan.reason };
  const compiled = await compileCase(c, plan, opaVersion);
  if ('error' in compiled) return { kind: 'disagree', detail: `opa build failed: ${compiled.error.split('\n').slice(0, 3).join(' ')}` };
  const bundle: VerifiedBundle = { manifest: { revision: c.note } as VerifiedBundle['manifest'], revision: c.note, data: (exactNumbers(c.data) as Record<string, unknown>) ?? {}, wasm: compiled.wasm, files: new Map(), inputs: InputSelection.fromManifest({}) };
  let policy: Policy;
  try {
    // The suite checks what a case evaluates to, not how fast: the sidecar's 10 ms deadline stopped the
    // JSON-patch cases (10.3 ms of CPU) on a loaded machine. The replay bound keeps a runaway case stopped.
    policy = await Policy.load(bundle, { limits: REPLAY_LIMITS });
  } catch (err) {
    return { kind: 'disagree', detail: `load failed: ${(err as Error).message.replace(`bundle ${c.note}: `, '')}` };
  }
  const input = c.input_term !== undefined ? JSON.parse(c.input_term) : exactNumbers(c.input);
  let rows: Array<Record<string, unknown>>;
  try {
    const result = policy.evaluate(plan.entrypoint, input);
    if (plan.kind === 'ref') rows = result === undefined ? [] : [{ [plan.variable]: result }];
    else rows = (result as Array<Record<string, unknown>> | undefined) ?? [];
  } catch (err) {
    const message = (err as Error).message;
    if (c.want_error_code !== undefined || c.want_error !== undefined) {
      if (c.strict_error) return { kind: 'disagree', detail: `error where OPA's non-strict mode gives undefined: ${message}` };
      if (c.want_error_code === 'eval_conflict_error') {
        return /var assignment conflict|object insert conflict/.test(message) ? { kind: 'agree' } : { kind: 'disagree', detail: `wanted a conflict error, got: ${message}` };
      }
      return { kind: 'disagree', detail: `wanted error ${c.want_error_code ?? c.want_error}, got: ${message}` };
    }
    return { kind: 'disagree', detail: `evaluation failed: ${message}` };
  }
  if (c.want_defined !== undefined) {
    return rows.length > 0 === c.want_defined ? { kind: 'agree' } : { kind: 'disagree', detail: `wanted ${c.want_defined ? 'defined' : 'undefined'}, got ${canonicalJson(toComparable(rows))}` };
  }
  if (c.want_result !== undefined) {
    const want = rowSet(toComparable(c.want_result) as Array<Record<string, unknown>>, false);
    const got = rowSet(toComparable(rows) as Array<Record<string, unknown>>, c.sort_bindings ?? false);
    return canonicalJson(want) === canonicalJson(got) ? { kind: 'agree' } : { kind: 'disagree', detail: `wanted ${want.join(' ')}, got ${got.join(' ')}` };
  }
  if (c.want_error_code !== undefined || c.want_error !== undefined) {
    if (c.strict_error) return rows.length === 0 ? { kind: 'agree' } : { kind: 'disagree', detail: `wanted undefined (non-strict), got ${canonicalJson(toComparable(rows))}` };
    return { kind: 'disagree', detail: `wanted error ${c.want_error_code ?? c.want_error}, got ${canonicalJson(toComparable(rows))}` };
  }
  return { kind: 'disagree', detail: 'the case states no expectation this runner understands' };
}
