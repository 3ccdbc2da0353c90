// Schemas compile on first use (formats/schema.ts), so a schema ajv refuses would only show when its
// document first arrives: this compiles every validator of every module that makes one, found by
// scanning the sources, so a bad schema fails here instead.
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileAllValidators, validator } from './schema.js';

const root = resolve(import.meta.dirname, '..');
const sources = (dir: string): string[] =>
  readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [join(dir, e.name)] : [],
  );
const makers = ['formats', 'runtime', 'proxy-plugin', 'engine', 'admission', 'cli']
  .flatMap(sources)
  .filter((f) => f !== 'formats/schema.ts' && /\bvalidator\b\s*[<(]/.test(readFileSync(join(root, f), 'utf8')));

describe('format schemas', () => {
  it('every schema of every module compiles', async () => {
    expect(makers.length).toBeGreaterThan(5);
    for (const f of makers) await import(`../${f.replace(/\.ts$/, '.js')}`);
    expect(compileAllValidators()).toBeGreaterThanOrEqual(makers.length);
  });

  it('a schema ajv refuses fails when compiled, not when declared', () => {
    const bad = validator({ type: 'object', properties: { a: { type: 'no-such-type' } } });
    expect(() => compileAllValidators()).toThrow(/is not valid JSON Schema: .*type/);
    expect(() => bad.check({})).toThrow();
    const unknownKeyword = validator({ type: 'object', propertys: {} });
    expect(() => unknownKeyword.check({})).toThrow(/unknown keyword: "propertys"/);
  });
});
