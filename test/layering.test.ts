// The dependency direction (README.md, Layout), checked on the source: the enforcement points (proxy-plugin/,
// admission/) and the shared runtime never import the compiler or anything else in engine/; engine/
// imports nothing from the enforcement points; only cli/ (the composition root) wires them together.
// And no module imports itself around a loop: an interface never imports its implementations.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve, sep } from 'node:path';
import { describe, expect, it } from 'vitest';
import { importCycles } from './support/import-graph.js';

const root = resolve(import.meta.dirname, '..');

function sources(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.test.ts'))
    .map((e) => join(e.parentPath, e.name));
}

// Top-level folder of every relative import (static and dynamic) of a file.
function importedParts(file: string): Array<{ spec: string; part: string }> {
  const text = readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/(?:from\s+|import\s*\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g)].map((m) => m[1]!);
  return specs.map((spec) => ({ spec, part: relative(root, resolve(file, '..', spec)).split(sep)[0]! }));
}

const rules: Array<{ dir: string; forbidden: string[] }> = [
  { dir: 'engine', forbidden: ['proxy-plugin', 'admission', 'cli'] },
  { dir: 'proxy-plugin', forbidden: ['engine', 'admission', 'cli'] },
  { dir: 'admission', forbidden: ['engine', 'proxy-plugin', 'cli'] },
  { dir: 'runtime', forbidden: ['engine', 'proxy-plugin', 'admission', 'cli'] },
  { dir: 'formats', forbidden: ['engine', 'proxy-plugin', 'admission', 'runtime', 'cli'] },
];

describe('dependency direction', () => {
  for (const { dir, forbidden } of rules) {
    it(`${dir}/ imports nothing from ${forbidden.join(', ')}`, () => {
      const files = sources(dir);
      expect(files.length).toBeGreaterThan(0);
      const offending = files.flatMap((f) => importedParts(f).filter((i) => forbidden.includes(i.part)).map((i) => `${relative(root, f)} imports ${i.spec}`));
      expect(offending).toEqual([]);
    });
  }

  it('the import scanner sees a forbidden import (it can fail)', () => {
    const parts = importedParts(join(root, 'cli', 'main.ts')).map((i) => i.part);
    expect(parts).toEqual(expect.arrayContaining(['engine', 'proxy-plugin', 'admission']));
  });
});

describe('import cycles', () => {
  // Every part of the system, the benchmarks and the test helpers; test files themselves are leaves.
  const parts = ['formats', 'runtime', 'engine', 'proxy-plugin', 'admission', 'cli', 'deploy', 'bench', join('test', 'support')];

  it('no module of the project imports itself around a loop (type-only imports included)', () => {
    const files = parts.flatMap((dir) => sources(dir).map((f) => relative(root, f)));
    expect(files.length).toBeGreaterThan(100);
    expect(importCycles(root, files)).toEqual([]);
  });

  it('the cycle finder sees a loop of type imports and a module importing itself (it can fail)', () => {
    const dir = mkdtempSync(join(tmpdir(), `warden-cycles-${process.pid}-`));
    try {
      writeFileSync(join(dir, 'store.ts'), "import type { Sqlite } from './sqlite.js';\nexport interface Store { s?: Sqlite }\n");
      writeFileSync(join(dir, 'sqlite.ts'), "import { type Store } from './store.js';\nexport class Sqlite { s?: Store }\n");
      writeFileSync(join(dir, 'self.ts'), "export const x = 1;\nexport async function again() { return import('./self.js'); }\n");
      writeFileSync(join(dir, 'user.ts'), "import type { Store } from './store.js';\nimport { x } from './self.js';\nexport const y: Store | number = x;\n");
      expect(importCycles(dir, ['user.ts'])).toEqual([['sqlite.ts', 'store.ts'], ['self.ts']]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
