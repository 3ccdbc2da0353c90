// How decision cost grows: decisions/s of Warden's runtime as the policy grows (10, 100, 1,000
// operations, each granted to its own principal) and as the input grows (1 KB, 10 KB, 100 KB bodies).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { buildRepo } from '../engine/compiler/build.js';
import type { PolicyInput } from '../formats/input.js';
import { openBundle } from '../runtime/bundle.js';
import { Policy } from '../runtime/policy.js';
import { median, type Figure } from './figure.js';

const principal = (i: number) => `spiffe://cluster.local/ns/team-${i % 10}/sa/caller-${i}`;

// A repository with one workload serving `ops` operations, operation i granted to principal i.
function syntheticRepo(dir: string, ops: number): void {
  const w = join(dir, 'policies', 'workloads', 'synthetic');
  mkdirSync(w, { recursive: true });
  writeFileSync(join(dir, 'policies', 'warden.yaml'), stringify({ apiVersion: 'warden.dev/v1alpha1', kind: 'PolicyRepository', trustDomain: 'cluster.local' }));
  writeFileSync(join(w, 'workload.yaml'), stringify({ apiVersion: 'warden.dev/v1alpha1', kind: 'Workload', name: 'synthetic', namespace: 'bench', serviceAccount: 'synthetic', mode: 'enforce', specs: { openapi: 'openapi.yaml' } }));
  const paths: Record<string, unknown> = {};
  for (let i = 0; i < ops; i++) {
    paths[`/r${i}/{id}`] = { post: { operationId: `op${i}`, 'x-warden-authz': { allow: [{ principal: principal(i) }, { namespace: `team-${i % 10}`, description: 'same team' }] } } };
  }
  writeFileSync(join(w, 'openapi.yaml'), stringify({ openapi: '3.1.0', info: { title: 'synthetic', version: '1' }, paths }));
}

function input(i: number, ops: number, body?: unknown): PolicyInput {
  const op = i % ops;
  const path = `/r${op}/${i}`;
  return {
    source: { principal: principal(i % 3 === 0 ? op + 1 : op), authn: 'mtls', claims: {}, address: '10.0.0.1' },
    destination: { workload: 'synthetic', namespace: 'bench', principal: 'spiffe://cluster.local/ns/bench/sa/synthetic' },
    request: { method: 'POST', path, segments: path.slice(1).split('/'), query: {}, headers: { 'content-type': 'application/json' }, ...(body === undefined ? {} : { body }) },
  };
}

function rate(policy: Policy, inputs: PolicyInput[]): number[] {
  for (const x of inputs.slice(0, 500)) policy.decide('warden/decision', x);
  const rates: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t0 = process.hrtime.bigint();
    for (const x of inputs) policy.decide('warden/decision', x);
    rates.push(inputs.length / (Number(process.hrtime.bigint() - t0) / 1e9));
  }
  return rates;
}

const spread = (xs: number[]) => `min–max ${Math.round(Math.min(...xs))}–${Math.round(Math.max(...xs))} over ${xs.length} runs`;

export async function run(): Promise<Figure[]> {
  const figures: Figure[] = [];
  let base: Policy | undefined;
  for (const ops of [10, 100, 1000]) {
    const dir = mkdtempSync(join(tmpdir(), `warden-scale-${ops}-`));
    try {
      syntheticRepo(dir, ops);
      const built = await buildRepo({ repo: 'policies', out: 'bundles', cwd: dir });
      const policy = await Policy.load(await openBundle(readFileSync(built.workloads[0]!.bundle), 'unsigned-ok'), { reuse: false });
      const inputs = Array.from({ length: 3000 }, (_, i) => input(i, ops));
      const allowed = inputs.filter((x) => policy.decide('warden/decision', x).allow).length;
      const rates = rate(policy, inputs);
      figures.push({ suite: 'scaling', name: `${ops} operations (${ops * 2} grants)`, value: median(rates), unit: 'decisions/s', detail: `${spread(rates)}; ${allowed}/${inputs.length} allowed` });
      if (ops === 100) base = policy;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  // Input size, on the 100-operation policy: the body is part of the input the policy receives.
  for (const kb of [1, 10, 100]) {
    const item = { sku: 'sku-000000', qty: 1, note: 'x'.repeat(40) };
    const body = { items: Array.from({ length: Math.max(1, Math.round((kb * 1024) / JSON.stringify(item).length)) }, () => item) };
    const inputs = Array.from({ length: kb === 100 ? 300 : 2000 }, (_, i) => input(i, 100, body));
    const rates = rate(base!, inputs);
    figures.push({ suite: 'scaling', name: `input with a ${kb} KB body`, value: median(rates), unit: 'decisions/s', detail: `${spread(rates)}; 100-operation policy` });
  }
  return figures;
}
