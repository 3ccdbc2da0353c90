// Policy evaluation alone: Warden's runtime deciding generated inputs against the example bundles
// (median and p99 per decision, decisions/s). Issue #3's target: p50 ≤ 20 µs. Also ops-mcp's evaluations
// by kind of MCP call, each the same input over and over: what a sidecar pays per tools/call (allowed,
// denied) and per tools/list (the decision, then the caller's view).
import { readFileSync } from 'node:fs';
import { buildRepo } from '../engine/compiler/build.js';
import { openBundle } from '../runtime/bundle.js';
import type { PolicyInput } from '../formats/input.js';
import { InputSelection } from '../runtime/input-selection.js';
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
      const policy = await Policy.load(bundle, { reuse: false }); // evaluation itself, every call
      const inputs = generateInputs(bundle, 10_000, 11);
      const selection = bundle.inputs;
      // Two forms, in alternating rounds: the input object serialized whole (what every decision paid
      // before issue 23) and only the paths the bundle's Rego reads (what the pipeline hands the policy).
      const forms = {
        whole: (input: PolicyInput) => policy.decide('warden/decision', InputSelection.whole.json(input)),
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
    figures.push(...(await mcpCallKinds(built.workloads.find((w) => w.workload === 'ops-mcp')!.bundle)));
    return figures;
  } finally {
    ws.remove();
  }
}

// One MCP call of each kind, its selected input prepared once, in alternating rounds: median µs per evaluation.
async function mcpCallKinds(bundleFile: string): Promise<Figure[]> {
  const bundle = await openBundle(readFileSync(bundleFile), 'unsigned-ok');
  const policy = await Policy.load(bundle, { reuse: false }); // evaluation itself, every call
  const call = (scope: string, mcp: PolicyInput['mcp']): PolicyInput => ({
    source: { principal: 'agent-7', authn: 'jwt', claims: { sub: 'agent-7', scope }, address: '10.0.0.7' },
    destination: { workload: 'ops-mcp', namespace: 'agents', principal: 'spiffe://cluster.local/ns/agents/sa/ops-mcp' },
    request: { method: 'POST', path: '/mcp', segments: ['mcp'], query: {}, headers: {} },
    mcp,
  });
  const kinds: Record<string, [string, ReturnType<typeof bundle.inputs.json>]> = {
    'tools/call allowed': ['warden/decision', bundle.inputs.json(call('tools:read', { method: 'tools/call', tool: 'get_order', arguments: { id: '42' } }))],
    'tools/call denied': ['warden/decision', bundle.inputs.json(call('tools:read', { method: 'tools/call', tool: 'refund_order', arguments: { id: '42', amount: 20 } }))],
    // Its rule matches the SQL against two regular expressions (policies/lib/sql.rego).
    'tools/call query': ['warden/decision', bundle.inputs.json(call('tools:read', { method: 'tools/call', tool: 'query', arguments: { sql: 'SELECT status FROM orders WHERE id = 42' } }))],
    'tools/list decision': ['warden/decision', bundle.inputs.json(call('tools:read', { method: 'tools/list' }))],
    'tools/list view': ['warden/visible_tools', bundle.inputs.json(call('tools:read', { method: 'tools/list' }))],
  };
  const samples: Record<string, number[]> = Object.fromEntries(Object.keys(kinds).map((k) => [k, []]));
  const evaluate = ([entrypoint, input]: [string, unknown]) => (entrypoint === 'warden/decision' ? policy.decide(entrypoint, input) : policy.evaluate(entrypoint, input));
  for (const k of Object.values(kinds)) for (let i = 0; i < 3000; i++) evaluate(k);
  for (let round = 0; round < 11; round++) {
    for (const [name, k] of Object.entries(kinds)) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < 2000; i++) evaluate(k);
      samples[name]!.push(Number(process.hrtime.bigint() - t0) / 2000 / 1000);
    }
  }
  return Object.entries(samples).map(([name, v]) => ({ suite: 'decision', name: `ops-mcp ${name}`, value: median(v), unit: 'µs', detail: 'median of 11 alternating rounds of 2,000, the same selected input' }));
}
