// The mutating webhook (`POST /mutate`, `POST /mutate/annotated`): injects the sidecar contract
// (admission/injection.ts) into Pods on CREATE, as a JSON Patch. A pipeline of small steps:
//   parse review → Pod CREATE? → exempt namespace → asked for? → already injected? → hostNetwork?
//   → proxy image configured? → workload of the service account → patch.
// Which pods ask: the MutatingWebhookConfiguration sends pods of namespaces labelled
// warden.dev/inject=enabled to /mutate (the API server matches the label, so the webhook never has to
// read namespaces), and pods of every other reviewed namespace to /mutate/annotated, where only pods
// annotated warden.dev/inject: enabled are injected.
// It never makes a pod acceptable by itself: the validating webhook runs after it and checks the
// result. Injection is idempotent: a pod that carries any part of the contract is left alone.
import { ADMISSION_API_VERSION, admissionReviewRequest, type AdmissionRequest, type AdmissionResponse, type AdmissionReview } from '../formats/admission-review.js';
import { exemptNamespaces } from './config.js';
import { serviceAccountOf } from './coverage.js';
import { recordAdmission, type AdmissionDeps, type AdmissionOutcome } from './decide.js';
import { SIDECAR_PORTS } from '../formats/interception.js';
import { alreadyInjected, annotatedForInjection, appPortsOf, injectionPatch, INJECT_KEY, PROXY_CONTAINER, type PatchOp } from './injection.js';
import { undeclaredProbeWarnings } from './app-probes.js';
import { podTemplateOf } from './pod-template.js';

/** Which pods this endpoint injects: every pod (a labelled namespace) or annotated pods only. */
export type InjectionScope = 'namespace' | 'annotated';

const review = (response: AdmissionResponse): AdmissionReview => ({ apiVersion: ADMISSION_API_VERSION, kind: 'AdmissionReview', response });

/** The result of deciding one Pod: the patch, or nothing to do (and why), or a refusal. */
export type Injection = { patch: PatchOp[]; workload: string; warnings?: string[] } | { skip: string } | { refuse: string };

/** Decide injection for a Pod CREATE request (exported for the tests and the benchmark). */
export async function decideInjection(req: AdmissionRequest, deps: AdmissionDeps, scope: InjectionScope): Promise<Injection> {
  if (req.operation !== 'CREATE' || req.kind.group !== '' || req.kind.kind !== 'Pod' || req.subResource) return { skip: `${req.operation} of ${req.kind.kind}${req.subResource ? `/${req.subResource}` : ''} is not injected` };
  const ns = req.namespace ?? '';
  if (exemptNamespaces(deps.config).has(ns)) return { skip: `namespace ${ns} is exempt` };
  const pod = req.object && typeof req.object === 'object' ? podTemplateOf('Pod', req.object) : undefined;
  if (!pod) return { refuse: 'the Pod has no spec; it cannot be injected' };
  if (scope === 'annotated' && !annotatedForInjection(pod)) return { skip: `neither the namespace is labelled ${INJECT_KEY}=enabled nor the pod annotated ${INJECT_KEY}: enabled` };
  if (alreadyInjected(pod.spec)) return { skip: 'the pod already carries the Warden sidecar (or part of it); the validating webhook checks it' };
  // The interception init writes iptables rules into the pod's network namespace: with hostNetwork that is the node's.
  if (pod.spec.hostNetwork === true) return { refuse: "the pod uses hostNetwork: Warden cannot intercept its inbound connections (they never enter a pod network namespace), and it will not write rules into the node's; remove hostNetwork" };
  const cfg = deps.config.injection;
  if (appPortsOf(pod.spec).includes(SIDECAR_PORTS.admin)) return { refuse: `a container declares port ${SIDECAR_PORTS.admin}, which is the Warden sidecar's admin port; move the app to another port` };
  if (!cfg.proxyImage) return { refuse: 'the webhook configuration names no proxy image (injection.proxyImage, pinned by digest); the platform team must set it' };
  const sa = serviceAccountOf(pod);
  const found = await deps.directory.lookup(ns, sa);
  if (found.status === 'unknown') {
    const why = `service account ${sa} in namespace ${ns} is not a workload of the policy repository (no signed bundle at the current revision)`;
    if (cfg.whenNoBundle === 'skip') return { skip: `${why}; not injected (injection.whenNoBundle: skip)` };
    return { refuse: `${why}: add policies/workloads/<name>/workload.yaml with namespace: ${ns} and serviceAccount: ${sa}, build and publish it, or run the pod as a service account that has one` };
  }
  if (found.status === 'unreachable') {
    if (deps.config.coverage.whenEngineUnreachable === 'allow') return { skip: `not injected: ${found.error} (allowed by configuration)` };
    return { refuse: `cannot tell which workload service account ${sa} runs: ${found.error}; retry when the Warden engine is reachable` };
  }
  const patch = injectionPatch(pod, ns, sa, found.workload, found.revision, cfg);
  if (!Array.isArray(patch)) return patch;
  const warnings = undeclaredProbeWarnings(pod, appPortsOf(pod.spec), PROXY_CONTAINER);
  return { patch, workload: found.workload, ...(warnings.length > 0 ? { warnings: warnings.map((w) => `warden: ${w}`.slice(0, 1024)) } : {}) };
}

/** Answer one AdmissionReview body at a mutating endpoint. Never throws. */
export async function mutate(body: unknown, deps: AdmissionDeps, scope: InjectionScope): Promise<AdmissionOutcome> {
  const started = performance.now();
  const issues = admissionReviewRequest.check(body);
  if (issues.length > 0) {
    const error = `malformed AdmissionReview: ${issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ')} (Warden accepts ${ADMISSION_API_VERSION} only)`;
    const uid = (body as { request?: { uid?: unknown } } | null)?.request?.uid;
    const finding = { set: 'review' as const, rule: 'malformed', msg: error, mode: 'enforce' as const };
    if (typeof uid === 'string') return { httpStatus: 200, body: review({ uid, allowed: false, status: { code: 400, reason: 'BadRequest', message: error } }), findings: [finding] };
    return { httpStatus: 400, body: { error }, findings: [finding] };
  }
  const req = (body as { request: AdmissionRequest }).request;
  let decided: Injection;
  try {
    decided = await decideInjection(req, deps, scope);
  } catch (err) {
    decided = { refuse: `injection failed: ${(err as Error).message}` };
  }
  if ('refuse' in decided) {
    const name = req.name || ((req.object?.metadata as { generateName?: string } | undefined)?.generateName ?? '');
    const message = `Warden could not inject Pod ${req.namespace ?? ''}/${name}: ${decided.refuse}`;
    // A refusal is a decision like the validating webhook's: it goes to the audit log (an injection is
    // recorded there when the validating webhook admits the injected Pod).
    const finding = { set: 'coverage', rule: 'injection', msg: decided.refuse, mode: 'enforce' };
    recordAdmission(deps, started, {
      outcome: 'deny',
      mode: 'enforce',
      labels: { workload: name || 'unknown', namespace: req.namespace || 'cluster' },
      input: { uid: req.uid, operation: req.operation, kind: req.kind, namespace: req.namespace ?? '', name, user: req.userInfo?.username ?? '', request: { userInfo: { username: req.userInfo?.username ?? '' } } },
      result: { allowed: false, findings: [finding] },
    }, 'warden/admission/inject');
    return { httpStatus: 200, body: review({ uid: req.uid, allowed: false, status: { code: 403, reason: 'Forbidden', message } }), findings: [{ set: 'coverage', rule: 'injection', msg: decided.refuse, mode: 'enforce' }] };
  }
  if ('skip' in decided) return { httpStatus: 200, body: review({ uid: req.uid, allowed: true, auditAnnotations: { injection: decided.skip } }), findings: [] };
  return {
    httpStatus: 200,
    body: review({ uid: req.uid, allowed: true, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(decided.patch)).toString('base64'), auditAnnotations: { injection: `injected the sidecar for workload ${decided.workload}` }, ...(decided.warnings ? { warnings: decided.warnings } : {}) }),
    findings: [],
  };
}
