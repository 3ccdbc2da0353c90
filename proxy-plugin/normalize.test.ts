import { describe, expect, it } from 'vitest';
import { normalizeRequest } from './normalize.js';

const ok = (target: string, headers: string[] = []) => {
  const n = normalizeRequest('GET', target, headers);
  if (!n.ok) throw new Error(n.refusal.reason);
  return n.request;
};
const refused = (target: string, headers: string[] = [], method = 'GET') => {
  const n = normalizeRequest(method, target, headers);
  return n.ok ? undefined : n.refusal;
};

describe('normalizeRequest', () => {
  it('splits the path into decoded segments and keeps the root empty', () => {
    expect(ok('/').segments).toEqual([]);
    expect(ok('/orders/42').segments).toEqual(['orders', '42']);
    expect(ok('/orders/').segments).toEqual(['orders', '']);
  });

  it('decodes unreserved characters once and keeps reserved escapes as upper-case escapes', () => {
    const r = ok('/products/%61bc%7e%20x%3fy');
    expect(r.path).toBe('/products/abc~%20x%3Fy');
    expect(r.segments).toEqual(['products', 'abc~ x?y']);
  });

  it('does not decode twice: %2525 stays an escaped percent sign', () => {
    const r = ok('/a/%2525');
    expect(r.path).toBe('/a/%2525');
    expect(r.segments).toEqual(['a', '%25']);
  });

  it('joins a header sent twice and names it as repeated (cookie lines aside): the policy-aware refusal reads the names', () => {
    const r = ok('/', ['X-Region', 'eu', 'x-region', 'us', 'Cookie', 'a=1', 'Cookie', 'b=2', 'X-Trace', '1', 'X-Trace', '2', 'X-Trace', '3', 'Accept', '*/*']);
    expect([r.headers['x-region'], r.headers.cookie, r.headers['x-trace'], r.repeated]).toEqual(['eu, us', 'a=1; b=2', '1, 2, 3', ['x-region', 'x-trace']]);
    expect(ok('/', ['Accept', '*/*']).repeated).toBeUndefined();
  });

  it('reads keys named as members of Object.prototype as keys like any other, in the query and the headers', () => {
    const r = ok('/?constructor=a&__proto__=b&toString=c', ['Constructor', 'x', '__proto__', 'y', 'hasOwnProperty', 'z']);
    expect(JSON.stringify(r.query)).toBe('{"constructor":["a"],"__proto__":["b"],"toString":["c"]}');
    expect(JSON.stringify(r.headers)).toBe('{"constructor":"x","__proto__":"y","hasownproperty":"z"}');
    expect([Object.keys(r.query), Object.hasOwn(r.headers, '__proto__')]).toEqual([['constructor', '__proto__', 'toString'], true]);
    // A key that was not sent reads as absent, whatever Object.prototype holds under that name.
    const none = ok('/');
    for (const k of ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf']) {
      expect([k, none.query[k], none.headers[k], k in none.query, k in none.headers]).toEqual([k, undefined, undefined, false, false]);
    }
    // A copy (the decision event's masked one) and a spread keep them as plain keys.
    expect(JSON.stringify({ ...r.headers })).toBe(JSON.stringify(r.headers));
  });

  it('parses the query with repeated keys and keeps the raw query for the upstream', () => {
    const r = ok('/orders?status=open&status=paid&q=a+b&empty');
    expect(r.query).toEqual({ status: ['open', 'paid'], q: ['a b'], empty: [''] });
    expect(r.rawQuery).toBe('status=open&status=paid&q=a+b&empty');
  });

  it('reads names that only contain "method" as they are: payment_method, _method[], x.method', () => {
    expect(Object.keys(ok('/a?payment_method=card&_method%5B%5D=x&x.method=1').query)).toEqual(['payment_method', '_method[]', 'x.method']);
  });

  it('reads an escaped ";" in the query as data, as every app does', () => {
    expect(ok('/a?role=user%3Brole=admin').query).toEqual({ role: ['user;role=admin'] });
  });

  it('lower-cases header names and joins repeated ordinary headers', () => {
    const r = ok('/', ['X-A', '1', 'x-a', '2', 'Cookie', 'a=1', 'cookie', 'b=2']);
    expect(r.headers).toEqual({ 'x-a': '1, 2', cookie: 'a=1; b=2' });
  });

  it.each([
    ['/a/../b', 'dot segment'],
    ['/a/%2e%2E/b', 'dot segment'],
    ['/a/.', 'dot segment'],
    ['/a%2fb', 'encoded "/"'],
    ['/a%5Cb', 'encoded "\\"'],
    ['/a\\b', 'backslash'],
    ['//a', 'empty path segment'],
    ['/a//b', 'empty path segment'],
    ['/a;jsessionid=1', 'matrix parameter'],
    ['/a%3bb', 'matrix parameter'],
    ['/a%00', 'NUL'],
    ['/a%c3%28', 'UTF-8'],
    ['/a%g1', 'malformed percent-escape'],
    ['/a?x=%zz', 'malformed escape'],
    ['/a?role=user;role=admin', '";" in the query string'],
    ['/a?q=1;', '";" in the query string'],
    ['/a?_method=DELETE', 'method override'],
    ['/a?x=1&%5Fmethod=DELETE', 'method override'],
    ['/a?_METHOD=delete', 'method override'],
    ['/a?.method=DELETE', 'method override'],
    ['/a?+_method=DELETE', 'method override'],
    ['/a?%5B_method%5D=DELETE', 'method override'],
    ['http://evil/a', 'origin-form'],
    ['*', 'origin-form'],
    ['/a#frag', 'fragment'],
  ])('refuses %s as ambiguous (%s)', (target, why) => {
    const r = refused(target);
    expect(r?.status).toBe(400);
    expect(r?.reason).toContain(why);
  });

  it('refuses a repeated Authorization, Host or Content-Length header', () => {
    expect(refused('/', ['Authorization', 'a', 'authorization', 'b'])?.reason).toBe('duplicate authorization header');
    expect(refused('/', ['Host', 'a', 'HOST', 'b'])?.reason).toBe('duplicate host header');
    expect(refused('/', ['Content-Length', '1', 'content-length', '1'])?.reason).toBe('duplicate content-length header');
  });

  it('refuses a method that is not an upper-case token', () => {
    expect(refused('/', [], 'get')?.status).toBe(400);
  });
});
