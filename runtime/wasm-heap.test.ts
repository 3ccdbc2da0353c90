// Evaluations follow one another on the WASM heap once one compiled a pattern, so that OPA's cache of
// compiled patterns (RE2 for regex.match, globs for glob.match) lives from one evaluation to the next;
// the heap goes back to the data once they have left RETAINED_HEAP_BYTES behind, after
// PATTERNS_BEFORE_RESET patterns were compiled, or after an evaluation that did not finish.
// Real modules built by the pinned opa, evaluated by Warden's ABI.
import { beforeAll, describe, expect, it } from 'vitest';
import { buildWasm } from '../test/support/opa.js';
import { EvaluationBudget, SIDECAR_LIMITS } from './evaluation-limits.js';
import { instantiatePolicy, PATTERNS_BEFORE_RESET, RETAINED_HEAP_BYTES, type PolicyInstance } from './wasm-abi.js';
import { METERING_EXPORTS, meterModule, PATTERN_CACHE_LIMIT } from './wasm-metering.js';
import { FUEL_PER_TICK } from './evaluation-limits.js';

const source = `package h
import rego.v1

matches := regex.match(input.pattern, input.s)
each := [regex.match(p, input.s) | some p in input.patterns]
globbed := glob.match(input.pattern, [], input.s)
# Two values for one key: OPA aborts the evaluation (an object insert conflict).
conflict := {k: v | some v in input.values; k := "same"}
`;

let wasm: Uint8Array;
let module: WebAssembly.Module;
const fresh = (m = module): PolicyInstance =>
  instantiatePolicy(m, { initial: 5, maximum: 256 * 16 + RETAINED_HEAP_BYTES / 65536 }, {}, new EvaluationBudget(SIDECAR_LIMITS), new TextEncoder().encode('{}'));
const evaluate = (p: PolicyInstance, entrypoint: string, input: unknown) => p.evaluate(`h/${entrypoint}`, JSON.stringify(input));

beforeAll(async () => {
  wasm = await buildWasm(source, ['h/matches', 'h/each', 'h/globbed', 'h/conflict']);
  const metered = meterModule(wasm, FUEL_PER_TICK);
  expect(metered.patternsCounted).toBe(true);
  module = await WebAssembly.compile(metered.wasm);
  expect(WebAssembly.Module.exports(module)).toContainEqual({ name: METERING_EXPORTS.patterns, kind: 'global' });
});

describe('the WASM heap between evaluations', () => {
  it('keeps a compiled regular expression for the next evaluation: the second use of a pattern takes a fraction of the heap the first took', () => {
    const p = fresh();
    const pattern = '(?i)\\\\b(insert|update|delete|drop|alter|create|truncate|grant)\\\\b';
    const used = (s: string) => {
      const before = p.heapInUse();
      expect(evaluate(p, 'matches', { pattern: JSON.parse(`"${pattern}"`), s })).toBe(/drop/i.test(s));
      return p.heapInUse() - before;
    };
    const first = used('SELECT status FROM orders WHERE id = 1');
    const again = used('DROP TABLE orders');
    const third = used('SELECT status FROM orders WHERE id = 3');
    // Compiling the pattern takes tens of KiB of RE2 state; matching with the cached one, a few hundred bytes.
    expect(first).toBeGreaterThan(10 * again);
    expect(first).toBeGreaterThan(10 * third);
  });

  it('goes back to the data once the evaluations have left RETAINED_HEAP_BYTES behind, and decides the same across resets and OPA evicting patterns', () => {
    const p = fresh();
    let peak = 0;
    let resets = 0;
    // 300 patterns, more than OPA's cache holds (100), each used twice at distance: compiled, evicted, compiled again.
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 300; i++) {
        const before = p.heapInUse();
        const s = 'a'.repeat(i % 17);
        expect(evaluate(p, 'matches', { pattern: `^a{${i % 17}}$`, s })).toBe(true);
        expect(evaluate(p, 'matches', { pattern: `^a{${i % 17}}$`, s: `${s}a` })).toBe(false);
        expect(evaluate(p, 'globbed', { pattern: `order-${i}-*`, s: `order-${i}-x` })).toBe(true);
        expect(evaluate(p, 'globbed', { pattern: `order-${i}-*`, s: `order-${i + 1}-x` })).toBe(false);
        if (p.heapInUse() < before) resets++;
        peak = Math.max(peak, p.heapInUse());
      }
    }
    expect(resets).toBeGreaterThan(0);
    expect(peak).toBeLessThan(RETAINED_HEAP_BYTES + 256 * 1024);
  });

  it('starts from the data again after an evaluation that was aborted', () => {
    const p = fresh();
    for (let i = 0; i < 20; i++) evaluate(p, 'matches', { pattern: `^x${i}$`, s: `x${i}` });
    expect(p.heapInUse()).toBeGreaterThan(0);
    expect(() => evaluate(p, 'conflict', { values: [1, 2] })).toThrow(/conflict/);
    expect(evaluate(p, 'conflict', { values: [1, 1] })).toEqual({ same: 1 });
    // The failed evaluation's heap is gone: only the last one's is left.
    const after = p.heapInUse();
    expect(evaluate(p, 'matches', { pattern: '^ok$', s: 'ok' })).toBe(true);
    expect(after).toBeLessThan(64 * 1024);
  });

  it('counts the patterns compiled: after PATTERNS_BEFORE_RESET of them the next evaluation starts from the data; a pattern found in the cache is not counted', () => {
    const p = fresh();
    const heap: number[] = [];
    for (let i = 0; i < PATTERNS_BEFORE_RESET + 5; i++) {
      expect(evaluate(p, 'matches', { pattern: `^order-${i}-[0-9]+$`, s: `order-${i}-7` })).toBe(true);
      heap.push(p.heapInUse());
    }
    // A new pattern at each evaluation, far below RETAINED_HEAP_BYTES: the heap goes back exactly when the count is reached.
    const firstDrop = heap.findIndex((h, i) => i > 0 && h < heap[i - 1]!);
    expect(firstDrop).toBe(PATTERNS_BEFORE_RESET);
    expect(heap[firstDrop - 1]!).toBeLessThan(RETAINED_HEAP_BYTES);
    // One pattern, compiled once and found in the cache from then on: no reset until the heap bound.
    const q = fresh();
    const kept: number[] = [];
    for (let i = 0; i < 4 * PATTERNS_BEFORE_RESET; i++) {
      expect(evaluate(q, 'matches', { pattern: '^order-[0-9]+$', s: `order-${i}` })).toBe(true);
      kept.push(q.heapInUse());
    }
    expect(kept.every((h, i) => i === 0 || h > kept[i - 1]!)).toBe(true);
    expect(kept.at(-1)!).toBeLessThan(RETAINED_HEAP_BYTES);
  });

  it(`stops an evaluation at its ${PATTERN_CACHE_LIMIT}th pattern, before OPA's cache could fill, saying why; the next one decides`, () => {
    const p = fresh();
    const patterns = (n: number, tag: string) => Array.from({ length: n }, (_, i) => `^${tag}-${i}$`);
    const below = evaluate(p, 'each', { patterns: patterns(PATTERN_CACHE_LIMIT - 1, 'a'), s: 'a-7' }) as boolean[];
    expect(below).toHaveLength(PATTERN_CACHE_LIMIT - 1);
    expect(below.filter(Boolean)).toHaveLength(1);
    expect(() => evaluate(p, 'each', { patterns: patterns(PATTERN_CACHE_LIMIT, 'b'), s: 'b-7' })).toThrow(new RegExp(`compiles ${PATTERN_CACHE_LIMIT} or more regular expressions.*fail closed`));
    expect(evaluate(p, 'matches', { pattern: '^ok$', s: 'ok' })).toBe(true);
  });

  it('evaluates once more from the data when the trap came from patterns earlier evaluations left in the cache', () => {
    const p = fresh();
    for (let i = 0; i < PATTERNS_BEFORE_RESET - 1; i++) expect(evaluate(p, 'matches', { pattern: `^kept-${i}$`, s: `kept-${i}` })).toBe(true);
    // With the kept ones this reaches the limit; alone it stays below it.
    const many = Array.from({ length: PATTERN_CACHE_LIMIT - 10 }, (_, i) => `^many-${i}$`);
    const r = evaluate(p, 'each', { patterns: many, s: 'many-3' }) as boolean[];
    expect(r.map((m, i) => (m ? i : -1)).filter((i) => i >= 0)).toEqual([3]);
  });

  it('starts from the data while no evaluation compiled a pattern: there is nothing to keep', () => {
    const p = fresh();
    const heap: number[] = [];
    for (let i = 0; i < 5; i++) {
      expect(evaluate(p, 'conflict', { values: [i, i] })).toEqual({ same: i });
      heap.push(p.heapInUse());
    }
    for (const h of heap) expect(h).toBe(heap[0]);
    // The first pattern starts the keeping.
    evaluate(p, 'matches', { pattern: '^a$', s: 'a' });
    const kept = p.heapInUse();
    evaluate(p, 'matches', { pattern: '^a$', s: 'b' });
    expect(p.heapInUse()).toBeGreaterThan(kept);
  });

  it('starts every evaluation from the data when the module has no names to count the calls by', async () => {
    const bare = withoutNameSection(wasm);
    const metered = meterModule(bare, FUEL_PER_TICK);
    expect(metered.patternsCounted).toBe(false);
    const m = await WebAssembly.compile(metered.wasm);
    expect(WebAssembly.Module.exports(m).map((e) => e.name)).not.toContain(METERING_EXPORTS.patterns);
    const p = fresh(m);
    const heap: number[] = [];
    for (let i = 0; i < 5; i++) {
      expect(evaluate(p, 'matches', { pattern: '^order-[0-9]+$', s: `order-${i}` })).toBe(true);
      heap.push(p.heapInUse());
    }
    // Each evaluation compiles the pattern again on a reset heap, so each leaves about the same heap
    // behind (the pattern's RE2 state, ~10 KiB) instead of adding to the last one's.
    expect(heap[0]!).toBeGreaterThan(4096);
    for (const h of heap) expect(Math.abs(h - heap[0]!)).toBeLessThan(512);
  });
});

// The module less its `name` custom section (every other section as it was).
function withoutNameSection(bytes: Uint8Array): Uint8Array {
  const out: Uint8Array[] = [bytes.subarray(0, 8)];
  let pos = 8;
  const leb = () => {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      const b = bytes[pos++]!;
      value |= (b & 0x7f) << shift;
      if (b < 0x80) return value;
    }
  };
  while (pos < bytes.length) {
    const start = pos;
    const id = bytes[pos++]!;
    const size = leb();
    const body = pos;
    pos = body + size;
    if (id === 0) {
      const at = pos;
      pos = body;
      const nameLength = leb();
      const name = Buffer.from(bytes.subarray(pos, pos + nameLength)).toString();
      pos = at;
      if (name === 'name') continue;
    }
    out.push(bytes.subarray(start, pos));
  }
  return new Uint8Array(Buffer.concat(out));
}
