// The `input` paths a workload's Rego can read, found with OPA's own parser (`opa parse --format json`)
// over every module the bundle ships: the core, the generated module, the library and the workload's
// Rego. The pod builds only these parts of the input (runtime/input-selection.ts), so the list must
// over-approximate: every reference is walked, and whatever is not a plain path falls back to more.
//  - `input.a.b[x].c` reads all of `input.a.b` (the path stops at the first part that is not a string
//    constant: a variable, a number, a call);
//  - `input` standing alone (passed whole to a function or builtin, `walk(input)`, `x := input`,
//    `import input`) or a `with input… as` override reads the whole input;
//  - a part of the input passed to a function or bound to a variable is read whole (`f(input.request)`
//    reads all of `input.request`), so following it through the function is never needed for soundness.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { InputPath } from '../../formats/bundle-manifest.js';
import { runOpa } from '../toolchain/opa.js';
import { CompileError } from './compile-error.js';

/** The path list that means "the whole input". */
export const WHOLE_INPUT: InputPath[] = [[]];

interface Term {
  type?: unknown;
  value?: unknown;
}

const isTerm = (v: unknown): v is Term => typeof v === 'object' && v !== null && !Array.isArray(v) && typeof (v as Term).type === 'string';
const isInputVar = (t: unknown) => isTerm(t) && t.type === 'var' && t.value === 'input';

/** The input paths one parsed module (OPA's JSON AST) reads; `[[]]` when it may read any of it. */
export function inputPathsOfModule(ast: unknown): InputPath[] {
  const paths: InputPath[] = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) {
      for (const n of node) walk(n);
      return;
    }
    if (typeof node !== 'object' || node === null) return;
    if (isInputVar(node)) {
      paths.push([]);
      return;
    }
    const o = node as Record<string, unknown>;
    // `with input… as v` replaces what the rule under it reads: take the whole input rather than model it.
    if (o.target !== undefined && isTerm(o.target) && o.target.type === 'ref' && Array.isArray(o.target.value) && isInputVar(o.target.value[0])) paths.push([]);
    if (isTerm(node) && node.type === 'ref' && Array.isArray(node.value) && isInputVar(node.value[0])) {
      const parts = node.value as unknown[];
      const path: string[] = [];
      let i = 1;
      for (; i < parts.length; i++) {
        const p = parts[i];
        if (!isTerm(p) || p.type !== 'string' || typeof p.value !== 'string') break;
        path.push(p.value);
      }
      paths.push(path);
      // A dynamic part may itself read the input (`input.a[input.b]`).
      walk(parts.slice(i));
      return;
    }
    for (const v of Object.values(o)) walk(v);
  };
  walk(ast);
  return minimalPaths(paths);
}

/** The paths with every one that lies under another removed, sorted; `[[]]` absorbs everything. */
export function minimalPaths(paths: readonly InputPath[]): InputPath[] {
  const sorted = [...paths].sort((a, b) => a.length - b.length);
  const kept: InputPath[] = [];
  for (const p of sorted) if (!kept.some((k) => k.length <= p.length && k.every((part, i) => part === p[i]))) kept.push(p);
  return kept.sort((a, b) => (a.join('\0') < b.join('\0') ? -1 : a.join('\0') > b.join('\0') ? 1 : 0));
}

/** The input paths a bundle's Rego modules (path in bundle → source) can read, parsed by `opa parse`. */
export async function inputPathsOf(modules: ReadonlyMap<string, string>, where: string): Promise<InputPath[]> {
  const dir = mkdtempSync(join(tmpdir(), 'warden-input-paths-'));
  try {
    const names = [...modules.keys()].filter((f) => f.endsWith('.rego'));
    const parsed = await Promise.all(
      names.map(async (name, i) => {
        const file = join(dir, `${i}.rego`);
        writeFileSync(file, modules.get(name)!);
        const r = await runOpa(['parse', '--format', 'json', file]);
        if (r.code !== 0) throw new CompileError([], `${where}: \`opa parse\` could not read ${name} to find the input it reads:\n${(r.stderr || r.stdout).split(file).join(name).trim()}`);
        return inputPathsOfModule(JSON.parse(r.stdout));
      }),
    );
    return minimalPaths(parsed.flat());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
