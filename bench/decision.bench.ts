// Policy evaluation alone: Warden's runtime deciding generated inputs against the example bundles
// (median and p99 per decision, decisions/s). Issue #3's target: p50 ≤ 20 µs.
import { readFileSync } from 'node:fs';
import { buildRepo } from '../engine/compiler/build.js';
import { openBundle } from '../runtime/bundle.js';
import type { PolicyInput } from '../formats/input.js';
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
      const selection = bundle.inputs;
      // Two forms, in alternating rounds: the input object serialized whole (what every decision paid
      // before issue 23) and only the paths the bundle's Rego reads (what the pipeline hands the policy).
      const forms = {
        whole: (input: PolicyInput) => policy.decide('warden/decision', input),
        selected: (input: PolicyInput) => policy.decide('warden/decision', selection.json(input)),
      };
      for (const decide of Object.values(forms)) for (let i = 0; i < 2000; i++) decide(inputs[i % inputs.length]!);
      const perCall = { whole: [] as number[], selected: [] as number[] };
      const rates = { whole: [] as number[], selected: [] as number[] };
      for (let rep = 0; rep < 5; rep++) {
        for (const form of ['whole', 'selected'] as const) {
          const decide = forms[form];
          const t0 = process.hrtime.bigint();
          for (const input of inputs) {
            const s = process.hrtime.bigint();
            decide(input);
            perCall[form].push(Number(process.hrtime.bigint() - s) / 1000);
          }
          rates[form].push(inputs.length / (Number(process.hrtime.bigint() - t0) / 1e9));
        }
      }
      figures.push(
        { suite: 'decision', name: `${w.workload} eval p50`, value: median(perCall.whole), unit: 'µs', detail: `${inputs.length} inputs × 5 runs, whole input` },
        { suite: 'decision', name: `${w.workload} eval p99`, value: quantile(perCall.whole, 0.99), unit: 'µs' },
        { suite: 'decision', name: `${w.workload} decisions/s`, value: median(rates.whole), unit: '/s', detail: `min–max ${Math.round(Math.min(...rates.whole))}–${Math.round(Math.max(...rates.whole))}` },
        { suite: 'decision', name: `${w.workload} eval p50, selected input`, value: median(perCall.selected), unit: 'µs', detail: `the paths the Rego reads (${selection.isWhole ? 'whole' : 'pruned'}), same rounds` },
        { suite: 'decision', name: `${w.workload} decisions/s, selected input`, value: median(rates.selected), unit: '/s', detail: `min–max ${Math.round(Math.min(...rates.selected))}–${Math.round(Math.max(...rates.selected))}` },
      );
    }
    return figures;
  } finally {
    ws.remove();
  }
}
