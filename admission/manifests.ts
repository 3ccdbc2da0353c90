// Kubernetes objects that run the webhook: Namespace, Secret (TLS), Deployment, Service, and the
// Mutating- and ValidatingWebhookConfiguration whose caBundle makes the API server trust the
// webhook's certificate.
// `warden admission manifests` prints them, and deploy/manifests.ts writes the kustomize base from the
// same functions (plus the engine), so there is one source for the cluster YAML.
import { INJECT_KEY } from './injection.js';
import { POD_KINDS } from './pod-template.js';

/** Non-root user of the image (Dockerfile `USER`). */
export const WARDEN_UID = 10001;
/** Where the image keeps the repository (Dockerfile `WORKDIR`); policies/ is under it. */
export const IMAGE_ROOT = '/app';
/** Secret with the bundle signing key (`signing-key.pem`), read by the engine's init container that builds bundles. */
export const SIGNING_KEY_SECRET = 'warden-signing-key';

/** ConfigMap with the public `verification-key.pem` bundles are checked with (webhook and sidecars). */
export const VERIFICATION_KEY_CONFIGMAP = 'warden-verification-key';

type Obj = Record<string, unknown>;

/** Pod-level security shared by every Warden pod: non-root, RuntimeDefault seccomp. */
export function podSecurityContext(): Obj {
  return { runAsNonRoot: true, runAsUser: WARDEN_UID, runAsGroup: WARDEN_UID, fsGroup: WARDEN_UID, seccompProfile: { type: 'RuntimeDefault' } };
}

/** Container-level security: read-only root filesystem, no privilege escalation, no capabilities. */
export function containerSecurityContext(): Obj {
  return { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } };
}

/**
 * Writable scratch space on a read-only root filesystem: /tmp (tsx's compile cache, OPA's build
 * folder) and /var/run/warden (decision-log spill file). emptyDir: it survives container restarts,
 * so spilled events are replayed after a crash of the container (not of the pod).
 */
export function scratchVolumes(): { volumes: Obj[]; mounts: Obj[] } {
  return {
    volumes: [{ name: 'tmp', emptyDir: {} }, { name: 'run', emptyDir: { sizeLimit: '128Mi' } }],
    mounts: [{ name: 'tmp', mountPath: '/tmp' }, { name: 'run', mountPath: '/var/run/warden' }],
  };
}

/**
 * Init container that runs `warden build` on the policy repository baked into the image, writing
 * signed bundles (and verification-key.pem) to the `bundles` emptyDir mounted at /bundles.
 */
export function buildInitContainer(image: string): Obj {
  return {
    name: 'build-bundles',
    image,
    args: ['build', '--repo', `${IMAGE_ROOT}/policies`, '--out', '/bundles', '--signing-key', '/keys/signing/signing-key.pem'],
    resources: { requests: { cpu: '200m', memory: '256Mi' }, limits: { cpu: '2', memory: '1Gi' } },
    securityContext: containerSecurityContext(),
    volumeMounts: [
      { name: 'bundles', mountPath: '/bundles' },
      { name: 'signing-key', mountPath: '/keys/signing', readOnly: true },
      { name: 'tmp', mountPath: '/tmp' },
    ],
  };
}

/** Volumes of the build init container (besides the scratch ones). */
export function buildVolumes(): Obj[] {
  return [
    { name: 'bundles', emptyDir: {} },
    { name: 'signing-key', secret: { secretName: SIGNING_KEY_SECRET, defaultMode: 0o440 } },
  ];
}

/** Inputs of the manifests. */
export interface ManifestOptions {
  namespace: string;
  image: string;
  /** CA of the webhook's serving certificate → caBundle. Absent: no caBundle, and the annotation
   *  `cert-manager.io/inject-ca-from` lets cert-manager's cainjector fill it (or patch it in). */
  caPem?: string;
  certPem?: string;
  keyPem?: string;
  /** Engine URL for coverage checks and bundles, e.g. http://warden-engine.warden-system:8181 */
  engineUrl: string;
  name?: string;
  replicas?: number;
  /** `Fail` (default: no review → no admission) or `Ignore`. */
  failurePolicy?: 'Fail' | 'Ignore';
  /** Namespaces the webhook is never called for (in addition to its own and kube-system). */
  exemptNamespaces?: string[];
  /** Set instead of a Service for a webhook outside the cluster (e.g. https://127.0.0.1:8443/validate). */
  url?: string;
  /** Secret (tls.crt, tls.key, ca.crt) with the webhook's SVID for an https:// engine: decision events are
   *  only accepted over mTLS. The engine must know its SPIFFE ID as --admission-principal. */
  engineClientSecret?: string;
  /** The sidecar image the injector adds, pinned by digest (<repo>@sha256:<64 hex>); written into the
   *  webhook's configuration (ConfigMap <name>-config). Absent: no configuration, nothing is injected. */
  proxyImage?: string;
}

/**
 * The webhook's rules: pod controllers and Pods, CREATE and UPDATE, and the containers `kubectl debug`
 * adds to a running Pod (pods/ephemeralcontainers: a subresource, sent only when named).
 */
export function webhookRules(): Array<Record<string, unknown>> {
  const byGroup = new Map<string, string[]>([['', ['pods/ephemeralcontainers']]]);
  const plural: Record<string, string> = { Pod: 'pods', Deployment: 'deployments', StatefulSet: 'statefulsets', DaemonSet: 'daemonsets', ReplicaSet: 'replicasets', Job: 'jobs', CronJob: 'cronjobs' };
  for (const [kind, { group }] of Object.entries(POD_KINDS)) {
    if (kind === 'ReplicaSet') continue; // created by Deployments, already reviewed there
    byGroup.set(group, [...(byGroup.get(group) ?? []), plural[kind]!]);
  }
  return [...byGroup].map(([group, resources]) => ({ apiGroups: [group], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources, scope: '*' }));
}

type WebhookConfigOptions = Pick<ManifestOptions, 'namespace' | 'caPem' | 'name' | 'failurePolicy' | 'exemptNamespaces' | 'url'>;

const exemptOf = (opts: WebhookConfigOptions) => [...new Set(['kube-system', opts.namespace, ...(opts.exemptNamespaces ?? [])])];
const caAnnotations = (opts: WebhookConfigOptions, name: string) => (opts.caPem ? {} : { annotations: { 'cert-manager.io/inject-ca-from': `${opts.namespace}/${name}-tls` } });
// Where the API server calls one path of the webhook: its Service, or opts.url (…/validate) with the path swapped.
const clientConfig = (opts: WebhookConfigOptions, name: string, path: string) => ({
  ...(opts.caPem ? { caBundle: Buffer.from(opts.caPem).toString('base64') } : {}),
  ...(opts.url ? { url: opts.url.replace(/\/validate$/, path) } : { service: { name, namespace: opts.namespace, path, port: 443 } }),
});

/**
 * The MutatingWebhookConfiguration: two entries, so that the API server (not the webhook) decides
 * which pods asked. Pods of namespaces labelled warden.dev/inject=enabled go to /mutate; pods of every
 * other reviewed namespace go to /mutate/annotated, which injects only pods annotated for it.
 * reinvocationPolicy IfNeeded: if a later mutating webhook changes the pod, Warden's is called again
 * and leaves an injected pod as it is (the validating check then judges the final pod).
 * failurePolicy Fail (default): a pod the injector could not see is not created uninjected.
 */
export function mutatingWebhookConfiguration(opts: WebhookConfigOptions): Record<string, unknown> {
  const name = opts.name ?? 'warden-admission';
  const notExempt = { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: exemptOf(opts) };
  const entry = (webhook: string, path: string, namespaceSelector: Record<string, unknown>) => ({
    name: webhook,
    admissionReviewVersions: ['v1'],
    sideEffects: 'None',
    failurePolicy: opts.failurePolicy ?? 'Fail',
    reinvocationPolicy: 'IfNeeded',
    matchPolicy: 'Equivalent',
    timeoutSeconds: 5,
    clientConfig: clientConfig(opts, name, path),
    namespaceSelector,
    rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'], scope: 'Namespaced' }],
  });
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name, labels: { 'app.kubernetes.io/name': name, 'app.kubernetes.io/part-of': 'warden' }, ...caAnnotations(opts, name) },
    webhooks: [
      entry('inject.warden.dev', '/mutate', { matchLabels: { [INJECT_KEY]: 'enabled' }, matchExpressions: [notExempt] }),
      entry('inject-annotated.warden.dev', '/mutate/annotated', { matchExpressions: [{ key: INJECT_KEY, operator: 'NotIn', values: ['enabled'] }, notExempt] }),
    ],
  };
}

/** The ValidatingWebhookConfiguration alone (the e2e test registers it with a URL). */
export function webhookConfiguration(opts: WebhookConfigOptions): Record<string, unknown> {
  const name = opts.name ?? 'warden-admission';
  const exempt = exemptOf(opts);
  const annotations = caAnnotations(opts, name);
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingWebhookConfiguration',
    metadata: { name, labels: { 'app.kubernetes.io/name': name, 'app.kubernetes.io/part-of': 'warden' }, ...annotations },
    webhooks: [
      {
        name: 'validate.warden.dev',
        admissionReviewVersions: ['v1'],
        sideEffects: 'None',
        failurePolicy: opts.failurePolicy ?? 'Fail',
        matchPolicy: 'Equivalent',
        timeoutSeconds: 5,
        clientConfig: clientConfig(opts, name, '/validate'),
        namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: exempt }] },
        rules: webhookRules(),
      },
    ],
  };
}

/** Every object, in apply order. */
export function webhookManifests(opts: ManifestOptions): Array<Record<string, unknown>> {
  const name = opts.name ?? 'warden-admission';
  const labels = { 'app.kubernetes.io/name': name, 'app.kubernetes.io/part-of': 'warden' };
  const out: Array<Record<string, unknown>> = [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: opts.namespace, labels } }];
  if (opts.caPem && opts.certPem && opts.keyPem) {
    out.push({
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/tls',
      metadata: { name: `${name}-tls`, namespace: opts.namespace, labels },
      data: { 'tls.crt': Buffer.from(opts.certPem).toString('base64'), 'tls.key': Buffer.from(opts.keyPem).toString('base64'), 'ca.crt': Buffer.from(opts.caPem).toString('base64') },
    });
  }
  // Namespace labels (Constraints with a namespaceSelector) and, read-only, the pod kinds that
  // `warden admission audit` lists when it runs in the cluster with this ServiceAccount. Kinds synced
  // into data.inventory (gatekeeper.sync) need a list rule added by the operator.
  const auditRules = [...webhookRules().map((r) => ({ apiGroups: r['apiGroups'], resources: (r['resources'] as string[]).filter((x) => !x.includes('/')), verbs: ['get', 'list'] }))];
  out.push(
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace: opts.namespace, labels } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name, labels },
      rules: [{ apiGroups: [''], resources: ['namespaces'], verbs: ['get', 'list'] }, ...auditRules],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name, labels },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
      subjects: [{ kind: 'ServiceAccount', name, namespace: opts.namespace }],
    },
  );
  const scratch = scratchVolumes();
  // The webhook's configuration file: what the injector adds (YAML is a superset of JSON).
  // Keys in sorted order, as Helm's toPrettyJson writes the chart's version of this file (deploy/helm.ts).
  const config = opts.proxyImage
    ? { injection: { ...(opts.engineUrl.startsWith('https://') ? { engineUrl: opts.engineUrl } : {}), proxyImage: opts.proxyImage } }
    : undefined;
  if (config) out.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `${name}-config`, namespace: opts.namespace, labels }, data: { 'config.yaml': `${JSON.stringify(config, null, 2)}\n` } });
  const configured = config
    ? { args: ['--config', '/etc/warden/admission/config.yaml'], mount: [{ name: 'config', mountPath: '/etc/warden/admission', readOnly: true }], volume: [{ name: 'config', configMap: { name: `${name}-config` } }] }
    : { args: [], mount: [], volume: [] };
  const engineClient = opts.engineClientSecret
    ? { args: ['--engine-cert', '/engine-client/tls.crt', '--engine-key', '/engine-client/tls.key', '--engine-ca', '/engine-client/ca.crt'], mount: [{ name: 'engine-client', mountPath: '/engine-client', readOnly: true }], volume: [{ name: 'engine-client', secret: { secretName: opts.engineClientSecret, defaultMode: 0o440 } }] }
    : { args: [], mount: [], volume: [] };
  out.push({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: opts.namespace, labels },
    spec: {
      replicas: opts.replicas ?? 2,
      selector: { matchLabels: { 'app.kubernetes.io/name': name } },
      template: {
        metadata: { labels },
        spec: {
          serviceAccountName: name,
          securityContext: podSecurityContext(),
          // The admission bundle comes from the engine (GET /bundles/admission), signature checked with
          // the public key: the signing key stays in the engine's pods.
          containers: [
            {
              name: 'webhook',
              image: opts.image,
              args: [
                'admission', 'serve', '--port', '8443', '--certs', '/certs', '--engine', opts.engineUrl, '--namespace', opts.namespace,
                '--verification-key', '/keys/verification/verification-key.pem',
                '--spill', '/var/run/warden/admission.spill.ndjson', ...engineClient.args, ...configured.args,
              ],
              ports: [{ name: 'https', containerPort: 8443 }],
              readinessProbe: { httpGet: { scheme: 'HTTPS', path: '/readyz', port: 8443 }, periodSeconds: 5 },
              livenessProbe: { httpGet: { scheme: 'HTTPS', path: '/healthz', port: 8443 }, periodSeconds: 10, failureThreshold: 6 },
              resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '1', memory: '256Mi' } },
              securityContext: containerSecurityContext(),
              volumeMounts: [{ name: 'certs', mountPath: '/certs', readOnly: true }, { name: 'verification-key', mountPath: '/keys/verification', readOnly: true }, ...scratch.mounts, ...engineClient.mount, ...configured.mount],
            },
          ],
          volumes: [{ name: 'certs', secret: { secretName: `${name}-tls` } }, { name: 'verification-key', configMap: { name: VERIFICATION_KEY_CONFIGMAP } }, ...scratch.volumes, ...engineClient.volume, ...configured.volume],
        },
      },
    },
  });
  out.push({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: opts.namespace, labels },
    spec: { selector: { 'app.kubernetes.io/name': name }, ports: [{ name: 'https', port: 443, targetPort: 8443 }] },
  });
  out.push(mutatingWebhookConfiguration(opts), webhookConfiguration(opts));
  return out;
}
