// The Helm chart (deploy/helm/warden/), generated from the same objects as the kustomize base:
// deploy/manifests.ts renders them once with DEFAULT_SETTINGS (the base) and once with every setting a
// `.Values` expression (the chart's templates), so the two cannot drift. With its default values the
// chart renders exactly the base's objects (test/helm.test.ts checks it with the real `helm`).
import { stringify } from 'yaml';
import { DEFAULT_SETTINGS, deployFiles, IMAGE, NAMESPACE, SIDECAR_IMAGE, SIDECAR_TAG, type DeploySettings } from './manifests.js';

type Obj = Record<string, unknown>;

const HEADER = '# Generated from deploy/manifests.ts by `npx tsx deploy/generate.ts`; do not edit.\n';

// A placeholder the YAML writer keeps as a string; replaced afterwards by a template expression.
// `string`: a quoted value; `number`: unquoted; `optional`: the whole line only when the value is set.
interface Hole {
  expr: string;
  as: 'string' | 'number' | 'optional';
}

function holes() {
  const table: Hole[] = [];
  const hole = (expr: string, as: Hole['as'] = 'string') => `@@H${table.push({ expr, as }) - 1}@@`;
  const fill = (text: string) =>
    text
      .replace(/^(\s*)([\w.-]+): ["']?@@H(\d+)@@["']?$/gm, (line, indent: string, key: string, i: string) => {
        const h = table[Number(i)]!;
        return h.as === 'optional' ? `{{- with ${h.expr} }}\n${indent}${key}: {{ . | quote }}\n{{- end }}` : line;
      })
      .replace(/["']?@@H(\d+)@@["']?/g, (_m, i: string) => {
        const h = table[Number(i)]!;
        return h.as === 'number' ? `{{ ${h.expr} }}` : `{{ ${h.expr} | quote }}`;
      });
  return { hole, fill };
}

/** values.yaml: the defaults reproduce the kustomize base. */
function values(): string {
  const [repo, tag] = IMAGE.split(/:(?=[^:]+$)/);
  const [sidecarRepo, sidecarDigest] = SIDECAR_IMAGE.split('@');
  return `${HEADER}# Images: set a digest (sha256:…) to pin one; the admission webhook checks sidecars by digest.
images:
  controlPlane:
    repository: ${repo}
    tag: "${tag}"
    digest: ""
  # The injector adds this image to every Pod, by digest only: replace the placeholder zeros with your image's digest.
  sidecar:
    repository: ${sidecarRepo}
    tag: "${SIDECAR_TAG}"
    digest: "${sidecarDigest}"

engine:
  replicas: ${DEFAULT_SETTINGS.engineReplicas}

admission:
  replicas: ${DEFAULT_SETTINGS.admissionReplicas}

# What CI published with \`warden push\`: engine replicas mirror it and serve it; none of them builds.
bundles:
  from: ${DEFAULT_SETTINGS.bundlesFrom}
  # kubernetes.io/dockerconfigjson Secret with the registry credentials.
  registrySecret: ${DEFAULT_SETTINGS.registrySecret}

# The audit store URL (postgres://user:password@host/db) is read from this Secret, never from values.
auditStore:
  secretName: ${DEFAULT_SETTINGS.auditStoreSecret}
  secretKey: ${DEFAULT_SETTINGS.auditStoreKey}

# Serving certificates (Secrets warden-engine-tls and warden-admission-tls): issued by cert-manager
# (an Issuer or ClusterIssuer you name), or created by you, with the webhook's CA given as caBundle.
certificates:
  certManager:
    enabled: false
    issuer:
      name: ""
      kind: ClusterIssuer
  # base64 PEM of the CA that signed warden-admission-tls (self-managed certificates).
  caBundle: ""
`;
}

const chartYaml = `apiVersion: v2
name: warden
description: Zero-trust authorization for Kubernetes workloads — the engine (serving what CI pushed) and the admission webhook.
type: application
version: 0.1.0
appVersion: "0.1.0"
`;

const helpers = `{{/* An image reference: repository@digest when a digest is set, else repository:tag. */}}
{{- define "warden.image" -}}
{{- if .digest -}}{{ .repository }}@{{ .digest }}{{- else -}}{{ .repository }}:{{ .tag }}{{- end -}}
{{- end -}}
`;

// cert-manager Certificates for the two serving certificates, only when enabled.
function certificates(): string {
  const cert = (name: string) => ({
    apiVersion: 'cert-manager.io/v1',
    kind: 'Certificate',
    metadata: { name: `${name}-tls`, namespace: NAMESPACE, labels: { 'app.kubernetes.io/name': name, 'app.kubernetes.io/part-of': 'warden' } },
    spec: {
      secretName: `${name}-tls`,
      dnsNames: [`${name}.${NAMESPACE}.svc`, `${name}.${NAMESPACE}.svc.cluster.local`],
      issuerRef: { name: '@@ISSUER_NAME@@', kind: '@@ISSUER_KIND@@', group: 'cert-manager.io' },
    },
  });
  const body = [cert('warden-engine'), cert('warden-admission')].map((o) => stringify(o, { lineWidth: 0 })).join('---\n');
  return `${HEADER}{{- if .Values.certificates.certManager.enabled }}\n${body
    .replace(/["']?@@ISSUER_NAME@@["']?/g, '{{ required "certificates.certManager.issuer.name: the cert-manager Issuer or ClusterIssuer that signs Warden\'s serving certificates" .Values.certificates.certManager.issuer.name | quote }}')
    .replace(/["']?@@ISSUER_KIND@@["']?/g, '{{ .Values.certificates.certManager.issuer.kind | quote }}')}{{- end }}\n`;
}

/** Every file of the chart, path (under deploy/) → text. */
export function helmFiles(): Record<string, string> {
  const { hole, fill } = holes();
  const settings: DeploySettings = {
    image: hole('include "warden.image" .Values.images.controlPlane'),
    sidecarImage: hole('include "warden.image" .Values.images.sidecar'),
    engineReplicas: hole('.Values.engine.replicas', 'number'),
    admissionReplicas: hole('.Values.admission.replicas', 'number'),
    bundlesFrom: hole('required "bundles.from: the oci:// reference CI publishes to with warden push" .Values.bundles.from'),
    registrySecret: hole('.Values.bundles.registrySecret'),
    auditStoreSecret: hole('.Values.auditStore.secretName'),
    auditStoreKey: hole('.Values.auditStore.secretKey'),
  };
  // Every object file of the base becomes a template, so whatever deploy/manifests.ts adds to the base
  // (another webhook, another Deployment) is in the chart too.
  const base = Object.entries(deployFiles(settings)).filter(([path]) => path.startsWith('base/') && !path.endsWith('kustomization.yaml'));
  for (const [, objects] of base) {
    for (const o of objects) {
      if (!/WebhookConfiguration$/.test(String(o['kind']))) continue;
      for (const w of (o as { webhooks: Array<{ clientConfig: Obj }> }).webhooks) w.clientConfig['caBundle'] = hole('.Values.certificates.caBundle', 'optional');
    }
  }
  const render = (objects: Obj[]) => HEADER + fill(objects.map((o) => stringify(o, { lineWidth: 0, aliasDuplicateObjects: false })).join('---\n'));
  const chart = 'helm/warden';
  return {
    [`${chart}/Chart.yaml`]: HEADER + chartYaml,
    [`${chart}/values.yaml`]: values(),
    [`${chart}/templates/_helpers.tpl`]: helpers,
    ...Object.fromEntries(base.map(([path, objects]) => [`${chart}/templates/${path.slice('base/'.length)}`, render(objects)])),
    [`${chart}/templates/certificates.yaml`]: certificates(),
  };
}
