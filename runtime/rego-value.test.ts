// The value text that crosses the WASM boundary: read and written without losing sets, digits or a
// number's spelling, and malformed text refused. (builtins.test.ts and the conformance suite check the
// same path end to end against `opa eval`; these pin the reader and writer alone.)
import { describe, expect, it } from 'vitest';
import { jsonText, readValueText, toOpaJson } from './opa-json.js';
import { parseValueText, RegoNumber, RegoObject, RegoSet, valueText, wellFormedJson, type RegoValue } from './rego-value.js';
import { compareValues } from './value-order.js';

describe('value text', () => {
  it('reads sets, the empty set and sets nested in objects and arrays as RegoSet', () => {
    const v = parseValueText('{"a": {1, 2}, "b": [set(), {"x"}]}') as { a: RegoSet; b: [RegoSet, RegoSet] };
    expect(v.a).toBeInstanceOf(RegoSet);
    expect(v.a.members).toEqual([1, 2]);
    expect(v.b[0].members).toEqual([]);
    expect(v.b[1].members).toEqual(['x']);
    expect(parseValueText('{{1}, set()}')).toEqual(new RegoSet([new RegoSet([1]), new RegoSet([])]));
  });

  it('keeps integers beyond 2^53 and numbers spelt as floats as their text', () => {
    expect(parseValueText('[9007199254740991, 9007199254740993, 1.0, 1e2, 2e308, .0, -0]')).toEqual([
      9007199254740991,
      new RegoNumber('9007199254740993'),
      new RegoNumber('1.0'),
      new RegoNumber('1e2'),
      new RegoNumber('2e308'),
      new RegoNumber('.0'),
      -0,
    ]);
  });

  it('reads escaped and raw strings, and an object with keys that are not strings as a RegoObject', () => {
    expect(parseValueText('"a\\"b\\\\c\\n\\u0001é😀"')).toBe('a"b\\c\n\u0001é😀');
    expect(parseValueText('{1: "a", [2]: "b", "c": 3}')).toEqual(new RegoObject([[1, 'a'], [[2], 'b'], ['c', 3]]));
    expect(toOpaJson(parseValueText('{1: "a", [2, "x"]: "b", {3}: 4}'))).toEqual({ '1': 'a', '[2,"x"]': 'b', '[3]': 4 });
    expect(valueText(parseValueText('{1: {2}, "c": 3}'))).toBe('{1:{2},"c":3}');
  });

  it('refuses malformed text with where it broke', () => {
    for (const bad of ['', '[1,', '{"a" 1}', '"open', '[1] x', '{1, 2', 'nul', '{"a": 1,}']) {
      expect(() => parseValueText(bad), bad).toThrow(/malformed value text from the policy module at offset \d+/);
    }
  });

  it('writes sets as set literals, bigint and RegoNumber digits exactly, and spellings OPA can read back', () => {
    expect(valueText(new RegoSet([]))).toBe('set()');
    expect(valueText({ s: new RegoSet(['a', 1]), n: 12345678901234567890n, f: new RegoNumber('.5'), g: new RegoNumber('5.'), h: new RegoNumber('-.5e3') } as unknown as RegoValue)).toBe(
      '{"s":{"a",1},"n":12345678901234567890,"f":0.5,"g":5.0,"h":-0.5e3}',
    );
    expect(valueText([Infinity, NaN, null])).toBe('[null,null,null]');
    expect(parseValueText(valueText(parseValueText('{"k": {1, {2}}, "n": 1e2}')))).toEqual(parseValueText('{"k": {1, {2}}, "n": 1e2}'));
  });

  it('turns lone surrogates into U+FFFD, leaving escaped backslashes and valid pairs alone', () => {
    expect(wellFormedJson(JSON.stringify({ s: 'a\ud800\\ud800😀' }))).toBe('{"s":"a\\ufffd\\\\ud800😀"}');
  });
});

describe("results as OPA's JSON output", () => {
  it('sorts sets in OPA order and keeps integers beyond 2^53 as bigint', () => {
    expect(readValueText('[{"result": {"z", "a", 3, null, ["b"], {"k": 1}, {2}}}]')).toEqual([{ result: [null, 3, 'a', 'z', ['b'], { k: 1 }, [2]] }]);
    expect(readValueText('{"n": 12345678901234567890, "m": -9007199254740993, "s": 9007199254740991}')).toEqual({ n: 12345678901234567890n, m: -9007199254740993n, s: 9007199254740991 });
  });

  it('reads plain JSON as JSON.parse does, and numbers it would round exactly', () => {
    const plain = '{"allow": true, "reasons": ["e3 12", "x"], "n": 1.5, "e": 1e2}';
    expect(readValueText(plain)).toEqual(JSON.parse(plain));
    expect(readValueText('[1e400, 1.0]')).toEqual([Infinity, 1]);
  });

  it('writes bigint exactly when serializing, and plain values as JSON.stringify does', () => {
    expect(jsonText({ a: [1, 'x'], n: 12345678901234567890n })).toBe('{"a":[1,"x"],"n":12345678901234567890}');
    expect(jsonText({ a: [1, 'x'] })).toBe(JSON.stringify({ a: [1, 'x'] }));
    expect(toOpaJson(new RegoSet([new RegoNumber('1e2'), new RegoNumber('99999999999999999999'), 3]))).toEqual([3, 100, 99999999999999999999n]);
  });
});

describe("OPA's value order", () => {
  it('ranks sets after objects, compares numbers exactly across bigint, RegoNumber and doubles', () => {
    expect(compareValues(new RegoSet([]), {})).toBeGreaterThan(0);
    expect(compareValues({ a: 1 }, [1])).toBeGreaterThan(0);
    expect(compareValues(9007199254740993n, 9007199254740992)).toBeGreaterThan(0);
    expect(compareValues(new RegoNumber('9007199254740993'), 9007199254740993n)).toBe(0);
    expect(compareValues(new RegoNumber('1e2'), 100)).toBe(0);
    expect(compareValues(new RegoSet([2, 1]), new RegoSet([1, 2]))).toBe(0);
    expect(compareValues(false, true)).toBeLessThan(0);
    expect(compareValues(new RegoObject([[2, 'a'], [1, 'b']]), new RegoObject([[1, 'b'], [2, 'a']]))).toBe(0);
    expect(compareValues({ b: 1 }, new RegoObject([[1, 'x']]))).toBeGreaterThan(0); // the key 1 sorts before "b"
  });
});
