// A workload written by the test itself (files under workloads/<name>/ of a policy copy), built, and
// enforced by a real `warden proxy` in front of a recording upstream, for the whole suite.
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { closeServer, copyPolicies, startUpstream, type Upstream } from './proxy-fixtures.js';
import { startLocalProxy, stopWardens } from './warden-process.js';

/** A workload's workload.yaml: `name` in namespace shop, running as the service account of the same name, enforced. */
export const workloadYaml = (name: string): string => `apiVersion: warden.dev/v1alpha1\nkind: Workload\nname: ${name}\nnamespace: shop\nserviceAccount: ${name}\nmode: enforce\n`;

/** What the suite reaches once its beforeAll ran. */
export interface ServedWorkload {
  proxyUrl: string;
  /** Its admin server: /metrics, /healthz, /readyz. */
  adminUrl: string;
  upstream: Upstream;
  /** The workload's built bundle (its manifest says which parts of the input the policy reads). */
  bundle: string;
}

/** Register the suite's hooks: build `files` as workload `name`, start `warden proxy <flags>` in front of an upstream, stop both after. */
export function servedWorkload(name: string, files: Record<string, string>, flags: string[]): ServedWorkload {
  const served = {} as ServedWorkload;
  const children: ChildProcess[] = [];
  beforeAll(async () => {
    const policies = await copyPolicies([name], (repo) => {
      const dir = join(repo, 'workloads', name);
      mkdirSync(dir);
      for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
    });
    served.bundle = join(policies.out, `${name}.tar.gz`);
    served.upstream = await startUpstream();
    const started = await startLocalProxy(policies, name, served.upstream.port, flags, children);
    served.proxyUrl = started.url;
    served.adminUrl = started.admin;
  });
  afterAll(async () => {
    await stopWardens(children);
    if (served.upstream) await closeServer(served.upstream.server);
  });
  return served;
}
