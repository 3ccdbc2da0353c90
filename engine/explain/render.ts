// An explanation for a terminal, for a ticket (Markdown) and for machines (JSON).
import { table } from '../audit/render.js';
import type { Explanation } from './explanation.js';

/** Output formats of `warden explain`. */
export type ExplainFormat = 'table' | 'json' | 'markdown';

const at = (r: { file: string; row: number } | undefined) => (r ? `${r.file}:${r.row}` : '-');

// What the replay gave when it is not what was stored (e.g. `deny: request refused: …` for an allow recorded
// before a check the runtime now makes); undefined when it matches or did not run.
function replayedOutcome(x: Explanation): string | undefined {
  if ((x.replay.status !== 'differs' && x.replay.status !== 'masked-differs') || x.replay.allow === undefined) return undefined;
  return `${x.replay.allow ? 'allow' : 'deny'}${x.replay.reasons?.length ? `: ${x.replay.reasons.join('; ')}` : ''}`;
}

// The deciding rules: those OPA finished that grant, deny or decide (not helpers like `tool`).
const DECIDING = new Set(['decision', 'deny', 'denials', 'grants', 'tool_grants', 'allow', 'denial', 'violations']);

/** The rules OPA reports as having held and that decide (grants, denials, the decision itself). */
export function decidingRules(x: Explanation): Array<{ file: string; row: number; name: string; source: string }> {
  return (x.opa?.held ?? []).filter((r) => DECIDING.has(r.name));
}

function bundleLine(x: Explanation): string {
  if (x.bundle.found === 'none') return `${x.bundle.name}: no bundle was loaded`;
  if (x.bundle.found === 'missing') return `${x.bundle.name} ${x.bundle.revision}: not in the revision archive`;
  return `${x.bundle.name} ${x.bundle.revision} (from the engine's revision archive, sha256 ${x.bundle.sha256?.slice(0, 12)}…, kept ${x.bundle.keptAt})`;
}

/** The explanation as text for a terminal. */
export function explainTerminal(x: Explanation): string {
  const out: string[] = [];
  out.push(`decision ${x.decision_id}: ${x.outcome.toUpperCase()} (${x.mode}) at ${x.timestamp}`);
  out.push(`  call      ${x.call}`, `  caller    ${x.principal}`, `  workload  ${x.namespace}/${x.workload}`, `  bundle    ${bundleLine(x)}`);
  out.push(`  replay    ${x.replay.status}: ${x.replay.note}`);
  const replayed = replayedOutcome(x);
  if (replayed) out.push(`  replayed  ${replayed}`);
  if (x.stored.error) out.push(`  error     ${x.stored.error}`);
  if (x.opa) out.push(`  opa eval  ${x.opa.allow ? 'allow' : 'deny'}${x.opa.agreesWithWasm ? ' (agrees with the WASM replay)' : ' (DIFFERS from the WASM replay)'}`);
  if (x.reasons.length) {
    out.push('', 'reasons, and the rule that produced each:');
    out.push(table(['RULE', 'REASON'], x.reasons.map((r) => [at(r.rule), r.reason])).trimEnd().replace(/^/gm, '  '));
  }
  const rules = decidingRules(x);
  if (rules.length) {
    out.push('', 'deciding rules (opa eval --explain full over the bundle\'s Rego):');
    out.push(table(['RULE', 'SOURCE'], rules.map((r) => [at(r), r.source])).trimEnd().replace(/^/gm, '  '));
  }
  if (x.wouldAllow) {
    out.push('', `what would have allowed it: ${x.wouldAllow.summary}`);
    for (const g of x.wouldAllow.grants) {
      const failed = g.conditions.filter((c) => !c.held).map((c) => c.says!);
      const state = g.void ? `grants nothing: ${g.void}` : g.covers ? 'covers the caller' : failed.join('; ');
      out.push(`  x-warden-authz.allow[${g.index}] ${JSON.stringify(g.grant)}${g.where ? `  (${g.where})` : ''}`, `    ${g.covers ? '✓' : '✗'} ${state}`);
      if (g.void && failed.length) out.push(`    and its conditions: ${failed.join('; ')}`);
    }
  }
  if (x.findings) {
    out.push('', x.findings.length ? 'findings:' : 'no findings');
    for (const f of x.findings) {
      out.push(`  [${f.set}/${f.rule}] ${f.mode}${f.field ? `  field ${f.field}` : ''}${f.container ? `  container ${f.container}` : ''}`, `    ${f.msg}`, `    rule:      ${f.source}${f.sourceLine ? `  ${f.sourceLine}` : ''}`, `    exemption: ${f.exemption}`);
    }
  }
  return `${out.join('\n')}\n`;
}

const md = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** The explanation as Markdown, for pasting into a ticket. */
export function explainMarkdown(x: Explanation): string {
  const out: string[] = [`### Warden decision \`${x.decision_id}\`: **${x.outcome}** (${x.mode})`, ''];
  out.push('| | |', '|---|---|', `| call | \`${md(x.call)}\` |`, `| caller | \`${md(x.principal)}\` |`, `| workload | ${md(`${x.namespace}/${x.workload}`)} |`, `| time | ${x.timestamp} |`, `| bundle | ${md(bundleLine(x))} |`, `| replay | **${x.replay.status}**: ${md(x.replay.note)} |`);
  const replayed = replayedOutcome(x);
  if (replayed) out.push(`| replayed | ${md(replayed)} |`);
  if (x.opa) out.push(`| opa eval | ${x.opa.allow ? 'allow' : 'deny'}${x.opa.agreesWithWasm ? ', agrees with the WASM replay' : ', **differs from the WASM replay**'} |`);
  if (x.reasons.length) {
    out.push('', '**Reasons**', '', '| rule | reason |', '|---|---|');
    for (const r of x.reasons) out.push(`| \`${at(r.rule)}\` | ${md(r.reason)} |`);
  }
  const rules = decidingRules(x);
  if (rules.length) {
    out.push('', '<details><summary>Deciding rules (<code>opa eval --explain full</code>)</summary>', '', '| rule | source |', '|---|---|');
    for (const r of rules) out.push(`| \`${at(r)}\` | \`${md(r.source)}\` |`);
    out.push('', '</details>');
  }
  if (x.wouldAllow) {
    out.push('', `**What would have allowed it:** ${md(x.wouldAllow.summary)}`, '');
    for (const g of x.wouldAllow.grants) {
      const failed = g.conditions.filter((c) => !c.held).map((c) => c.says!);
      out.push(`- ${g.covers ? '✅' : '❌'} \`x-warden-authz.allow[${g.index}]\` \`${md(JSON.stringify(g.grant))}\`${g.where ? ` (${g.where})` : ''}: ${md(g.void ?? (g.covers ? 'covers the caller' : failed.join('; ')))}`);
    }
  }
  if (x.findings?.length) {
    out.push('', '**Findings**', '', '| rule | mode | field | message | source | exemption |', '|---|---|---|---|---|---|');
    for (const f of x.findings) out.push(`| \`${f.set}/${md(f.rule)}\` | ${f.mode} | ${f.field ? `\`${md(f.field)}\`` : ''} | ${md(f.msg)} | ${md(f.source)} | ${md(f.exemption)} |`);
  }
  return `${out.join('\n')}\n`;
}

/** The explanation in a format. */
export function renderExplanation(x: Explanation, format: ExplainFormat): string {
  if (format === 'json') return `${JSON.stringify(x, null, 2)}\n`;
  return format === 'markdown' ? explainMarkdown(x) : explainTerminal(x);
}
