// A workload written in Rego alone, with no OpenAPI spec and no MCP tool list: the first thing a new user
// tries. `warden build` must build it, and a real `warden proxy` must enforce it.
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalProxy, stopWardens } from './support/warden-process.js';
import { closeServer, copyPolicies, startUpstream, type PolicyCopy, type Upstream } from './support/proxy-fixtures.js';

const children: ChildProcess[] = [];
let upstream: Upstream;
let policies: PolicyCopy;
let proxyUrl: string;

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

beforeAll(async () => {
  policies = await copyPolicies(['notes'], (repo) => {
    const dir = join(repo, 'workloads', 'notes');
    mkdirSync(dir);
    writeFileSync(join(dir, 'workload.yaml'), WORKLOAD);
    writeFileSync(join(dir, 'policy.rego'), POLICY);
    writeFileSync(join(dir, 'policy_test.rego'), TESTS);
  });
  upstream = await startUpstream();
  proxyUrl = await startLocalProxy(policies, 'notes', upstream.port, ['--trust-header', 'x-forwarded-client-cert', '--trust-peer', '127.0.0.1'], children);
});

afterAll(async () => {
  await stopWardens(children);
  if (upstream) await closeServer(upstream.server);
});

const as = (principal: string) => ({ 'x-forwarded-client-cert': `URI=${principal}` });

describe('a workload written in Rego alone', () => {
  it('builds with no spec, and a real warden proxy enforces its Rego', async () => {
    const reporter = as('spiffe://cluster.local/ns/shop/sa/reporter');
    expect((await fetch(`${proxyUrl}/notes`, { headers: reporter })).status).toBe(200);
    expect((await fetch(`${proxyUrl}/notes`, { method: 'POST', headers: reporter, body: '{}' })).status).toBe(403);
    expect((await fetch(`${proxyUrl}/notes`, { headers: as('spiffe://cluster.local/ns/shop/sa/storefront') })).status).toBe(403);
    expect((await fetch(`${proxyUrl}/notes`)).status).toBe(403);
    expect(upstream.seen.map((r) => `${r.method} ${r.url}`)).toEqual(['GET /notes']);
  });
});
