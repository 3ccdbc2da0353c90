import { describe, expect, it } from 'vitest';
import { appQueryNames } from '../runtime/input-selection.js';
import { formReader, JsonMethodMember, MAX_JSON_KEY_BYTES, MAX_NAME_BYTES, MAX_PART_HEAD_BYTES, multipartBoundary, MultipartFields, UrlencodedFields, type FieldReader } from './form-fields.js';

const B = 'XyZ-boundary-42';
const part = (head: string, content: string) => `--${B}\r\n${head}\r\n\r\n${content}\r\n`;
const body = (...parts: string[]) => `${parts.join('')}--${B}--\r\n`;

// Deterministic pieces (a small LCG): every cut of a body must read as the body whole.
function* pieces(text: string, seed: number): Generator<Buffer> {
  const bytes = Buffer.from(text, 'latin1');
  let s = seed;
  for (let at = 0; at < bytes.length; ) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const n = 1 + (s % 37);
    yield bytes.subarray(at, at + n);
    at += n;
  }
}

const refusedIn = (text: string, seed?: number, fields: FieldReader = new MultipartFields(B)): string | undefined => {
  for (const chunk of seed === undefined ? [Buffer.from(text, 'latin1')] : pieces(text, seed)) {
    const why = fields.feed(chunk);
    if (why) return why;
  }
  return fields.end?.();
};

describe('MultipartFields', () => {
  const named = [
    'Content-Disposition: form-data; name="_method"',
    'content-disposition: form-data; name=_method',
    'Content-Disposition: form-data; name="_METHOD"',
    'Content-Disposition: form-data;name="%5Fmethod"',
    'Content-Disposition: form-data; name="\\_method"',
    "Content-Disposition: form-data; name*=UTF-8''%5Fmethod",
    'Content-Type: text/plain\r\nContent-Disposition: form-data; name="_method"',
  ];

  it.each(named)('refuses a part named for the method (%s), whole or cut anywhere, after a large file part', (head) => {
    const text = body(part('Content-Disposition: form-data; name="upload"; filename="a.bin"', 'z'.repeat(5000)), part(head, 'DELETE'));
    expect(refusedIn(text)).toMatch(/"_method" field of a form is a method override/);
    for (let seed = 1; seed <= 40; seed++) expect({ seed, refused: !!refusedIn(text, seed) }).toEqual({ seed, refused: true });
  });

  it("passes forms without such a part, however they are cut, whatever a file's content spells", () => {
    const texts = [
      body(part('Content-Disposition: form-data; name="title"', 'hello'), part('Content-Disposition: form-data; name="file"; filename="_method"', `name="_method"\r\n\r\n--${B.slice(0, 5)}`)),
      body(part('Content-Disposition: form-data; name="x_method"', '1'), part('Content-Disposition: form-data; name="method"', 'DELETE')),
    ];
    for (const text of texts) {
      expect(refusedIn(text)).toBeUndefined();
      for (let seed = 1; seed <= 40; seed++) expect({ seed, why: refusedIn(text, seed) }).toEqual({ seed, why: undefined });
    }
  });

  // Found in review: bodies that PHP (rfc1867.c) or Rack (multipart/parser.rb) read with a `_method` part.
  const quirks = [
    // PHP reads a name as it reads a url-encoded one: leading spaces dropped, '.' as '_', cut at a NUL.
    part('Content-Disposition: form-data; name=".method"', 'PUT'),
    part('Content-Disposition: form-data; name=" _method"', 'PUT'),
    part('Content-Disposition: form-data; name="_method\0x"', 'PUT'),
    // PHP takes single quotes, and an unclosed quote to the end of the line.
    part("Content-Disposition: form-data; name='_method'", 'PUT'),
    part('Content-Disposition: form-data; name="_method', 'PUT'),
    // PHP appends a line with no ':' to the header before it, as is.
    part('Content-Disposition: form-data; name="_met\r\nhod"', 'PUT'),
    // Rack names a part with no name in its Content-Disposition by its Content-ID.
    part('Content-ID: _method', 'PUT'),
    // PHP ends a header block at an empty line however its line ends: LF then CRLF.
    `--${B}\nContent-Disposition: form-data; name="_method"\n\r\nPUT\n`,
    // Rack 2 reads a header block to CRLF CRLF, past an LF LF.
    part('X-A: 1\n\nContent-Disposition: form-data; name="_method"', 'PUT'),
    // PHP reads on past a close delimiter (a line that is not `--boundary`), whether real or within content.
    `--${B}--\r\n${'e'.repeat(300)}\r\n${part('Content-Disposition: form-data; name="_method"', 'PUT')}`,
    `${part('Content-Disposition: form-data; name="a"', `x--${B}--`)}${part('Content-Disposition: form-data; name="_method"', 'PUT')}`,
  ];

  it.each(quirks)('refuses a part a parser reads as `_method` (%j), whole or cut anywhere, before its name line ends', (p) => {
    const text = body(part('Content-Disposition: form-data; name="a"', 'z'.repeat(3000)), p);
    expect(refusedIn(text)).toMatch(/"_method" field of a form is a method override/);
    for (let seed = 1; seed <= 40; seed++) expect({ seed, refused: !!refusedIn(text, seed) }).toEqual({ seed, refused: true });
    // The body up to the end of the line naming the field is refused already (its end never goes on).
    const line = text.indexOf('PUT');
    expect(refusedIn(text.slice(0, line))).toBeDefined();
  });

  it('passes LF-only forms and files with long content, however they are cut', () => {
    const lf = `--${B}\nContent-Disposition: form-data; name="f"; filename="a"\n\n${'z\n'.repeat(20_000)}\n--${B}\nContent-Disposition: form-data; name="t"\n\nx\n--${B}--\n`;
    expect(refusedIn(lf)).toBeUndefined();
    for (let seed = 1; seed <= 10; seed++) expect({ seed, why: refusedIn(lf, seed) }).toEqual({ seed, why: undefined });
  });

  it('refuses a header block that never ends within its bound', () => {
    expect(refusedIn(`--${B}\r\nX: ${'h'.repeat(MAX_PART_HEAD_BYTES)}`)).toMatch(/header block .* longer than/);
  });
});

describe('multipartBoundary', () => {
  it('reads one boundary, quoted or not, and refuses none, an empty one or two', () => {
    expect(multipartBoundary(`multipart/form-data; boundary=${B}`)).toEqual({ boundary: B });
    expect(multipartBoundary('multipart/form-data; charset=utf-8; BOUNDARY="a b"')).toEqual({ boundary: 'a b' });
    for (const type of ['multipart/form-data', 'multipart/form-data; boundary=', 'multipart/form-data; boundary=a; boundary=b']) expect(multipartBoundary(type)).toHaveProperty('refused');
    // Read otherwise by PHP (the first "boundary", then the first '=' after it) or Rack (the last "boundary=").
    for (const type of ['multipart/form-data; xboundary=AAA; boundary=BBB', 'multipart/form-data; boundary=AAA; xboundary=BBB', 'multipart/form-data; boundary; x=AAA; boundary=BBB', 'multipart/form-data; a="boundary"; x=AAA; boundary=BBB'])
      expect({ type, b: multipartBoundary(type) }).toEqual({ type, b: { refused: expect.any(String) } });
    expect(multipartBoundary('multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW')).toEqual({ boundary: '----WebKitFormBoundary7MA4YWxkTrZu0gW' });
  });
});

describe('UrlencodedFields', () => {
  const big = 'v'.repeat(5000);
  it.each(['_method=DELETE', `name=${big}&_method=delete`, '%5Fmethod=DELETE', '%5f%6Dethod=PUT', '_METHOD=DELETE', `name=x;_method=DELETE`, 'a=1&_method=',
    // As PHP (leading spaces dropped, cut at a NUL, ' ' and '.' read as '_') or Rack 2 (brackets around a plain name) reads a name.
    '.method=DELETE', '+_method=DELETE', '%20_method=DELETE', '_method%00x=DELETE', '%2Emethod=PUT', '[_method]=DELETE', '_method]=DELETE', 'name=x&]]_METHOD=DELETE', `${'+'.repeat(300)}_method=1`, `${'['.repeat(40)}_method${']'.repeat(40)}=1`, '_%6d%45thod=1'])(
    'refuses a form naming the method (%s), whole or cut anywhere',
    (text) => {
      expect(refusedIn(text, undefined, new UrlencodedFields())).toMatch(/"_method" field of a form is a method override/);
      for (let seed = 1; seed <= 40; seed++) expect({ seed, refused: !!refusedIn(text, seed, new UrlencodedFields()) }).toEqual({ seed, refused: true });
    },
  );

  it('passes forms that name no override, however they are cut, whatever their values spell', () => {
    for (const text of ['name=x&method=DELETE', 'x_method=1&note=_method', `a=${big}_method=1`, 'name=%zz', '_method', '_method&x=1', '__method=1&_methods=2', 'payment_method=card&shipping.method=post', '_method[]=x&_method[a]=y&_method]x=z', 'x.method=1', '_meth%zzod=1', `${'%5F'.repeat(8)}=1`]) {
      expect(refusedIn(text, undefined, new UrlencodedFields())).toBeUndefined();
      for (let seed = 1; seed <= 40; seed++) expect({ seed, why: refusedIn(text, seed, new UrlencodedFields()) }).toEqual({ seed, why: undefined });
    }
  });
});

describe('formReader', () => {
  it('reads a POST whose body is a form: url-encoded, untyped, any multipart subtype; nothing else', () => {
    for (const type of ['application/x-www-form-urlencoded', 'Application/X-WWW-Form-Urlencoded; charset=UTF-8', undefined, '', ' ']) expect(formReader('POST', type)).toBeInstanceOf(UrlencodedFields);
    for (const type of [`multipart/form-data; boundary=${B}`, `Multipart/Mixed; boundary="${B}"`, `multipart/related; type="text/xml"; boundary=${B}`]) expect(formReader('POST', type)).toBeInstanceOf(MultipartFields);
    expect(formReader('POST', 'multipart/form-data')).toHaveProperty('refused');
    for (const [method, type] of [['PUT', 'application/x-www-form-urlencoded'], ['PATCH', undefined], ['PUT', 'application/json'], ['POST', 'text/plain'], ['POST', 'application/x-ndjson'], ['POST', 'application/octet-stream']] as const) expect(formReader(method, type)).toBeUndefined();
  });

  it('reads a POST whose type Laravel reads as JSON (it contains /json or +json) for a _method member, beside the form when the type names both', () => {
    for (const type of ['application/json', 'text/plain; x=/json', 'application/jsonl', 'application/json-seq', 'text/plain; profile=+JSON', 'application/vnd.x+json']) expect(formReader('POST', type)).toBeInstanceOf(JsonMethodMember);
    const both = formReader('POST', 'application/x-www-form-urlencoded; x=/json') as FieldReader;
    expect(refusedIn('{"_method": "DELETE"}', undefined, both)).toContain('Laravel');
    expect(refusedIn('_method=DELETE', undefined, formReader('POST', 'application/x-www-form-urlencoded; x=/json') as FieldReader)).toContain('method override');
    expect(refusedIn('name=x', undefined, formReader('POST', 'application/x-www-form-urlencoded; x=/json') as FieldReader)).toBeUndefined();
    expect(formReader('POST', 'multipart/form-data; x=/json')).toHaveProperty('refused');
  });
});

describe('JsonMethodMember', () => {
  it.each([
    ['{"_method": "DELETE"}'],
    ['{"amount": 5, "_METHOD": "put"}'],
    ['{"amount": {"a": [1, {"b": "}"}]}, "_Method": "DELETE"}'],
    ['{"\\u005fmethod": "DELETE"}'],
    ['{"\\u005F\\u006D\\u0065thod": "DELETE"}'],
    ['{"note": "a \\"quoted\\" {value", "_method": "DELETE"}'],
    ['  {\n "a": "x",\r\n\t"_method"\n: "DELETE"}'],
    ['{"a": 1}\n{"_method": "DELETE"}'],
  ])('refuses a top-level _method member (%s), whole or cut anywhere', (text) => {
    expect(refusedIn(text, undefined, new JsonMethodMember())).toContain('method override');
    for (let seed = 1; seed <= 40; seed++) expect({ seed, why: refusedIn(text, seed, new JsonMethodMember()) }).toEqual({ seed, why: expect.stringContaining('method override') });
  });

  it('passes JSON whose top level names no _method, however it is cut: nested members, values, near names', () => {
    for (const text of [
      '{"amount": 5, "order": {"_method": "DELETE"}, "note": "_method"}',
      '[{"_method": "DELETE"}]',
      '["_method", "DELETE"]',
      '{"_methods": 1, "x_method": 2, "_metho": 3, "_meth\\u006fdx": 4}',
      '{"a": "\\"_method\\"", "b": ["_method"]}',
      '"_method"',
      '{"\\u005gmethod": 1}',
      '{"_m\\nethod": 1}',
      '',
    ]) {
      expect(refusedIn(text, undefined, new JsonMethodMember())).toBeUndefined();
      for (let seed = 1; seed <= 40; seed++) expect({ text, seed, why: refusedIn(text, seed, new JsonMethodMember()) }).toEqual({ text, seed, why: undefined });
    }
  });
});

describe('field names checked beyond _method (a NameCheck)', () => {
  // Refuse `tenant`, as request-body.ts refuses a field named as a query key the policy reads; record every name seen.
  const checker = () => {
    const seen: string[] = [];
    // As request-body.ts reads a name: itself and every reading of it an app makes (appQueryNames).
    const check = (name: string) => (seen.push(name), [name, ...appQueryNames(name)].includes('tenant') ? 'tenant in the body' : undefined);
    return { seen, check };
  };

  it('reads each url-encoded name, decoded, with or without a value, however the body is cut', () => {
    for (const [text, refused] of [['a=1&tenant=evil', true], ['a=1&%74enant=evil', true], ['a=1;tenant', true], ['a=1&tenant', true], ['a=1&tenants=2&xtenant=3', false], ['tenant_id=1', false]] as const) {
      const c = checker();
      expect({ text, why: refusedIn(text, undefined, new UrlencodedFields(c.check)) }).toEqual({ text, why: refused ? 'tenant in the body' : undefined });
      for (let seed = 1; seed <= 20; seed++) expect({ text, seed, why: refusedIn(text, seed, new UrlencodedFields(checker().check)) }).toEqual({ text, seed, why: refused ? 'tenant in the body' : undefined });
    }
    const c = checker();
    expect(refusedIn('a=1&b=x%3Dy&c', undefined, new UrlencodedFields(c.check))).toBeUndefined();
    expect(c.seen).toEqual(['a', 'b', 'c']);
  });

  it('passes a url-encoded field named as a query key when its value, decoded, is the query\'s one value, and refuses it otherwise, however the body is cut', () => {
    const given = (name: string) => (name === 'tenant' ? 'acme corp' : undefined);
    const cases: Array<[string, string | undefined]> = [
      ['a=1&tenant=acme+corp', undefined],
      ['tenant=acme%20corp&b=2', undefined],
      ['%74enant=%61cme+corp', undefined],
      ['tenant=acme+corp&tenant=acme%20corp', undefined],
      ['tenant=acme%2Bcorp', 'tenant in the body'],
      ['tenant=acme+cor', 'tenant in the body'],
      ['tenant=acme+corps', 'tenant in the body'],
      ['tenant=ACME+corp', 'tenant in the body'],
      ['tenant=acme+corp;x=1', 'tenant in the body'],
      ['tenant=acme+corp&tenant=evil', 'tenant in the body'],
      ['tenant=acme+corp%2', 'tenant in the body'],
      ['tenant', 'tenant in the body'],
      ['tenant=', 'tenant in the body'],
      ['tenant[]=acme+corp', 'tenant in the body'],
      ['order.tenant=acme+corp', 'tenant in the body'],
    ];
    for (const [text, why] of cases) {
      expect({ text, why: refusedIn(text, undefined, new UrlencodedFields(checker().check, true, given)) }).toEqual({ text, why });
      for (let seed = 1; seed <= 20; seed++) expect({ text, seed, why: refusedIn(text, seed, new UrlencodedFields(checker().check, true, given)) }).toEqual({ text, seed, why });
    }
    // A query that gives the key no value, or several, holds nothing: the field is refused.
    expect(refusedIn('tenant=acme', undefined, new UrlencodedFields(checker().check, true, () => undefined))).toBe('tenant in the body');
    // `_method` is refused before anything is compared.
    expect(refusedIn('_method=DELETE&tenant=acme+corp', undefined, new UrlencodedFields(checker().check, true, given))).toContain('method override');
  });

  it('reads each multipart part name, quoted, escaped or not, and refuses a name past the bound', () => {
    for (const head of ['Content-Disposition: form-data; name="tenant"', 'content-disposition: form-data; name=tenant', 'Content-Disposition: form-data; name="%74enant"']) {
      const text = body(part('Content-Disposition: form-data; name="upload"; filename="a.bin"', 'z'.repeat(3000)), part(head, 'evil'));
      expect(refusedIn(text, undefined, new MultipartFields(B, checker().check))).toBe('tenant in the body');
      for (let seed = 1; seed <= 20; seed++) expect({ head, seed, why: refusedIn(text, seed, new MultipartFields(B, checker().check)) }).toEqual({ head, seed, why: 'tenant in the body' });
    }
    expect(refusedIn(body(part('Content-Disposition: form-data; name="tenant_id"', 'x')), undefined, new MultipartFields(B, checker().check))).toBeUndefined();
    // `_method` is refused as before, with or without a NameCheck.
    expect(refusedIn(body(part('Content-Disposition: form-data; name="_method"', 'DELETE')), undefined, new MultipartFields(B, checker().check))).toContain('method override');
  });

  it('reads each top-level key of a JSON body, unescaped, however the body is cut; nested keys and values are data', () => {
    const text = '{"a": 1, "b\\"c": {"tenant": 2}, "\\u0074x": ["tenant"], "d": "tenant", "te\\\\nant": 0}';
    const whole = checker();
    expect(refusedIn(text, undefined, new JsonMethodMember(whole.check))).toBeUndefined();
    expect(whole.seen).toEqual(['a', 'b"c', 'tx', 'd', 'te\\nant']);
    for (const hostile of ['{"a": 1, "tenant": "evil"}', '{"\\u0074enant": "evil"}', '{"t\\u0065nant": {"x": 1}}', '{"tenant[]": "evil"}']) {
      for (let seed = 1; seed <= 20; seed++) expect({ hostile, seed, why: refusedIn(hostile, seed, new JsonMethodMember(checker().check)) }).toEqual({ hostile, seed, why: 'tenant in the body' });
    }
    // A refused key passes when its value is the string the query gives it: refused at the value otherwise.
    const given = (name: string) => (name === 'tenant' ? 'acme' : undefined);
    for (const [text, why] of [['{"tenant": "acme", "a": 1}', undefined], ['{"tenant" :\n "acme"}', undefined], ['{"tenant": "ac\\u006De"}', undefined], ['{"tenant": "acmE"}', 'tenant in the body'], ['{"tenant": 5}', 'tenant in the body'], ['{"tenant": {"x": "acme"}}', 'tenant in the body'], ['{"tenant": "acme", "tenant": null}', 'tenant in the body'], ['{"tenant[]": "acme"}', 'tenant in the body']] as const) {
      for (let seed = 1; seed <= 20; seed++) expect({ text, seed, why: refusedIn(text, seed, new JsonMethodMember(checker().check, true, given)) }).toEqual({ text, seed, why });
    }
    // A key longer than any query key a policy reads is not handed over: Laravel reads JSON keys as written.
    const long = checker();
    expect(refusedIn(`{"${'tenant'.repeat(MAX_JSON_KEY_BYTES)}": 1, "b": 2}`, 7, new JsonMethodMember(long.check))).toBeUndefined();
    expect(long.seen).toEqual(['b']);
  });

  it('reads a PUT, PATCH or DELETE form for its names alone, only where names are checked: _method overrides a POST only', () => {
    for (const method of ['PUT', 'PATCH', 'DELETE']) {
      const reader = formReader(method, 'application/x-www-form-urlencoded', checker().check) as FieldReader;
      expect(refusedIn('_method=DELETE&note=x', undefined, reader)).toBeUndefined();
      expect(refusedIn('note=x&tenant=evil', undefined, formReader(method, 'application/x-www-form-urlencoded', checker().check) as FieldReader)).toBe('tenant in the body');
      expect(refusedIn(body(part('Content-Disposition: form-data; name="tenant"', 'evil')), undefined, formReader(method, `multipart/form-data; boundary=${B}`, checker().check) as FieldReader)).toBe('tenant in the body');
      expect(refusedIn(body(part('Content-Disposition: form-data; name="_method"', 'x')), undefined, formReader(method, `multipart/form-data; boundary=${B}`, checker().check) as FieldReader)).toBeUndefined();
      // A type Laravel reads as JSON: its top-level keys, Laravel's input() reading them over the query.
      for (const type of ['application/json', 'text/plain; x=/json']) {
        expect(refusedIn('{"_method": "DELETE", "note": "x"}', undefined, formReader(method, type, checker().check) as FieldReader)).toBeUndefined();
        expect(refusedIn('{"note": "x", "tenant": "evil"}', undefined, formReader(method, type, checker().check) as FieldReader)).toBe('tenant in the body');
      }
      // Untyped, or with no names to check: nothing to read.
      expect(formReader(method, undefined, checker().check)).toBeUndefined();
      for (const type of ['application/x-www-form-urlencoded', 'application/json']) expect(formReader(method, type)).toBeUndefined();
    }
    // A GET's form is no form to Laravel (its input() reads the query), its JSON is.
    expect(formReader('GET', 'application/x-www-form-urlencoded', checker().check)).toBeUndefined();
    expect(refusedIn('{"tenant": "evil"}', undefined, formReader('GET', 'application/json', checker().check) as FieldReader)).toBe('tenant in the body');
    expect(formReader('GET', 'application/json')).toBeUndefined();
    // A JSON key is checked by the JSON check when one is given (apps take JSON keys as written), the form's otherwise.
    const asWritten = (name: string) => (name === 'tenant' ? 'tenant in the body' : undefined);
    expect(refusedIn('{"tenant[]": "evil"}', undefined, formReader('PUT', 'application/json', checker().check, { onName: asWritten }) as FieldReader)).toBeUndefined();
    expect(refusedIn('{"tenant": "evil"}', undefined, formReader('PUT', 'application/json', checker().check, { onName: asWritten }) as FieldReader)).toBe('tenant in the body');
  });

  it('reads a name past its bound by its start and its end, never refusing it for its length', () => {
    // A body with no `=` (curl -d sends one as a form) is one long name, and nothing the policy reads.
    expect(refusedIn('x'.repeat(3 * MAX_NAME_BYTES), undefined, new UrlencodedFields(checker().check))).toBeUndefined();
    // Padding on both sides of the name: its leading spaces and brackets are dropped as PHP and Rack drop them.
    const padded = (name: string) => `${'['.repeat(2 * MAX_NAME_BYTES)}${name}${']'.repeat(2 * MAX_NAME_BYTES)}`;
    expect(refusedIn(`${padded('_method')}=DELETE`, undefined, new UrlencodedFields())).toContain('method override');
    for (const text of [`${' '.repeat(2 * MAX_NAME_BYTES)}tenant=evil`, `${'['.repeat(2 * MAX_NAME_BYTES)}tenant]=evil`, `tenant[${'x'.repeat(2 * MAX_NAME_BYTES)}]=evil`, `${'a'.repeat(2 * MAX_NAME_BYTES)}.tenant=evil`, `${padded('tenant')}=evil`]) {
      expect({ text: text.slice(0, 20), why: refusedIn(text, undefined, new UrlencodedFields(checker().check)) }).toEqual({ text: text.slice(0, 20), why: 'tenant in the body' });
      for (let seed = 1; seed <= 5; seed++) expect(refusedIn(text, seed, new UrlencodedFields(checker().check))).toBe('tenant in the body');
    }
  });

  it('reads a part named right after the colon (PHP), and a part with no name by its filename or type (Rack)', () => {
    for (const head of ['Content-Disposition:name=tenant', 'Content-Disposition:name="tenant"', 'Content-Type: tenant', 'Content-Disposition: form-data; filename="tenant"']) {
      expect({ head, why: refusedIn(body(part(head, 'evil')), undefined, new MultipartFields(B, checker().check)) }).toEqual({ head, why: 'tenant in the body' });
    }
    expect(refusedIn(body(part('Content-Disposition:name=_method', 'DELETE')), undefined, new MultipartFields(B))).toContain('method override');
    // A named part is read by its name, not its filename or type.
    expect(refusedIn(body(part('Content-Disposition: form-data; name="upload"; filename="tenant"\r\nContent-Type: tenant', 'x')), undefined, new MultipartFields(B, checker().check))).toBeUndefined();
  });

  it('refuses a part header naming its part more than a client ever does, at the ninth name', () => {
    const head = `Content-Disposition: form-data${"; name='\\".repeat(2000)}`;
    expect(refusedIn(body(part(head.slice(0, 15_000), 'x')), undefined, new MultipartFields(B, checker().check))).toContain('more than 8 name parameters');
    expect(refusedIn(body(part('Content-Disposition: form-data; name="a"; filename="b"', 'x')), undefined, new MultipartFields(B, checker().check))).toBeUndefined();
  });
});
