// The review as Markdown (a PR comment), JSON (machines) and a terminal view.
import type { Review } from './review.js';
import type { Flip, WorkloadDiff } from './replay.js';

const arrow = (f: Flip) => (f.direction === 'deny-to-allow' ? 'deny → allow' : 'allow → deny');
const mark = (allowed: boolean) => (allowed ? '✓' : '·');
const esc = (s: string) => s.replace(/\|/g, '\\|');
const short = (c: string) => c.replace(/^spiffe:\/\/[^/]+\/ns\/([^/]+)\/sa\/(.+)$/, '$1/$2');

function headline(r: Review): string {
  const changed = r.workloads.filter((w) => w.flips.length > 0).length;
  const a = r.totals['deny-to-allow'];
  const d = r.totals['allow-to-deny'];
  if (a + d === 0) return 'No decision flips.';
  return `${a} call(s) flip deny → allow (access widens), ${d} flip allow → deny (access narrows), in ${changed} of ${r.workloads.length} workload(s).`;
}

function why(f: Flip): string {
  return (f.direction === 'deny-to-allow' ? f.headReasons : [...f.headReasons]).join('; ');
}

function matrixMarkdown(w: WorkloadDiff): string[] {
  const { callers, targets, cells } = w.matrix;
  const changedTargets = targets.filter((t) => callers.some((c) => cells[c]?.[t] && cells[c]![t]!.base !== cells[c]![t]!.head));
  if (changedTargets.length === 0) return [];
  const cols = targets;
  const lines = [`| caller | ${cols.map((t) => `\`${esc(t)}\``).join(' | ')} |`, `|---|${cols.map(() => ':-:').join('|')}|`];
  for (const c of callers) {
    const row = cols.map((t) => {
      const cell = cells[c]?.[t];
      if (!cell) return '';
      return cell.base === cell.head ? mark(cell.head) : `**${mark(cell.base)}→${mark(cell.head)}**`;
    });
    lines.push(`| \`${esc(short(c))}\` | ${row.join(' | ')} |`);
  }
  return ['', `<details><summary>Permission matrix (✓ allowed, · denied, **bold** = changed)</summary>`, '', ...lines, '', '</details>'];
}

/** Markdown for a pull-request comment. */
export function toMarkdown(r: Review): string {
  const out = [`## Warden policy review: \`${r.base.ref}\` (${r.base.commit.slice(0, 7)}) → \`${r.head.ref}\` (${r.head.commit.slice(0, 7)})`, '', `**${headline(r)}**`];
  if (r.recordedCalls > 0) out.push('', `Replayed ${r.recordedCalls} recorded call(s) from the audit log, plus every operation and tool × every principal the specs name.`);
  for (const w of r.workloads.filter((x) => x.status !== 'unchanged')) {
    out.push('', `### ${w.workload} — ${w.status}${w.baseRevision && w.headRevision ? ` (\`${w.baseRevision}\` → \`${w.headRevision}\`)` : ''}`);
    if (w.flips.length === 0) out.push('', 'No decision flips (the change does not alter who may do what).');
    else {
      out.push('', '| flip | call | callers | calls | rule(s) now |', '|---|---|---|--:|---|');
      for (const f of w.flips) out.push(`| ${f.direction === 'deny-to-allow' ? '🔓' : '🔒'} ${arrow(f)} | \`${esc(f.target)}\` | ${f.callers.map((c) => `\`${esc(short(c))}\``).join(', ')} | ${f.count} | ${esc(why(f))} |`);
      out.push('', '<details><summary>Example inputs</summary>', '');
      for (const f of w.flips) out.push(`\`${f.target}\` (${arrow(f)}):`, '```json', JSON.stringify(f.example), '```');
      out.push('</details>');
    }
    out.push(...matrixMarkdown(w));
    if (w.unreachable.length) out.push('', `Now unreachable (someone could call it before, nobody can now): ${w.unreachable.map((t) => `\`${t}\``).join(', ')}`);
  }
  const same = r.workloads.filter((w) => w.status === 'unchanged').map((w) => w.workload);
  if (same.length) out.push('', `Unchanged bundles: ${same.join(', ')}.`);
  if (r.textDiff.trim()) out.push('', '<details><summary>Rego and spec diff</summary>', '', '```diff', r.textDiff.trimEnd(), '```', '</details>');
  return `${out.join('\n')}\n`;
}

/** A compact view for a terminal. */
export function toTerminal(r: Review, color = false): string {
  const c = (code: number, s: string) => (color ? `\x1b[${code}m${s}\x1b[0m` : s);
  const out = [`${r.base.ref} (${r.base.commit.slice(0, 7)}) → ${r.head.ref} (${r.head.commit.slice(0, 7)}): ${headline(r)}`];
  for (const w of r.workloads) {
    out.push(`  ${w.workload}: ${w.status}${w.flips.length ? `, ${w.flips.length} flip group(s)` : ''}`);
    for (const f of w.flips) {
      out.push(`    ${f.direction === 'deny-to-allow' ? c(31, 'deny → allow') : c(33, 'allow → deny')}  ${f.target}  ${f.count} call(s)  callers: ${f.callers.map(short).join(', ')}`);
      out.push(`      now: ${why(f)}`);
    }
    if (w.unreachable.length) out.push(`    now unreachable: ${w.unreachable.join(', ')}`);
  }
  return `${out.join('\n')}\n`;
}
