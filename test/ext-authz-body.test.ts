// `warden ext-authz`, started through the CLI as an operator starts it, answering the checks Envoy's HTTP
// ext_authz filter sends with `with_request_body`: the request's method, path and headers, its body (or the
// first `max_request_bytes` of it) as the check's body, and `x-envoy-auth-partial-body: true|false`. The
// body is read as the sidecar reads it: a JSON body into the decision, a POST's form (or JSON to Laravel)
// for `_method`; a body Warden reads that arrived in part is refused. Without the mark no body is read.
import type { ChildProcess } from 'node:child_process';
import http from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tillsPolicies } from './support/tills-workload.js';
import { startWarden, stopWardens } from './support/warden-process.js';

const children: ChildProcess[] = [];
let port = 0;

beforeAll(async () => {
  const policies = await tillsPolicies();
  const m = await startWarden(
    ['ext-authz', '--workload', 'tills', '--listen', '127.0.0.1:0', '--bundle', join(policies.out, 'tills.tar.gz'), '--verification-key', join(policies.out, 'verification-key.pem'), '--spill', join(policies.dir, 'spill.ndjson'), '--json-body', '4096'],
    /warden ext-authz: tills on 127\.0\.0\.1:(\d+)/,
    children,
  );
  port = Number(m[1]);
});

afterAll(() => stopWardens(children));

// One check as Envoy sends it: `partial` is the mark Envoy adds when it sends the body (undefined: none sent).
function check(path: string, type: string | undefined, body: string | Buffer, partial?: 'true' | 'false'): Promise<{ status: number; text: string }> {
  const headers: Record<string, string> = { ...(type === undefined ? {} : { 'content-type': type }), ...(partial === undefined ? {} : { 'x-envoy-auth-partial-body': partial }) };
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => resolve({ status: res.statusCode!, text }));
    });
    req.on('error', reject).end(body);
  });
}

describe('a JSON body Envoy sends with the check', () => {
  it('is read into the decision, as the sidecar reads it: a large amount denied, a small one allowed', async () => {
    const large = await check('/pay', 'application/json', '{"amount": 500}', 'false');
    expect([large.status, large.text]).toEqual([403, expect.stringContaining('amount above 100')]);
    expect((await check('/pay', 'application/json', '{"amount": 5}', 'false')).status).toBe(200);
    expect((await check('/pay', 'text/json; charset=utf-8', '{"amount": 500}', 'false')).status).toBe(403);
    // A member the query gives as its one value: the app reads what the policy read.
    expect((await check('/pay?till=front', 'application/json', '{"amount": 5, "till": "front"}', 'false')).status).toBe(200);
  });

  it('is refused when it arrived in part or exceeds --json-body (413), is not JSON or names _method (400), or is in another charset (415)', async () => {
    const cases: Array<[string, string, string, 'true' | 'false', number, RegExp]> = [
      ['in part', 'application/json', '{"amount": 5', 'true', 413, /Envoy sent only part of it/],
      ['past --json-body', 'application/json', `{"amount": 5, "note": "${'x'.repeat(5000)}"}`, 'false', 413, /larger than 4096 bytes/],
      ['malformed', 'application/json', '{"amount": 5,}', 'false', 400, /not valid JSON/],
      ['a method override', 'application/json', '{"amount": 5, "_method": "DELETE"}', 'false', 400, /method override/],
      ['a key the policy reads given twice', 'application/json', '{"amount": 500, "amount": 5}', 'false', 400, /given twice/],
      ['a member named as a query key the policy reads', 'application/json', '{"amount": 5, "till": "closed"}', 'false', 400, /is the query key \\"till\\" the policy reads/],
      ['UTF-16', 'application/json; charset=utf-16', '{"amount": 5}', 'false', 415, /must be UTF-8/],
    ];
    for (const [what, type, body, partial, status, reason] of cases) {
      const r = await check('/pay', type, body, partial);
      expect({ what, status: r.status }).toEqual({ what, status });
      expect(r.text).toMatch(reason);
    }
  });

  it('is not read when Envoy sends no body (no mark): the policy sees none, and requests.unread_body denies it', async () => {
    const r = await check('/pay', 'application/json', '{"amount": 5}');
    expect([r.status, r.text]).toEqual([403, expect.stringContaining('the body could not be read')]);
  });
});

describe('a POST body the app may read _method from, sent with the check', () => {
  it('is refused (400) when it names the method: a form, a multipart part, JSON Laravel reads', async () => {
    const cases: Array<[string, string]> = [
      ['application/x-www-form-urlencoded', 'name=x&_method=DELETE'],
      ['application/x-www-form-urlencoded', '%5Fmethod=PUT'],
      ['multipart/form-data; boundary=b1', '--b1\r\nContent-Disposition: form-data; name="_method"\r\n\r\nDELETE\r\n--b1--\r\n'],
      ['text/plain; x=/json', '{"_method": "DELETE"}'],
    ];
    for (const [type, body] of cases) {
      const r = await check('/form', type, body, 'false');
      expect({ type, status: r.status }).toEqual({ type, status: 400 });
      expect(r.text).toContain('method override');
    }
  });

  it('is refused (413) when Envoy sent it in part, or it is larger than a check body is read; allowed when whole and naming none', async () => {
    const partial = await check('/form', 'application/x-www-form-urlencoded', 'name=x', 'true');
    expect([partial.status, partial.text]).toEqual([413, expect.stringContaining('must reach the check whole')]);
    // Only Envoy's own `false` says the body is whole.
    expect((await check('/form', 'application/x-www-form-urlencoded', 'name=x', 'TRUE' as 'true')).status).toBe(413);
    expect((await check('/form', 'application/x-www-form-urlencoded', `name=${'x'.repeat(1024 * 1024 + 1)}`, 'false')).status).toBe(413);
    expect((await check('/form', 'application/x-www-form-urlencoded', 'name=x&method=DELETE', 'false')).status).toBe(200);
    // A type Warden reads nothing of is decided without its body, in part or not.
    expect((await check('/form', 'application/octet-stream', '_method=DELETE', 'true')).status).toBe(200);
  });

  it('passes a url-encoded field that repeats the query\'s value for a key the policy reads, and refuses one that differs or a multipart part', async () => {
    const form = 'application/x-www-form-urlencoded';
    expect((await check('/form?till=front', form, 'name=x', 'false')).status).toBe(200);
    for (const body of ['name=x&till=front', 'till=%66ront&name=x']) expect({ body, status: (await check('/form?till=front', form, body, 'false')).status }).toEqual({ body, status: 200 });
    for (const [type, body] of [
      [form, 'name=x&till=closed'],
      [form, 'name=x&till=front;x'],
      [form, 'name=x&till[]=front'],
      ['multipart/form-data; boundary=b1', '--b1\r\nContent-Disposition: form-data; name="till"\r\n\r\nfront\r\n--b1--\r\n'],
    ]) {
      const r = await check('/form?till=front', type!, body!, 'false');
      expect({ body, status: r.status }).toEqual({ body, status: 400 });
      expect(r.text).toMatch(/is the query key \\"till\\" the policy reads/);
    }
  });

  it('is not read without the mark (Envoy not configured to send bodies): the known gap the docs state', async () => {
    expect((await check('/form', 'application/x-www-form-urlencoded', '_method=DELETE')).status).toBe(200);
  });
});
