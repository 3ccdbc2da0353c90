// Builtin errors: by default an expression whose builtin fails is undefined (as `opa eval` and `opa test`
// run); a workload that sets strictBuiltinErrors fails the evaluation instead (the call is denied), and
// `warden build` holds its tests to the same rule. Both modes are checked against `opa eval`.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { openBundle, type VerifiedBundle } from '../runtime/bundle.js';
import { InputSelection } from '../runtime/input-selection.js';
import { EvaluationError, Policy } from '../runtime/policy.js';
import { buildWasm, opaBinary } from './support/opa.js';
import { copyPolicies, type PolicyCopy } from './support/proxy-fixtures.js';

const run = promisify(execFile);

// Every builtin the hostile inputs below make fail: a malformed time, a malformed JWT, a bad unit,
// a failing JSON patch, a bad CIDR. With OPA's default each leaves its denial undefined.
const MODULE = `package strict

import rego.v1

denials contains "expired" if time.parse_rfc3339_ns(input.expires) < time.now_ns()
denials contains "anonymous token" if {
	[_, payload, _] := io.jwt.decode(input.token)
	not payload.sub
}
denials contains "too big" if units.parse_bytes(input.size) > 1000
denials contains "patched" if json.patch({}, input.patch).admin
denials contains "outside" if not net.cidr_contains_matches("10.0.0.0/8", input.ip)
`;

const HOSTILE = { expires: 'not a time', token: 'a.b', size: '12 parsecs', patch: [{ op: 'test', path: '/x', value: 1 }], ip: 'nowhere' };

const scratch: string[] = [];
afterAll(() => {
  for (const d of scratch) rmSync(d, { recursive: true, force: true });
});

async function opaEvalDenials(input: unknown, strict: boolean): Promise<{ value?: unknown; error?: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'warden-strict-'));
  scratch.push(dir);
  writeFileSync(join(dir, 'strict.rego'), MODULE);
  writeFileSync(join(dir, 'input.json'), JSON.stringify(input));
  const args = ['eval', '--format', 'json', '-d', join(dir, 'strict.rego'), '-i', join(dir, 'input.json'), ...(strict ? ['--strict-builtin-errors'] : []), 'data.strict.denials'];
  try {
    const { stdout } = await run(opaBinary, args);
    return { value: (JSON.parse(stdout) as { result: Array<{ expressions: Array<{ value: unknown }> }> }).result[0]!.expressions[0]!.value };
  } catch (err) {
    return { error: String((err as { stdout?: string }).stdout ?? err) };
  }
}

function bundleOf(wasm: Uint8Array, metadata: Record<string, unknown>): VerifiedBundle {
  return { manifest: { revision: 'strict-test', roots: ['strict'], metadata }, revision: 'strict-test', data: {}, wasm, files: new Map(), inputs: InputSelection.fromManifest({}) };
}

describe('builtin errors', () => {
  it("leave the expression undefined by default, as opa eval does, and fail the evaluation in strict mode, as opa eval --strict-builtin-errors does", async () => {
    const wasm = await buildWasm(MODULE, ['strict/denials']);
    const lenient = await Policy.load(bundleOf(wasm, {}));
    const strict = await Policy.load(bundleOf(wasm, { strictBuiltinErrors: true }));

    const sorted = (v: unknown) => [...(v as string[])].sort();
    const opaDefault = await opaEvalDenials(HOSTILE, false);
    expect(sorted(opaDefault.value)).toEqual(['outside']); // `not` of an undefined expression holds
    expect(sorted(lenient.evaluate('strict/denials', HOSTILE))).toEqual(sorted(opaDefault.value));

    const opaStrict = await opaEvalDenials(HOSTILE, true);
    expect(opaStrict.error).toMatch(/eval_builtin_error/);
    expect(() => strict.evaluate('strict/denials', HOSTILE)).toThrow(EvaluationError);

    // Well-formed input decides the same in both modes.
    const fine = { expires: '2000-01-01T00:00:00Z', token: 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.', size: '2KB', patch: [{ op: 'add', path: '/admin', value: true }], ip: '8.8.8.8' };
    const opaFine = await opaEvalDenials(fine, true);
    expect(sorted(opaFine.value)).toEqual(['expired', 'patched', 'too big']);
    expect(sorted(lenient.evaluate('strict/denials', fine))).toEqual(sorted(opaFine.value));
    expect(sorted(strict.evaluate('strict/denials', fine))).toEqual(sorted(opaFine.value));
  });

  describe('a workload that sets strictBuiltinErrors', () => {
    let policies: PolicyCopy;
    const TEST = `package warden.workload_test

import rego.v1

# Passes under opa test (the failing builtin is undefined, so \`not\` holds); an error when strict.
test_yesterday_is_not_a_time if not time.parse_rfc3339_ns("yesterday")
`;
    const addWorkload = (strict: boolean) => (repo: string) => {
      const yaml = join(repo, 'workloads', 'orders', 'workload.yaml');
      writeFileSync(yaml, `${readFileSync(yaml, 'utf8')}${strict ? 'strictBuiltinErrors: true\n' : ''}`);
    };

    it("carries the setting in its bundle's metadata, where the runtime reads it", async () => {
      policies = await copyPolicies(['orders'], addWorkload(true));
      scratch.push(policies.dir);
      const bundle = await openBundle(readFileSync(join(policies.out, 'orders.tar.gz')), 'unsigned-ok');
      expect(bundle.manifest.metadata?.strictBuiltinErrors).toBe(true);
      const unset = await copyPolicies(['orders'], addWorkload(false));
      scratch.push(unset.dir);
      expect((await openBundle(readFileSync(join(unset.out, 'orders.tar.gz')), 'unsigned-ok')).manifest.metadata).not.toHaveProperty('strictBuiltinErrors');
    });

    it('fails warden build when its Rego tests hit a builtin error, which plain opa test lets pass', async () => {
      const strict = await copyPolicies(['storefront'], () => undefined);
      scratch.push(strict.dir);
      writeFileSync(join(strict.repo, 'workloads', 'orders', 'strict_test.rego'), TEST);
      addWorkload(true)(strict.repo);
      await expect(strict.build(['orders'])).rejects.toThrow(/hit a builtin error, and the workload sets strictBuiltinErrors[\s\S]*parse_rfc3339_ns/);
      // The same test without the setting: opa test passes it, and so does warden build.
      const lenient = await copyPolicies(['storefront'], () => undefined);
      scratch.push(lenient.dir);
      writeFileSync(join(lenient.repo, 'workloads', 'orders', 'strict_test.rego'), TEST);
      await expect(lenient.build(['orders'])).resolves.toBeDefined();
    });
  });
});
