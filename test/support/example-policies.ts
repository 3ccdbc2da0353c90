// The example policy repository as the global setup built it once for the whole run
// (test/example-policies-setup.ts): read it, never write into it; copy it to change or rebuild it.
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, relative, resolve } from 'node:path';
import { inject } from 'vitest';
import { buildRepo } from '../../engine/compiler/build.js';

const INDEX = 'index.json';

/** The built example policies: the repository copy, its bundles folder, one bundle per workload. */
export interface ExamplePolicies {
  /** The folder holding `policies/`, `bundles/` and the development signing key (`.warden/`). */
  dir: string;
  repo: string;
  /** bundles/: index.json, one .tar.gz per workload, the admission bundle, verification-key.pem. */
  out: string;
  /** Path of the public key the bundles are signed for. */
  verificationKey: string;
  /** Workload name → path of its bundle. */
  bundles: Record<string, string>;
}

declare module 'vitest' {
  export interface ProvidedContext {
    examplePolicies: ExamplePolicies;
  }
}

/**
 * The shared build under vitest; elsewhere (a benchmark) a build of its own in a temp folder, since
 * no global setup ran there.
 */
export async function examplePolicies(): Promise<ExamplePolicies> {
  if (process.env.VITEST) return inject('examplePolicies');
  const dir = mkdtempSync(join(tmpdir(), 'warden-example-policies-'));
  cpSync(resolve('policies'), join(dir, 'policies'), { recursive: true });
  const result = await buildRepo({ repo: 'policies', out: 'bundles', cwd: dir, cacheDir: resolve('.warden/cache/opa') });
  return { dir, repo: join(dir, 'policies'), out: join(dir, 'bundles'), verificationKey: result.verificationKey, bundles: Object.fromEntries(result.workloads.map((w) => [w.workload, resolve(dir, w.bundle)])) };
}

/**
 * A private, writable copy of the built example policies (same bundles and signing key) in a fresh temp
 * folder; with `only`, its bundles folder holds those workloads alone, as a build of `only` would.
 */
export async function copyOfExamplePolicies(only?: string[], prefix = 'warden-policies-'): Promise<ExamplePolicies> {
  const shared = await examplePolicies();
  const dir = mkdtempSync(join(tmpdir(), prefix));
  cpSync(shared.dir, dir, { recursive: true });
  const moved = (p: string) => join(dir, relative(shared.dir, p));
  const out = moved(shared.out);
  const kept = Object.entries(shared.bundles).filter(([w]) => !only || only.includes(w));
  if (only) {
    // Each bundle's files are named after it (<name>.tar.gz, .build.json, .generated.rego); the index lists what stays.
    for (const f of readdirSync(out)) if (f !== INDEX && f !== basename(shared.verificationKey) && !only.includes(f.split('.')[0]!)) rmSync(join(out, f));
    const index = JSON.parse(readFileSync(join(out, INDEX), 'utf8')) as { bundles: Record<string, unknown>; admission?: unknown };
    delete index.admission;
    index.bundles = Object.fromEntries(Object.entries(index.bundles).filter(([w]) => only.includes(w)));
    writeFileSync(join(out, INDEX), `${JSON.stringify(index, null, 2)}\n`);
  }
  return { dir, repo: moved(shared.repo), out, verificationKey: moved(shared.verificationKey), bundles: Object.fromEntries(kept.map(([w, p]) => [w, moved(p)])) };
}
