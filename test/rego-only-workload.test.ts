// A workload written in Rego alone, with no OpenAPI spec and no MCP tool list: the first thing a new user
// tries. `warden build` must build it, and a real `warden proxy` must enforce it.
import { describe, expect, it } from 'vitest';
import { servedWorkload } from './support/rego-workload.js';

const WORKLOAD = `apiVersion: warden.dev/v1alpha1
kind: Workload
name: notes
namespace: shop
serviceAccount: notes
mode: enforce
`;

const POLICY = `# Only the reporting job reads notes, and only through /notes; nobody writes.
package warden.workload

import rego.v1

allow if {
	input.request.method == "GET"
	input.request.segments[0] == "notes"
	input.source.principal == "spiffe://cluster.local/ns/shop/sa/reporter"
}
`;

const TESTS = `package warden.workload_test

import rego.v1

test_reporter_reads if data.warden.workload.allow with input as {"request": {"method": "GET", "segments": ["notes"]}, "source": {"principal": "spiffe://cluster.local/ns/shop/sa/reporter"}}

test_reporter_does_not_write if not data.warden.workload.allow with input as {"request": {"method": "POST", "segments": ["notes"]}, "source": {"principal": "spiffe://cluster.local/ns/shop/sa/reporter"}}
`;

const served = servedWorkload('notes', { 'workload.yaml': WORKLOAD, 'policy.rego': POLICY, 'policy_test.rego': TESTS }, ['--trust-header', 'x-forwarded-client-cert', '--trust-peer', '127.0.0.1']);

const as = (principal: string) => ({ 'x-forwarded-client-cert': `URI=${principal}` });

describe('a workload written in Rego alone', () => {
  it('builds with no spec, and a real warden proxy enforces its Rego', async () => {
    const reporter = as('spiffe://cluster.local/ns/shop/sa/reporter');
    expect((await fetch(`${served.proxyUrl}/notes`, { headers: reporter })).status).toBe(200);
    expect((await fetch(`${served.proxyUrl}/notes`, { method: 'POST', headers: reporter, body: '{}' })).status).toBe(403);
    expect((await fetch(`${served.proxyUrl}/notes`, { headers: as('spiffe://cluster.local/ns/shop/sa/storefront') })).status).toBe(403);
    expect((await fetch(`${served.proxyUrl}/notes`)).status).toBe(403);
    expect(served.upstream.seen.map((r) => `${r.method} ${r.url}`)).toEqual(['GET /notes']);
  });
});
