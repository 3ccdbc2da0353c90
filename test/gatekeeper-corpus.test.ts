// The public Gatekeeper library, read where it lies (../shared/corpus/gatekeeper-library): every
// template is compiled to WASM by the real OPA, every example of INDEX.tsv is reviewed by the webhook's
// Gatekeeper code, and the outcome (allow/deny, violation counts, message assertions) must be the one
// the library's own gator suites expect. Cases that need data.inventory get the suite's inventory
// objects laid out as Gatekeeper replicates them (the webhook itself does not replicate inventory).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileTemplate, readGatekeeperDocs } from '../engine/compiler/gatekeeper.js';
import { GatekeeperSet, inventoryOf } from '../admission/gatekeeper.js';
import { loadTemplatePolicy } from '../admission/bundle.js';
import type { ConstraintTemplate } from '../formats/gatekeeper.js';
import { corpus, readTsv, reviewOfExample } from './support/gatekeeper-corpus.js';

interface Row {
  policy: string;
  test: string;
  case: string;
  template_path: string;
  constraint_path: string;
  object_path: string;
  object_kind: string;
  inventory_paths: string;
  expected: 'allow' | 'deny';
  expected_violations: string;
  assertions: string;
}

// gator's assertions: a total (`2`, `yes`, `no`) or a count of violations whose msg matches a Go regexp.
function checkAssertions(row: Row, msgs: string[]): string | undefined {
  const countOk = (want: string, n: number) => (want === 'yes' || want === 'yes(default)' ? n > 0 : want === 'no' ? n === 0 : n === Number(want));
  for (const a of row.assertions.split('|').filter(Boolean)) {
    const m = /^msg~(.*):([^:]+)$/.exec(a);
    if (m) {
      const re = new RegExp(m[1]!);
      const n = msgs.filter((x) => re.test(x)).length;
      if (!countOk(m[2]!, n)) return `assertion ${a}: ${n} matching violation(s) in ${JSON.stringify(msgs)}`;
    } else if (!countOk(a, msgs.length)) {
      return `assertion ${a}: ${msgs.length} violation(s) ${JSON.stringify(msgs)}`;
    }
  }
  if ((row.expected === 'deny') !== msgs.length > 0) return `expected ${row.expected}, got ${msgs.length} violation(s) ${JSON.stringify(msgs)}`;
  return undefined;
}

const hasCorpus = existsSync(join(corpus, 'INDEX.tsv'));
const rows = hasCorpus ? readTsv<Row>(join(corpus, 'INDEX.tsv')) : [];
const templatesInfo = hasCorpus ? readTsv<{ name: string; uses_inventory: string; uses_external_data: string }>(join(corpus, 'TEMPLATES.tsv')) : [];
const needsExternalData = new Set(templatesInfo.filter((t) => t.uses_external_data === 'True').map((t) => t.name));
const needsInventory = new Set(templatesInfo.filter((t) => t.uses_inventory === 'True').map((t) => t.name));
const supported = rows.filter((r) => !needsExternalData.has(r.policy));
const sets = new Map<string, { build: Awaited<ReturnType<typeof compileTemplate>>; set: GatekeeperSet } | Error>();
const outcomes: Array<{ row: Row; failure?: string }> = [];

describe('Gatekeeper library corpus', () => {
  beforeAll(async () => {
    // Each distinct template once, compiled by OPA in parallel (the temp dirs are OPA's stage dirs).
    const paths = [...new Set(supported.map((r) => r.template_path))];
    await Promise.all(
      paths.map(async (p) => {
        try {
          const docs = readGatekeeperDocs(readFileSync(join(corpus, p), 'utf8'), p);
          const template = docs.templates[0]!.template as ConstraintTemplate;
          const build = await compileTemplate(template, p);
          const policy = await loadTemplatePolicy(build.wasm, `corpus:${build.name}`);
          sets.set(p, { build, set: new GatekeeperSet(new Map([[build.kind, { policy, entrypoint: build.entrypoint }]]), []) });
        } catch (err) {
          sets.set(p, err as Error);
        }
      }),
    );
  }, 240_000);

  afterAll(() => {
    const passed = outcomes.filter((o) => !o.failure).length;
    const inv = outcomes.filter((o) => needsInventory.has(o.row.policy));
    const lines = [
      `Gatekeeper corpus: ${passed}/${outcomes.length} cases pass (${rows.length} in INDEX.tsv; ${rows.length - supported.length} need external data and are not run); ` +
        `of them ${inv.filter((o) => !o.failure).length}/${inv.length} use data.inventory (${[...needsInventory].sort().join(', ')})`,
    ];
    for (const o of outcomes.filter((x) => x.failure)) lines.push(`  FAIL ${o.row.policy} ${o.row.test}/${o.row.case}: ${o.failure}`);
    process.stdout.write(`${lines.join('\n')}\n`);
  });

  it('gives the expected outcome on every example of every template, inventory included', async () => {
    // The corpus is part of the test setup (../shared beside the clone, as in CI): its absence is a failure, never a skip.
    expect(hasCorpus, `the Gatekeeper corpus is missing: expected ${join(corpus, 'INDEX.tsv')} (../shared/corpus beside the clone)`).toBe(true);
    for (const row of supported) {
      const compiled = sets.get(row.template_path);
      if (!compiled || compiled instanceof Error) {
        outcomes.push({ row, failure: `template does not compile/load: ${compiled?.message ?? 'missing'}` });
        continue;
      }
      let set = compiled.set;
      if (row.inventory_paths) {
        const objects = row.inventory_paths.split(',').flatMap((p) => parseAllDocuments(readFileSync(join(corpus, p), 'utf8')).map((d) => d.toJS() as Record<string, unknown>));
        const policy = await loadTemplatePolicy(compiled.build.wasm, `corpus:${compiled.build.name}`, { inventory: inventoryOf(objects.filter(Boolean)) });
        set = new GatekeeperSet(new Map([[compiled.build.kind, { policy, entrypoint: compiled.build.entrypoint }]]), []);
      }
      const docs = readGatekeeperDocs(readFileSync(join(corpus, row.constraint_path), 'utf8'), row.constraint_path);
      const constraint = docs.constraints[0]!.constraint;
      const review = reviewOfExample(row.object_path, row.object_kind);
      const gk = set.withConstraints([constraint]);
      const results = gk.review(review);
      const error = results.find((r) => r.error)?.error;
      const msgs = results.flatMap((r) => r.violations.map((v) => v.msg));
      outcomes.push({ row, failure: error ? `evaluation error: ${error}` : checkAssertions(row, msgs) });
    }
    expect(outcomes.filter((o) => o.failure).map((o) => `${o.row.policy} ${o.row.case}: ${o.failure}`)).toEqual([]);
    expect(outcomes.length).toBe(supported.length);
  });
});
