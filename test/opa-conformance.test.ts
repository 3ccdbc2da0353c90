// OPA's own conformance suite (every case its WASM SDK runner runs) on Warden's runtime. Prints one line
// with the counts and every case that does not run, with its reason. A case that needs a builtin the
// runtime lacks is a disagreement, never a skip. The disagreements that remain are listed below, each with
// its reason (and in docs/opa-conformance.md); the test fails when a case starts or stops disagreeing.
import { beforeAll, describe, expect, it } from 'vitest';
import { missingBuiltins } from '../runtime/builtins.js';
import { inParallel, loadCases, loadExceptions, notRunnable, opaSourceDir, pinnedOpaVersion, runCase, type CaseOutcome, type ConformanceCase } from './support/opa-conformance.js';

/**
 * Builtins the runtime does not provide: name → why. A case that needs one disagrees (a failure, never
 * a skip); the test checks only that this list is exactly what is still missing. Keep
 * docs/opa-conformance.md in step.
 */
const MISSING_BUILTINS: Record<string, string> = {
  "http.send": "refused: a policy in a pod makes no network calls (OPA-WASM leaves it to the host, and Warden does not provide it)",
  "net.lookup_ip_addr": "refused: a policy in a pod makes no DNS lookups",
  "opa.runtime": "refused: a pod does not expose its environment or configuration to policy",
  "rego.parse_module": "refused: needs OPA's Rego parser (Go), which a pod does not carry; parsing Rego has no place on the request path",
};

/** Cases that still disagree for another reason: note → why. Keep docs/opa-conformance.md in step. */
const KNOWN_DIFFERENCES: Record<string, string> = {
};

const MISSING = /uses builtins this runtime does not provide: (.*)$/;

describe("OPA's conformance suite on Warden's runtime", () => {
  let cases: ConformanceCase[];
  let outcomes: CaseOutcome[];

  beforeAll(async () => {
    const version = await pinnedOpaVersion();
    const dir = await opaSourceDir(version);
    const exceptions = await loadExceptions(dir);
    // WARDEN_CONFORMANCE_ONLY=<regex over the case file's path> runs a part, while working on it.
    const only = process.env.WARDEN_CONFORMANCE_ONLY ? new RegExp(process.env.WARDEN_CONFORMANCE_ONLY) : undefined;
    cases = (await loadCases(dir)).filter((c) => !only || only.test(c.file));
    // Each compile is one short `opa build` process that spends most of its time waiting, not computing:
    // eight at a time fill two cores (measured: 16 at once took 2.3 s, 4 in a row 3.2 s).
    outcomes = await inParallel(cases, async (c) => notRunnable(c, exceptions) !== undefined ? { kind: 'not-run', reason: notRunnable(c, exceptions)! } : runCase(c, version), 8);
    const count = (k: CaseOutcome['kind']) => outcomes.filter((o) => o.kind === k).length;
    const runnable = count('agree') + count('disagree');
    const lines = [
      `OPA ${version} conformance: ${cases.length} cases, ${runnable} runnable, ${count('agree')} agree (${((100 * count('agree')) / runnable).toFixed(2)}%), ${count('disagree')} disagree, ${count('not-run')} not run`,
      ...cases.flatMap((c, i) => (outcomes[i]!.kind === 'not-run' ? [`  not run: ${c.note} (${c.file}): ${(outcomes[i] as { reason: string }).reason}`] : [])),
    ];
    if (process.env.WARDEN_CONFORMANCE_VERBOSE) {
      lines.push(...cases.flatMap((c, i) => (outcomes[i]!.kind === 'disagree' ? [`  disagree: ${c.note}: ${(outcomes[i] as { detail: string }).detail}`] : [])));
    }
    console.log(lines.join('\n'));
  }, 1_800_000);

  it('agrees with OPA on every runnable case except the listed, explained ones', () => {
    if (process.env.WARDEN_CONFORMANCE_ONLY) return; // a partial run proves nothing about the whole list
    const disagreeing = Object.fromEntries(cases.flatMap((c, i) => (outcomes[i]!.kind === 'disagree' ? [[c.note, (outcomes[i] as { detail: string }).detail]] : [])));
    const needsMissing = (detail: string) => MISSING.exec(detail)?.[1]!.split(', ').every((b) => b in MISSING_BUILTINS) ?? false;
    const unexpected = Object.fromEntries(Object.entries(disagreeing).filter(([note, detail]) => !(note in KNOWN_DIFFERENCES) && !needsMissing(detail)));
    const fixed = Object.keys(KNOWN_DIFFERENCES).filter((note) => !(note in disagreeing));
    const provided = Object.keys(MISSING_BUILTINS).filter((b) => missingBuiltins([b]).length === 0);
    expect(unexpected).toEqual({});
    expect(fixed, 'listed as differences but now agree: remove them from KNOWN_DIFFERENCES and the docs').toEqual([]);
    expect(provided, 'listed as missing but now provided: remove them from MISSING_BUILTINS and the docs').toEqual([]);
  });
});
