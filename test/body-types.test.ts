// A body the app reads as JSON is a body the policy reads: `warden proxy` in front of a workload whose
// Rego denies on a field of the body. Every media type the common frameworks decode as JSON (ASP.NET
// Core's text/json, Rails' text/x-json and application/jsonrequest, any +json) is read into
// input.request.body and decided; a body the sidecar does not read (text/plain, a form, no type at all,
// which a Go app decodes as JSON all the same) is denied through the library's requests.unread_body.
import { describe, expect, it } from 'vitest';
import { servedWorkload } from './support/rego-workload.js';

const WORKLOAD = `apiVersion: warden.dev/v1alpha1
kind: Workload
name: tills
namespace: shop
serviceAccount: tills
mode: enforce
`;

const POLICY = `# Payments up to 100; a body this policy cannot read is no payment it checked.
package warden.workload

import data.warden.lib.requests
import rego.v1

allow if input.request.method in {"GET", "POST"}

deny contains "amount above 100" if input.request.body.amount > 100

deny contains "the body could not be read" if requests.unread_body
`;

const served = servedWorkload('tills', { 'workload.yaml': WORKLOAD, 'policy.rego': POLICY }, []);

async function send(type: string | undefined, body: string | undefined, method = 'POST'): Promise<{ status: number; text: string }> {
  const res = await fetch(`${served.proxyUrl}/pay`, { method, headers: type === undefined ? {} : { 'content-type': type }, body });
  return { status: res.status, text: await res.text() };
}

describe('bodies of every type the app may read as JSON, through warden proxy', () => {
  const JSON_TYPES = ['application/json', 'text/json', 'TEXT/JSON; charset=utf-8', 'text/x-json', 'application/x-json', 'application/jsonrequest', 'application/merge-patch+json', 'application/vnd.shop.payment.v2+json'];

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
