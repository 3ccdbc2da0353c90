// The Helm chart (deploy/helm/warden/), generated from the same objects as the kustomize base:
// deploy/manifests.ts renders them once with DEFAULT_SETTINGS (the base) and once with every setting a
// `.Values` expression (the chart's templates), so the two cannot drift. With its default values the
// chart renders exactly the base's objects (test/helm.test.ts checks it with the real `helm`).
import { stringify } from 'yaml';
import { ADMISSION_CONFIG_SCHEMA } from '../admission/config.js';
import { INJECT_KEY } from '../admission/injection.js';
import { DEFAULT_SETTINGS, deployFiles, ENGINE_URL, IMAGE, NAMESPACE, SIDECAR_IMAGE, SIDECAR_TAG, type DeploySettings } from './manifests.js';

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
  # The injector adds this image to every Pod, by digest only: replace the placeholder zeros with your
  # image's digest (values.schema.json refuses anything but sha256:<64 hex>).
  sidecar:
    repository: ${sidecarRepo}
    tag: "${SIDECAR_TAG}"
    digest: "${sidecarDigest}"

engine:
  replicas: ${DEFAULT_SETTINGS.engineReplicas}

admission:
  replicas: ${DEFAULT_SETTINGS.admissionReplicas}
  # The webhook's other settings (admission/config.ts; docs/admission.md), e.g.
  #   coverage: { mode: enforce, whenEngineUnreachable: deny }
  #   guardrails: { mode: enforce, rules: { image-digest: warn } }
  #   exemptNamespaces: [kube-system]
  config: {}

# The injector's settings (the "injection" section of the webhook's configuration; docs/injection.md).
# The sidecar image comes from images.sidecar and the engine URL is the chart's engine. Unset: defaults.
#   whenNoBundle: refuse            # or skip: a Pod whose service account has no bundle runs without a sidecar
#   svid: { secretName: "warden-svid-{serviceAccount}" }   # or { csiDriver: spiffe.csi.cert-manager.io }
#   initImage: <repo>@sha256:…       # the interception init (default: the sidecar image)
#   allowedProxyImages: [<repo>@sha256:…]   # e.g. the previous release during an upgrade
#   allowedInitImages: []
#   verificationKeyConfigMap: warden-verification-key
#   proxyUid: 10001
#   resources: { requests: { cpu: 50m, memory: 96Mi }, limits: { cpu: "1", memory: 256Mi } }
injector: {}

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

{{/* The webhook's configuration file: admission.config, and injector under "injection" with the sidecar
     image and the engine URL; JSON with sorted keys, as deploy/manifests.ts writes the base's. */}}
{{- define "warden.admissionConfig" -}}
{{- $injection := merge (dict "proxyImage" (include "warden.image" .Values.images.sidecar) "engineUrl" "${ENGINE_URL}") (deepCopy .Values.injector) -}}
{{- printf "%s\\n" (merge (dict "injection" $injection) (deepCopy .Values.admission.config) | mustToPrettyJson) -}}
{{- end -}}
`;

// values.schema.json: helm refuses values that do not fit (lint, template, install), naming the field,
// before a pod would refuse its configuration at start. The webhook's own settings are its file schema.
function valuesSchema(): string {
  const { $id: _id, properties: config, ...file } = ADMISSION_CONFIG_SCHEMA;
  const { injection, namespace: _ns, ...rest } = config;
  const { proxyImage: _p, engineUrl: _e, ...injector } = injection.properties;
  const digest = { type: 'string', pattern: '^sha256:[0-9a-f]{64}$' };
  const image = (digestSchema: object) => ({
    type: 'object',
    additionalProperties: false,
    required: ['repository', 'tag', 'digest'],
    properties: { repository: { type: 'string', minLength: 1 }, tag: { type: 'string' }, digest: digestSchema },
  });
  const obj = (properties: Record<string, unknown>, required = Object.keys(properties)) => ({ type: 'object', additionalProperties: false, required, properties });
  const replicas = { type: 'integer', minimum: 1 };
  const name = { type: 'string', minLength: 1 };
  const schema = {
    $schema: 'http://json-schema.org/draft-07/schema#',
    type: 'object',
    properties: {
      images: obj({ controlPlane: image({ type: 'string', pattern: '^(sha256:[0-9a-f]{64})?$' }), sidecar: image(digest) }),
      engine: obj({ replicas }),
      admission: obj({ replicas, config: { ...file, properties: rest } }, ['replicas']),
      injector: { ...injection, properties: injector },
      bundles: obj({ from: { type: 'string', pattern: '^oci(\\+http)?://[^/]+/.+' }, registrySecret: name }),
      auditStore: obj({ secretName: name, secretKey: name }),
      certificates: obj({
        certManager: obj({ enabled: { type: 'boolean' }, issuer: obj({ name: { type: 'string' }, kind: { enum: ['Issuer', 'ClusterIssuer'] } }) }),
        caBundle: { type: 'string', pattern: '^[A-Za-z0-9+/=]*$' },
      }),
    },
  };
  return `${JSON.stringify(schema, null, 2)}\n`;
}

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

// What `helm install` prints afterwards: first, that the sidecar digest is still the placeholder (the
// injector would add an image that does not exist, so injected Pods would not start).
function notes(): string {
  const [, placeholder] = SIDECAR_IMAGE.split('@');
  return `{{- if eq .Values.images.sidecar.digest "${placeholder}" }}
WARNING: images.sidecar.digest is still the placeholder (${placeholder!.slice(0, 15)}…). The injector adds the
sidecar by digest: Pods it injects now would not start. Set the digest of the sidecar image you deploy:
  helm upgrade {{ .Release.Name }} <chart> --reuse-values --set images.sidecar.digest=sha256:<64 hex>
{{ end -}}
Warden is installed in ${NAMESPACE}: the engine mirrors and serves {{ .Values.bundles.from }}
(pushed by CI with warden push); the webhook injects {{ include "warden.image" .Values.images.sidecar }}.
Label a namespace ${INJECT_KEY}=enabled to have its Pods injected (docs/injection.md).
`;
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
      if (o['kind'] === 'ConfigMap' && (o as { data: Obj }).data['config.yaml'] !== undefined) (o as { data: Obj }).data['config.yaml'] = hole('include "warden.admissionConfig" .');
      if (!/WebhookConfiguration$/.test(String(o['kind']))) continue;
      for (const w of (o as { webhooks: Array<{ clientConfig: Obj }> }).webhooks) w.clientConfig['caBundle'] = hole('.Values.certificates.caBundle', 'optional');
    }
  }
  const render = (objects: Obj[]) => HEADER + fill(objects.map((o) => stringify(o, { lineWidth: 0, aliasDuplicateObjects: false })).join('---\n'));
  const chart = 'helm/warden';
  return {
    [`${chart}/Chart.yaml`]: HEADER + chartYaml,
    [`${chart}/values.yaml`]: values(),
    [`${chart}/values.schema.json`]: valuesSchema(),
    [`${chart}/templates/_helpers.tpl`]: helpers,
    ...Object.fromEntries(base.map(([path, objects]) => [`${chart}/templates/${path.slice('base/'.length)}`, render(objects)])),
    [`${chart}/templates/certificates.yaml`]: certificates(),
    [`${chart}/templates/NOTES.txt`]: notes(),
  };
}
