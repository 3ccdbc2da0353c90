// The review as Markdown (a PR comment), JSON (machines), a terminal view and a self-contained HTML page.
import { html, page, type Html } from '../html.js';
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

/** Style of the review page and of the console's matrix (one sheet, inlined in the self-contained page). */
export const REVIEW_CSS = `body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1d2330}h1,h2,h3{font-weight:600}
table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #d5d9e0;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f1f3f7}.yes{color:#137333;text-align:center}.no{color:#9aa0a6;text-align:center}.flip{background:#fff3cd;font-weight:600;text-align:center}
.widen{color:#b3261e}.narrow{color:#8a5a00}code{font:12px ui-monospace,monospace;background:#f1f3f7;padding:1px 3px;border-radius:3px}
pre{background:#f6f8fa;padding:8px;overflow:auto;font-size:12px}`;

/** The permission matrix as an HTML table (✓ allowed, · denied, highlighted where base and head differ). */
export function matrixHtml(m: WorkloadDiff['matrix']): Html {
  const cell = (c: { base: boolean; head: boolean } | undefined) =>
    !c ? html`<td></td>` : c.base === c.head ? html`<td class="${c.head ? 'yes' : 'no'}">${mark(c.head)}</td>` : html`<td class="flip">${mark(c.base)}→${mark(c.head)}</td>`;
  return html`<table class="matrix"><thead><tr><th>caller</th>${m.targets.map((t) => html`<th><code>${t}</code></th>`)}</tr></thead><tbody>${m.callers.map((c) => html`<tr><th><code>${short(c)}</code></th>${m.targets.map((t) => cell(m.cells[c]?.[t]))}</tr>`)}</tbody></table>`;
}

/** The review as one self-contained HTML page (inline style, no script), fit for a CI artifact. */
export function toHtml(r: Review): string {
  const body = html`<h1>Warden policy review: <code>${r.base.ref}</code> (${r.base.commit.slice(0, 7)}) → <code>${r.head.ref}</code> (${r.head.commit.slice(0, 7)})</h1>
<p><strong>${headline(r)}</strong></p>${r.recordedCalls > 0 ? html`<p>Replayed ${r.recordedCalls} recorded call(s) from the audit log, plus every operation and tool × every principal the specs name.</p>` : ''}
${r.workloads.map((w) => html`<section><h2>${w.workload} — ${w.status}${w.baseRevision && w.headRevision ? html` (<code>${w.baseRevision}</code> → <code>${w.headRevision}</code>)` : ''}</h2>
${w.status === 'unchanged' ? '' : w.flips.length === 0 ? html`<p>No decision flips (the change does not alter who may do what).</p>` : html`<table><thead><tr><th>flip</th><th>call</th><th>callers</th><th>calls</th><th>rule(s) now</th></tr></thead><tbody>${w.flips.map((f) => html`<tr><td class="${f.direction === 'deny-to-allow' ? 'widen' : 'narrow'}">${arrow(f)}</td><td><code>${f.target}</code></td><td>${f.callers.map((c) => html`<code>${short(c)}</code> `)}</td><td>${f.count}</td><td>${why(f)}</td></tr>`)}</tbody></table>`}
${w.matrix.callers.length ? html`<details open><summary>Permission matrix (✓ allowed, · denied, highlighted = changed)</summary>${matrixHtml(w.matrix)}</details>` : ''}
${w.unreachable.length ? html`<p>Now unreachable: ${w.unreachable.map((t) => html`<code>${t}</code> `)}</p>` : ''}</section>`)}
${r.textDiff.trim() ? html`<details><summary>Rego and spec diff</summary><pre>${r.textDiff.trimEnd()}</pre></details>` : ''}`;
  return page(`Warden policy review ${r.base.ref} → ${r.head.ref}`, body, { inline: REVIEW_CSS });
}
