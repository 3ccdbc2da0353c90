// The import graph of Warden's sources, read from the files (static `from '…'`, dynamic `import('…')` and
// `createRequire` loads, with a literal specifier): which of our modules and which npm packages a process started at an entry
// point can load. Used to prove what the slim sidecar image must hold, and nothing more.
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
      const target = resolve(root, file, '..', spec);
      const ts = target.replace(/\.js$/, '.ts');
      const found = [ts, target].find((p) => existsSync(p));
      if (!found) throw new Error(`${file} imports ${spec}, which does not exist`);
      queue.push(relative(root, found));
    }
  }
  return { modules: [...modules].sort(), packages: [...packages].sort() };
}
