// One admission decision, as a pipeline of small steps:
//   parse review → operation → exempt namespace → kind → pod template → coverage → node access
//   → guardrails (WASM) → Gatekeeper constraints (WASM) → modes → response (+ warnings) → decision event.
// Fail closed: anything this code cannot judge for a reviewed kind is a denial that says why.
import { newDecisionId } from '../formats/decision-id.js';
import {
  ADMISSION_API_VERSION,
  ADMISSION_ENTRYPOINT,
  admissionReviewRequest,
  admissionViolations,
  type AdmissionRequest,
  type AdmissionResponse,
  type AdmissionReview,
} from '../formats/admission-review.js';
import type { DecisionEvent } from '../formats/decision-event.js';
import type { AdmissionPolicies } from './bundle.js';
import { EvaluationLimitError } from '../runtime/policy.js';
import { exemptNamespaces, type AdmissionConfig, type RuleMode } from './config.js';
import { checkCoverage, serviceAccountOf, type WorkloadDirectory } from './coverage.js';
import { INJECT_KEY } from './injection.js';
import { checkNodeAccess, isInterceptionInit } from './node-access.js';
import { reviewFromRequest } from './gatekeeper.js';
import type { NamespaceDirectory } from './namespaces.js';
import type { InventoryGatekeeper } from './inventory.js';
import { isPodKind, podTemplateOf } from './pod-template.js';

/** Where decision events go (the proxy plugin's DecisionLog fits; so does a pino logger sink). */
export interface DecisionSink {
  record(event: DecisionEvent): void;
}

/** Which rule set a finding comes from. */
export type RuleSet = 'coverage' | 'guardrails' | 'gatekeeper' | 'review';

/** One reason to refuse (or warn about) an object. */
export interface Finding {
  set: RuleSet;
  rule: string;
  msg: string;
  mode: RuleMode;
  field?: string;
  container?: string;
}

/** What the decision needs, passed in (no singletons). */
export interface AdmissionDeps {
  config: AdmissionConfig;
  /** The currently loaded admission bundle, or undefined when none could be loaded. */
  policies: () => AdmissionPolicies | undefined;
  directory: WorkloadDirectory;
  sink: DecisionSink;
  now?: () => Date;
  /** Namespace labels for Constraints with a namespaceSelector (absent: such constraints apply). */
  namespaces?: NamespaceDirectory;
  /** Replicated objects for templates that read data.inventory (absent: they see an empty inventory). */
  inventory?: InventoryGatekeeper;
  instance?: string;
}

/** HTTP status and body the server sends back. */
export interface AdmissionOutcome {
  httpStatus: number;
  body: AdmissionReview | { error: string };
  findings: Finding[];
}

const review = (response: AdmissionResponse): AdmissionReview => ({ apiVersion: ADMISSION_API_VERSION, kind: 'AdmissionReview', response });

function describe(f: Finding): string {
  const where = [f.container ? `container ${f.container}` : undefined, f.field].filter(Boolean).join(', ');
  return `[${f.set}/${f.rule}]${where ? ` (${where})` : ''} ${f.msg}`;
}

/** The denial a kubectl user reads: what was refused, each rule with its field, and what to do. */
export function denialMessage(req: Pick<AdmissionRequest, 'kind' | 'namespace' | 'name'>, object: Record<string, unknown> | null | undefined, denied: Finding[]): string {
  const name = req.name || ((object?.metadata as { name?: string } | undefined)?.name ?? '');
  const target = `${req.kind.kind} ${req.namespace ? `${req.namespace}/` : ''}${name}`.trim();
  return `Warden refused ${target}: ${denied.length} problem(s):\n${denied.map((f) => `  - ${describe(f)}`).join('\n')}\n(see the rule in policies/admission/ or ask the platform team for an exemption)`;
}

// Gatekeeper's action combined with the rule set's mode: the milder of the two wins.
const strength: Record<RuleMode, number> = { enforce: 2, warn: 1, 'dry-run': 0 };
const milder = (a: RuleMode, b: RuleMode): RuleMode => (strength[a] <= strength[b] ? a : b);
const fromAction = { deny: 'enforce', warn: 'warn', dryrun: 'dry-run' } as const;

/** What a webhook step says about its decision; recordAdmission adds the rest of the event. */
export type AdmissionEventFields = Omit<DecisionEvent, 'decision_id' | 'timestamp' | 'kind' | 'path' | 'labels' | 'bundles'> & { labels: { workload: string; namespace: string }; bundles?: DecisionEvent['bundles'] };

/** Send one admission decision event to the sink (validating and mutating webhooks alike). Never throws. */
export function recordAdmission(deps: Pick<AdmissionDeps, 'sink' | 'now' | 'instance'>, started: number, partial: AdmissionEventFields, path = 'warden/admission'): void {
  const now = deps.now ?? (() => new Date());
  try {
    deps.sink.record({
      decision_id: newDecisionId(),
      timestamp: now().toISOString(),
      kind: 'admission',
      path,
      bundles: {},
      ...partial,
      // The engine accepts the webhook's events as the workload `admission` only (docs/engine.md,
      // --admission-principal): the reviewed workload (or object name) travels in input.workload.
      ...(partial.input ? { input: { ...partial.input, workload: partial.labels.workload } } : {}),
      labels: { workload: 'admission', namespace: partial.labels.namespace, source: 'admission', ...(deps.instance ? { instance: deps.instance } : {}) },
      metrics: { timer_admission_ns: Math.round((performance.now() - started) * 1e6) },
    });
  } catch {
    // A sink must not turn a decision into a crash; the sink itself counts what it loses.
  }
}

/** Decide one AdmissionReview body (already parsed JSON). Never throws. */
export async function admit(body: unknown, deps: AdmissionDeps): Promise<AdmissionOutcome> {
  const started = performance.now();
  const uid = typeof (body as { request?: { uid?: unknown } })?.request?.uid === 'string' ? (body as { request: { uid: string } }).request.uid : undefined;
  const emit = (partial: AdmissionEventFields) => recordAdmission(deps, started, partial);

  // 1. Parse: the wrong shape or version is an error the API server shows (failurePolicy applies).
  const issues = admissionReviewRequest.check(body);
  if (issues.length > 0) {
    const error = `malformed AdmissionReview: ${issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ')} (Warden accepts ${ADMISSION_API_VERSION} only)`;
    emit({ outcome: 'deny', mode: 'enforce', labels: { workload: 'unknown', namespace: 'unknown' }, error });
    const finding: Finding = { set: 'review', rule: 'malformed', msg: error, mode: 'enforce' };
    if (uid) return { httpStatus: 200, body: review({ uid, allowed: false, status: { code: 400, reason: 'BadRequest', message: error } }), findings: [finding] };
    return { httpStatus: 400, body: { error }, findings: [finding] };
  }
  const req = (body as { request: AdmissionRequest }).request;
  const ns = req.namespace ?? '';
  const objName = req.name || ((req.object?.metadata as { name?: string } | undefined)?.name ?? '');
  const labels = { workload: objName || 'unknown', namespace: ns || 'cluster' };
  // request.userInfo is where the audit store reads an admission decision's principal (engine/audit/table.ts).
  const input = { uid: req.uid, operation: req.operation, kind: req.kind, namespace: ns, name: objName, user: req.userInfo?.username ?? '', request: { userInfo: { username: req.userInfo?.username ?? '' } } };
  const allow = (note: string): AdmissionOutcome => {
    emit({ outcome: 'allow', mode: 'enforce', labels, input, result: { allowed: true, note } });
    return { httpStatus: 200, body: review({ uid: req.uid, allowed: true, auditAnnotations: { 'warden.dev/note': note } }), findings: [] };
  };

  // 2–3. Only CREATE/UPDATE are judged; exempt namespaces pass (logged).
  if (req.operation !== 'CREATE' && req.operation !== 'UPDATE') return allow(`operation ${req.operation} is not reviewed`);
  if (ns && exemptNamespaces(deps.config).has(ns)) return allow(`namespace ${ns} is exempt`);
  // An object being deleted only has finalizers removed by UPDATEs: refusing them would make a
  // non-compliant object (e.g. one that predates the webhook) impossible to delete.
  if (req.operation === 'UPDATE' && (req.object?.metadata as { deletionTimestamp?: string } | undefined)?.deletionTimestamp) {
    return allow('the object is being deleted');
  }

  const findings: Finding[] = [];
  // Set when an evaluation was stopped by its deadline or memory bound (the event says so).
  let limited: string | undefined;
  // What is left of the review's evaluation budget: a review matching many templates cannot spend one
  // deadline in each past the API server's timeout (one given 0 ms stops at its first look at the clock).
  const remainingMs = () => Math.floor(deps.config.evaluation.reviewBudgetMs - (performance.now() - started));
  const policies = deps.policies();
  const bundles: DecisionEvent['bundles'] = policies ? { admission: { revision: policies.revision } } : {};
  const podKind = isPodKind(req.kind.group, req.kind.kind);
  let workload: string | undefined;

  if (!req.object || typeof req.object !== 'object') {
    findings.push({ set: 'review', rule: 'no-object', msg: `the ${req.operation} request carries no object to review`, mode: 'enforce' });
  } else if (!policies) {
    findings.push({ set: 'review', rule: 'no-policy', msg: 'the webhook has no verified admission bundle loaded; run `warden build` and make bundles/admission.tar.gz available to the webhook', mode: 'enforce' });
  } else if (podKind) {
    // 4. The pod template; a reviewed kind without one is malformed, not "nothing to check".
    const pod = podTemplateOf(req.kind.kind, req.object);
    if (!pod) {
      findings.push({ set: 'review', rule: 'no-pod-template', msg: `${req.kind.kind} has no pod template where Kubernetes expects it; it cannot be reviewed`, mode: 'enforce' });
    } else {
      // 5. Coverage.
      // A controller's pods will be injected when the namespace carries the label (unknown: labels unreadable).
      const nsLabels = req.kind.kind !== 'Pod' && deps.namespaces && ns ? await deps.namespaces.labels(ns) : undefined;
      const cov = await checkCoverage(pod, req.kind.kind, ns, {
        directory: deps.directory,
        whenUnreachable: deps.config.coverage.whenEngineUnreachable,
        injection: deps.config.injection,
        namespaceLabelled: nsLabels ? nsLabels[INJECT_KEY] === 'enabled' : undefined,
      });
      workload = cov.workload;
      if (cov.workload && cov.revision) bundles[cov.workload] = { revision: cov.revision };
      for (const f of cov.findings) findings.push({ set: 'coverage', mode: deps.config.coverage.mode, ...f });
      (input as Record<string, unknown>).serviceAccount = serviceAccountOf(pod);
      // 6. Node access (in code: its one exception is the configured interception init).
      for (const f of checkNodeAccess(pod, deps.config.injection)) findings.push({ set: 'guardrails', mode: deps.config.guardrails.rules[f.rule] ?? deps.config.guardrails.mode, ...f });
      // 7. Guardrails; the verified interception init is the one container they let run as root.
      if (policies.guardrails) {
        try {
          const interception = isInterceptionInit(pod.spec, deps.config.injection) ? { interception_init: { list: 'initContainers', index: 0 } } : {};
          const raw = policies.guardrails.evaluate(ADMISSION_ENTRYPOINT, { kind: req.kind.kind, namespace: ns, name: objName, operation: req.operation, path: pod.path, pod: { metadata: pod.metadata, spec: pod.spec }, ...interception }, remainingMs());
          for (const v of admissionViolations.parse(raw ?? [], ADMISSION_ENTRYPOINT)) {
            findings.push({ set: 'guardrails', rule: v.rule, msg: v.msg, mode: deps.config.guardrails.rules[v.rule] ?? deps.config.guardrails.mode, ...(v.field ? { field: v.field } : {}), ...(v.container ? { container: v.container } : {}) });
          }
        } catch (err) {
          if (err instanceof EvaluationLimitError) limited = `evaluation limit (${err.limit}): guardrails: ${err.message}`;
          findings.push({ set: 'guardrails', rule: err instanceof EvaluationLimitError ? 'evaluation-limit' : 'evaluation-error', msg: `the guardrails could not be evaluated (${(err as Error).message}); the object is refused until they can`, mode: 'enforce' });
        }
      }
    }
  } else if (deps.config.unknownKinds === 'deny') {
    findings.push({ set: 'review', rule: 'unknown-kind', msg: `Warden does not review ${req.kind.group || 'core'}/${req.kind.kind}; remove it from the webhook's rules or set unknownKinds: allow`, mode: 'enforce' });
  }

  // 8. Gatekeeper constraints, for every kind they match.
  if (policies && req.object) {
    const needsLabels = ns && deps.namespaces && policies.gatekeeper.constraints.some((c) => c.spec?.match?.namespaceSelector);
    const nsLabels = needsLabels ? await deps.namespaces!.labels(ns) : undefined;
    const gatekeeper = deps.inventory ? await deps.inventory.setFor(policies) : policies.gatekeeper;
    for (const r of gatekeeper.review(reviewFromRequest(req), { namespaceLabels: (n) => (n === ns ? nsLabels : undefined), remainingMs })) {
      const mode = milder(fromAction[r.enforcementAction] ?? 'enforce', deps.config.gatekeeper.mode);
      if (r.limit) limited = `evaluation limit (${r.limit}): ${r.kind}/${r.name}: ${r.error}`;
      if (r.error) findings.push({ set: 'gatekeeper', rule: `${r.kind}/${r.name}`, msg: `could not be evaluated (${r.error}); refused until it can`, mode: 'enforce' });
      for (const v of r.violations) findings.push({ set: 'gatekeeper', rule: `${r.kind}/${r.name}`, msg: v.msg, mode });
    }
  }

  // 9. Modes → response.
  const denied = findings.filter((f) => f.mode === 'enforce');
  const warned = findings.filter((f) => f.mode === 'warn');
  const dry = findings.filter((f) => f.mode === 'dry-run');
  const result = { allowed: denied.length === 0, findings };
  if (!podKind && findings.length === 0) (result as Record<string, unknown>).note = `${req.kind.kind} is not a pod controller: only Gatekeeper constraints apply`;
  emit({
    outcome: denied.length > 0 ? 'deny' : dry.length > 0 ? 'dry-run-deny' : 'allow',
    mode: denied.length > 0 ? 'enforce' : warned.length > 0 ? 'warn' : dry.length > 0 ? 'dry-run' : 'enforce',
    labels: { ...labels, workload: workload ?? labels.workload },
    bundles,
    input,
    result,
    // A review stopped by a limit is its own kind of event: the audit log can find every one.
    ...(limited ? { error: limited } : {}),
  });
  const response: AdmissionResponse = { uid: req.uid, allowed: denied.length === 0 };
  if (denied.length > 0) response.status = { code: 403, reason: 'Forbidden', message: denialMessage(req, req.object, denied) };
  if (warned.length > 0) response.warnings = warned.map((f) => `warden ${describe(f)}`.slice(0, 1024));
  if (dry.length > 0) response.auditAnnotations = { 'warden.dev/dry-run': dry.map(describe).join('; ').slice(0, 4096) };
  return { httpStatus: 200, body: review(response), findings };
}
