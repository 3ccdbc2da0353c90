// `warden diff`: review a policy change as the decisions it flips.
import type { Command } from 'commander';
import { writeFileSync } from 'node:fs';
import { openStore } from '../audit/open-store.js';
import { FilterError } from '../audit/query.js';
import { recordedCalls } from '../diff/recorded.js';
import type { PolicyInput } from '../../formats/input.js';
import { toHtml, toMarkdown, toTerminal } from '../diff/render.js';
import { review, type Review } from '../diff/review.js';
import { UserError } from '../../formats/user-error.js';

const FAIL_ON = ['deny-to-allow', 'allow-to-deny', 'any', 'never'] as const;
type FailOn = (typeof FAIL_ON)[number];

/** Exit code 3 when the review contains flips the CI policy forbids. */
export function failsOn(r: Review, failOn: FailOn): boolean {
  if (failOn === 'never') return false;
  if (failOn === 'any') return r.totals['deny-to-allow'] + r.totals['allow-to-deny'] > 0;
  return r.totals[failOn] > 0;
}

export function registerDiff(program: Command): void {
  program
    .command('diff')
    .description('build two Git revisions of the policy repository and show the decisions that would flip')
    .requiredOption('--base <ref>', 'the revision before the change (e.g. origin/main)')
    .option('--head <ref>', 'the revision after the change', 'HEAD')
    .option('--repo <dir>', 'policy repository folder (inside a Git repository)', 'policies')
    .option('--format <format>', 'markdown | json | terminal | html (one self-contained page, e.g. a CI artifact)', process.stdout.isTTY ? 'terminal' : 'markdown')
    .option('--output <file>', 'write the review to a file instead of stdout')
    .option('--fail-on <flips>', `exit with code 3 on: ${FAIL_ON.join(' | ')}`, 'never')
    .option('--store <url>', 'replay recorded calls from this audit store (sqlite:path or postgres://…)')
    .option('--since <duration>', 'window of recorded calls to replay', '7d')
    .option('--sample <n>', 'at most this many recorded calls (the newest)', '10000')
    .action(async (flags: { base: string; head: string; repo: string; format: string; output?: string; failOn: string; store?: string; since: string; sample: string }) => {
      if (!FAIL_ON.includes(flags.failOn as FailOn)) throw new UserError(`--fail-on ${flags.failOn} is not one of ${FAIL_ON.join(', ')}`);
      if (!['markdown', 'json', 'terminal', 'html'].includes(flags.format)) throw new UserError(`--format ${flags.format} is not one of markdown, json, terminal, html`);
      let recorded = new Map<string, PolicyInput[]>();
      if (flags.store) {
        const sample = Number(flags.sample);
        if (!Number.isInteger(sample) || sample < 1) throw new UserError(`--sample ${flags.sample} must be a positive integer`);
        const store = await openStore(flags.store);
        try {
          recorded = await recordedCalls(store, flags.since, sample);
        } catch (err) {
          if (err instanceof FilterError) throw new UserError(`--since: ${err.message}`);
          throw err;
        } finally {
          await store.close();
        }
        if (recorded.size === 0) process.stderr.write(`warden diff: the audit store has no HTTP or MCP decisions in the last ${flags.since}; replaying spec-derived calls only\n`);
      }
      const r = await review({ repo: flags.repo, base: flags.base, head: flags.head, recorded: (w) => recorded.get(w) ?? [] });
      const text = flags.format === 'json' ? `${JSON.stringify(r, null, 2)}\n` : flags.format === 'markdown' ? toMarkdown(r) : flags.format === 'html' ? toHtml(r) : toTerminal(r, process.stdout.isTTY);
      if (flags.output) writeFileSync(flags.output, text);
      else process.stdout.write(text);
      if (failsOn(r, flags.failOn as FailOn)) {
        process.stderr.write(`warden diff: failing because of ${flags.failOn} flips (--fail-on ${flags.failOn})\n`);
        process.exitCode = 3;
      }
    });
}
