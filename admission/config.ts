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
  /**
   * Deadline and memory bound of each policy evaluation (guardrails and every Gatekeeper template),
   * and the wall-clock ms one review may spend on all of them (`reviewBudgetMs`).
   */
  evaluation: EvaluationLimits & { reviewBudgetMs: number };
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
  evaluation: { ...ADMISSION_LIMITS, reviewBudgetMs: ADMISSION_REVIEW_BUDGET_MS },
};

const mode = { enum: ['enforce', 'warn', 'dry-run'] } as const;
const configFile = validator<Partial<AdmissionConfig>>({
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
});

/** Merge a partial configuration over the defaults. */
export function resolveConfig(partial: Partial<AdmissionConfig> = {}): AdmissionConfig {
  return {
    ...defaultConfig,
    ...partial,
    coverage: { ...defaultConfig.coverage, ...partial.coverage },
    guardrails: { ...defaultConfig.guardrails, ...partial.guardrails, rules: { ...defaultConfig.guardrails.rules, ...partial.guardrails?.rules } },
    gatekeeper: { ...defaultConfig.gatekeeper, ...partial.gatekeeper },
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
