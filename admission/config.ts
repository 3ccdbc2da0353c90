// The webhook's configuration: modes per rule set, exempt namespaces, where the admission bundle and
// the coverage answers come from, limits. Defaults are the safe ones (enforce, deny when unsure).
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { validator } from '../formats/schema.js';
import { ADMISSION_LIMITS, ADMISSION_REVIEW_BUDGET_MS, LIMIT_CEILINGS, type EvaluationLimits } from '../runtime/evaluation-limits.js';

/** What a rule set does with a violation: deny, allow with a warning, or only log it. */
export type RuleMode = 'enforce' | 'warn' | 'dry-run';

/** Webhook configuration (YAML or JSON file; every field optional). */
export interface AdmissionConfig {
  /** Namespaces never reviewed (allowed and logged). Default: kube-system and the webhook's own. */
  exemptNamespaces: string[];
  /** The namespace the webhook runs in (exempt so it can always restart itself). */
  namespace: string;
  coverage: { mode: RuleMode; /** What to decide when the engine cannot be asked: deny (default) or allow. */ whenEngineUnreachable: 'deny' | 'allow'; cacheTtlMs: number };
  guardrails: { mode: RuleMode; /** Per-rule overrides, e.g. {"image-digest": "warn"}. */ rules: Record<string, RuleMode> };
  gatekeeper: { mode: RuleMode; /** Kinds replicated into data.inventory (Gatekeeper's Config syncOnly), e.g. {apiVersion: v1, kind: Service}. */ sync: Array<{ apiVersion: string; kind: string }> };
  /** Largest AdmissionReview body accepted, in bytes (the API server's own limit is 3 MiB objects). */
  maxBodyBytes: number;
  /** Kinds outside the pod controllers: `allow` them with a note (default), or `deny`. */
  unknownKinds: 'allow' | 'deny';
  /** The sidecar the mutating webhook injects, and what coverage accepts as the real one (docs/injection.md). */
  injection: InjectionConfig;
  /**
   * Deadline and memory bound of each policy evaluation (guardrails and every Gatekeeper template),
   * and the wall-clock ms one review may spend on all of them (`reviewBudgetMs`).
   */
  evaluation: EvaluationLimits & { reviewBudgetMs: number };
}

/** Where the sidecar's SVID (tls.crt, tls.key, ca.crt) comes from. */
export type SvidSource =
  /** A Secret per pod's service account; `{serviceAccount}` and `{workload}` are replaced. */
  | { secretName: string }
  /** A CSI driver that writes tls.crt, tls.key and ca.crt (e.g. cert-manager's csi-driver-spiffe). */
  | { csiDriver: string; volumeAttributes?: Record<string, string> };

/** The injected sidecar and interception init container. */
export interface InjectionConfig {
  /** The proxy image, pinned by digest (<repo>@sha256:<64 hex>). Absent: nothing is injected, every Pod is refused. */
  proxyImage?: string;
  /** The interception init's image (default: proxyImage; the Warden image holds iptables). */
  initImage?: string;
  /** Further proxy images coverage accepts (e.g. the previous release during an upgrade), by digest. */
  allowedProxyImages: string[];
  /** Further interception images coverage accepts, by digest. */
  allowedInitImages: string[];
  /** A Pod whose service account has no bundle: `refuse` it at injection (default), or `skip` injection (coverage still judges it). */
  whenNoBundle: 'refuse' | 'skip';
  /** The engine the sidecar pulls its bundle from and sends decisions to. */
  engineUrl: string;
  svid: SvidSource;
  /** ConfigMap holding verification-key.pem. */
  verificationKeyConfigMap: string;
  /** The sidecar's own user and group (not the app's). */
  proxyUid: number;
  resources: { requests: Record<string, string>; limits: Record<string, string> };
}

/** Defaults: everything enforced, image-digest only warns (teams migrate to digests gradually). */
export const defaultConfig: AdmissionConfig = {
  exemptNamespaces: ['kube-system'],
  namespace: 'warden-system',
  coverage: { mode: 'enforce', whenEngineUnreachable: 'deny', cacheTtlMs: 10_000 },
  guardrails: { mode: 'enforce', rules: { 'image-digest': 'warn' } },
  gatekeeper: { mode: 'enforce', sync: [] },
  maxBodyBytes: 4 * 1024 * 1024,
  unknownKinds: 'allow',
  injection: {
    allowedProxyImages: [],
    allowedInitImages: [],
    whenNoBundle: 'refuse',
    engineUrl: 'https://warden-engine.warden-system.svc:8443',
    svid: { secretName: 'warden-svid-{serviceAccount}' },
    verificationKeyConfigMap: 'warden-verification-key',
    proxyUid: 10001,
    resources: { requests: { cpu: '50m', memory: '96Mi' }, limits: { cpu: '1', memory: '256Mi' } },
  },
  evaluation: { ...ADMISSION_LIMITS, reviewBudgetMs: ADMISSION_REVIEW_BUDGET_MS },
};

const DIGEST_IMAGE = '^[^@\\s]+@sha256:[0-9a-f]{64}$';
const quantities = { type: 'object', additionalProperties: { type: 'string' } } as const;

const mode = { enum: ['enforce', 'warn', 'dry-run'] } as const;
/** A configuration file's content: every field optional, down into `injection`. */
export type AdmissionConfigFile = Omit<Partial<AdmissionConfig>, 'injection'> & { injection?: Partial<InjectionConfig> };

/** JSON Schema of the configuration file (the Helm chart's values.schema.json embeds it: deploy/helm.ts). */
export const ADMISSION_CONFIG_SCHEMA = {
  $id: 'https://warden.dev/schemas/admission-config.json',
  type: 'object',
  additionalProperties: false,
  properties: {
    exemptNamespaces: { type: 'array', items: { type: 'string' } },
    namespace: { type: 'string', minLength: 1 },
    coverage: {
      type: 'object',
      additionalProperties: false,
      properties: { mode, whenEngineUnreachable: { enum: ['deny', 'allow'] }, cacheTtlMs: { type: 'integer', minimum: 0 } },
    },
    guardrails: { type: 'object', additionalProperties: false, properties: { mode, rules: { type: 'object', additionalProperties: mode } } },
    gatekeeper: {
      type: 'object',
      additionalProperties: false,
      properties: {
        mode,
        sync: { type: 'array', items: { type: 'object', additionalProperties: false, required: ['apiVersion', 'kind'], properties: { apiVersion: { type: 'string' }, kind: { type: 'string' } } } },
      },
    },
    maxBodyBytes: { type: 'integer', minimum: 1024 },
    unknownKinds: { enum: ['allow', 'deny'] },
    injection: {
      type: 'object',
      additionalProperties: false,
      properties: {
        proxyImage: { type: 'string', pattern: DIGEST_IMAGE },
        initImage: { type: 'string', pattern: DIGEST_IMAGE },
        allowedProxyImages: { type: 'array', items: { type: 'string', pattern: DIGEST_IMAGE } },
        allowedInitImages: { type: 'array', items: { type: 'string', pattern: DIGEST_IMAGE } },
        whenNoBundle: { enum: ['refuse', 'skip'] },
        engineUrl: { type: 'string', pattern: '^https?://' },
        svid: {
          oneOf: [
            { type: 'object', additionalProperties: false, required: ['secretName'], properties: { secretName: { type: 'string', minLength: 1 } } },
            { type: 'object', additionalProperties: false, required: ['csiDriver'], properties: { csiDriver: { type: 'string', minLength: 1 }, volumeAttributes: { type: 'object', additionalProperties: { type: 'string' } } } },
          ],
        },
        verificationKeyConfigMap: { type: 'string', minLength: 1 },
        proxyUid: { type: 'integer', minimum: 1 },
        resources: { type: 'object', additionalProperties: false, properties: { requests: quantities, limits: quantities } },
      },
    },
    evaluation: {
      type: 'object',
      additionalProperties: false,
      properties: {
        deadlineMs: { type: 'number', exclusiveMinimum: 0, maximum: LIMIT_CEILINGS.deadlineMs },
        memoryMiB: { type: 'integer', minimum: 1, maximum: LIMIT_CEILINGS.memoryMiB },
        reviewBudgetMs: { type: 'number', exclusiveMinimum: 0, maximum: LIMIT_CEILINGS.deadlineMs },
      },
    },
  },
} as const;

const configFile = validator<AdmissionConfigFile>(ADMISSION_CONFIG_SCHEMA);

/** Merge a partial configuration over the defaults. */
export function resolveConfig(partial: AdmissionConfigFile = {}): AdmissionConfig {
  return {
    ...defaultConfig,
    ...partial,
    coverage: { ...defaultConfig.coverage, ...partial.coverage },
    guardrails: { ...defaultConfig.guardrails, ...partial.guardrails, rules: { ...defaultConfig.guardrails.rules, ...partial.guardrails?.rules } },
    gatekeeper: { ...defaultConfig.gatekeeper, ...partial.gatekeeper },
    injection: { ...defaultConfig.injection, ...partial.injection },
    evaluation: { ...defaultConfig.evaluation, ...partial.evaluation },
  };
}

/** Read a configuration file (YAML or JSON); throws SchemaError naming the field. */
export function loadConfig(path: string): AdmissionConfig {
  return resolveConfig(configFile.parse(parseYaml(readFileSync(path, 'utf8')) ?? {}, path));
}

/** Every namespace exempt from review under this configuration. */
export function exemptNamespaces(config: AdmissionConfig): Set<string> {
  return new Set([...config.exemptNamespaces, config.namespace]);
}
