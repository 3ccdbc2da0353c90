// Differential test: for every example workload and a few hundred generated inputs each, the WASM
// decision Warden's runtime computes equals OPA's own Go evaluator (`opa eval`) on the same Rego and data.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBundle } from '../runtime/bundle.js';
import { Policy } from '../runtime/policy.js';
import { generateInputs } from './support/inputs.js';
import { canonical, opaDecisions } from './support/opa.js';
import { examplePolicies, type ExamplePolicies } from './support/example-policies.js';

let built: ExamplePolicies;
const work = mkdtempSync(join(tmpdir(), 'warden-differential-'));

beforeAll(async () => {
  built = await examplePolicies();
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('WASM decisions equal opa eval', () => {
  for (const workload of ['storefront', 'orders', 'ops-mcp']) {
    it(`for ${workload}, on generated inputs`, async () => {
      const archive = readFileSync(built.bundles[workload]!);
      const bundle = await openBundle(archive, 'unsigned-ok');
      const policy = await Policy.load(bundle);
      const inputs = generateInputs(bundle, 300, 7);
      expect(inputs.length).toBeGreaterThanOrEqual(300);
      const dir = join(work, `diff-${workload}`);
      const go = await opaDecisions(archive, inputs, dir);
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
