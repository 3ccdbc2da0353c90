// Kubernetes objects that run the webhook: Namespace, Secret (TLS), Deployment, Service and the
// ValidatingWebhookConfiguration whose caBundle makes the API server trust the webhook's certificate.
import { POD_KINDS } from './pod-template.js';

/** Inputs of the manifests. */
export interface ManifestOptions {
  namespace: string;
  image: string;
  caPem: string;
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
}

/** The webhook's rules: pod controllers and Pods, CREATE and UPDATE. */
export function webhookRules(): Array<Record<string, unknown>> {
  const byGroup = new Map<string, string[]>();
  const plural: Record<string, string> = { Pod: 'pods', Deployment: 'deployments', StatefulSet: 'statefulsets', DaemonSet: 'daemonsets', ReplicaSet: 'replicasets', Job: 'jobs', CronJob: 'cronjobs' };
  for (const [kind, { group }] of Object.entries(POD_KINDS)) {
    if (kind === 'ReplicaSet') continue; // created by Deployments, already reviewed there
    byGroup.set(group, [...(byGroup.get(group) ?? []), plural[kind]!]);
  }
  return [...byGroup].map(([group, resources]) => ({ apiGroups: [group], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources, scope: '*' }));
}

/** The ValidatingWebhookConfiguration alone (the e2e test registers it with a URL). */
export function webhookConfiguration(opts: Pick<ManifestOptions, 'namespace' | 'caPem' | 'name' | 'failurePolicy' | 'exemptNamespaces' | 'url'>): Record<string, unknown> {
  const name = opts.name ?? 'warden-admission';
  const exempt = [...new Set(['kube-system', opts.namespace, ...(opts.exemptNamespaces ?? [])])];
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingWebhookConfiguration',
    metadata: { name, labels: { 'app.kubernetes.io/name': name, 'app.kubernetes.io/part-of': 'warden' } },
    webhooks: [
      {
        name: 'validate.warden.dev',
        admissionReviewVersions: ['v1'],
        sideEffects: 'None',
        failurePolicy: opts.failurePolicy ?? 'Fail',
        matchPolicy: 'Equivalent',
        timeoutSeconds: 5,
        clientConfig: {
          caBundle: Buffer.from(opts.caPem).toString('base64'),
          ...(opts.url ? { url: opts.url } : { service: { name, namespace: opts.namespace, path: '/validate', port: 443 } }),
        },
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
  if (opts.certPem && opts.keyPem) {
    out.push({
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/tls',
      metadata: { name: `${name}-tls`, namespace: opts.namespace, labels },
      data: { 'tls.crt': Buffer.from(opts.certPem).toString('base64'), 'tls.key': Buffer.from(opts.keyPem).toString('base64'), 'ca.crt': Buffer.from(opts.caPem).toString('base64') },
    });
  }
  // Reading namespace labels (Constraints with a namespaceSelector) is all the webhook asks the API for.
  out.push(
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace: opts.namespace, labels } },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name, labels }, rules: [{ apiGroups: [''], resources: ['namespaces'], verbs: ['get'] }] },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name, labels },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
      subjects: [{ kind: 'ServiceAccount', name, namespace: opts.namespace }],
    },
  );
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
          securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [
            {
              name: 'webhook',
              image: opts.image,
              args: ['admission', 'serve', '--port', '8443', '--certs', '/certs', '--engine', opts.engineUrl, '--namespace', opts.namespace],
              ports: [{ name: 'https', containerPort: 8443 }],
              readinessProbe: { httpGet: { scheme: 'HTTPS', path: '/readyz', port: 8443 } },
              livenessProbe: { httpGet: { scheme: 'HTTPS', path: '/healthz', port: 8443 } },
              resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '1', memory: '256Mi' } },
              securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
              volumeMounts: [{ name: 'certs', mountPath: '/certs', readOnly: true }],
            },
          ],
          volumes: [{ name: 'certs', secret: { secretName: `${name}-tls` } }],
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
  out.push(webhookConfiguration(opts));
  return out;
}
