// A real `warden proxy` refusing a key of the caller's JSON that differs only by case from one the policy
// reads or names (runtime/input-selection.ts, CaseVariantInput), where the body tests
// (proxy-body-selection.test.ts) do not reach: the query string, read by name, and the parts of a body
// kept whole in each form the selection cannot narrow (a variable, a pattern, an array's elements), and
// a request bound whole. A case-insensitive app (ASP.NET's binding, Go's encoding/json) would read the
// variant the policy never saw: each is refused with 400 and never reaches the upstream.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { openBundle } from '../runtime/bundle.js';
import { exchange, statuses } from './support/raw-http.js';
import { servedWorkload, workloadYaml, type ServedWorkload } from './support/rego-workload.js';

// Reads two query parameters by name, and three parts of the body each kept whole in its own form.
const DESKS = `package warden.workload

import rego.v1

allow if input.request.method in {"GET", "POST", "PUT"}

# The query, read by name: every tenant and desk the caller names must be its own.
deny contains "another tenant" if {
	some t in input.request.query.tenant
	t != "acme"
}

deny contains "another desk" if {
	some d in input.request.query.desk
	d != "front"
}

# A header, read by name.
deny contains "another region" if input.request.headers["x-region"] != "eu"

# A part of the body bound to a variable.
deny contains "too risky" if {
	o := input.request.body.order
	o.risk > 5
}

# A part of the body matched by an object pattern.
deny contains "too costly" if {
	{"cost": c} := input.request.body.quote
	c > 100
}

# An array's elements.
deny contains "a recalled line" if {
	some line in input.request.body.lines
	line.sku == "recalled"
}
`;

// The whole request bound to a variable: the selection keeps all of it, the query and the body in it.
const AUDITED = `package warden.workload

import rego.v1

allow if input.request.method in {"GET", "POST"}

deny contains "another tenant" if {
	r := input.request
	some t in r.query.tenant
	t != "acme"
}
`;

// Reads the tenant in the query of a GET and in the body of a POST: a body's tenant is one it decides on.
const LEDGERS = `package warden.workload

import rego.v1

allow if input.request.method in {"GET", "POST"}

deny contains "another tenant" if {
	some t in input.request.query.tenant
	t != "acme"
}

deny contains "another tenant in the body" if {
	input.request.method == "POST"
	input.request.body.tenant != "acme"
}
`;

const desks = servedWorkload('desks', { 'workload.yaml': workloadYaml('desks'), 'policy.rego': DESKS }, []);
const ledgers = servedWorkload('ledgers', { 'workload.yaml': workloadYaml('ledgers'), 'policy.rego': LEDGERS }, []);
const audited = servedWorkload('audited', { 'workload.yaml': workloadYaml('audited'), 'policy.rego': AUDITED }, []);

const port = (served: ServedWorkload) => Number(new URL(served.proxyUrl).port);

// One call on its own connection, every byte of its target as given (a Buffer for raw UTF-8).
async function call(served: ServedWorkload, target: string | Buffer, body?: string): Promise<{ status: number; text: string }> {
  const line = `${body === undefined ? 'GET' : 'POST'} ${typeof target === 'string' ? target : target.toString('latin1')} HTTP/1.1`;
  const framing = body === undefined ? '' : `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n`;
  const request = Buffer.from(`${line}\r\nHost: localhost\r\nConnection: close\r\n${framing}\r\n`, 'latin1');
  const text = await exchange(port(served), request, body ?? '');
  return { status: statuses(text)[0]!, text };
}

const KELVIN = '\u212a';
const LONG_S = '\u017f';

// `refused`: the key named in the refusal and the key it differs from; a status otherwise.
type Outcome = number | [variant: string, read: string];

// Check one call: the status the caller got, the refusal's words, and what reached the upstream.
async function expectOutcome(served: ServedWorkload, target: string | Buffer, body: string | undefined, outcome: Outcome): Promise<void> {
  const before = served.upstream.seen.length;
  const got = await call(served, target, body);
  if (typeof outcome === 'number') {
    expect(got.status).toBe(outcome);
    if (outcome >= 400) expect(served.upstream.seen.length).toBe(before);
    else {
      // Forwarded as sent: the target byte for byte (node reads it as latin1), the body exactly.
      expect(served.upstream.seen.length).toBe(before + 1);
      expect(served.upstream.seen[before]!.url).toBe(typeof target === 'string' ? target : target.toString('latin1'));
      if (body !== undefined) expect(served.upstream.seen[before]!.body.toString('utf8')).toBe(body);
    }
    return;
  }
  const [variant, read] = outcome;
  expect({ status: got.status, refused: got.text.includes('request refused') }).toEqual({ status: 400, refused: true });
  // The body is JSON: the key's quotes come escaped, and a non-ASCII key as UTF-8 read here as latin1.
  const words = Buffer.from(JSON.stringify(`the key ${JSON.stringify(variant)} differs only by case from ${JSON.stringify(read)}`).slice(1, -1), 'utf8').toString('latin1');
  expect(got.text).toContain(words);
  expect(served.upstream.seen.length).toBe(before);
}

describe('the query string, read by name, through warden proxy', () => {
  it('the bundle reads the query parameters by name and the body parts whole', async () => {
    const { manifest } = await openBundle(readFileSync(desks.bundle), 'unsigned-ok');
    expect(manifest.metadata?.inputPaths).toEqual(
      expect.arrayContaining([['request', 'query', 'tenant'], ['request', 'query', 'desk'], ['request', 'body', 'order'], ['request', 'body', 'quote'], ['request', 'body', 'lines']]),
    );
    expect(manifest.metadata?.inputPaths).not.toContainEqual(['request', 'query']);
    expect(manifest.metadata?.inputPaths).not.toContainEqual(['request', 'body']);
    expect(manifest.metadata?.inputKeys).toEqual(expect.arrayContaining(['risk', 'cost', 'sku']));
  });

  const cases: Array<[name: string, target: string, outcome: Outcome]> = [
    ['its own tenant', '/orders?tenant=acme', 200],
    ['another tenant', '/orders?tenant=evil', 403],
    ['another tenant, repeated after its own: every value is read', '/orders?tenant=acme&tenant=evil', 403],
    ['a key percent-encoded to the exact one is that key', '/orders?ten%61nt=evil', 403],
    ['the key capitalized', '/orders?Tenant=evil', ['Tenant', 'tenant']],
    ['the key upper-cased', '/orders?TENANT=evil', ['TENANT', 'tenant']],
    ['the variant beside the exact key', '/orders?tenant=acme&Tenant=evil', ['Tenant', 'tenant']],
    ['the variant before the exact key', '/orders?TeNaNt=evil&tenant=acme', ['TeNaNt', 'tenant']],
    ['the variant percent-encoded: the refusal sees the decoded key', '/orders?%54enant=evil', ['Tenant', 'tenant']],
    ['the variant percent-encoded in lower-case hex', '/orders?tenant=acme&%74%45nant=evil', ['tEnant', 'tenant']],
    ['the variant with no value', '/orders?tenant=acme&TENANT', ['TENANT', 'tenant']],
    ['its own desk', '/orders?desk=front', 200],
    ['another desk', '/orders?desk=back', 403],
    ['a long s for the s (percent-encoded UTF-8)', '/orders?de%C5%BFk=back', [`de${LONG_S}k`, 'desk']],
    ['the Kelvin sign for the k', '/orders?des%E2%84%AA=back', [`des${KELVIN}`, 'desk']],
    ['a long s beside the exact key', '/orders?desk=front&de%C5%BFk=back', [`de${LONG_S}k`, 'desk']],
    ['the Kelvin sign beside the exact key', '/orders?des%E2%84%AA=back&desk=front', [`des${KELVIN}`, 'desk']],
    ['keys no rule reads pass in any case', '/orders?tenant=acme&Page=2&page=3&DESKS=1', 200],
    // PHP and Rack read `tenant[]` and `tenant[x]` as `tenant` (an array), Rack 2 `[tenant]` too, PHP
    // ` tenant`: the rule on `tenant` would see no tenant, the app `evil`.
    ['tenant[] percent-encoded', '/orders?tenant%5B%5D=evil', 400],
    ['tenant[x] with raw brackets', '/orders?tenant[x]=evil', 400],
    ['tenant[] beside the exact key', '/orders?tenant=acme&tenant%5B%5D=evil', 400],
    ['[tenant], as Rack 2 reads it', '/orders?%5Btenant%5D=evil', 400],
    ['a leading space, which PHP drops', '/orders?+desk=back', 400],
    ['bracketed names no rule reads pass', '/orders?tenant=acme&ids%5B%5D=1&ids%5B%5D=2', 200],
    // Spring's default-value prefix binds `tenant` when it is absent; Spring and ASP.NET Core bind a model's
    // `tenant` from `order.tenant` or `order[tenant]`.
    ["Spring's default-value prefix", '/orders?%21tenant=evil', 400],
    ['a model prefix (ASP.NET Core, Spring)', '/orders?tenant=acme&order.tenant=evil', 400],
    ['a model prefix in brackets', '/orders?tenant=acme&order%5Btenant%5D=evil', 400],
    ['the sharp s is not ss', '/orders?de%C3%9F=back&desk=front', 200],
  ];
  for (const [name, target, outcome] of cases) {
    it(`${name}: ${typeof outcome === 'number' ? outcome : 'refused (400)'}`, () => expectOutcome(desks, target, undefined, outcome));
  }

  // Laravel's input(), PHP's $_REQUEST and ASP.NET Core's binding read a POST's form fields
  // over the query's: `?tenant=acme` with a form field `tenant=evil` is `evil` to them.
  it('refuses a POST form whose field is a query key the policy reads, in any reading of its name (400), and the app never receives it whole', async () => {
    const form = async (type: string, body: string, target = '/orders?tenant=acme') => {
      const res = await fetch(`${desks.proxyUrl}${target}`, { method: 'POST', headers: { 'content-type': type }, body });
      return { status: res.status, text: await res.text() };
    };
    const before = desks.upstream.seen.length;
    const hostile: Array<[string, string, string?]> = [
      ['application/x-www-form-urlencoded', 'note=x&tenant=evil'],
      ['application/x-www-form-urlencoded', 'tenant%5B%5D=evil'],
      ['application/x-www-form-urlencoded', 'Desk=back'],
      ['application/x-www-form-urlencoded', 'tenant=evil', '/orders'],
      ['multipart/form-data; boundary=b1', '--b1\r\nContent-Disposition: form-data; name="tenant"\r\n\r\nevil\r\n--b1--\r\n'],
    ];
    for (const [type, body, target] of hostile) {
      const r = await form(type, body, target);
      expect({ type, body, status: r.status }).toEqual({ type, body, status: 400 });
      expect(r.text).toContain('the query key');
    }
    expect(desks.upstream.seen.length).toBe(before);
    // A PUT's form too (Symfony and Rack parse it), on both paths; its `_method` is no override.
    for (const chunked of [false, true]) {
      const res = await fetch(`${desks.proxyUrl}/orders?tenant=acme`, { method: 'PUT', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: chunked ? new Blob(['tenant=evil']).stream() : 'tenant=evil', ...(chunked ? { duplex: 'half' } : {}) } as RequestInit);
      expect({ chunked, status: res.status }).toEqual({ chunked, status: 400 });
    }
    expect(desks.upstream.seen.length).toBe(before);
    const put = await fetch(`${desks.proxyUrl}/orders?tenant=acme`, { method: 'PUT', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: '_method=PATCH&note=x' });
    expect(put.status).toBe(201);
    expect(desks.upstream.seen.at(-1)!.body.toString('latin1')).toBe('_method=PATCH&note=x');
    // Fields named as nothing the policy reads of the query pass, byte for byte.
    const ok = await form('application/x-www-form-urlencoded', 'note=x&tenant_id=3&deskx=1');
    expect(ok.status).toBe(201);
    expect(desks.upstream.seen.at(-1)!.body.toString('latin1')).toBe('note=x&tenant_id=3&deskx=1');
  });

  // Laravel's input() reads a JSON body's top-level members over the query, whatever the method.
  it('refuses a JSON body whose top-level member is a query key the policy reads (400), unless it is the string the query gives it', async () => {
    // fetch sends no GET with a body: written by hand, whole or chunked, on a connection of its own.
    const json = async (body: string, target = '/orders?tenant=acme', method = 'POST', type = 'application/json', chunked = false) => {
      const framing = chunked ? `Transfer-Encoding: chunked\r\n\r\n${Buffer.byteLength(body).toString(16)}\r\n${body}\r\n0\r\n\r\n` : `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
      const text = await exchange(port(desks), `${method} ${target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: ${type}\r\n${framing}`);
      return { status: statuses(text)[0]!, text };
    };
    const before = desks.upstream.seen.length;
    const hostile: Array<[string, string?, string?]> = [
      ['{"note": "x", "tenant": "evil"}'],
      ['{"tenant": "evil"}', '/orders'],
      ['{"\\u0074enant": "evil"}'],
      ['{"tenant": "acme", "tenant": "evil"}'],
      ['{"tenant": ["acme"]}'],
      ['{"tenant": "acme"}', '/orders?tenant=acme&tenant=beta'],
      ['{"Desk": "back"}', '/orders?desk=front'],
      ['{"tenant": "evil"}', undefined, 'PUT'],
      // Laravel reads a GET's JSON body too.
      ['{"tenant": "evil"}', undefined, 'GET'],
    ];
    for (const [body, target, method] of hostile) {
      const r = await json(body, target, method);
      expect({ body, target, method, status: r.status }).toEqual({ body, target, method, status: 400 });
      expect(r.text).toContain('the query key');
    }
    // A type only Laravel reads as JSON is not read whole: its top-level keys are read as it streams, on
    // both paths, by the same rule.
    const streamed = [['POST', false], ['POST', true], ['PUT', false], ['PUT', true], ['GET', false], ['GET', true]] as const;
    for (const [method, chunked] of streamed) {
      for (const body of ['{"note": "x", "tenant": "evil"}', '{"\\u0074enant": "evil"}', '{"tenant": ["acme"]}', '{"tenant": "acme", "tenant": "acm"}']) {
        const r = await json(body, '/orders?tenant=acme', method, 'text/plain; profile=/json', chunked);
        expect({ method, chunked, body, status: r.status }).toEqual({ method, chunked, body, status: 400 });
        expect(r.text).toContain('the query key');
      }
    }
    expect(desks.upstream.seen.length).toBe(before);
    for (const [method, chunked] of streamed) {
      const body = '{"tenant": "acme", "note": "x"}';
      const r = await json(body, '/orders?tenant=acme', method, 'text/plain; profile=/json', chunked);
      expect({ method, chunked, status: r.status }).toEqual({ method, chunked, status: method === 'GET' ? 200 : 201 });
      expect(desks.upstream.seen.at(-1)!.body.toString('utf8')).toBe(body);
    }
    // Read whole: the member the query gives as its one value, and members the query does not name at the top level, pass byte for byte.
    // Laravel takes a JSON key as written: `order[tenant]` is no tenant there, as it is in a form.
    for (const body of ['{"tenant": "acme", "note": "x"}', '{"order": {"tenant": "evil", "risk": 1}, "tenant_id": 3}', '{"order[tenant]": "evil", "user.tenant": 1, "tenant[]": 2}']) {
      const r = await json(body);
      expect({ body, status: r.status }).toEqual({ body, status: 201 });
      expect(desks.upstream.seen.at(-1)!.body.toString('utf8')).toBe(body);
    }
  });

  it('decides a JSON member the policy reads in the body too, instead of refusing it: the policy sees what the app reads', async () => {
    const post = async (target: string, body: string) => {
      const res = await fetch(`${ledgers.proxyUrl}${target}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      return { status: res.status, text: await res.text() };
    };
    expect((await post('/ledgers', '{"tenant": "acme"}')).status).toBe(201);
    const evil = await post('/ledgers?tenant=acme', '{"tenant": "evil"}');
    expect([evil.status, evil.text]).toEqual([403, expect.stringContaining('another tenant in the body')]);
  });

  it('says why a bracketed key is refused: what PHP or Rack reads it as', async () => {
    const got = await call(desks, '/orders?tenant%5B%5D=evil');
    expect(got.status).toBe(400);
    expect(got.text).toContain('the query key \\"tenant[]\\" is \\"tenant\\" to PHP or Rack apps');
  });

  // Read as latin1 (as node hands a target over), `deſk` in raw UTF-8 would be `deÅ¿k` to the policy and
  // `deſk` to a UTF-8 app: node's parser refuses raw non-ASCII in the target before any of it is read.
  it('a long s in raw UTF-8: refused (400) before the policy', () => expectOutcome(desks, Buffer.from(`/orders?de${LONG_S}k=back&desk=front`, 'utf8'), undefined, 400));
});

// PHP, Rack servers and WSGI read a header through its CGI name (HTTP_X_REGION), which `X_Region` shares
// with `X-Region`: the policy would decide on no region, the app read `us`.
describe('a header spelled with underscores, through warden proxy', () => {
  const withHeaders = async (fields: string[]) => {
    const before = desks.upstream.seen.length;
    const text = await exchange(port(desks), `GET /orders HTTP/1.1\r\nHost: localhost\r\n${fields.map((f) => `${f}\r\n`).join('')}Connection: close\r\n\r\n`);
    return { status: statuses(text)[0]!, text, reached: desks.upstream.seen.length - before };
  };

  it('is refused (400) where its CGI name is one the policy reads, alone or beside the header itself, and never reaches the app', async () => {
    for (const fields of [['X_Region: us'], ['X-Region: eu', 'x_region: us'], ['x_REGION: us', 'X-Region: eu']]) {
      const r = await withHeaders(fields);
      expect({ fields, status: r.status, reached: r.reached }).toEqual({ fields, status: 400, reached: 0 });
      expect(r.text).toContain('is \\"x-region\\" to apps that read headers as CGI variables');
    }
  });

  it('decides the header as the policy reads it, and passes underscores in names it does not read', async () => {
    expect((await withHeaders(['X-Region: us'])).status).toBe(403);
    const ok = await withHeaders(['X-Region: eu', 'X_Trace_Id: 7']);
    expect([ok.status, ok.reached]).toEqual([200, 1]);
  });
});

describe('parts of the body kept whole, through warden proxy', () => {
  const cases: Array<[name: string, body: string, outcome: Outcome]> = [
    // A variable bound to a part.
    ['a variable: a small risk', '{"order": {"risk": 1, "Note": "x"}}', 201],
    ['a variable: a large risk', '{"order": {"risk": 9}}', 403],
    ['a variable: the key capitalized', '{"order": {"Risk": 9}}', ['Risk', 'risk']],
    ['a variable: the key upper-cased', '{"order": {"RISK": 9}}', ['RISK', 'risk']],
    ['a variable: a long s', `{"order": {"ri${LONG_S}k": 9}}`, [`ri${LONG_S}k`, 'risk']],
    ['a variable: the Kelvin sign', `{"order": {"ris${KELVIN}": 9}}`, [`ris${KELVIN}`, 'risk']],
    ['a variable: the key escaped', '{"order": {"\\u0052isk": 9}}', ['Risk', 'risk']],
    ['a variable: the variant beside the exact key', '{"order": {"risk": 1, "Risk": 9}}', ['Risk', 'risk']],
    ['a variable: the variant deeper in the part', '{"order": {"risk": 1, "meta": [{"RISK": 9}]}}', ['RISK', 'risk']],
    // An object pattern.
    ['a pattern: a small cost', '{"quote": {"cost": 5}}', 201],
    ['a pattern: a large cost', '{"quote": {"cost": 500}}', 403],
    ['a pattern: the key capitalized', '{"quote": {"Cost": 500}}', ['Cost', 'cost']],
    ['a pattern: a long s', `{"quote": {"co${LONG_S}t": 500}}`, [`co${LONG_S}t`, 'cost']],
    ['a pattern: the variant beside the exact key', '{"quote": {"cost": 5, "COST": 500}}', ['COST', 'cost']],
    // An array's elements.
    ['an array: a line in stock', '{"lines": [{"sku": "a1"}, {"sku": "b2"}]}', 201],
    ['an array: a recalled line', '{"lines": [{"sku": "a1"}, {"sku": "recalled"}]}', 403],
    ['an array: the key upper-cased', '{"lines": [{"SKU": "recalled"}]}', ['SKU', 'sku']],
    ['an array: a long s', `{"lines": [{"${LONG_S}ku": "recalled"}]}`, [`${LONG_S}ku`, 'sku']],
    ['an array: the Kelvin sign', `{"lines": [{"s${KELVIN}u": "recalled"}]}`, [`s${KELVIN}u`, 'sku']],
    ['an array: the variant beside the exact key', '{"lines": [{"sku": "a1", "Sku": "recalled"}]}', ['Sku', 'sku']],
    ['an array: the variant in a later element', '{"lines": [{"sku": "a1"}, {"sKU": "recalled"}]}', ['sKU', 'sku']],
    // Outside those parts the policy neither reads nor keeps `risk`: a variant there is no key it reads.
    ['a named key where no part is kept whole', '{"Risk": 9, "order": {"risk": 1}}', 201],
  ];
  for (const [name, body, outcome] of cases) {
    it(`${name}: ${typeof outcome === 'number' ? (outcome === 201 ? 'forwarded' : outcome) : 'refused (400)'}`, () => expectOutcome(desks, '/orders', body, outcome));
  }
});

describe('a request the policy binds whole, through warden proxy', () => {
  it('the bundle keeps the whole request', async () => {
    const { manifest } = await openBundle(readFileSync(audited.bundle), 'unsigned-ok');
    expect(manifest.metadata?.inputPaths).toContainEqual(['request']);
    expect(manifest.metadata?.inputKeys).toContain('tenant');
  });

  const cases: Array<[name: string, target: string, body: string | undefined, outcome: Outcome]> = [
    ['its own tenant', '/orders?tenant=acme', undefined, 200],
    ['another tenant', '/orders?tenant=evil', undefined, 403],
    ['the key capitalized, no body', '/orders?Tenant=evil', undefined, ['Tenant', 'tenant']],
    ['the variant beside the exact key, no body', '/orders?tenant=acme&TENANT=evil', undefined, ['TENANT', 'tenant']],
    ['the variant percent-encoded, no body', '/orders?%54enant=evil', undefined, ['Tenant', 'tenant']],
    ['tenant[], which PHP and Rack read as tenant', '/orders?tenant=acme&tenant%5B%5D=evil', undefined, 400],
    ['the variant, with a body', '/orders?Tenant=evil', '{}', ['Tenant', 'tenant']],
    ['the variant deep in the body', '/orders?tenant=acme', '{"meta": {"Tenant": "evil"}}', ['Tenant', 'tenant']],
    // At the body's top level it is first a member Laravel reads over the query (refused before the policy).
    ['the variant at the body\'s top level', '/orders?tenant=acme', '{"Tenant": "evil"}', 400],
    ['its own tenant, with a body', '/orders?tenant=acme', '{"note": 1}', 201],
  ];
  for (const [name, target, body, outcome] of cases) {
    it(`${name}: ${typeof outcome === 'number' ? outcome : 'refused (400)'}`, () => expectOutcome(audited, target, body, outcome));
  }
});
