// Gatekeeper library benchmark, in process: what one admission review costs per constraint template of
// the public Gatekeeper library (../shared/corpus/gatekeeper-library, read where it lies), as the
// admission webhook evaluates it (GatekeeperSet.review: the template's WASM, compiled by the real OPA,
// with one constraint; results are not reused, so each review is evaluated). For each template that needs neither inventory nor external data, its first
// example that the library's own suite expects to be denied is reviewed again and again; the figure is the
// median review time over rounds. Templates whose Rego matches regular expressions (regex.match, and
// glob.match, which matches through RE2) are printed apart: OPA's WASM compiles those patterns, and
// keeps them only while its heap is kept (docs/runtime.md); the other templates, measured in the same run,
// are the baseline. No sockets and no webhook process: the shipped webhook over HTTPS is
// bench/admission.bench.ts. Prints figures, never fails.
// Run: npx tsx bench/gatekeeper.bench.ts   (BENCH_REVIEWS to change the reviews per round)
import type { Figure } from './figure.js';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileTemplate, readGatekeeperDocs } from '../engine/compiler/gatekeeper.js';
import { GatekeeperSet } from '../admission/gatekeeper.js';
import { moduleBundle } from '../admission/bundle.js';
import { ADMISSION_LIMITS } from '../runtime/evaluation-limits.js';
import { Policy } from '../runtime/policy.js';
import type { ConstraintTemplate } from '../formats/gatekeeper.js';
import { corpus, readTsv, reviewOfExample } from '../test/support/gatekeeper-corpus.js';
import { median } from './figure.js';

interface TemplateTime {
  policy: string;
  /** The template's Rego matches patterns (regex.match or glob.match). */
  patterns: boolean;
  /** Median µs per review over the rounds. */
  us: number;
}

/** Run the benchmark and print a line per template. */
export async function run(opts: { log?: (s: string) => void } = {}): Promise<Figure[]> {
  const out = opts.log ?? ((s: string) => console.log(s));
  if (!existsSync(join(corpus, 'INDEX.tsv'))) throw new Error(`the Gatekeeper corpus is missing: expected ${join(corpus, 'INDEX.tsv')}`);
  const reviews = Number(process.env.BENCH_REVIEWS ?? 300);
  const skip = new Set(readTsv<Record<string, string>>(join(corpus, 'TEMPLATES.tsv')).filter((t) => t.uses_inventory === 'True' || t.uses_external_data === 'True').map((t) => t.name));
  const firstDenied = new Map<string, Record<string, string>>();
  for (const row of readTsv<Record<string, string>>(join(corpus, 'INDEX.tsv'))) if (!skip.has(row.policy!) && row.expected === 'deny' && !firstDenied.has(row.policy!)) firstDenied.set(row.policy!, row);
  const cases = await Promise.all(
    [...firstDenied.values()].map(async (row) => {
      const source = readFileSync(join(corpus, row.template_path!), 'utf8');
      const template = readGatekeeperDocs(source, row.template_path!).templates[0]!.template as ConstraintTemplate;
      const build = await compileTemplate(template, row.template_path!);
      // As the webhook loads it (loadTemplatePolicy), less the reuse of results: each review is evaluated.
      const policy = await Policy.load(moduleBundle(build.wasm, `bench:${build.name}`), { limits: ADMISSION_LIMITS, reuse: false });
      const constraint = readGatekeeperDocs(readFileSync(join(corpus, row.constraint_path!), 'utf8'), row.constraint_path!).constraints[0]!.constraint;
      const set = new GatekeeperSet(new Map([[build.kind, { policy, entrypoint: build.entrypoint }]]), []).withConstraints([constraint]);
      return { policy: row.policy!, patterns: /\b(regex\.match|glob\.match)\s*\(/.test(source), set, review: reviewOfExample(row.object_path!, row.object_kind!) };
    }),
  );
  const times: TemplateTime[] = [];
  for (const c of cases) {
    for (let i = 0; i < 50; i++) c.set.review(c.review);
    const rounds: number[] = [];
    for (let round = 0; round < 5; round++) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < reviews; i++) c.set.review(c.review);
      rounds.push(Number(process.hrtime.bigint() - t0) / reviews / 1000);
    }
    times.push({ policy: c.policy, patterns: c.patterns, us: median(rounds) });
  }
  times.sort((a, b) => b.us - a.us);
  out(`Gatekeeper library, in process: one review of a denied example per template, ${reviews} reviews × 5 rounds (median µs per review); * = matches patterns`);
  for (const t of times) out(`${t.policy.padEnd(40)} ${t.us.toFixed(1).padStart(9)} µs${t.patterns ? '  *' : ''}`);
  const withPatterns = times.filter((t) => t.patterns).map((t) => t.us);
  const without = times.filter((t) => !t.patterns).map((t) => t.us);
  return [
    { suite: 'gatekeeper', name: 'review p50, templates matching patterns', value: median(withPatterns), unit: 'µs', detail: `median over ${withPatterns.length} templates (slowest ${Math.max(...withPatterns).toFixed(0)} µs)` },
    { suite: 'gatekeeper', name: 'review p50, other templates', value: median(without), unit: 'µs', detail: `median over ${without.length} templates (slowest ${Math.max(...without).toFixed(0)} µs)` },
  ];
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { printTable } = await import('./figure.js');
  printTable(await run());
}
