// Policy evaluation alone: Warden's runtime deciding generated inputs against the example bundles
// (median and p99 per decision, decisions/s). Issue #3's target: p50 ≤ 20 µs.
import { readFileSync } from 'node:fs';
import { buildRepo } from '../engine/compiler/build.js';
import { openBundle } from '../runtime/bundle.js';
import { Policy } from '../runtime/policy.js';
import { generateInputs } from '../test/support/inputs.js';
import { policyWorkspace } from '../test/support/policy-repo.js';
import { median, quantile, type Figure } from './figure.js';

export async function run(): Promise<Figure[]> {
  const ws = policyWorkspace('warden-bench-');
  try {
    const built = await buildRepo({ repo: ws.repo, out: ws.out, cwd: ws.dir });
    const figures: Figure[] = [];
    for (const w of built.workloads) {
      const bundle = await openBundle(readFileSync(w.bundle), 'unsigned-ok');
      const policy = await Policy.load(bundle);
      const inputs = generateInputs(bundle, 10_000, 11);
      for (let i = 0; i < 2000; i++) policy.decide('warden/decision', inputs[i % inputs.length]);
      const perCall: number[] = [];
      const rates: number[] = [];
      for (let rep = 0; rep < 5; rep++) {
        const t0 = process.hrtime.bigint();
        for (const input of inputs) {
          const s = process.hrtime.bigint();
          policy.decide('warden/decision', input);
          perCall.push(Number(process.hrtime.bigint() - s) / 1000);
        }
        rates.push(inputs.length / (Number(process.hrtime.bigint() - t0) / 1e9));
      }
      figures.push(
        { suite: 'decision', name: `${w.workload} eval p50`, value: median(perCall), unit: 'µs', detail: `${inputs.length} inputs × 5 runs` },
        { suite: 'decision', name: `${w.workload} eval p99`, value: quantile(perCall, 0.99), unit: 'µs' },
        { suite: 'decision', name: `${w.workload} decisions/s`, value: median(rates), unit: '/s', detail: `min–max ${Math.round(Math.min(...rates))}–${Math.round(Math.max(...rates))}` },
      );
    }
    return figures;
  } finally {
    ws.remove();
  }
}
