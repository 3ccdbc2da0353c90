// What a JSON request body costs a decision, by how much of it the policy reads (issue 23, item 3).
// Per call: the pipeline's input (runtime/input-selection.ts) + the WASM decision, for a body the Rego
// never reads, one it reads one field of, and one it reads whole, each beside the same workload's call
// with no body (its baseline, in alternating rounds of the same run). Also printed: what the same call
// cost before (body parsed to a value, the whole input serialized), and the body check the sidecar pays
// for every JSON body it reads, whatever the policy does with it (runtime/json-text.ts vs JSON.parse).
// And the headers of an MCP client's call, which no rule of ops-mcp reads since the compiler follows only
// the rules the entrypoints reach: the call with them, selected, beside the whole input and no headers;
// and 100 KiB of MCP arguments no rule reads, beside the call without them and the core that read them.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildRepo } from '../engine/compiler/build.js';
import { inputPathsOf, TRUTH } from '../engine/compiler/input-paths.js';
import type { PolicyInput } from '../formats/input.js';
import { openBundle } from '../runtime/bundle.js';
import { InputSelection } from '../runtime/input-selection.js';
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

// An input path as the figures print it; a truth test's (engine/compiler/input-paths.ts TRUTH) says so.
const pathText = (p: readonly string[]): string => (p.at(-1) === TRUTH ? `${['input', ...p.slice(0, -1)].join('.')} (truth)` : ['input', ...p].join('.'));

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
    const built = await buildRepo({ repo: ws.repo, out: ws.out, cwd: ws.dir, only: ['orders', 'ops-mcp', ...Object.keys(WORKLOADS)] });
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
      const policy = await Policy.load(bundle, { limits: { deadlineMs: 1000, memoryMiB: 256 }, reuse: false });
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
          before: () => policy.decide('warden/decision', InputSelection.whole.json({ ...call, request: { ...call.request, body: JSON.parse(text) as unknown } })),
        },
        heavy ? 150 : 300,
      );
      figures.push(
        { suite: 'input-size', name: `${c.workload}: no body`, value: t.none!, unit: 'µs', detail: `p50, baseline of the two lines below, same rounds` },
        { suite: 'input-size', name: `${c.workload}: ${kib} KiB body, ${c.reads}`, value: t.body!, unit: 'µs', detail: `p50, ${(t.body! / t.none!).toFixed(2)}× no body` },
        { suite: 'input-size', name: `${c.workload}: ${kib} KiB body, before issue 23`, value: t.before!, unit: 'µs', detail: `p50, ${(t.before! / t.none!).toFixed(2)}× no body (parsed, whole input)` },
      );
    }
    // ops-mcp: an MCP tools/call as the SDK's client sends it (11 headers, a bearer token among them), then
    // one with 100 KiB of arguments no rule reads.
    {
      const bundle = await openBundle(readFileSync(built.workloads.find((w) => w.workload === 'ops-mcp')!.bundle), 'unsigned-ok');
      // The "before" form of the arguments parses 100 KiB in the WASM: on a loaded machine that can pass 10 ms.
      const policy = await Policy.load(bundle, { limits: { deadlineMs: 1000, memoryMiB: 256 }, reuse: false });
      const token = `eyJhbGciOiJFUzI1NiIsImtpZCI6ImFnZW50cyJ9.${'A'.repeat(260)}.${'B'.repeat(86)}`;
      const headers = { host: '10.0.0.9:8080', 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${token}`, 'mcp-session-id': '8f6c2d3e-5b1a-4c7e-9d2f-0a1b2c3d4e5f', 'mcp-protocol-version': '2025-06-18', 'user-agent': 'node', 'accept-encoding': 'identity', 'accept-language': '*', 'sec-fetch-mode': 'cors', 'content-length': '102' };
      const call: PolicyInput = {
        source: { principal: 'agent-7', authn: 'jwt', claims: { sub: 'agent-7', scope: 'tools:read tools:write', iss: 'https://issuer.example', aud: 'ops-mcp', exp: 1900000000, iat: 1800000000 }, address: '10.0.0.7' },
        destination: { workload: 'ops-mcp', namespace: 'agents', principal: 'spiffe://cluster.local/ns/agents/sa/ops-mcp' },
        request: { method: 'POST', path: '/mcp', segments: ['mcp'], query: {}, headers },
        mcp: { method: 'tools/call', tool: 'get_order', arguments: { id: '42' } },
      };
      const bare: PolicyInput = { ...call, request: { ...call.request, headers: {} } };
      const read = bundle.manifest.metadata?.inputPaths?.some((p) => p[0] === 'request' && (p.length === 1 || p[1] === 'headers'));
      if (read) throw new Error('ops-mcp reads the request headers: this figure would not be the one it names');
      // Before: the paths of every rule the bundle ships, reached or not (the same analysis without its roots).
      const rego = new Map([...bundle.files].filter(([f]) => f.endsWith('.rego')).map(([f, b]) => [f, b.toString('utf8')]));
      const beforePaths = await inputPathsOf(rego, 'ops-mcp');
      const before = InputSelection.fromManifest({ metadata: { inputPaths: beforePaths } } as never);
      const t = measure(
        {
          selected: () => policy.decide('warden/decision', bundle.inputs.json(call)),
          whole: () => policy.decide('warden/decision', before.json(call)),
          bare: () => policy.decide('warden/decision', bundle.inputs.json(bare)),
        },
        1000,
      );
      figures.push(
        { suite: 'input-size', name: 'ops-mcp tools/call, an MCP client\'s 11 headers, not read', value: t.selected!, unit: 'µs', detail: `p50, ${(t.selected! / t.bare!).toFixed(2)}× the call with no headers (${t.bare!.toFixed(1)} µs), same rounds; read now: ${(bundle.manifest.metadata?.inputPaths ?? []).map(pathText).join(', ')}` },
        { suite: 'input-size', name: 'ops-mcp tools/call, the same before (every rule\'s paths)', value: t.whole!, unit: 'µs', detail: `p50, ${(t.whole! / t.bare!).toFixed(2)}× no headers; read then: ${beforePaths.map(pathText).join(', ')}` },
      );
      // The arguments: ops-mcp's refund_order rule reads `amount` alone. Before, the core read all of
      // `input.mcp` (a truth test and object.get), so every argument went into every decision; the same
      // paths with `mcp` whole are that.
      const paths = bundle.manifest.metadata?.inputPaths ?? [];
      if (paths.some((p) => p[0] === 'mcp' && (p.length === 1 || (p[1] === 'arguments' && p.length === 2)))) throw new Error('ops-mcp reads all of the MCP arguments: this figure would not be the one it names');
      const mcpWhole = InputSelection.fromManifest({ metadata: { inputPaths: [...paths.filter((p) => p[0] !== 'mcp'), ['mcp']] } } as never);
      const refund: PolicyInput = { ...bare, mcp: { method: 'tools/call', tool: 'refund_order', arguments: { id: '42', amount: 20 } } };
      const items = (JSON.parse(text) as { items: unknown[] }).items;
      const big: PolicyInput = { ...refund, mcp: { ...refund.mcp!, arguments: { ...refund.mcp!.arguments, items } } };
      const a = measure(
        {
          small: () => policy.decide('warden/decision', bundle.inputs.json(refund)),
          big: () => policy.decide('warden/decision', bundle.inputs.json(big)),
          before: () => policy.decide('warden/decision', mcpWhole.json(big)),
        },
        150,
      );
      figures.push(
        { suite: 'input-size', name: 'ops-mcp tools/call, arguments {id, amount}', value: a.small!, unit: 'µs', detail: 'p50, baseline of the two lines below, same rounds' },
        { suite: 'input-size', name: `ops-mcp tools/call, ${kib} KiB more arguments, not read`, value: a.big!, unit: 'µs', detail: `p50, ${(a.big! / a.small!).toFixed(2)}× the small call; read of mcp: ${paths.filter((p) => p[0] === 'mcp').map(pathText).join(', ')}` },
        { suite: 'input-size', name: `ops-mcp tools/call, ${kib} KiB more arguments, before (all of input.mcp)`, value: a.before!, unit: 'µs', detail: `p50, ${(a.before! / a.small!).toFixed(2)}× the small call` },
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
