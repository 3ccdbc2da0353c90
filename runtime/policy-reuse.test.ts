// A pure module's result for an input text it decided before is reused; a module that reads the clock or
// randomness is evaluated every time; a result that failed is never remembered. Real WASM from the real
// OPA binary.
import { beforeAll, describe, expect, it } from 'vitest';
import { buildWasm } from '../test/support/opa.js';
import type { VerifiedBundle } from './bundle.js';
import type { Clock } from './clock.js';
import { InputSelection } from './input-selection.js';
import { EvaluationLimitError, Policy } from './policy.js';

const module = `package t
import rego.v1

verdict := {"allow": input.user == "alice", "reasons": [sprintf("user %v", [input.user])]}
stamped := {"user": input.user, "at": time.now_ns()}
spin := {true | some i in input.a; some j in input.a; some k in input.a}
`;
let wasm: Buffer;
const bundleOf = (bytes: Uint8Array): VerifiedBundle => ({ manifest: { revision: 'reuse', roots: [''] }, revision: 'reuse', data: {}, wasm: bytes, files: new Map(), inputs: InputSelection.fromManifest({}) });
// A clock that moves a nanosecond at each reading.
const moving = (): Clock => {
  let ns = 1_700_000_000_000_000_000n;
  return { nowNs: () => ns++ };
};

beforeAll(async () => {
  wasm = await buildWasm(module, ['t/verdict', 't/stamped', 't/spin']);
});

describe('reusing results of a pure module', () => {
  it('answers an input text decided before with the same, frozen result, and evaluates any other', async () => {
    const policy = await Policy.load(bundleOf(await buildWasm(module.replace(/^stamped.*$/m, ''), ['t/verdict', 't/spin'])));
    const first = policy.evaluate('t/verdict', { user: 'alice' });
    expect(first).toEqual({ allow: true, reasons: ['user alice'] });
    expect(policy.reused).toBe(0);
    const again = policy.evaluate('t/verdict', { user: 'alice' });
    expect(again).toBe(first);
    expect(policy.reused).toBe(1);
    // Shared by every call that reuses it: no caller can change it for the next.
    expect(() => (first as { reasons: string[] }).reasons.push('x')).toThrow(TypeError);
    expect(policy.evaluate('t/verdict', { user: 'bob' })).toEqual({ allow: false, reasons: ['user bob'] });
    expect(policy.evaluate('t/verdict', { user: 'alice', other: 1 })).toEqual({ allow: true, reasons: ['user alice'] });
    expect(policy.reused).toBe(1);
    // An input past the remembered length is evaluated each time.
    const long = { user: 'x'.repeat(5000) };
    policy.evaluate('t/verdict', long);
    policy.evaluate('t/verdict', long);
    expect(policy.reused).toBe(1);
  });

  it('reuses an undefined result as undefined', async () => {
    const policy = await Policy.load(bundleOf(await buildWasm(`${module.replace(/^stamped.*$/m, '')}\nonly_alice if input.user == "alice"\n`, ['t/only_alice'])));
    // No value for bob: remembered as such, not taken for a missing entry.
    expect(policy.evaluate('t/only_alice', { user: 'bob' })).toBeUndefined();
    expect(policy.evaluate('t/only_alice', { user: 'bob' })).toBeUndefined();
    expect(policy.reused).toBe(1);
    expect(policy.evaluate('t/only_alice', { user: 'alice' })).toBe(true);
  });

  it('never reuses for a module that reads the clock, nor with reuse: false', async () => {
    const clocked = await Policy.load(bundleOf(wasm), { clock: moving() });
    const a = clocked.evaluate('t/stamped', { user: 'alice' }) as { at: bigint | number };
    const b = clocked.evaluate('t/stamped', { user: 'alice' }) as { at: bigint | number };
    expect(BigInt(b.at) - BigInt(a.at)).toBe(1n);
    // The module reads the clock: none of its entrypoints is reused, the pure one neither.
    clocked.evaluate('t/verdict', { user: 'alice' });
    clocked.evaluate('t/verdict', { user: 'alice' });
    expect(clocked.reused).toBe(0);
    const off = await Policy.load(bundleOf(await buildWasm(module.replace(/^stamped.*$/m, ''), ['t/verdict'])), { reuse: false });
    off.evaluate('t/verdict', { user: 'alice' });
    off.evaluate('t/verdict', { user: 'alice' });
    expect(off.reused).toBe(0);
  });

  it('never remembers an evaluation that was stopped', async () => {
    const policy = await Policy.load(bundleOf(await buildWasm(module.replace(/^stamped.*$/m, ''), ['t/verdict', 't/spin'])), { limits: { deadlineMs: 20, memoryMiB: 64 } });
    const input = { a: Array.from({ length: 400 }, (_, i) => i) };
    expect(() => policy.evaluate('t/spin', input)).toThrow(EvaluationLimitError);
    expect(() => policy.evaluate('t/spin', input)).toThrow(EvaluationLimitError);
    expect(policy.reused).toBe(0);
  });
});

describe('sharing the value of a result text', () => {
  it('gives every evaluation that prints the same result text one frozen value, whatever its input, for any module', async () => {
    // The clocked module is never reused by input, so each of these is a real evaluation.
    const clocked = await Policy.load(bundleOf(wasm), { clock: moving() });
    const a = clocked.evaluate('t/verdict', { user: 'alice', call: 1 });
    const b = clocked.evaluate('t/verdict', { user: 'alice', call: 2 });
    expect(clocked.reused).toBe(0);
    expect(a).toEqual({ allow: true, reasons: ['user alice'] });
    expect(b).toBe(a);
    expect(() => (a as { reasons: string[] }).reasons.push('x')).toThrow(TypeError);
    expect(clocked.evaluate('t/verdict', { user: 'alice', call: 3 })).toEqual({ allow: true, reasons: ['user alice'] });
    // Another text, another value; results that differ at each evaluation are each read afresh.
    expect(clocked.evaluate('t/verdict', { user: 'bob' })).toEqual({ allow: false, reasons: ['user bob'] });
    const s1 = clocked.evaluate('t/stamped', { user: 'alice' }) as { at: number };
    const s2 = clocked.evaluate('t/stamped', { user: 'alice' }) as { at: number };
    expect(s2).not.toBe(s1);
    expect(s2.at).not.toBe(s1.at);
  });

  it('answers right when more distinct result texts come than it remembers (each caller its own text)', async () => {
    const clocked = await Policy.load(bundleOf(wasm), { clock: moving() });
    const users = Array.from({ length: 200 }, (_, i) => `user-${i}`);
    const first = users.map((user) => clocked.evaluate('t/verdict', { user }));
    users.forEach((user, i) => {
      const v = clocked.evaluate('t/verdict', { user, again: true });
      expect(v).toEqual({ allow: false, reasons: [`user ${user}`] });
      // A cycle of 200 texts through a memory of 64, oldest out: each was forgotten before it came back.
      expect(v).not.toBe(first[i]);
      // Asked again at once, it is remembered.
      expect(clocked.evaluate('t/verdict', { user, again: 2 })).toBe(v);
    });
    expect(clocked.evaluate('t/verdict', { user: 'alice' })).toEqual({ allow: true, reasons: ['user alice'] });
  });

  it('reads a result text past the remembered length afresh each time', async () => {
    const clocked = await Policy.load(bundleOf(wasm), { clock: moving() });
    const long = { user: 'y'.repeat(5000) };
    const first = clocked.evaluate('t/verdict', { ...long, call: 1 });
    const second = clocked.evaluate('t/verdict', { ...long, call: 2 });
    expect(second).toEqual(first);
    expect(second).not.toBe(first);
    expect(Object.isFrozen(second)).toBe(false);
  });
});
