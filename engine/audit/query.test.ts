// Filter parsing shared by the CLI flags and the HTTP query parameters.
import { describe, expect, it } from 'vitest';
import { canonical } from './chain.js';
import { FilterError, filterToParams, parseDuration, parseFilter } from './query.js';

const NOW = Date.UTC(2026, 10, 25, 12, 0, 0);

function errorOf(fn: () => unknown): FilterError {
  try {
    fn();
  } catch (err) {
    if (err instanceof FilterError) return err;
    throw err;
  }
  throw new Error('expected a FilterError');
}

describe('parseFilter', () => {
  it('turns --since into a lower time bound relative to now', () => {
    expect(parseFilter({ since: '1h30m' }, NOW).from).toBe(NOW - 90 * 60_000);
    expect(parseDuration('7d', 'since')).toBe(7 * 86_400_000);
  });

  it('reads RFC 3339 times with an offset and refuses ones without', () => {
    expect(parseFilter({ from: '2026-11-25T11:00:00+01:00', to: '2026-11-25T12:00:00.500Z' }, NOW)).toMatchObject({ from: NOW - 2 * 3_600_000, to: NOW + 500 });
    expect(errorOf(() => parseFilter({ from: '2026-11-25T10:00:00' }, NOW))).toMatchObject({ param: 'from', message: expect.stringContaining('is not an RFC 3339 time') });
    expect(errorOf(() => parseFilter({ to: '2026-13-45T10:00:00Z' }, NOW)).param).toBe('to');
  });

  it('names the parameter of an unknown filter, a bad duration, a bad decision and an empty range', () => {
    expect(errorOf(() => parseFilter({ colour: 'red' }, NOW))).toMatchObject({ param: 'colour', message: expect.stringContaining('known filters: since, from, to') });
    expect(errorOf(() => parseFilter({ since: '1 hour' }, NOW)).param).toBe('since');
    expect(errorOf(() => parseFilter({ since: '0s' }, NOW)).param).toBe('since');
    expect(errorOf(() => parseFilter({ decision: 'allow,nope' }, NOW))).toMatchObject({ param: 'decision', message: 'decision: "nope" is not one of allow, deny, dry-run-deny' });
    expect(errorOf(() => parseFilter({ from: '2026-11-25T12:00:00Z', to: '2026-11-25T11:00:00Z' }, NOW)).param).toBe('to');
    expect(errorOf(() => parseFilter({ since: '1h', from: '2026-11-25T11:00:00Z' }, NOW)).param).toBe('since');
    expect(errorOf(() => parseFilter({ limit: '0' }, NOW)).param).toBe('limit');
    expect(errorOf(() => parseFilter({ limit: ['1', '2'] }, NOW))).toMatchObject({ param: 'limit', message: 'limit: given 2 times; give it once' });
    expect(errorOf(() => parseFilter({ 'path-prefix': 'orders' }, NOW)).param).toBe('path-prefix');
  });

  it('accepts repeated and comma-separated values, except that principals are never split', () => {
    const f = parseFilter({ workload: ['a,b', 'c'], principal: 'user,with,commas', method: 'get' }, NOW);
    expect(f).toMatchObject({ workload: ['a', 'b', 'c'], principal: ['user,with,commas'], method: ['GET'] });
  });

  it('round-trips through URL parameters (what --engine sends)', () => {
    const f = parseFilter({ since: '2h', workload: 'orders', decision: ['deny', 'dry-run-deny'], 'path-prefix': '/a b', tool: 'x', limit: '5', sort: 'seq' }, NOW);
    const back = parseFilter(Object.fromEntries([...new Set(filterToParams(f).keys())].map((k) => [k, filterToParams(f).getAll(k)])), NOW);
    expect(back).toEqual(f);
  });
});

describe('canonical', () => {
  it('sorts keys at every level so the same event always hashes the same', () => {
    expect(canonical({ b: 1, a: { d: [1, { z: true, y: null }], c: 'x' } })).toBe('{"a":{"c":"x","d":[1,{"y":null,"z":true}]},"b":1}');
  });
});
