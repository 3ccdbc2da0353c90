// The dependency direction (README.md, Layout), checked on the source: the enforcement points (proxy-plugin/,
// admission/) and the shared runtime never import the compiler or anything else in engine/; engine/
// imports nothing from the enforcement points; only cli/ (the composition root) wires them together.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { describe, expect, it } from 'vitest';

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
