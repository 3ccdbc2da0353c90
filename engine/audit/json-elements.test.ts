import { describe, expect, it } from 'vitest';
import { makeEvents } from '../../test/support/decision-events.js';
import { arrayElements, countKeys } from './json-elements.js';

const bytes = (s: string) => Buffer.from(s, 'utf8');
const texts = (s: string) => {
  const b = bytes(s);
  return arrayElements(b)?.map((e) => b.subarray(e.start, e.end).toString('utf8'));
};

describe('arrayElements', () => {
  it('finds each element of an array as written, whitespace around it left out', () => {
    expect(texts('[]')).toEqual([]);
    expect(texts(' [ ] ')).toEqual([]);
    expect(texts('[1,-2.5e3, true ,null,"a,]b",{"k":[1,{"x":"}"}]}, [ ] ]')).toEqual(['1', '-2.5e3', 'true', 'null', '"a,]b"', '{"k":[1,{"x":"}"}]}', '[ ]']);
    expect(texts('\n[\n  {\n    "a": "q\\"uote\\\\",\n    "b": "é日本 🚫"\n  },\n  {"c":{}}\n]\n')).toEqual(['{\n    "a": "q\\"uote\\\\",\n    "b": "é日本 🚫"\n  }', '{"c":{}}']);
  });

  it('is undefined when the top level is not an array', () => {
    expect(arrayElements(bytes('{"a":[1]}'))).toBeUndefined();
    expect(arrayElements(bytes(' "["'))).toBeUndefined();
  });

  it('counts the keys each element spells out, so a repeated key shows as one more than the parsed value has', () => {
    const cases: Array<[string, number]> = [
      ['{}', 0],
      ['{"a":1}', 1],
      ['{"a":{"b":{"c":[{"d":1},{"d":2}]}},"e":"f:\\"g\\""}', 6],
      ['{"a":["k","v"],"b":{},"c":[{}, "x"]}', 3],
      ['{"a":1,"a":2}', 2],
      ['{"input":{"x":1,"y":{"z":1,"z":2}}}', 5],
      ['{"__proto__":{"admin":true}}', 2],
      ['["a",{"b":"c"}]', 1],
    ];
    const spans = arrayElements(bytes(`[${cases.map(([t]) => t).join(',')}]`))!;
    expect(spans.map((s) => s.keys)).toEqual(cases.map(([, n]) => n));
    const parsed = JSON.parse(`[${cases.map(([t]) => t).join(',')}]`) as unknown[];
    // Equal counts exactly where no object repeats a key.
    expect(parsed.map((v, i) => countKeys(v) === spans[i]!.keys)).toEqual([true, true, true, true, false, false, true, true]);
  });

  it('agrees with JSON.parse on real events, compact and pretty-printed', () => {
    const events = makeEvents(50, (i) => ({ path: `/orders/${i}/"quoted"\\back,slash]`, reasons: [`reason {${i}}`, 'ünïcödé 🚫'] }));
    for (const body of [JSON.stringify(events), JSON.stringify(events, null, 2), JSON.stringify(events, null, '\t')]) {
      const b = bytes(body);
      const spans = arrayElements(b)!;
      expect(spans).toHaveLength(events.length);
      spans.forEach((s, i) => {
        expect(JSON.parse(b.subarray(s.start, s.end).toString('utf8'))).toEqual(events[i]);
        expect(s.keys).toBe(countKeys(events[i]));
      });
    }
  });
});
