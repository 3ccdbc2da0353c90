// The import graph of Warden's sources, read from the files (static `from '…'`, dynamic `import('…')` and
// `createRequire` loads, with a literal specifier): which of our modules and which npm packages a process
// started at an entry point can load. Used to prove what the slim sidecar image must hold, and nothing
// more; and to find import cycles among our modules (test/layering.test.ts forbids them).
import { existsSync, readFileSync } from 'node:fs';
import { relative, resolve } from 'node:path';

/** Our modules (paths relative to the root, .ts) and the npm packages (names) reachable from `entries`. */
export interface ImportClosure {
  modules: string[];
  packages: string[];
}

// Group 1: `import(` when the import is dynamic; group 2: the specifier.
const SPEC = /(?:\bfrom\s+|\b(import)\s*\(\s*|^\s*import\s+)['"]([^'"]+)['"]/gm;

// Packages loaded with `createRequire(…)('pkg')` or `someRequire.resolve('pkg')` (the OPA SDK's CommonJS side).
const REQUIRED = /(?:\bcreateRequire\([^)]*\)|\.resolve|\brequire)\s*\(\s*['"]([^'".][^'"]*)['"]\s*\)/g;

// `import type` lines bring nothing at run time; drop them before scanning.
const runtimeText = (text: string) => text.replace(/^\s*import\s+type\s[^;]*;/gm, '').replace(/^\s*export\s+type\s[^;]*;/gm, '');

const packageOf = (spec: string) => (spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);

// Our module a relative specifier of `file` names (a `.js` specifier stands for its `.ts` source).
function moduleOf(root: string, file: string, spec: string): string {
  const target = resolve(root, file, '..', spec);
  const found = [target.replace(/\.js$/, '.ts'), target].find((p) => existsSync(p));
  if (!found) throw new Error(`${file} imports ${spec}, which does not exist`);
  return relative(root, found);
}

/**
 * Walk from `entries` (paths relative to `root`); `skip(from, spec, dynamic)` leaves out an import (e.g.
 * the lazily imported subcommands a process does not run).
 */
export function importClosure(root: string, entries: string[], skip: (from: string, spec: string, dynamic: boolean) => boolean = () => false): ImportClosure {
  const modules = new Set<string>();
  const packages = new Set<string>();
  const queue = [...entries];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (modules.has(file)) continue;
    modules.add(file);
    const text = runtimeText(readFileSync(resolve(root, file), 'utf8'));
    for (const m of text.matchAll(REQUIRED)) if (!m[1]!.startsWith('node:')) packages.add(packageOf(m[1]!));
    for (const m of text.matchAll(SPEC)) {
      const spec = m[2]!;
      if (skip(file, spec, m[1] !== undefined)) continue;
      if (spec.startsWith('node:')) continue;
      if (!spec.startsWith('.')) {
        packages.add(packageOf(spec));
        continue;
      }
      queue.push(moduleOf(root, file, spec));
    }
  }
  return { modules: [...modules].sort(), packages: [...packages].sort() };
}

/**
 * The import cycles among `files` and the modules they reach (paths relative to `root`): each group of
 * modules that import one another, directly or around a loop, sorted. Type-only imports count: an
 * interface that imports its implementations is a cycle even though nothing of it runs.
 */
export function importCycles(root: string, files: string[]): string[][] {
  const edges = new Map<string, string[]>();
  const importsOf = (file: string): string[] => {
    let out = edges.get(file);
    if (!out) {
      const specs = [...readFileSync(resolve(root, file), 'utf8').matchAll(SPEC)].map((m) => m[2]!);
      out = specs.filter((spec) => spec.startsWith('.')).map((spec) => moduleOf(root, file, spec));
      edges.set(file, out);
    }
    return out;
  };
  // Tarjan's strongly connected components, iterative so a deep import chain cannot overflow the stack.
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  for (const start of files) {
    if (index.has(start)) continue;
    const work: Array<{ node: string; next: number }> = [{ node: start, next: 0 }];
    index.set(start, index.size);
    low.set(start, index.get(start)!);
    stack.push(start);
    onStack.add(start);
    while (work.length > 0) {
      const frame = work[work.length - 1]!;
      const targets = importsOf(frame.node);
      if (frame.next < targets.length) {
        const to = targets[frame.next++]!;
        if (!index.has(to)) {
          index.set(to, index.size);
          low.set(to, index.get(to)!);
          stack.push(to);
          onStack.add(to);
          work.push({ node: to, next: 0 });
        } else if (onStack.has(to)) {
          low.set(frame.node, Math.min(low.get(frame.node)!, index.get(to)!));
        }
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent) low.set(parent.node, Math.min(low.get(parent.node)!, low.get(frame.node)!));
      if (low.get(frame.node) !== index.get(frame.node)) continue;
      const group: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        group.push(member);
      } while (member !== frame.node);
      if (group.length > 1 || targets.includes(frame.node)) cycles.push(group.sort());
    }
  }
  return cycles;
}
