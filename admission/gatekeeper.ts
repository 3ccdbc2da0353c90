// Gatekeeper compatibility at admission time: which Constraints match an object (spec.match, as
// Gatekeeper reads it), and what each matching Constraint's template says (`violation` evaluated in
// the template's WASM module with `input = {review, parameters}`).
import type { AdmissionRequest } from '../formats/admission-review.js';
import type { Constraint, ConstraintMatch, EnforcementAction, LabelSelector } from '../formats/gatekeeper.js';
import type { LimitKind } from '../runtime/evaluation-limits.js';
import { EvaluationLimitError, type Policy } from '../runtime/policy.js';

/** The `input.review` Gatekeeper builds from an AdmissionRequest (or from a bare object in audit). */
export interface GatekeeperReview {
  kind: { group: string; version: string; kind: string };
  name?: string;
  namespace?: string;
  operation?: string;
  object?: Record<string, unknown> | null;
  oldObject?: Record<string, unknown> | null;
  userInfo?: unknown;
  dryRun?: boolean;
}

/** One violation a template reported. */
export interface GatekeeperViolation {
  msg: string;
  details?: unknown;
}

/** What one matching Constraint said about the object. */
export interface ConstraintResult {
  kind: string;
  name: string;
  enforcementAction: EnforcementAction;
  violations: GatekeeperViolation[];
  /** Set when the template could not be evaluated (callers treat it as a violation: fail closed). */
  error?: string;
  /** Set when the evaluation was stopped by its deadline or memory bound. */
  limit?: LimitKind;
}

/** Labels of a namespace, when the caller can look them up (for namespaceSelector). */
export type NamespaceLabels = (namespace: string) => Record<string, string> | undefined;

/** `apps/v1` → {group: apps, version: v1}; `v1` → {group: "", version: v1}. */
export function splitApiVersion(apiVersion: string): { group: string; version: string } {
  const i = apiVersion.indexOf('/');
  return i < 0 ? { group: '', version: apiVersion } : { group: apiVersion.slice(0, i), version: apiVersion.slice(i + 1) };
}

/** The review Gatekeeper evaluates for an admission request. */
export function reviewFromRequest(req: AdmissionRequest): GatekeeperReview {
  const obj = req.object ?? undefined;
  const meta = (obj?.metadata ?? {}) as { name?: string; namespace?: string };
  return {
    kind: req.kind,
    name: req.name ?? meta.name,
    namespace: req.namespace ?? meta.namespace,
    operation: req.operation,
    object: req.object ?? null,
    oldObject: req.oldObject ?? null,
    userInfo: req.userInfo,
    ...(req.dryRun !== undefined ? { dryRun: req.dryRun } : {}),
  };
}

/** The review Gatekeeper's audit (and gator) builds for a stored object: no operation, no old object. */
export function reviewFromObject(obj: Record<string, unknown>): GatekeeperReview {
  const { group, version } = splitApiVersion(String(obj.apiVersion ?? ''));
  const meta = (obj.metadata ?? {}) as { name?: string; namespace?: string };
  return { kind: { group, version, kind: String(obj.kind ?? '') }, name: meta.name, namespace: meta.namespace, object: obj };
}

// Gatekeeper's namespace patterns: exact, or a trailing `*` prefix glob.
function nsMatches(ns: string, patterns: string[]): boolean {
  return patterns.some((p) => (p.endsWith('*') ? ns.startsWith(p.slice(0, -1)) : ns === p));
}

/** metav1.LabelSelector semantics. */
export function selectorMatches(sel: LabelSelector, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    const values = e.values ?? [];
    if (e.operator === 'In' && !(has && values.includes(labels[e.key]!))) return false;
    if (e.operator === 'NotIn' && has && values.includes(labels[e.key]!)) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

const labelsOf = (o: Record<string, unknown> | null | undefined): Record<string, string> =>
  ((o?.metadata as { labels?: Record<string, string> } | undefined)?.labels ?? {});

/**
 * Does a Constraint's `spec.match` select this review? Follows Gatekeeper: empty criteria match
 * everything; a Namespace object is matched by its own name; cluster-scoped objects are not subject to
 * namespaces/excludedNamespaces; on UPDATE a labelSelector matches if the new or the old object matches.
 * A namespaceSelector whose namespace labels cannot be looked up matches (fail closed: the rule applies).
 */
export function constraintMatches(match: ConstraintMatch | undefined, review: GatekeeperReview, namespaceLabels?: NamespaceLabels): boolean {
  if (!match) return true;
  const { group, kind } = review.kind;
  if (match.kinds && match.kinds.length > 0) {
    const ok = match.kinds.some((k) => {
      const groups = k.apiGroups ?? ['*'];
      const kinds = k.kinds ?? ['*'];
      return (groups.includes('*') || groups.includes(group)) && (kinds.includes('*') || kinds.includes(kind));
    });
    if (!ok) return false;
  }
  const isNamespace = group === '' && kind === 'Namespace';
  const ns = isNamespace ? (review.name ?? '') : (review.namespace ?? '');
  if (match.scope === 'Cluster' && ns && !isNamespace) return false;
  if (match.scope === 'Namespaced' && (!ns || isNamespace)) return false;
  if (match.namespaces && ns && !nsMatches(ns, match.namespaces)) return false;
  if (match.excludedNamespaces && ns && nsMatches(ns, match.excludedNamespaces)) return false;
  if (match.name) {
    const name = review.name ?? '';
    if (!(match.name.endsWith('*') ? name.startsWith(match.name.slice(0, -1)) : name === match.name)) return false;
  }
  if (match.labelSelector) {
    const sel = match.labelSelector;
    if (!selectorMatches(sel, labelsOf(review.object)) && !(review.oldObject && selectorMatches(sel, labelsOf(review.oldObject)))) return false;
  }
  if (match.namespaceSelector && ns) {
    const labels = isNamespace ? labelsOf(review.object) : namespaceLabels?.(ns);
    if (labels && !selectorMatches(match.namespaceSelector, labels)) return false;
  }
  return true;
}

/**
 * `data.inventory` as Gatekeeper lays out replicated objects: cluster-scoped ones under
 * cluster[apiVersion][kind][name], namespaced ones under namespace[ns][apiVersion][kind][name].
 */
export function inventoryOf(objects: Array<Record<string, unknown>>): { cluster: Record<string, unknown>; namespace: Record<string, unknown> } {
  const inventory = { cluster: {} as Record<string, unknown>, namespace: {} as Record<string, unknown> };
  const put = (root: Record<string, unknown>, path: string[], value: unknown) => {
    let node = root;
    for (const k of path.slice(0, -1)) node = (node[k] ??= {}) as Record<string, unknown>;
    node[path.at(-1)!] = value;
  };
  for (const o of objects) {
    const meta = (o.metadata ?? {}) as { name?: string; namespace?: string };
    const tail = [String(o.apiVersion ?? ''), String(o.kind ?? ''), meta.name ?? ''];
    if (meta.namespace) put(inventory.namespace, [meta.namespace, ...tail], o);
    else put(inventory.cluster, tail, o);
  }
  return inventory;
}

/** Compiled templates (by Constraint kind) plus the Constraints that use them. */
export class GatekeeperSet {
  constructor(
    private readonly modules: ReadonlyMap<string, { policy: Policy; entrypoint: string }>,
    readonly constraints: readonly Constraint[],
  ) {}

  /** Constraint kinds this set has a template for. */
  get kinds(): string[] {
    return [...this.modules.keys()];
  }

  /** The same templates with other Constraints (templates are compiled once, constraints change). */
  withConstraints(constraints: readonly Constraint[]): GatekeeperSet {
    return new GatekeeperSet(this.modules, constraints);
  }

  /** Evaluate every matching Constraint. A Constraint whose kind has no template reports an error. */
  review(review: GatekeeperReview, opts: { namespaceLabels?: NamespaceLabels; inventory?: unknown; /** ms left of the review's evaluation budget. */ remainingMs?: () => number } = {}): ConstraintResult[] {
    const out: ConstraintResult[] = [];
    for (const c of this.constraints) {
      if (!constraintMatches(c.spec?.match, review, opts.namespaceLabels)) continue;
      const base = { kind: c.kind, name: c.metadata.name, enforcementAction: c.spec?.enforcementAction ?? 'deny' } as const;
      const mod = this.modules.get(c.kind);
      if (!mod) {
        out.push({ ...base, violations: [], error: `no ConstraintTemplate defines kind ${c.kind}` });
        continue;
      }
      try {
        const input = { review, parameters: c.spec?.parameters ?? {} };
        const result = mod.policy.evaluate(mod.entrypoint, input, opts.remainingMs?.());
        const list = Array.isArray(result) ? result : [];
        out.push({ ...base, violations: list.map((v) => ({ msg: String((v as { msg?: unknown }).msg ?? ''), ...((v as { details?: unknown }).details !== undefined ? { details: (v as { details?: unknown }).details } : {}) })) });
      } catch (err) {
        out.push({ ...base, violations: [], error: (err as Error).message, ...(err instanceof EvaluationLimitError ? { limit: err.limit } : {}) });
      }
    }
    return out;
  }
}
