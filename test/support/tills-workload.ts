// The `tills` workload the body tests share: a policy that denies a payment above 100 read from the JSON
// body, and, on /pay, a body it could not read (requests.unread_body), and reads the query's `till` (every
// value) and `register` (the first). Each form (sidecar, ext_authz,
// middleware) is tested against the same Rego.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { copyPolicies, type PolicyCopy } from './proxy-fixtures.js';
import { workloadYaml } from './rego-workload.js';

export const TILLS_POLICY = `# Payments up to 100; a body this policy cannot read is no payment it checked.
package warden.workload

import data.warden.lib.requests
import rego.v1

allow if input.request.method in {"GET", "POST"}

deny contains "amount above 100" if input.request.body.amount > 100

deny contains "the body could not be read" if {
	requests.unread_body
	input.request.path == "/pay"
}

# A query key read by name: a body's field of that name is another reading of it.
deny contains "till closed" if {
	some t in input.request.query.till
	t == "closed"
}

# A query key read by position: a repeated one is decided again on its first and its last value alone.
deny contains "register 9 is retired" if input.request.query.register[0] == "9"
`;

/** The files of the workload, as servedWorkload takes them. */
export const TILLS_FILES = { 'workload.yaml': workloadYaml('tills'), 'policy.rego': TILLS_POLICY };

/** A policy copy with the tills workload written into it and built. */
export function tillsPolicies(): Promise<PolicyCopy> {
  return copyPolicies(['tills'], (repo) => {
    const dir = join(repo, 'workloads', 'tills');
    mkdirSync(dir);
    for (const [file, text] of Object.entries(TILLS_FILES)) writeFileSync(join(dir, file), text);
  });
}
