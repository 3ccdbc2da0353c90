import { describe, expect, it } from 'vitest';
import { formatPointer, parsePointer } from '../formats/json-pointer.js';
import { maskInput, withoutPathQuotes } from './decision-mask.js';
import { checkJsonText, JsonText } from './json-text.js';

const M = '**masked**';

describe('maskInput', () => {
  it('masks secret headers and the listed pointers without touching the original input', () => {
    const input = { request: { headers: { authorization: 'Bearer x', 'x-a': '1' }, body: { payment: { cvc: '123' } } }, mcp: { arguments: { password: 'p' } } };
    const original = structuredClone(input);
    const { input: out, masked } = maskInput(input, ['/input/request/body/payment/cvc', '/input/mcp/arguments/payment/cvc', '/input/request/body/password', '/input/mcp/arguments/password']);
    expect(out).toEqual({ request: { headers: { authorization: M, 'x-a': '1' }, body: { payment: { cvc: M } } }, mcp: { arguments: { password: M } } });
    expect(masked).toEqual(['/input/request/headers/authorization', '/input/request/body/payment/cvc', '/input/mcp/arguments/password']);
    expect(input).toEqual(original);
  });

  it('masks a path segment in the segments and in the path, as written there (escapes and all), without touching the original', () => {
    const input = { request: { method: 'GET', path: '/v1/keys/s3cr%2Fet/versions/7', segments: ['v1', 'keys', 's3cr/et', 'versions', '7'], headers: {} } };
    const original = structuredClone(input);
    const { input: out, masked } = maskInput(input, ['/input/request/segments/2', '/input/request/segments/4']);
    expect(out.request).toEqual({ method: 'GET', path: `/v1/keys/${M}/versions/${M}`, segments: ['v1', 'keys', M, 'versions', M], headers: {} });
    expect(masked).toEqual(['/input/request/segments/2', '/input/request/segments/4', '/input/request/path']);
    expect(JSON.stringify(out)).not.toMatch(/s3cr/);
    expect(input).toEqual(original);
    // A segment the call does not have (a shorter path matched no operation) masks nothing, the path included.
    expect(maskInput({ request: { path: '/v1', segments: ['v1'], headers: {} } }, ['/input/request/segments/2'])).toEqual({ input: { request: { path: '/v1', segments: ['v1'], headers: {} } }, masked: [] });
  });

  it('masks a path held unsplit (a target refused before it parsed) whole when a segment is asked for, and a root path never', () => {
    const input = { request: { method: 'GET', path: '/keys/s3cret;v=1', segments: [], headers: {} } };
    const { input: out, masked } = maskInput(input, ['/input/request/segments/1']);
    expect(out.request).toEqual({ method: 'GET', path: M, segments: [], headers: {} });
    expect(masked).toEqual(['/input/request/path']);
    expect(input.request.path).toBe('/keys/s3cret;v=1');
    // Its error quotes no path to replace: a `/` alone is not taken for one.
    expect(withoutPathQuotes('refused (received **masked**) at /', input, out)).toBe('refused (received **masked**) at /');
    expect(maskInput({ request: { path: '/', segments: [], headers: {} } }, ['/input/request/segments/0']).masked).toEqual([]);
    expect(maskInput(input, ['/input/request/body/x']).masked).toEqual([]);
  });

  it('replaces the path quoted in a result (as held, or decoded) by the path as masked, copying only what changes', () => {
    const input = { request: { path: '/keys/a%2Fb-1', segments: ['keys', 'a/b-1'], headers: {} } };
    const { input: masked } = maskInput(input, ['/input/request/segments/1']);
    const result = { allow: false, reasons: ['no rule grants anonymous GET /keys/a%2Fb-1', 'decoded /keys/a/b-1, twice: /keys/a/b-1', 'elsewhere'], headers: { 'x-a': 'b' }, status: 403 };
    const out = withoutPathQuotes(result, input, masked);
    expect(out).toEqual({ allow: false, reasons: [`no rule grants anonymous GET /keys/${M}`, `decoded /keys/${M}, twice: /keys/${M}`, 'elsewhere'], headers: { 'x-a': 'b' }, status: 403 });
    expect(out.headers).toBe(result.headers);
    expect(result.reasons[0]).toContain('a%2Fb-1');
    expect(withoutPathQuotes('failed on /keys/a/b-1', input, masked)).toBe(`failed on /keys/${M}`);
    // Nothing masked in the path: the very same value.
    expect(withoutPathQuotes(result, input, maskInput(input, []).input)).toBe(result);
  });

  it('masks every secret header (authorization, cookie, proxy-authorization), with or without a spec list', () => {
    const input = { request: { headers: { cookie: 'sid=1', 'proxy-authorization': 'Basic x', accept: '*/*' } } };
    expect(maskInput(input, [])).toEqual({ input: { request: { headers: { cookie: M, 'proxy-authorization': M, accept: '*/*' } } }, masked: ['/input/request/headers/cookie', '/input/request/headers/proxy-authorization'] });
  });

  it('masks the conventional x-api-key header and an RFC 6750 access_token query parameter (every value), with or without a spec list', () => {
    const input = { request: { headers: { 'x-api-key': 'k', accept: '*/*' }, query: { access_token: ['t1', 't2'], page: ['2'] } } };
    expect(maskInput(input, [])).toEqual({
      input: { request: { headers: { 'x-api-key': M, accept: '*/*' }, query: { access_token: M, page: ['2'] } } },
      masked: ['/input/request/headers/x-api-key', '/input/request/query/access_token'],
    });
  });

  it('masks inside a body the sidecar kept as its text (JsonText), leaving the text itself unchanged', () => {
    const body = checkJsonText('{"payment":{"cvc":"123","amount":5},"items":[{"secret":"s"}]}', 64);
    if (!(body instanceof JsonText)) throw new Error(`checkJsonText refused the body: ${body}`);
    const input = { request: { headers: {}, body } };
    const { input: out, masked } = maskInput(input, ['/input/request/body/payment/cvc', '/input/request/body/items/0/secret']);
    expect(JSON.parse(JSON.stringify(out))).toEqual({ request: { headers: {}, body: { payment: { cvc: M, amount: 5 }, items: [{ secret: M }] } } });
    expect(masked).toEqual(['/input/request/body/payment/cvc', '/input/request/body/items/0/secret']);
    expect(JSON.parse(JSON.stringify(input.request.body))).toEqual({ payment: { cvc: '123', amount: 5 }, items: [{ secret: 's' }] });
  });

  it('returns the input itself, copying nothing, when nothing is there to mask', () => {
    const input = { request: { headers: { accept: '*/*' }, body: { a: 1 } } };
    const r = maskInput(input, ['/input/request/body/b', '/input/mcp/arguments/a']);
    expect(r.input).toBe(input);
    expect(r.masked).toEqual([]);
  });

  it('copies only the path to a masked value: siblings are shared, the original is unchanged', () => {
    const other = { big: [1, 2, 3] };
    const input = { request: { headers: {}, body: { secret: 's', other } }, source: { principal: 'p' } };
    const { input: out } = maskInput(input, ['/input/request/body/secret']);
    const body = (out.request as { body: { secret: string; other: unknown } }).body;
    expect(body.secret).toBe(M);
    expect(body.other).toBe(other);
    expect(out.source).toBe(input.source);
    expect(input.request.body.secret).toBe('s');
  });

  // Hostile and odd pointers: each row is a body, the pointers, what the body becomes and what is listed.
  const rows: Array<[string, unknown, string[], unknown, string[]]> = [
    ['~1 stands for "/" in a key', { 'a/b': 1, a: { b: 2 } }, ['/input/request/body/a~1b'], { 'a/b': M, a: { b: 2 } }, ['/input/request/body/a~1b']],
    ['~0 stands for "~", and ~01 is the key "~1"', { '~': 1, '~1': 2, '/': 3 }, ['/input/request/body/~0', '/input/request/body/~01'], { '~': M, '~1': M, '/': 3 }, ['/input/request/body/~0', '/input/request/body/~01']],
    ['an unescaped "/" splits the key', { 'a/b': 1 }, ['/input/request/body/a/b'], { 'a/b': 1 }, []],
    ['a bad escape is no pointer', { 'a~2b': 1, a: 2 }, ['/input/request/body/a~2b', '/input/request/body/a~'], { 'a~2b': 1, a: 2 }, []],
    ['array indices reach into lists', { cards: [{ pan: '4111' }, { pan: '5500' }] }, ['/input/request/body/cards/1/pan'], { cards: [{ pan: '4111' }, { pan: M }] }, ['/input/request/body/cards/1/pan']],
    ['an index out of range, "-", a leading zero or a sign masks nothing', { l: ['a', 'b'] }, ['/input/request/body/l/2', '/input/request/body/l/-', '/input/request/body/l/01', '/input/request/body/l/-1', '/input/request/body/l/+1', '/input/request/body/l/1.0'], { l: ['a', 'b'] }, []],
    ['a whole list or object can be masked', { l: [1, 2], o: { k: 'v' } }, ['/input/request/body/l', '/input/request/body/o'], { l: M, o: M }, ['/input/request/body/l', '/input/request/body/o']],
    ['a missing path masks nothing', { a: { b: 1 } }, ['/input/request/body/a/c', '/input/request/body/x/y/z'], { a: { b: 1 } }, []],
    ['a pointer into a string, number, null or boolean masks nothing', { s: 'text', n: 5, z: null, t: true }, ['/input/request/body/s/0', '/input/request/body/s/length', '/input/request/body/n/x', '/input/request/body/z/x', '/input/request/body/t/x'], { s: 'text', n: 5, z: null, t: true }, []],
    ['keys of the prototype are not the body\'s', { a: 1 }, ['/input/request/body/constructor', '/input/request/body/toString', '/input/request/body/__proto__', '/input/request/body/a/constructor'], { a: 1 }, []],
    ['an empty key is a key', { '': 'secret', x: 1 }, ['/input/request/body/'], { '': M, x: 1 }, ['/input/request/body/']],
    ['pointers outside /input, relative or malformed mask nothing', { a: 1 }, ['request/body/a', '/request/body/a', '/result/a', '/input', '', 'input/request/body/a'], { a: 1 }, []],
    ['the same pointer twice is masked and listed once', { a: 1 }, ['/input/request/body/a', '/input/request/body/a'], { a: M }, ['/input/request/body/a']],
  ];
  for (const [what, body, pointers, expected, listed] of rows) {
    it(`hostile pointers: ${what}`, () => {
      const input = { request: { headers: {}, body } };
      const before = JSON.stringify(input);
      const { input: out, masked } = maskInput(input, pointers);
      expect((out.request as { body: unknown }).body).toEqual(expected);
      expect(masked).toEqual(listed);
      expect(JSON.stringify(input)).toBe(before);
    });
  }

  it('masks an own "__proto__" key of a parsed body as a plain key', () => {
    const body = JSON.parse('{"__proto__": {"pin": "1234"}, "inner": {"__proto__": "secret"}}') as Record<string, unknown>;
    const { input: out, masked } = maskInput({ request: { headers: {}, body } }, ['/input/request/body/__proto__/pin', '/input/request/body/inner/__proto__']);
    expect(masked).toEqual(['/input/request/body/__proto__/pin', '/input/request/body/inner/__proto__']);
    expect(JSON.stringify(out)).toBe('{"request":{"headers":{},"body":{"__proto__":{"pin":"**masked**"},"inner":{"__proto__":"**masked**"}}}}');
    expect(JSON.stringify(body)).toBe('{"__proto__":{"pin":"1234"},"inner":{"__proto__":"secret"}}');
  });
});

describe('JSON pointers', () => {
  it('escape and unescape keys as RFC 6901 says, both ways', () => {
    const keys = ['input', 'a/b', '~', '~1', '', '0', 'ü/~0'];
    expect(formatPointer(keys)).toBe('/input/a~1b/~0/~01//0/ü~1~00');
    expect(parsePointer(formatPointer(keys))).toEqual(keys);
    expect(parsePointer('')).toEqual([]);
    expect(parsePointer('/')).toEqual(['']);
    expect(parsePointer('a/b')).toBeUndefined();
    expect(parsePointer('/a~2')).toBeUndefined();
    expect(parsePointer('/a~')).toBeUndefined();
  });
});
