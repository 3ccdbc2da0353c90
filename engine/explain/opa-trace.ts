// OPA's own account of a decision: `opa eval --explain full` over the Rego sources and data a bundle
// carries (every Warden bundle ships them beside policy.wasm), read back as the rules that held, with
// file:line, and which of them produced each reason. Also evaluates named expressions (a grant's
// conditions, one by one) with the same OPA, bundle and input. Warden never re-implements Rego here.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, normalize } from 'node:path';
import { runOpa } from '../toolchain/opa.js';

/** A rule that held while OPA evaluated the query. */
export interface HeldRule {
  /** Path inside the bundle, e.g. warden/core.rego. */
  file: string;
  row: number;
  /** The rule's name (deny, grants, decision, violations…). */
  name: string;
  /** The source line at `row`, trimmed. */
  source: string;
  /** Nesting below the query (1 = the entrypoint rule). */
  depth: number;
}

/** What OPA said. */
export interface OpaAccount {
  /** The query's value (undefined when OPA found it undefined). */
  result: unknown;
  /** Rules that held, each once, in the order OPA finished them. */
  held: HeldRule[];
  /** Reason (a string a rule produced, or the `reason` of an object it produced) → the first rule that produced it. */
  producedBy: Record<string, HeldRule>;
  /** Values of the extra expressions (true when they held). */
  checks: Record<string, boolean>;
}

/** OPA could not evaluate the bundle's Rego (the message names the file and line OPA gave). */
export class TraceError extends Error {
  override name = 'TraceError';
}

interface Term {
  type: string;
  value: unknown;
}

// OPA's JSON AST term → plain JSON (objects are [key, value] term pairs, sets become arrays).
function plain(t: Term | undefined): unknown {
  if (!t) return undefined;
  switch (t.type) {
    case 'object':
      return Object.fromEntries((t.value as Array<[Term, Term]>).map(([k, v]) => [String(plain(k)), plain(v)]));
    case 'array':
    case 'set':
      return (t.value as Term[]).map(plain);
    default:
      return t.value;
  }
}

interface TraceEvent {
  Op: string;
  QueryID: number;
  ParentID: number;
  Location?: { file?: string; row?: number };
  Node?: { head?: { name?: string; key?: Term; value?: Term } } | unknown[];
  Locals?: Array<{ name: string; type: string; value: unknown }>;
}

/** Write the bundle's Rego and data (not its WASM or signature) where `opa eval -b` reads them. */
function stage(files: ReadonlyMap<string, Buffer>, dir: string): void {
  for (const [name, bytes] of files) {
    const rel = normalize(name.replace(/^\/+/, ''));
    if (rel.startsWith('..') || !(rel.endsWith('.rego') || rel.endsWith('data.json') || rel === '.manifest')) continue;
    let content: Uint8Array | string = bytes;
    if (rel === '.manifest') {
      // The same roots and Rego version, without the WASM module OPA would otherwise insist on.
      const m = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
      delete m.wasm;
      content = JSON.stringify(m);
    }
    mkdirSync(dirname(join(dir, rel)), { recursive: true });
    writeFileSync(join(dir, rel), content);
  }
}

function opaFailure(run: { stdout: string; stderr: string; code: number }): TraceError {
  let message = run.stderr.trim() || run.stdout.trim();
  try {
    const body = JSON.parse(run.stdout) as { errors?: Array<{ message?: string; location?: { file?: string; row?: number } }> };
    if (body.errors?.length) message = body.errors.map((e) => `${e.location?.file ? `${e.location.file}:${e.location.row ?? 0}: ` : ''}${e.message ?? ''}`).join('; ');
  } catch {
    // not JSON: the raw output says it
  }
  return new TraceError(`opa eval over the bundle's Rego failed (exit ${run.code}): ${message.slice(0, 2000)}`);
}

/** Read the rules that held, and what each produced, from a full trace. */
export function readTrace(events: TraceEvent[], sources: ReadonlyMap<string, Buffer>, stagedAt = ''): Pick<OpaAccount, 'held' | 'producedBy'> {
  const depth = new Map<number, number>([[0, 0]]);
  const held: HeldRule[] = [];
  const seen = new Set<string>();
  const producedBy: Record<string, HeldRule> = {};
  const lines = new Map<string, string[]>();
  const lineOf = (file: string, row: number) => {
    if (!lines.has(file)) lines.set(file, (sources.get(file) ?? sources.get(`/${file}`))?.toString('utf8').split('\n') ?? []);
    return (lines.get(file)![row - 1] ?? '').trim();
  };
  for (const e of events) {
    if (e.Op === 'Enter') depth.set(e.QueryID, (depth.get(e.ParentID) ?? 0) + 1);
    const head = !Array.isArray(e.Node) ? e.Node?.head : undefined;
    if (e.Op !== 'Exit' || !head || !e.Location?.file) continue;
    // OPA names files as it loaded them: report them as paths inside the bundle.
    const file = stagedAt && e.Location.file.startsWith(`${stagedAt}/`) ? e.Location.file.slice(stagedAt.length + 1) : e.Location.file;
    const rule: HeldRule = { file, row: e.Location.row ?? 0, name: head.name ?? '', source: lineOf(file, e.Location.row ?? 0), depth: depth.get(e.QueryID) ?? 0 };
    const key = `${rule.file}:${rule.row}`;
    if (!seen.has(key)) {
      seen.add(key);
      held.push(rule);
    }
    // A partial set rule's produced element is its key, bound in the exit event's locals.
    const term = head.key ?? head.value;
    let value: unknown;
    if (term?.type === 'var') {
      const local = e.Locals?.find((l) => l.name === term.value);
      value = local ? plain({ type: local.type, value: local.value }) : undefined;
    } else value = plain(term);
    const reason = typeof value === 'string' ? value : value && typeof value === 'object' && typeof (value as { reason?: unknown }).reason === 'string' ? (value as { reason: string }).reason : undefined;
    if (reason !== undefined && !producedBy[reason]) producedBy[reason] = rule;
  }
  return { held, producedBy };
}

/**
 * Evaluate `query` (e.g. `data.warden.decision`) with OPA over the bundle's sources, traced, plus each
 * of `checks` (Rego expressions; true when they hold for this input) in a second, untraced run.
 */
export async function explainWithOpa(files: ReadonlyMap<string, Buffer>, query: string, input: unknown, checks: Record<string, string> = {}): Promise<OpaAccount> {
  const tmp = mkdtempSync(join(tmpdir(), 'warden-explain-'));
  const dir = join(tmp, 'bundle');
  try {
    stage(files, dir);
    const inputFile = join(tmp, 'input.json');
    writeFileSync(inputFile, JSON.stringify(input ?? {}));
    const names = Object.keys(checks);
    // Each check as `count([1 | <expr>]) > 0`: true or false, never undefined, so one bad check cannot hide the others.
    const checkQuery = `{${names.map((n) => `${JSON.stringify(n)}: count([1 | ${checks[n]}]) > 0`).join(', ')}}`;
    const [traced, checked] = await Promise.all([
      runOpa(['eval', '--bundle', dir, '--input', inputFile, '--format', 'json', '--explain', 'full', query], { cwd: dir }),
      names.length ? runOpa(['eval', '--bundle', dir, '--input', inputFile, '--format', 'json', checkQuery], { cwd: dir }) : Promise.resolve(undefined),
    ]);
    if (traced.code !== 0) throw opaFailure(traced);
    if (checked && checked.code !== 0) throw opaFailure(checked);
    const body = JSON.parse(traced.stdout) as { result?: Array<{ expressions: Array<{ value: unknown }> }>; explanation?: TraceEvent[] };
    const result = body.result?.[0]?.expressions[0]?.value;
    const checkValues = checked ? ((JSON.parse(checked.stdout) as { result?: Array<{ expressions: Array<{ value: Record<string, boolean> }> }> }).result?.[0]?.expressions[0]?.value ?? {}) : {};
    return { result, ...readTrace(body.explanation ?? [], files, dir), checks: checkValues };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
