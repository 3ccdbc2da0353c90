// An admission refusal, finding by finding: the rule that produced it and where its source is, the
// field it points at, and how a namespace or a rule would be exempted. The rule's source is read from
// the admission bundle revision that decided (guardrails: the line naming the rule in the Rego source the bundle ships;
// Gatekeeper: the template and constraint the bundle carries).

import type { VerifiedBundle } from '../../runtime/bundle.js';
import { ADMISSION_SOURCES } from '../compiler/admission.js';

/** One finding, explained. */
export interface FindingExplained {
  set: string;
  rule: string;
  msg: string;
  mode: string;
  field?: string;
  container?: string;
  /** Where the rule is written: bundle path:line, or the part of the webhook that checks it. */
  source: string;
  /** The source line (guardrails), when found. */
  sourceLine?: string;
  /** How to exempt a namespace or soften the rule, as configuration paths. */
  exemption: string;
}

const obj = (v: unknown): Record<string, unknown> => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {});

// The Rego line that names the rule (`"rule": "<name>"`) in the bundle's guardrail sources.
function guardrailSource(bundle: VerifiedBundle | undefined, rule: string): { source: string; sourceLine?: string } {
  for (const [name, bytes] of bundle?.files ?? []) {
    const path = name.replace(/^\/+/, '');
    if (!path.startsWith(ADMISSION_SOURCES) || !path.endsWith('.rego.src')) continue;
    const lines = bytes.toString('utf8').split('\n');
    const at = lines.findIndex((l) => l.includes(`"rule": ${JSON.stringify(rule)}`));
    // Named as in the policy repository: admission/<file>.rego.
    if (at >= 0) return { source: `admission/${path.slice(ADMISSION_SOURCES.length, -'.src'.length)}:${at + 1}`, sourceLine: lines[at]!.trim() };
  }
  return { source: bundle ? `no rule named ${rule} in the admission bundle's Rego` : 'the admission bundle revision is not in the archive' };
}

function gatekeeperSource(bundle: VerifiedBundle | undefined, rule: string): { source: string; exemption: string } {
  const [kind, name] = rule.split('/');
  const gk = obj(obj(bundle?.data).gatekeeper);
  const template = (Array.isArray(gk.templates) ? gk.templates : []).map(obj).find((t) => t.kind === kind);
  const constraint = (Array.isArray(gk.constraints) ? gk.constraints : []).map(obj).find((c) => c.kind === kind && obj(c.metadata).name === name);
  const excluded = obj(obj(constraint?.spec).match).excludedNamespaces;
  return {
    source: template ? `ConstraintTemplate ${String(template.name)} (${String(template.module ?? '')}) with Constraint ${rule}, from policies/admission/gatekeeper/` : `Constraint ${rule} (policies/admission/gatekeeper/)`,
    exemption: `add the namespace to the Constraint's spec.match.excludedNamespaces${Array.isArray(excluded) ? ` (now: ${excluded.join(', ') || 'none'})` : ''}, or set its spec.enforcementAction to warn or dryrun; or the webhook config's exemptNamespaces / gatekeeper.mode`,
  };
}

/** Each finding of a stored admission result, with its source and exemption path. */
export function admissionFindings(result: Record<string, unknown>, bundle: VerifiedBundle | undefined): FindingExplained[] {
  const findings = Array.isArray(result.findings) ? result.findings.map(obj) : [];
  return findings.map((f) => {
    const set = String(f.set ?? '');
    const rule = String(f.rule ?? '');
    const base = { set, rule, msg: String(f.msg ?? ''), mode: String(f.mode ?? ''), ...(typeof f.field === 'string' ? { field: f.field } : {}), ...(typeof f.container === 'string' ? { container: f.container } : {}) };
    if (set === 'guardrails') return { ...base, ...guardrailSource(bundle, rule), exemption: `the webhook config's exemptNamespaces, or guardrails.rules.${rule}: warn | dry-run` };
    if (set === 'gatekeeper') return { ...base, ...gatekeeperSource(bundle, rule) };
    if (set === 'coverage') return { ...base, source: `the webhook's coverage check (${rule}): the workload's sidecar, image digest, interception and signed bundle`, exemption: "the webhook config's exemptNamespaces, or coverage.mode: warn | dry-run; better, give the workload a policy folder and the sidecar" };
    return { ...base, source: "the webhook's review of the request itself", exemption: 'none: fix the request' };
  });
}
