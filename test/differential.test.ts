// Differential test: for every example workload and a few hundred generated inputs each, the WASM
// decision Warden's runtime computes equals OPA's own Go evaluator (`opa eval`) on the same Rego and data.
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRepo, type BuildResult } from '../engine/compiler/build.js';
import { requireOpa } from '../engine/toolchain/opa.js';
import type { PolicyInput } from '../formats/input.js';
import { readArchive } from '../runtime/archive.js';
import { openBundle } from '../runtime/bundle.js';
import { Policy } from '../runtime/policy.js';
import { generateInputs } from './support/inputs.js';
import { policyWorkspace, type PolicyWorkspace } from './support/policy-repo.js';

const execFileP = promisify(execFile);

// JSON with object keys sorted, so equal values print equally whatever the key order.
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1))) : x,
  );
}

let ws: PolicyWorkspace;
let built: BuildResult;

beforeAll(async () => {
  ws = policyWorkspace();
  built = await buildRepo({ repo: ws.repo, out: ws.out, cwd: ws.dir });
});
afterAll(() => ws.remove());

// OPA's Go evaluator over the bundle's Rego and data, all inputs in one `opa eval`.
async function opaDecisions(bundlePath: string, inputs: PolicyInput[], dir: string): Promise<{ decisions: unknown[]; visible: unknown[] }> {
  const files = await readArchive(readFileSync(bundlePath));
  for (const [name, bytes] of files) {
    if (name.endsWith('.rego') || name === 'data.json') {
      mkdirSync(join(dir, 'policy', name, '..'), { recursive: true });
      writeFileSync(join(dir, 'policy', name), bytes);
    }
  }
  mkdirSync(join(dir, 'inputs', 'difftest'), { recursive: true });
  writeFileSync(join(dir, 'inputs', 'difftest', 'data.json'), JSON.stringify({ inputs }));
  const query =
    '{"decisions": [d | some x in data.difftest.inputs; d := data.warden.decision with input as x], "visible": [v | some x in data.difftest.inputs; v := data.warden.visible_tools with input as x]}';
  const { stdout } = await execFileP(await requireOpa(), ['eval', '--format', 'json', '-d', join(dir, 'policy'), '-d', join(dir, 'inputs'), query], {
    maxBuffer: 512 * 1024 * 1024,
  });
  return (JSON.parse(stdout) as { result: Array<{ expressions: Array<{ value: { decisions: unknown[]; visible: unknown[] } }> }> }).result[0]!.expressions[0]!.value;
}

describe('WASM decisions equal opa eval', () => {
  for (const workload of ['storefront', 'orders', 'ops-mcp']) {
    it(`for ${workload}, on generated inputs`, async () => {
      const w = built.workloads.find((x) => x.workload === workload)!;
      const bundle = await openBundle(readFileSync(w.bundle), 'unsigned-ok');
      const policy = await Policy.load(bundle);
      const inputs = generateInputs(bundle, 300, 7);
      expect(inputs.length).toBeGreaterThanOrEqual(300);
      const dir = join(ws.dir, `diff-${workload}`);
      const go = await opaDecisions(w.bundle, inputs, dir);
      const wasm = inputs.map((i) => policy.decide('warden/decision', i));
      // visible_tools is a set: OPA dumps sets in no particular order, so compare sorted.
      const sorted = (v: unknown) => (Array.isArray(v) ? [...(v as string[])].sort() : v);
      const wasmVisible = inputs.map((i) => sorted(policy.evaluate('warden/visible_tools', i)));
      let mismatches = 0;
      for (let i = 0; i < inputs.length; i++) {
        if (canonical(wasm[i]) !== canonical(go.decisions[i])) mismatches++;
      }
      expect(wasm).toEqual(go.decisions);
      expect(wasmVisible).toEqual(go.visible.map(sorted));
      expect(mismatches).toBe(0);
      // The generated set must exercise both outcomes, or the comparison proves little.
      const allowed = wasm.filter((d) => d.allow).length;
      expect(allowed).toBeGreaterThan(10);
      expect(inputs.length - allowed).toBeGreaterThan(10);
    });
  }
});
