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
  "cast_set": "deprecated (Rego v0); a host builtin cannot return a set (the SDK loads results as JSON)",
};

/** Cases that still disagree for another reason: note → why. Keep docs/opa-conformance.md in step. */
const SET_ORDER = "a set in the result comes back in the WASM module's order: the SDK reads results as JSON, where a set is an array, so the runtime cannot sort it as OPA prints sets";
const SET_ARGUMENT = "a set reaches the host builtin as an array (the SDK hands arguments over as JSON), so the builtin cannot tell it from an array";
const SET_RESULT = "the builtin returns a value holding a set, which a host builtin can only return as an array (the SDK loads results as JSON)";
const BIG_RESULT = "an integer beyond 2^53 in the result: the SDK's JSON reader returns doubles";
const BIG_ARGUMENT = "an integer beyond 2^53 reaches the host builtin as a double (the SDK reads arguments with JSON.parse)";
const KNOWN_DIFFERENCES: Record<string, string> = {
  "arithmetic/int32 window edges (results crossing into wider integers)": BIG_RESULT,
  "bitsshiftleft/shift of max int64 doesn't overflow and is not lossy": BIG_RESULT,
  "time/add_date negative values": BIG_RESULT,
  "time/add_date year month day": BIG_RESULT,
  "time/parse duration nanos, days": BIG_RESULT,
  "time/parse duration nanos, years": BIG_ARGUMENT,
  "time/format": BIG_ARGUMENT,
  "time/parse_nanos": BIG_RESULT,
  "time/parse_rfc3339_nanos": BIG_RESULT,
  "uuid-parse/positive-v2": BIG_RESULT,
  "uuid-parse/positive-v2-urn": BIG_RESULT,
  "uuid-parse/positive-v2-urn-uppercase": BIG_RESULT,
  "sprintf/big_int": BIG_ARGUMENT,
  "sprintf/big_int/max_cert_serial_number": BIG_ARGUMENT,
  "strings/sprintf: float too big": "2e308 reaches the host as Infinity (a double); Go keeps the number's text",
  "sprintf/float/exponent": "the literal 1e2 reaches the host as the number 100, so sprintf cannot know Go sees a float there",
  "sprintf/float/zero_fraction": "OPA's WASM serializer writes the float as `.0`, which is not JSON: the SDK cannot read the argument",
  "baseandvirtualdocs/base/virtual: set": SET_ORDER,
  "containskeyword/ordinary deny rule": SET_ORDER,
  "defaultkeyword/set comprehension": SET_ORDER,
  "objectkeys/array_keys_found": SET_ORDER,
  "objectkeys/set_keys_found": SET_ORDER,
  "objectkeys/string_keys_found": SET_ORDER,
  "refheads/general, set leaf": SET_ORDER,
  "refheads/general, set leaf (other rule defines dynamic ref portion)": SET_ORDER,
  "refheads/general, set leaf (shallow ref)": SET_ORDER,
  "regression/virtual-cache key scope": SET_ORDER,
  "withkeyword/invalidate comprehension cache": SET_ORDER,
  "withkeyword/with virtual doc exact value": SET_ORDER,
  "subset/nested object subset 3": SET_ARGUMENT,
  "netcidrcontainsmatches/sets of strings": SET_ARGUMENT,
  "netcidrcontainsmatches/sets of tuples": SET_ARGUMENT,
  "jsonpatch/set-success add-to-nested-array": SET_ARGUMENT,
  "jsonpatch/set-success basic-add": SET_ARGUMENT,
  "jsonpatch/set-success basic-move": SET_ARGUMENT,
  "jsonpatch/set-success basic-remove": SET_ARGUMENT,
  "providers-aws-sign_req/success-simple-body": SET_RESULT,
  "providers-aws-sign_req/success-simple-body-and-raw_body": SET_RESULT,
  "providers-aws-sign_req/success-simple-with-existing-sha-header-with-body-no-payload-signing": SET_RESULT,
  "providers-aws-sign_req/success-simple-with-existing-sha-header-with-body-with-payload-signing": SET_RESULT,
  "providers-aws-sign_req/success-simple-with-headers-with-body-no-payload-signing": SET_RESULT,
  "providers-aws-sign_req/success-simple-with-headers-with-body-with-payload-signing": SET_RESULT,
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
