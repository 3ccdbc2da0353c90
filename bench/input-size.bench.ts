// What a JSON request body costs a decision, by how much of it the policy reads (issue 23, item 3).
// Per call: the pipeline's input (runtime/input-selection.ts) + the WASM decision, for a body the Rego
// never reads, one it reads one field of, and one it reads whole, each beside the same workload's call
// with no body (its baseline, in alternating rounds of the same run). Also printed: what the same call
// cost before (body parsed to a value, the whole input serialized), and the body check the sidecar pays
// for every JSON body it reads, whatever the policy does with it (runtime/json-text.ts vs JSON.parse).
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildRepo } from '../engine/compiler/build.js';
import type { PolicyInput } from '../formats/input.js';
import { openBundle } from '../runtime/bundle.js';
import { checkJsonText, JsonText } from '../runtime/json-text.js';
import { Policy } from '../runtime/policy.js';
import { policyWorkspace } from '../test/support/policy-repo.js';
import { median, type Figure } from './figure.js';

const ROUNDS = 5;

const WORKLOADS: Record<string, string> = {
  // One field of the body.
  ledger: 'allow if {\n\tinput.request.method == "POST"\n\tinput.request.body.amount <= 100\n}\n',
  // The whole body (object.keys reads all of it).
  archive: 'allow if {\n\tinput.request.method == "POST"\n\tcount(object.keys(input.request.body)) > 0\n}\n',
};

// A JSON object of about `bytes` bytes: a field the policy reads, then line items.
function bodyOf(bytes: number): string {
  const items: unknown[] = [];
  let size = 0;
  for (let i = 0; size < bytes - 40; i++) {
    const item = { id: `item-${i}`, name: `product number ${i}`, qty: i % 7, price: (i * 37) % 1000, note: 'gift wrap, leave at the door' };
    items.push(item);
    size += JSON.stringify(item).length + 1;
  }
  return JSON.stringify({ amount: 42, items });
}

// Median µs per call of each form, the forms run in alternating rounds so that load hits them alike.
function measure(forms: Record<string, () => unknown>, calls: number): Record<string, number> {
  const samples: Record<string, number[]> = Object.fromEntries(Object.keys(forms).map((k) => [k, []]));
  for (const f of Object.values(forms)) for (let i = 0; i < Math.min(calls, 200); i++) f();
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, f] of Object.entries(forms)) {
      for (let i = 0; i < calls; i++) {
        const t = process.hrtime.bigint();
        f();
        samples[name]!.push(Number(process.hrtime.bigint() - t) / 1000);
      }
    }
  }
  return Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]));
}

export async function run(): Promise<Figure[]> {
  const ws = policyWorkspace('warden-bench-');
  try {
    for (const [name, rules] of Object.entries(WORKLOADS)) {
      mkdirSync(join(ws.repo, 'workloads', name));
      ws.write(`workloads/${name}/workload.yaml`, `apiVersion: warden.dev/v1alpha1\nkind: Workload\nname: ${name}\nnamespace: shop\nserviceAccount: ${name}\nmode: enforce\n`);
      ws.write(`workloads/${name}/policy.rego`, `package warden.workload\n\nimport rego.v1\n\n${rules}`);
    }
    ws.commit('workloads that read the body');
    const built = await buildRepo({ repo: ws.repo, out: ws.out, cwd: ws.dir, only: ['orders', ...Object.keys(WORKLOADS)] });
    const figures: Figure[] = [];
    const text = bodyOf(100 * 1024);
    const checked = checkJsonText(text, 64);
    if (!(checked instanceof JsonText)) throw new Error('the bench body does not pass the check');
    const kib = Math.round(text.length / 1024);
    const cases = [
      { workload: 'orders', reads: 'not read' },
      { workload: 'ledger', reads: 'one field read' },
      { workload: 'archive', reads: 'read whole' },
    ];
    for (const c of cases) {
      const bundle = await openBundle(readFileSync(built.workloads.find((w) => w.workload === c.workload)!.bundle), 'unsigned-ok');
      // A 100 KiB input parsed by the WASM on a loaded machine can pass the pod's 10 ms deadline.
      const policy = await Policy.load(bundle, { limits: { deadlineMs: 1000, memoryMiB: 256 } });
      const selection = bundle.inputs;
      const call: PolicyInput = {
        source: { principal: 'spiffe://cluster.local/ns/shop/sa/storefront', authn: 'mtls', claims: {}, address: '10.0.0.7' },
        destination: { workload: c.workload, namespace: 'shop', principal: `spiffe://cluster.local/ns/shop/sa/${c.workload}` },
        request: { method: 'POST', path: '/orders', segments: ['orders'], query: {}, headers: { 'content-type': 'application/json' } },
      };
      const withBody: PolicyInput = { ...call, request: { ...call.request, body: checked } };
      const decide = (input: PolicyInput) => policy.decide('warden/decision', selection.json(input));
      const heavy = c.reads === 'read whole';
      const t = measure(
        {
          none: () => decide(call),
          body: () => decide(withBody),
          // Before issue 23: the body parsed to a value in the sidecar, the whole input serialized.
          before: () => policy.decide('warden/decision', { ...call, request: { ...call.request, body: JSON.parse(text) as unknown } }),
        },
        heavy ? 150 : 300,
      );
      figures.push(
        { suite: 'input-size', name: `${c.workload}: no body`, value: t.none!, unit: 'µs', detail: `p50, baseline of the two lines below, same rounds` },
        { suite: 'input-size', name: `${c.workload}: ${kib} KiB body, ${c.reads}`, value: t.body!, unit: 'µs', detail: `p50, ${(t.body! / t.none!).toFixed(2)}× no body` },
        { suite: 'input-size', name: `${c.workload}: ${kib} KiB body, before issue 23`, value: t.before!, unit: 'µs', detail: `p50, ${(t.before! / t.none!).toFixed(2)}× no body (parsed, whole input)` },
      );
    }
    // The check every JSON body the sidecar reads goes through (before: JSON.parse and a depth walk).
    const check = measure({ text: () => checkJsonText(text, 64), parse: () => JSON.parse(text) as unknown }, 300);
    figures.push(
      { suite: 'input-size', name: `${kib} KiB body check (checkJsonText)`, value: check.text!, unit: 'µs', detail: 'p50, in the sidecar for every JSON body it reads' },
      { suite: 'input-size', name: `${kib} KiB body JSON.parse (before)`, value: check.parse!, unit: 'µs', detail: 'p50, same rounds' },
    );
    return figures;
  } finally {
    ws.remove();
  }
}
