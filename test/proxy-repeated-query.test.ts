// A query key given more than once, through `warden proxy` started as a user starts it. The policy gets every
// value in order; apps read the first (Go), the last (PHP, Rack) or all of them. A rule that reads one value by
// position decides on a value the app may not read, so an allowed call with such a key the policy reads is
// decided again on the first and on the last value alone, and refused (400) unless both are allowed too. The
// upstream records what reached it.
import type { ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { servedWorkload, workloadYaml } from './support/rego-workload.js';
import { startWarden, stopWardens } from './support/warden-process.js';

// Two rules a platform team could write: one reads the tenant by position, the other reads every till.
const POLICY = `package warden.workload

import rego.v1

allow if input.request.query.tenant[0] == "acme"

deny contains "a till is closed" if {
	some t in input.request.query.till
	t == "closed"
}
`;

const served = servedWorkload('tenants', { 'workload.yaml': workloadYaml('tenants'), 'policy.rego': POLICY }, []);

const get = (query: string) => fetch(`${served.proxyUrl}/reports?${query}`);
const reached = (query: string) => served.upstream.seen.filter((r) => r.url === `/reports?${query}`).length;

describe('a query key given more than once, through warden proxy', () => {
  it('refuses an allowed call whose first and last values the policy decides otherwise, and never forwards it', async () => {
    for (const query of ['tenant=acme&tenant=evil', 'tenant=acme&tenant=evil&tenant=acme&x=1&tenant=other', 'tenant=acme&till=open&tenant=evil']) {
      const r = await get(query);
      expect({ query, status: r.status }).toEqual({ query, status: 400 });
      expect(await r.text()).toMatch(/the query key \\"tenant\\" is given \d times and the policy does not allow the call on its last value alone/);
      expect(reached(query)).toBe(0);
    }
  });

  it('decides as before when every reading is allowed, when the policy denies, and when the key repeated is one it does not read', async () => {
    const cases: Array<[string, number]> = [
      ['tenant=acme', 200],
      ['tenant=acme&tenant=acme', 200],
      ['tenant=acme&till=open&till=front', 200],
      ['tenant=acme&status=open&status=paid', 200],
      // Denied as sent: no app reads it, whatever it would read; the policy's own answer stands.
      ['tenant=evil&tenant=acme', 403],
      ['tenant=acme&till=open&till=closed', 403],
    ];
    for (const [query, status] of cases) {
      const r = await get(query);
      expect({ query, status: r.status }).toEqual({ query, status });
      expect({ query, reached: reached(query) }).toEqual({ query, reached: status === 200 ? 1 : 0 });
    }
  });
});

describe('a query key given more than once, through warden ext-authz (the same decision pipeline)', () => {
  const children: ChildProcess[] = [];
  afterAll(() => stopWardens(children));

  it('refuses the split reading in the check Envoy sends, and allows the single one', async () => {
    const m = await startWarden(
      ['ext-authz', '--workload', 'tenants', '--listen', '127.0.0.1:0', '--bundle', served.bundle, '--verification-key', join(dirname(served.bundle), 'verification-key.pem')],
      /warden ext-authz: tenants on 127\.0\.0\.1:(\d+)/,
      children,
    );
    const check = (query: string) => fetch(`http://127.0.0.1:${m[1]}/reports?${query}`);
    const split = await check('tenant=acme&tenant=evil');
    expect([split.status, await split.text()]).toEqual([400, expect.stringMatching(/given 2 times and the policy does not allow the call on its last value alone/)]);
    expect((await check('tenant=acme')).status).toBe(200);
    expect((await check('tenant=acme&till=open&till=front')).status).toBe(200);
  });
});
