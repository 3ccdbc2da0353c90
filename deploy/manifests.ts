// The one source of the cluster YAML under deploy/: the kustomize base (engine + admission webhook)
// and the sidecar example. The webhook objects come from admission/manifests.ts, which also backs
// `warden admission manifests`, so the two never drift. Regenerate with `npx tsx deploy/generate.ts`;
// test/deploy-manifests.test.ts fails when the committed files differ from this.
import { INJECT_KEY } from '../admission/injection.js';
import {
  containerSecurityContext,
  podSecurityContext,
  scratchVolumes,
  VERIFICATION_KEY_CONFIGMAP,
  webhookManifests,
} from '../admission/manifests.js';

type Obj = Record<string, unknown>;

export const NAMESPACE = 'warden-system';
export const IMAGE = 'ghcr.io/warden-dev/warden:0.1.0';
/** The sidecar image the injector adds, by digest. The zeros are a placeholder: set the digest of the
 *  image you deploy (values `images.sidecar.digest`, or the warden-admission-config ConfigMap; docs/injection.md). */
export const SIDECAR_IMAGE = `ghcr.io/warden-dev/warden-sidecar@sha256:${'0'.repeat(64)}`;
/** The sidecar image's release tag (Helm values show it beside the digest). */
export const SIDECAR_TAG = '0.1.0';

/**
 * What an installation chooses. The kustomize base is rendered with DEFAULT_SETTINGS; the Helm chart
 * (deploy/helm.ts) renders the same objects with each setting a `.Values` expression, so the two
 * cannot drift.
 */
export interface DeploySettings {
  image: string;
  sidecarImage: string;
  engineReplicas: number | string;
  admissionReplicas: number | string;
  /** The index `warden push` wrote (CI): engine replicas mirror and serve it, they never build. */
  bundlesFrom: string;
  /** kubernetes.io/dockerconfigjson Secret with the registry credentials (the engine pulls with it). */
  registrySecret: string;
  /** Secret and key holding the audit store URL (with its password). */
  auditStoreSecret: string;
  auditStoreKey: string;
}

/** The kustomize base's settings. */
export const DEFAULT_SETTINGS: DeploySettings = {
  image: IMAGE,
  sidecarImage: SIDECAR_IMAGE,
  engineReplicas: 2,
  admissionReplicas: 2,
  bundlesFrom: 'oci://registry.example.com/platform/warden-bundles:main',
  registrySecret: 'warden-registry',
  auditStoreSecret: 'warden-audit-store',
  auditStoreKey: 'url',
};
export const TRUST_DOMAIN = 'cluster.local';
const ENGINE = 'warden-engine';
const ADMISSION = 'warden-admission';
/** The engine's in-cluster URL (sidecars and the webhook reach it here). */
export const ENGINE_URL = `https://${ENGINE}.${NAMESPACE}.svc:8443`;
const spiffe = (ns: string, sa: string) => `spiffe://${TRUST_DOMAIN}/ns/${ns}/sa/${sa}`;
const labelsOf = (name: string) => ({ 'app.kubernetes.io/name': name, 'app.kubernetes.io/part-of': 'warden' });

function pdb(name: string): Obj {
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name, namespace: NAMESPACE, labels: labelsOf(name) },
    spec: { minAvailable: 1, selector: { matchLabels: { 'app.kubernetes.io/name': name } } },
  };
}

/** Engine: ServiceAccount (no API access at all), Deployment, Service, PodDisruptionBudget. */
export function engineManifests(settings: DeploySettings = DEFAULT_SETTINGS): Obj[] {
  const image = settings.image;
  const labels = labelsOf(ENGINE);
  const scratch = scratchVolumes();
  return [
    // The engine never calls the Kubernetes API: no Role, and no token mounted.
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: ENGINE, namespace: NAMESPACE, labels }, automountServiceAccountToken: false },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: ENGINE, namespace: NAMESPACE, labels },
      spec: {
        replicas: settings.engineReplicas,
        selector: { matchLabels: { 'app.kubernetes.io/name': ENGINE } },
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
        template: {
          metadata: { labels },
          spec: {
            serviceAccountName: ENGINE,
            automountServiceAccountToken: false,
            securityContext: podSecurityContext(),
            topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: { 'app.kubernetes.io/name': ENGINE } } }],
            containers: [
              {
                name: 'engine',
                image,
                args: [
                  // Every replica serves what CI built, signed and pushed (warden push): none of them builds,
                  // so all serve the same bytes, and an old ReplicaSet's pod cannot serve older rules as new.
                  'serve', '--bundles', '/bundles', '--bundles-from', settings.bundlesFrom, '--registry-config', '/registry/config.json',
                  // The registry is not trusted: only bundles signed with CI's key are mirrored and served.
                  '--verification-key', '/keys/verification/verification-key.pem',
                  '--listen', '0.0.0.0:8443',
                  '--tls-cert', '/tls/tls.crt', '--tls-key', '/tls/tls.key', '--client-ca', '/tls/ca.crt',
                  // $(VAR) is expanded by the kubelet from env: the URL (with its password) stays in the Secret.
                  '--store', '$(WARDEN_AUDIT_STORE)',
                  '--admission-principal', spiffe(NAMESPACE, ADMISSION),
                  '--checkpoint-key', '/keys/checkpoint/audit-checkpoint.jwk',
                  '--retention-max-age', '90d',
                ],
                env: [{ name: 'WARDEN_AUDIT_STORE', valueFrom: { secretKeyRef: { name: settings.auditStoreSecret, key: settings.auditStoreKey } } }],
                ports: [{ name: 'https', containerPort: 8443 }],
                // The engine asks for client certificates but does not require them, so the kubelet's
                // probes (no certificate) reach /healthz.
                startupProbe: { httpGet: { scheme: 'HTTPS', path: '/healthz', port: 'https' }, periodSeconds: 2, failureThreshold: 30 },
                readinessProbe: { httpGet: { scheme: 'HTTPS', path: '/healthz', port: 'https' }, periodSeconds: 5 },
                livenessProbe: { httpGet: { scheme: 'HTTPS', path: '/healthz', port: 'https' }, periodSeconds: 10, failureThreshold: 6 },
                resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '2', memory: '1Gi' } },
                securityContext: containerSecurityContext(),
                volumeMounts: [
                  { name: 'bundles', mountPath: '/bundles' },
                  { name: 'registry', mountPath: '/registry', readOnly: true },
                  { name: 'verification-key', mountPath: '/keys/verification', readOnly: true },
                  { name: 'tls', mountPath: '/tls', readOnly: true },
                  { name: 'checkpoint-key', mountPath: '/keys/checkpoint', readOnly: true },
                  ...scratch.mounts,
                ],
              },
            ],
            volumes: [
              // The mirror of the registry's bundles (rewritten atomically by the engine itself).
              { name: 'bundles', emptyDir: {} },
              { name: 'registry', secret: { secretName: settings.registrySecret, defaultMode: 0o440, items: [{ key: '.dockerconfigjson', path: 'config.json' }] } },
              { name: 'verification-key', configMap: { name: VERIFICATION_KEY_CONFIGMAP } },
              // Serving certificate for warden-engine.warden-system.svc, and (ca.crt) the CA of the SVIDs.
              { name: 'tls', secret: { secretName: `${ENGINE}-tls`, defaultMode: 0o440 } },
              // One checkpoint key for every replica: they sign one chain in one PostgreSQL database.
              { name: 'checkpoint-key', secret: { secretName: 'warden-audit-checkpoint', defaultMode: 0o440 } },
              ...scratch.volumes,
            ],
          },
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: ENGINE, namespace: NAMESPACE, labels },
      spec: { selector: { 'app.kubernetes.io/name': ENGINE }, ports: [{ name: 'https', port: 8443, targetPort: 'https' }] },
    },
    pdb(ENGINE),
  ];
}

/** Webhook objects from admission/manifests.ts, without a Secret or caBundle (placed by the operator or cert-manager). */
export function admissionManifests(settings: DeploySettings = DEFAULT_SETTINGS): Obj[] {
  const all = webhookManifests({ namespace: NAMESPACE, image: settings.image, engineUrl: ENGINE_URL, engineClientSecret: `${ADMISSION}-svid`, replicas: settings.admissionReplicas as number, proxyImage: settings.sidecarImage });
  return [...all, pdb(ADMISSION)];
}

/**
 * The example workload: a namespace labelled for injection and a Deployment written as if Warden did
 * not exist. The app listens on 0.0.0.0:8080 as it always did; the injector adds warden-init (which
 * redirects inbound connections to port 8080 to the sidecar) and warden-proxy, whose SVID comes from
 * the Secret warden-svid-orders (or a CSI driver, by the webhook's configuration).
 */
export function sidecarExample(): Obj[] {
  const ns = 'shop';
  const app = 'orders';
  const labels = { 'app.kubernetes.io/name': app, team: 'shop' };
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: app, namespace: ns, labels }, automountServiceAccountToken: false },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: app, namespace: ns, labels },
      spec: {
        replicas: 2,
        selector: { matchLabels: { 'app.kubernetes.io/name': app } },
        template: {
          metadata: { labels },
          spec: {
            serviceAccountName: app,
            automountServiceAccountToken: false,
            securityContext: podSecurityContext(),
            containers: [
              {
                name: 'app',
                image: 'registry.example.com/shop/orders:1.4.2@sha256:0000000000000000000000000000000000000000000000000000000000000000',
                // Declared ports are the ones interception sends through the sidecar; any other is closed.
                ports: [{ name: 'http', containerPort: 8080 }],
                resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '1', memory: '256Mi' } },
                securityContext: containerSecurityContext(),
              },
            ],
          },
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: app, namespace: ns, labels },
      // The Service targets the app's port as usual: inside the pod, that port leads to the sidecar.
      spec: { selector: { 'app.kubernetes.io/name': app }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] },
    },
  ];
}

/** Every file under deploy/, path → objects (a kustomization.yaml is one object). */
export function deployFiles(settings: DeploySettings = DEFAULT_SETTINGS): Record<string, Obj[]> {
  const admission = admissionManifests(settings);
  const namespace = admission.find((o) => o['kind'] === 'Namespace')!;
  const webhook = admission.filter((o) => o['kind'] !== 'Namespace');
  const kustomization = (resources: string[], extra: Obj = {}): Obj[] => [
    { apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization', ...extra, resources },
  ];
  return {
    'base/namespace.yaml': [namespace],
    'base/engine.yaml': engineManifests(settings),
    'base/admission.yaml': webhook,
    'base/kustomization.yaml': kustomization(['namespace.yaml', 'engine.yaml', 'admission.yaml']),
    'examples/sidecar/namespace.yaml': [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', labels: { [INJECT_KEY]: 'enabled' } } }],
    'examples/sidecar/orders.yaml': sidecarExample(),
    'examples/sidecar/kustomization.yaml': kustomization(['namespace.yaml', 'orders.yaml']),
  };
}

