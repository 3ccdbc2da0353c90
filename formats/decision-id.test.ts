import { describe, expect, it } from 'vitest';
import { newDecisionId } from './decision-id.js';

const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const timeOf = (id: string) => parseInt(id.slice(0, 8) + id.slice(9, 13), 16);

describe('newDecisionId', () => {
  it('is a version 7 UUID carrying the timestamp (RFC 9562 appendix A.6 layout)', () => {
    // The RFC's example timestamp 0x017F22E279B0 gives ids starting 017f22e2-79b0-7.
    const id = newDecisionId(0x017f22e279b0);
    expect(id).toMatch(V7);
    expect(id.startsWith('017f22e2-79b0-7')).toBe(true);
    expect(timeOf(newDecisionId(Date.UTC(2026, 10, 26)))).toBe(Date.UTC(2026, 10, 26));
    expect(timeOf(newDecisionId(0))).toBe(0);
    expect(timeOf(newDecisionId(0xffff_ffff_ffff))).toBe(0xffff_ffff_ffff);
  });

  it('defaults to now', () => {
    const before = Date.now();
    const t = timeOf(newDecisionId());
    expect(t).toBeGreaterThanOrEqual(before);
    expect(t).toBeLessThanOrEqual(Date.now());
  });

  it('is unique across many ids in one millisecond, past the random pool refills', () => {
    const ids = Array.from({ length: 20_000 }, () => newDecisionId(1_700_000_000_000));
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id).toMatch(V7);
  });

  it('sorts by time: a later millisecond always sorts after an earlier one', () => {
    const ids = Array.from({ length: 2_000 }, (_, i) => newDecisionId(1_700_000_000_000 + i * 997));
    expect([...ids].sort()).toEqual(ids);
  });

  it('refuses a timestamp that does not fit 48 bits', () => {
    for (const bad of [-1, 1.5, 2 ** 48, Number.NaN]) expect(() => newDecisionId(bad)).toThrow(/48-bit millisecond timestamp/);
  });
});
