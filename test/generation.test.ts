// Bundles are ordered by the policy commit (its generation), never by build time: a later commit has a
// higher generation wherever it is built; a shallow clone, whose commit count is its depth, is refused.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRepo } from '../engine/compiler/build.js';
import { parseGeneration, policyVersion } from '../engine/compiler/generation.js';
import { readArchive } from '../runtime/archive.js';
import { resolve } from 'node:path';
import { policyWorkspace, type PolicyWorkspace } from './support/policy-repo.js';

let ws: PolicyWorkspace;
beforeAll(() => {
  ws = policyWorkspace('warden-generation-');
});
afterAll(() => ws.remove());

const build = (generation?: number) =>
  buildRepo({ repo: 'policies', out: 'bundles', cwd: ws.dir, only: ['storefront'], cacheDir: resolve('.warden/cache/opa'), ...(generation !== undefined ? { generation } : {}) });
const manifestOf = async () => JSON.parse((await readArchive(readFileSync(join(ws.out, 'storefront.tar.gz')))).get('.manifest')!.toString()) as { metadata: { generation: number; commit: string } };

describe('bundle generation', () => {
  it('is the commit count of the policy commit, and grows with every commit touching the workload', async () => {
    const first = (await build()).workloads[0]!;
    expect(first.generation).toBe(1);
    expect((await manifestOf()).metadata).toMatchObject({ generation: 1, commit: ws.git('rev-parse', 'HEAD') });
    ws.edit('workloads/storefront/workload.yaml', 'storefront', 'storefront # reviewed');
    ws.commit('touch storefront');
    const second = (await build()).workloads[0]!;
    expect(second.generation).toBe(2);
    expect((await manifestOf()).metadata.generation).toBe(2);
  });

  it('refuses a shallow clone, whose commit count is not its history, unless a generation is given', async () => {
    const shallow = join(ws.dir, 'shallow');
    execFileSync('git', ['clone', '-q', '--depth', '1', `file://${ws.repo}`, shallow]);
    await expect(policyVersion(shallow, ['.'])).rejects.toThrow(/shallow clone.*fetch-depth: 0.*--generation N/);
    expect((await policyVersion(shallow, ['.'], 41)).generation).toBe(41);
  });

  it('takes a CI-given generation and rebuilds a bundle whose generation changed', async () => {
    expect((await build(40)).workloads[0]).toMatchObject({ generation: 40, status: 'resigned' });
    expect((await build(40)).workloads[0]).toMatchObject({ generation: 40, status: 'unchanged' });
    expect((await manifestOf()).metadata.generation).toBe(40);
  });

  it('accepts only whole numbers as a given generation', () => {
    expect(parseGeneration('17', '--generation')).toBe(17);
    for (const bad of ['-1', '1.5', 'abc', '', '1e3', '99999999999999999999']) expect(() => parseGeneration(bad, '--generation')).toThrow(/--generation must be a whole number/);
  });
});
