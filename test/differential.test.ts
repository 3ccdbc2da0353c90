// Differential test: for every example workload and a few hundred generated inputs each, the WASM
// decision Warden's runtime computes equals OPA's own Go evaluator (`opa eval`) on the same Rego and data.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRepo, type BuildResult } from '../engine/compiler/build.js';
import { openBundle } from '../runtime/bundle.js';
import { Policy } from '../runtime/policy.js';
import { generateInputs } from './support/inputs.js';
import { canonical, opaDecisions } from './support/opa.js';
import { policyWorkspace, type PolicyWorkspace } from './support/policy-repo.js';

let ws: PolicyWorkspace;
let built: BuildResult;

beforeAll(async () => {
  ws = policyWorkspace();
  built = await buildRepo({ repo: ws.repo, out: ws.out, cwd: ws.dir });
});
afterAll(() => ws.remove());

describe('WASM decisions equal opa eval', () => {
  for (const workload of ['storefront', 'orders', 'ops-mcp']) {
    it(`for ${workload}, on generated inputs`, async () => {
      const w = built.workloads.find((x) => x.workload === workload)!;
      const bundle = await openBundle(readFileSync(w.bundle), 'unsigned-ok');
      const policy = await Policy.load(bundle);
      const inputs = generateInputs(bundle, 300, 7);
      expect(inputs.length).toBeGreaterThanOrEqual(300);
      const dir = join(ws.dir, `diff-${workload}`);
      const go = await opaDecisions(readFileSync(w.bundle), inputs, dir);
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
