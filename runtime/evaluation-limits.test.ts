// Every evaluation is bounded: a looping or memory-hungry policy is stopped at its deadline or memory
// bound and the instance rebuilt, and the three OPA-WASM differences that made real policies hang or
// throw (replace with an empty `old`, json.unmarshal with trailing text, lone surrogates in the input)
// now decide as `opa eval` decides, checked against the real binary.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildWasm, opaBinary } from '../test/support/opa.js';
import type { VerifiedBundle } from './bundle.js';
import { InputSelection } from './input-selection.js';
import { EvaluationBudget, FUEL_PER_TICK, limitProblem, SIDECAR_LIMITS, withLimits } from './evaluation-limits.js';
import { EvaluationLimitError, Policy } from './policy.js';
import { wellFormedJson } from './rego-value.js';
import { instantiatePolicy } from './wasm-abi.js';
import { METERING_EXPORTS, meterModule } from './wasm-metering.js';

const run = promisify(execFile);

const module = `package t
import rego.v1

replaced := replace(input.s, input.old, input.new)
unmarshalled := json.unmarshal(input.j)
echo := input.s
strip_unit := replace(input.memory, "Mi", "")

# A loop that allocates nothing per turn: the set holds one element however long it runs.
spin := {true | some i in input.a; some j in input.a; some k in input.a}

# Allocates without bound: an array of as many numbers as asked for.
hog := count(numbers.range(1, input.n))

data_size := count(data.big)
`;
const entrypoints = ['replaced', 'unmarshalled', 'echo', 'strip_unit', 'spin', 'hog', 'data_size'].map((r) => `t/${r}`);

let dir: string;
let wasm: Buffer;

// `opa eval` of one rule for one input (the reference Warden must match).
async function opaEval(rule: string, input: unknown): Promise<unknown> {
  const file = join(dir, `input-${Math.random().toString(36).slice(2)}.json`);
  await writeFile(file, typeof input === 'string' ? input : JSON.stringify(input));
  const { stdout } = await run(opaBinary, ['eval', '--format', 'json', '-d', join(dir, 'policy.rego'), '-i', file, `data.t.${rule}`]);
  const out = JSON.parse(stdout) as { result?: { expressions: { value: unknown }[] }[] };
  return out.result?.[0]?.expressions[0]?.value;
}

const bundleOf = (bytes: Uint8Array, data: Record<string, unknown> = {}): VerifiedBundle => ({ manifest: { revision: 'limits', roots: [''] }, revision: 'limits', data, wasm: bytes, files: new Map(), inputs: InputSelection.fromManifest({}) });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'warden-limits-'));
  await writeFile(join(dir, 'policy.rego'), module);
  wasm = await buildWasm(module, entrypoints);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('OPA-WASM differences decide as opa eval', () => {
  const cases: Array<{ rule: string; input: unknown; raw?: string }> = [
    { rule: 'replaced', input: { s: 'abc', old: '', new: '-' } },
    { rule: 'replaced', input: { s: '', old: '', new: '-' } },
    { rule: 'replaced', input: { s: 'héllo😀', old: '', new: '|' } },
    { rule: 'replaced', input: { s: 'abcabc', old: 'b', new: 'xx' } },
    { rule: 'replaced', input: { s: 'aaa', old: 'a', new: '' } },
    { rule: 'replaced', input: { s: 'abc', old: 'abc', new: 'abc' } },
    { rule: 'strip_unit', input: { memory: '128974848' } },
    { rule: 'strip_unit', input: { memory: '512Mi' } },
    { rule: 'unmarshalled', input: { j: '{"a":1}x' } },
    { rule: 'unmarshalled', input: { j: '{"a":1}{}' } },
    { rule: 'unmarshalled', input: { j: '[1]]' } },
    { rule: 'unmarshalled', input: { j: '1 2' } },
    { rule: 'unmarshalled', input: { j: ' {"a":[1,2]}\n' } },
    { rule: 'unmarshalled', input: { j: '"x"' } },
    { rule: 'echo', input: { s: 'a\ud800b' } },
    { rule: 'echo', input: { s: '\udc00' } },
    { rule: 'echo', input: { s: 'pair 😀 kept, lone \ud83d cut' } },
    { rule: 'echo', input: { s: '\\ud800 is text, not an escape' } },
    { rule: 'replaced', input: { s: 'x\ud800y', old: 'y', new: 'z' } },
  ];
  let policy: Policy;
  beforeAll(async () => {
    policy = await Policy.load(bundleOf(wasm), { limits: { deadlineMs: 2_000, memoryMiB: 64 } });
  });
  for (const c of cases) {
    it(`${c.rule} of ${JSON.stringify(c.input)}`, async () => {
      expect(policy.evaluate(`t/${c.rule}`, c.input)).toEqual(await opaEval(c.rule, c.input));
    });
  }
});

describe('deadline and memory bound', () => {
  it('stops a looping evaluation at its deadline, then decides the next call on a fresh instance', async () => {
    // Data large enough that loading it into the fresh instance runs the metered parser for many ticks.
    const big = Array.from({ length: 50_000 }, (_, i) => ({ i }));
    const policy = await Policy.load(bundleOf(wasm, { big }), { limits: { deadlineMs: 50, memoryMiB: 64 } });
    const a = Array.from({ length: 3_000 }, (_, i) => i);
    const t0 = performance.now();
    let caught: unknown;
    try {
      policy.evaluate('t/spin', { a });
    } catch (err) {
      caught = err;
    }
    const took = performance.now() - t0;
    expect(caught).toBeInstanceOf(EvaluationLimitError);
    expect((caught as EvaluationLimitError).limit).toBe('deadline');
    expect((caught as Error).message).toMatch(/stopped at its deadline of 50 ms/);
    expect(took).toBeLessThan(2_000);
    expect(policy.evaluate('t/spin', { a: [1, 2] })).toEqual([true]);
    expect(policy.evaluate('t/data_size', {})).toBe(50_000);
    expect(policy.evaluate('t/replaced', { s: 'abc', old: '', new: '.' })).toBe('.a.b.c.');
  });

  it('loads a policy that loops on every input (its warm-up is bounded too) and stops each evaluation', async () => {
    const forever = await buildWasm('package f\nimport rego.v1\n\nspin := count({true | some i in a; some j in a; some k in a}) if a := numbers.range(1, 3000)\n', ['f/spin']);
    const t0 = performance.now();
    const policy = await Policy.load(bundleOf(forever), { limits: { deadlineMs: 20, memoryMiB: 64 } });
    expect(performance.now() - t0).toBeLessThan(5_000);
    expect(() => policy.evaluate('f/spin', {})).toThrow(/stopped at its deadline of 20 ms/);
  });

  it('stops an evaluation that grows the heap past the memory bound, and the next one starts small', async () => {
    const policy = await Policy.load(bundleOf(wasm), { limits: { deadlineMs: 5_000, memoryMiB: 16 } });
    expect(() => policy.evaluate('t/hog', { n: 50_000_000 })).toThrow(EvaluationLimitError);
    try {
      policy.evaluate('t/hog', { n: 50_000_000 });
    } catch (err) {
      expect((err as EvaluationLimitError).limit).toBe('memory');
      expect((err as Error).message).toMatch(/memory bound of 16 MiB/);
    }
    expect(policy.evaluate('t/hog', { n: 10 })).toBe(10);
  });

  it('counts an input too large for the memory bound as the memory limit', async () => {
    const policy = await Policy.load(bundleOf(wasm), { limits: { deadlineMs: 5_000, memoryMiB: 8 } });
    expect(() => policy.evaluate('t/echo', { s: 'x'.repeat(12 << 20) })).toThrow(/memory bound of 8 MiB/);
    expect(policy.evaluate('t/echo', { s: 'ok' })).toBe('ok');
  });

  it('bounds what replace with an empty old may build', async () => {
    const policy = await Policy.load(bundleOf(wasm), { limits: { deadlineMs: 5_000, memoryMiB: 16 } });
    expect(() => policy.evaluate('t/replaced', { s: 'a'.repeat(20_000), old: '', new: 'b'.repeat(2_000) })).toThrow(/memory bound of 16 MiB/);
  });

  it("takes a workload's limits over the part's defaults and refuses unknown or out-of-range ones", () => {
    expect(withLimits(SIDECAR_LIMITS, { deadlineMs: 3 }, 'bundle r1 metadata')).toEqual({ deadlineMs: 3, memoryMiB: SIDECAR_LIMITS.memoryMiB });
    expect(withLimits(SIDECAR_LIMITS, undefined, 'x')).toBe(SIDECAR_LIMITS);
    expect(() => withLimits(SIDECAR_LIMITS, { deadlineMs: -1 }, 'bundle r1 metadata')).toThrow(/bundle r1 metadata: limits\.deadlineMs must be a number above 0/);
    expect(() => withLimits(SIDECAR_LIMITS, { timeoutMs: 5 }, 'bundle r1 metadata')).toThrow(/limits\.timeoutMs is not a limit/);
    expect(() => withLimits(SIDECAR_LIMITS, [5], 'w')).toThrow(/must be an object/);
  });

  it('refuses limit values that would switch the bound off', () => {
    expect(limitProblem('deadlineMs', 0)).toMatch(/above 0/);
    expect(limitProblem('deadlineMs', Infinity)).toMatch(/at most 60000/);
    expect(limitProblem('memoryMiB', 1.5)).toMatch(/whole number/);
    expect(limitProblem('memoryMiB', '64')).toMatch(/got "64"/);
    expect(limitProblem('deadlineMs', 5)).toBeUndefined();
  });
});

describe('metering', () => {
  it('instruments every loop and redirects the two runtime functions, and the module stays valid', () => {
    const m = meterModule(wasm, 10_000);
    expect(WebAssembly.validate(m.wasm)).toBe(true);
    expect(m.loops).toBeGreaterThan(100);
    expect(m.redirected).toEqual(['opa_strings_replace', 'opa_json_unmarshal']);
    // This module matches no regular expression: it holds no RE2, so nothing is counted (wasm-heap.test.ts).
    expect(m.patternsCounted).toBe(false);
  });
  it('refuses what is not a module', () => {
    expect(() => meterModule(Buffer.from('not wasm'), 1)).toThrow(/not a WebAssembly module/);
  });
  it('starts each evaluation on a full tank: short ones never call the host however many run, long ones do', async () => {
    const module = await WebAssembly.compile(meterModule(wasm, FUEL_PER_TICK).wasm);
    expect(WebAssembly.Module.exports(module)).toContainEqual({ name: METERING_EXPORTS.fuel, kind: 'global' });
    const budget = new EvaluationBudget(SIDECAR_LIMITS);
    let ticks = 0;
    const tick = budget.tick;
    budget.tick = () => (ticks++, tick());
    const live = instantiatePolicy(module, { initial: 5, maximum: 256 * 16 }, {}, budget, new TextEncoder().encode('{}'));
    // Each of these parses an input of ~3,000 characters, a loop turn or more per character: a third of a tank.
    const short = JSON.stringify({ s: 'x'.repeat(3_000) });
    ticks = 0;
    for (let i = 0; i < 50; i++) {
      budget.begin();
      expect(live.evaluate('t/echo', short)).toBe('x'.repeat(3_000));
    }
    expect(ticks).toBe(0);
    // Thirty tanks' worth of turns in one evaluation: the host is asked about thirty times.
    const long = JSON.stringify({ s: 'x'.repeat(30 * FUEL_PER_TICK) });
    budget.begin();
    expect(live.evaluate('t/echo', long)).toHaveLength(30 * FUEL_PER_TICK);
    expect(ticks).toBeGreaterThanOrEqual(25);
  });
  it('rewrites only lone surrogate escapes', () => {
    expect(wellFormedJson(JSON.stringify({ s: 'a\ud800\\ud800😀' }))).toBe('{"s":"a\\ufffd\\\\ud800😀"}');
  });
});
