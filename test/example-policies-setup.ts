// Vitest global setup: the example policy repository (policies/) is built once per run, every workload
// and the admission bundle, into a temp folder that every test file reads through `inject` (see
// test/support/example-policies.ts). Tests that change policies or rebuild still build copies of their own.
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { TestProject } from 'vitest/node';
import { buildRepo } from '../engine/compiler/build.js';
import type { ExamplePolicies } from './support/example-policies.js';

/** Build policies/ once; the folder is removed when the run ends. */
export default async function setup(project: TestProject): Promise<() => void> {
  const dir = mkdtempSync(join(tmpdir(), `warden-example-policies-${process.pid}-`));
  try {
    cpSync(resolve('policies'), join(dir, 'policies'), { recursive: true });
    const result = await buildRepo({ repo: 'policies', out: 'bundles', cwd: dir, cacheDir: resolve('.warden/cache/opa') });
    const built: ExamplePolicies = {
      dir,
      repo: join(dir, 'policies'),
      out: join(dir, 'bundles'),
      verificationKey: result.verificationKey,
      bundles: Object.fromEntries(result.workloads.map((w) => [w.workload, resolve(dir, w.bundle)])),
    };
    project.provide('examplePolicies', built);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return () => rmSync(dir, { recursive: true, force: true });
}
