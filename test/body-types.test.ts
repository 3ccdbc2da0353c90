// A body the app reads as JSON is a body the policy reads: `warden proxy` in front of a workload whose
// Rego denies on a field of the body. Every media type the common frameworks decode as JSON (ASP.NET
// Core's text/json, Rails' text/x-json and application/jsonrequest, any +json) is read into
// input.request.body and decided; a body the sidecar does not read (text/plain, a form, no type at all,
// which a Go app decodes as JSON all the same) is denied through the library's requests.unread_body.
import { describe, expect, it } from 'vitest';
import { exchange } from './support/raw-http.js';
import { servedWorkload } from './support/rego-workload.js';
import { TILLS_FILES } from './support/tills-workload.js';

// --json-body at 4 KiB: the bound of the JSON bodies the sidecar reads (forms stream, unbounded by it).
const served = servedWorkload('tills', TILLS_FILES, ['--json-body', '4096']);

async function send(type: string | undefined, body: string | undefined, method = 'POST'): Promise<{ status: number; text: string }> {
  const res = await fetch(`${served.proxyUrl}/pay`, { method, headers: type === undefined ? {} : { 'content-type': type }, body });
  return { status: res.status, text: await res.text() };
}

describe('bodies of every type the app may read as JSON, through warden proxy', () => {
  // The last: the type before a ',', as Rails reads it.
  const JSON_TYPES = ['application/json', 'text/json', 'TEXT/JSON; charset=utf-8', 'text/x-json', 'application/x-json', 'application/jsonrequest', 'application/merge-patch+json', 'application/vnd.shop.payment.v2+json', 'application/json, text/plain'];

  it.each(JSON_TYPES)('reads a %s body into the decision: a large amount is denied, a small one forwarded byte for byte with its type', async (type) => {
    const before = served.upstream.seen.length;
    const large = await send(type, '{"amount": 500}');
    expect(large.status).toBe(403);
    expect(large.text).toContain('amount above 100');
    expect(served.upstream.seen.length).toBe(before);
    const small = await send(type, '{"amount": 5}');
    expect(small.status).toBe(201);
    const seen = served.upstream.seen[before]!;
    expect([seen.body.toString('utf8'), seen.headers['content-type']]).toEqual(['{"amount": 5}', type]);
  });

  it('refuses a malformed body of such a type as any JSON body (400): the app would guess what it means', async () => {
    expect((await send('text/json', '{"amount": 500,}')).status).toBe(400);
  });

  it.each([
    ['text/plain', '{"amount": 500}'],
    ['application/x-www-form-urlencoded', 'amount=500'],
    ['application/octet-stream', '{"amount": 500}'],
    ['application/jsonl', '{"amount": 500}'],
    [undefined, '{"amount": 500}'],
  ])('denies a %s body it does not read, through requests.unread_body: a Go app decodes it as JSON whatever its type', async (type, body) => {
    const before = served.upstream.seen.length;
    const r = await send(type, body);
    expect({ type, status: r.status }).toEqual({ type, status: 403 });
    expect(r.text).toContain('the body could not be read');
    expect(served.upstream.seen.length).toBe(before);
  });

  it('lets a call without a body through: a GET, an empty POST', async () => {
    expect((await send(undefined, undefined, 'GET')).status).toBe(200);
    expect((await send('text/plain', '')).status).toBe(201);
  });
});

// Rails (Rack::MethodOverride), Laravel and Symfony take a POST's `_method` field, in its form body or its
// query, for the method; express's method-override middleware takes it from the query. The policy decides
// on the request line's POST, so such a request is refused before any decision reads it.
describe('method overrides in a form or the query, through warden proxy', () => {
  const form = async (body: string, opts: { method?: string; type?: string; path?: string; chunked?: boolean } = {}) => {
    const stream = opts.chunked ? new ReadableStream({ start: (c) => (c.enqueue(new TextEncoder().encode(body)), c.close()) }) : body;
    const res = await fetch(`${served.proxyUrl}${opts.path ?? '/form'}`, { method: opts.method ?? 'POST', headers: { 'content-type': opts.type ?? 'application/x-www-form-urlencoded' }, body: stream, ...(opts.chunked ? { duplex: 'half' } : {}) } as RequestInit);
    return { status: res.status, text: await res.text() };
  };

  it.each([
    ['_method=DELETE'],
    ['name=x&_method=delete'],
    ['%5Fmethod=DELETE'],
    ['%5f%6Dethod=PUT'],
    ['_METHOD=DELETE'],
    ['name=x;_method=DELETE'],
  ])('refuses a POST form naming the method (%s) with 400, and the app never sees it', async (body) => {
    const before = served.upstream.seen.length;
    for (const opts of [{}, { chunked: true }, { type: 'Application/X-WWW-Form-Urlencoded; charset=UTF-8' }]) {
      const r = await form(body, opts);
      expect({ body, opts, status: r.status }).toEqual({ body, opts, status: 400 });
      expect(r.text).toContain('method override');
    }
    expect(served.upstream.seen.length).toBe(before);
  });

  // PHP (Laravel, Symfony) drops a name's leading spaces, cuts it at a NUL and turns ' ' and '.' into '_';
  // Rack 2 drops the brackets around a plain name: each of these is `_method` to one of them.
  it.each([['.method=DELETE'], ['+_method=DELETE'], ['%20_method=DELETE'], ['_method%00x=DELETE'], ['%2Emethod=PUT'], ['[_method]=DELETE'], ['_method]=DELETE'], ['name=x&]]_METHOD=DELETE']])(
    'refuses a POST form naming the method as PHP or Rack 2 reads a name (%s)',
    async (body) => {
      const before = served.upstream.seen.length;
      const r = await form(body);
      expect({ body, status: r.status }).toEqual({ body, status: 400 });
      expect(r.text).toContain('method override');
      expect(served.upstream.seen.length).toBe(before);
    },
  );

  it('refuses `_method` in the query as PHP reads a name: `.method`, ` _method`', async () => {
    const before = served.upstream.seen.length;
    for (const query of ['.method=DELETE', '+_method=DELETE', '%20_method=DELETE', '%2emethod=PUT']) {
      const res = await fetch(`${served.proxyUrl}/form?${query}`, { method: 'POST' });
      expect({ query, status: res.status }).toEqual({ query, status: 400 });
      expect(await res.text()).toContain('method override');
    }
    expect(served.upstream.seen.length).toBe(before);
  });

  // Rack and PHP end the media type at a ',', PHP at a space too.
  it.each([['a type list', 'application/x-www-form-urlencoded, text/plain'], ['a space after the type', 'application/x-www-form-urlencoded x'], ['multipart in a type list', 'multipart/form-data; boundary=b1, text/plain']])(
    'reads a POST body the app takes for a form for `_method`: %s',
    async (what, type) => {
      const before = served.upstream.seen.length;
      const body = what.startsWith('multipart') ? '--b1\r\nContent-Disposition: form-data; name="_method"\r\n\r\nDELETE\r\n--b1--\r\n' : '_method=DELETE';
      for (const chunked of [false, true]) {
        const res = await fetch(`${served.proxyUrl}/form`, { method: 'POST', headers: { 'content-type': type }, body: chunked ? new Blob([body]).stream() : Buffer.from(body), ...(chunked ? { duplex: 'half' } : {}) } as RequestInit);
        expect({ type, chunked, status: res.status }).toEqual({ type, chunked, status: 400 });
        expect(await res.text()).toContain('method override');
      }
      expect(served.upstream.seen.length).toBe(before);
    },
  );

  it('forwards a POST form that names no override, byte for byte, and a form under another method as it is', async () => {
    const before = served.upstream.seen.length;
    for (const body of ['name=x&method=DELETE', 'x_method=1&note=_method', 'name=%zz', 'payment_method=card&shipping.method=post&_method[]=x']) {
      const r = await form(body);
      expect({ body, status: r.status }).toEqual({ body, status: 201 });
      expect(served.upstream.seen.at(-1)!.body.toString('latin1')).toBe(body);
    }
    expect(served.upstream.seen.length).toBe(before + 4);
    // Only a POST is overridden by these frameworks; the policy decides a PUT as a PUT.
    expect((await form('_method=DELETE', { method: 'PUT' })).status).toBe(403);
  });

  it('reads a form past --json-body as it streams (it is not buffered), and refuses one it cannot read: encoded or in a charset that does not write ASCII as ASCII (415)', async () => {
    const before = served.upstream.seen.length;
    expect((await form(`name=${'x'.repeat(300_000)}&_method=DELETE`)).status).toBe(400);
    expect((await form(`name=${'x'.repeat(300_000)}`, { chunked: true })).status).toBe(201);
    expect(served.upstream.seen.length).toBe(before + 1);
    for (const type of ['application/x-www-form-urlencoded; charset=utf-16', 'application/x-www-form-urlencoded; charset="UTF-7"']) expect((await form('_method=DELETE', { type })).status).toBe(415);
    const encoded = await fetch(`${served.proxyUrl}/form`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-encoding': 'gzip' }, body: 'x=1' });
    expect(encoded.status).toBe(415);
    expect((await form('name=caf%E9', { type: 'application/x-www-form-urlencoded; charset=ISO-8859-1' })).status).toBe(201);
  });

  it('refuses a POST with no Content-Type naming the method (Rack reads it as a form), and a JSON POST whose top level holds `_method` (Laravel reads JSON as the form)', async () => {
    const before = served.upstream.seen.length;
    const raw = async (fields: string[], body: string) => (await exchange(Number(new URL(served.proxyUrl).port), `POST /form HTTP/1.1\r\nHost: tills\r\n${fields.map((f) => `${f}\r\n`).join('')}Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)).split('\r\n')[0];
    expect(await raw([], '_method=DELETE')).toBe('HTTP/1.1 400 Bad Request');
    expect(await raw(['Content-Type: '], 'a=1&_method=DELETE')).toBe('HTTP/1.1 400 Bad Request');
    for (const json of ['{"_method": "DELETE"}', '{"amount": 5, "\\u005fmethod": "DELETE"}', '{"_METHOD": "put"}']) {
      const r = await send('application/json', json);
      expect({ json, status: r.status }).toEqual({ json, status: 400 });
      expect(r.text).toContain('method override');
    }
    expect(served.upstream.seen.length).toBe(before);
    // Nested, or in another member's value, it is data.
    expect((await send('application/json', '{"amount": 5, "order": {"_method": "DELETE"}, "note": "_method"}')).status).toBe(201);
    expect(await raw([], 'name=x')).toBe('HTTP/1.1 201 Created');
  });

  // Laravel reads a body as JSON when its Content-Type merely contains `/json` or `+json`: such a body the
  // sidecar does not read whole is read as it streams for a top-level `_method` member.
  it.each([['text/plain; x=/json'], ['application/jsonl'], ['text/plain; profile=+json'], ['application/x-www-form-urlencoded; x=/json']])(
    'refuses a POST body of type %s whose top level names the method (400), on both paths, and the app never receives it whole',
    async (type) => {
      const before = served.upstream.seen.length;
      for (const body of ['{"_method": "DELETE"}', `{"note": "${'x'.repeat(300_000)}", "\\u005fMETHOD": "DELETE"}`]) {
        for (const opts of [{ type }, { type, chunked: true }]) {
          const r = await form(body, opts);
          expect({ type, opts, status: r.status }).toEqual({ type, opts, status: 400 });
          expect(r.text).toContain('method override');
        }
      }
      expect(served.upstream.seen.length).toBe(before);
    },
  );

  it('forwards such a body byte for byte when its top level names no override, and refuses one in a charset that does not write ASCII as ASCII (415)', async () => {
    const body = '{"amount": 5, "order": {"_method": "DELETE"}, "note": "_method", "_methods": 1}';
    for (const chunked of [false, true]) {
      const r = await form(body, { type: 'text/plain; x=/json', chunked });
      expect({ chunked, status: r.status }).toEqual({ chunked, status: 201 });
      expect(served.upstream.seen.at(-1)!.body.toString('utf8')).toBe(body);
    }
    const before = served.upstream.seen.length;
    for (const type of ['text/plain; x=/json; charset=utf-16', 'application/jsonl; charset="UTF-7"']) expect((await form('{"_method": "DELETE"}', { type })).status).toBe(415);
    expect(served.upstream.seen.length).toBe(before);
  });

  // PHP's server, Puma and WSGI read `Content_Type` as CONTENT_TYPE: a type Warden did not read.
  it('refuses a header spelling a field Warden reads with "_" (400): Content_Type, Transfer_Encoding, X_HTTP_Method_Override, Content_Encoding', async () => {
    const before = served.upstream.seen.length;
    const port = Number(new URL(served.proxyUrl).port);
    for (const fields of [['Content-Type: text/plain', 'Content_Type: application/json'], ['Content_Type: application/json'], ['Content-Type: text/plain', 'Transfer_Encoding: chunked'], ['X_HTTP_Method_Override: DELETE'], ['Host_Name: x', 'Connection_: x', 'Content_Encoding: gzip'], ['content_type: application/json']]) {
      const body = '{"_method": "DELETE"}';
      const answer = await exchange(port, `POST /form HTTP/1.1\r\nHost: tills\r\n${fields.map((f) => `${f}\r\n`).join('')}Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
      expect({ fields, status: answer.split('\r\n')[0] }).toEqual({ fields, status: 'HTTP/1.1 400 Bad Request' });
    }
    expect(served.upstream.seen.length).toBe(before);
  });

  it('takes query keys and header names that are members of a plain object (constructor, __proto__, toString) as keys like any other', async () => {
    const res = await fetch(`${served.proxyUrl}/form?constructor=x&__proto__=y&toString=1&hasOwnProperty=2`, { headers: { constructor: 'c', 'x-to-string': 'v' } });
    expect(res.status).toBe(200);
    expect(served.upstream.seen.at(-1)!.url).toBe('/form?constructor=x&__proto__=y&toString=1&hasOwnProperty=2');
  });

  it('refuses `_method` in the query of any request (400), however it is escaped', async () => {
    const before = served.upstream.seen.length;
    for (const [method, query] of [['POST', '_method=DELETE'], ['GET', 'x=1&%5Fmethod=DELETE'], ['POST', '_Method=PUT']]) {
      const res = await fetch(`${served.proxyUrl}/pay?${query}`, { method, ...(method === 'POST' ? { headers: { 'content-type': 'application/json' }, body: '{"amount": 5}' } : {}) });
      expect({ method, query, status: res.status }).toEqual({ method, query, status: 400 });
      expect(await res.text()).toContain('method override');
    }
    expect(served.upstream.seen.length).toBe(before);
  });
});

// With --json-body 0 the sidecar reads no JSON body whole: a JSON POST is read as it streams for `_method`.
describe('a JSON POST naming the method with --json-body 0, through warden proxy', () => {
  const off = servedWorkload('tills', TILLS_FILES, ['--json-body', '0']);

  it('refuses a top-level _method member (400) on both paths, and forwards a body without one byte for byte', async () => {
    const post = async (body: string, chunked = false) => {
      const res = await fetch(`${off.proxyUrl}/form`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chunked ? new Blob([body]).stream() : body, ...(chunked ? { duplex: 'half' } : {}) } as RequestInit);
      return { status: res.status, text: await res.text() };
    };
    for (const chunked of [false, true]) {
      for (const body of ['{"_method": "DELETE"}', '{"amount": 5, "\\u005fmethod": "PUT"}']) {
        const r = await post(body, chunked);
        expect({ body, chunked, status: r.status }).toEqual({ body, chunked, status: 400 });
        expect(r.text).toContain('method override');
      }
    }
    expect(off.upstream.seen.length).toBe(0);
    const ok = await post('{"amount": 5, "order": {"_method": "DELETE"}}');
    expect(ok.status).toBe(201);
    expect(off.upstream.seen.map((s) => s.body.toString('utf8'))).toEqual(['{"amount": 5, "order": {"_method": "DELETE"}}']);
    // Read as bytes, as PHP reads it: a charset that writes ASCII as ASCII is read, not refused.
    const latin = await fetch(`${off.proxyUrl}/form`, { method: 'POST', headers: { 'content-type': 'application/json; charset=ISO-8859-1' }, body: '{"amount": 5}' });
    expect(latin.status).toBe(201);
    const latinOverride = await fetch(`${off.proxyUrl}/form`, { method: 'POST', headers: { 'content-type': 'application/json; charset=windows-1252' }, body: '{"_method": "DELETE"}' });
    expect(latinOverride.status).toBe(400);
  });
});

// The same fields in a multipart form: the sidecar reads each part's header block as the body streams to
// the app (node's path; the fast path hands such a POST over), and stops the body before a `_method` part.
describe('method overrides in a multipart form, through warden proxy', () => {
  const multipart = async (fields: Array<[string, string | Blob]>, method = 'POST') => {
    const fd = new FormData();
    for (const [name, value] of fields) fd.append(name, value);
    const res = await fetch(`${served.proxyUrl}/form`, { method, body: fd });
    return { status: res.status, text: await res.text() };
  };

  it('refuses a POST whose form has a _method part (400), before or after a large file, and the app never receives the whole body', async () => {
    const before = served.upstream.seen.length;
    const file = new Blob(['z'.repeat(300 * 1024)]);
    for (const fields of [[['_method', 'DELETE']], [['title', 'x'], ['upload', file], ['_method', 'DELETE']], [['_METHOD', 'put']]] as Array<Array<[string, string | Blob]>>) {
      const r = await multipart(fields);
      expect({ fields: fields.map(([n]) => n), status: r.status }).toEqual({ fields: fields.map(([n]) => n), status: 400 });
      expect(r.text).toContain('method override');
    }
    // A header block PHP ends at LF CRLF, with no CRLF CRLF after it in the whole body: read at the body's
    // end, whose last chunk is held back until then, whole or chunked.
    for (const chunked of [false, true]) {
      const body = '--b1\r\nContent-Disposition: form-data; name="_method"\n\r\nDELETE\r\n--b1--';
      const res = await fetch(`${served.proxyUrl}/form`, { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=b1' }, body: chunked ? new Blob([body]).stream() : body, ...(chunked ? { duplex: 'half' } : {}) } as RequestInit);
      expect({ chunked, status: res.status }).toEqual({ chunked, status: 400 });
    }
    // Rack parses multipart/mixed and multipart/related POSTs as forms too.
    for (const type of ['multipart/mixed', 'Multipart/Related; type="text/plain"']) {
      const res = await fetch(`${served.proxyUrl}/form`, { method: 'POST', headers: { 'content-type': `${type}; boundary=b1` }, body: '--b1\r\nContent-Disposition: form-data; name="_method"\r\n\r\nDELETE\r\n--b1--\r\n' });
      expect({ type, status: res.status }).toEqual({ type, status: 400 });
    }
    expect(served.upstream.seen.length).toBe(before);
  });

  it('forwards a multipart POST without one byte for byte (a file may spell the name), and decides a PUT as a PUT', async () => {
    const before = served.upstream.seen.length;
    const r = await multipart([['title', 'x'], ['upload', new Blob(['name="_method"\r\n\r\nDELETE'])]]);
    expect(r.status).toBe(201);
    expect(served.upstream.seen.at(-1)!.body.toString('latin1')).toContain('name="_method"\r\n\r\nDELETE');
    // Decided as the PUT it is (this policy grants GET and POST only), not refused as an override.
    const put = await multipart([['_method', 'DELETE']], 'PUT');
    expect([put.status, put.text.includes('method override')]).toEqual([403, false]);
    expect(served.upstream.seen.length).toBe(before + 1);
  });

  // A part header naming its part over and over costs the reader work per name: refused at the ninth, on
  // both paths; a header naming its part and its file, as clients send, goes on.
  it('refuses a part header with more than 8 name parameters (400), whole or chunked, and the app never receives it', async () => {
    const before = served.upstream.seen.length;
    const part = (names: string) => `--b1\r\nContent-Disposition: form-data${names}\r\n\r\nx\r\n--b1--\r\n`;
    for (const chunked of [false, true]) {
      for (const names of ['; name="a"'.repeat(9), `; name="a"${"; name='\\".repeat(500)}`]) {
        const body = part(names);
        const res = await fetch(`${served.proxyUrl}/form`, { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=b1' }, body: chunked ? new Blob([body]).stream() : body, ...(chunked ? { duplex: 'half' } : {}) } as RequestInit);
        expect({ chunked, names: names.slice(0, 30), status: res.status }).toEqual({ chunked, names: names.slice(0, 30), status: 400 });
        expect(await res.text()).toContain('more than 8 name parameters');
      }
    }
    expect(served.upstream.seen.length).toBe(before);
    const named = await fetch(`${served.proxyUrl}/form`, { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=b1' }, body: part('; name="upload"; filename="a.txt"') });
    expect(named.status).toBe(201);
    expect(served.upstream.seen.length).toBe(before + 1);
  });

  it('refuses a multipart POST it cannot read: no boundary to read it by (400), content-encoded (415)', async () => {
    const res = await fetch(`${served.proxyUrl}/form`, { method: 'POST', headers: { 'content-type': 'multipart/form-data' }, body: '--x\r\n\r\n' });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain('exactly one boundary');
    const encoded = await fetch(`${served.proxyUrl}/form`, { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=x', 'content-encoding': 'gzip' }, body: '--x--\r\n' });
    expect(encoded.status).toBe(415);
    expect(await encoded.text()).toContain('must not be content-encoded');
  });
});
