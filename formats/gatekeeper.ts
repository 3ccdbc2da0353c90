// Gatekeeper's ConstraintTemplate and Constraint (the subset Warden reads), and how compiled templates
// travel in the admission bundle (`gatekeeper/data.json`). Defined once; the compiler writes it, the
// webhook and its audit read it.
import { validator } from './schema.js';

/** A label selector (metav1.LabelSelector). */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: Array<{ key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }>;
}

/** `spec.match` of a Constraint. */
export interface ConstraintMatch {
  kinds?: Array<{ apiGroups?: string[]; kinds?: string[] }>;
  namespaces?: string[];
  excludedNamespaces?: string[];
  labelSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  scope?: '*' | 'Cluster' | 'Namespaced';
  name?: string;
}

/** Gatekeeper's enforcement actions (`scoped` is not supported). */
export type EnforcementAction = 'deny' | 'warn' | 'dryrun';

/** A Constraint: an instance of a template's kind with match and parameters. */
export interface Constraint {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  spec?: { match?: ConstraintMatch; parameters?: unknown; enforcementAction?: EnforcementAction };
}

/** A ConstraintTemplate (only the admission target's Rego is used; CEL is not evaluated). */
export interface ConstraintTemplate {
  apiVersion: string;
  kind: 'ConstraintTemplate';
  metadata: { name: string };
  spec: {
    crd: { spec: { names: { kind: string } } };
    targets: Array<{
      target: string;
      rego?: string;
      libs?: string[];
      code?: Array<{ engine: string; source: { rego?: string; libs?: string[] } & Record<string, unknown> }>;
    }>;
  };
}

/** One compiled template inside the admission bundle. */
export interface CompiledTemplate {
  name: string;
  kind: string;
  /** WASM entrypoint, `<package path>/violation`. */
  entrypoint: string;
  /** Module path inside the bundle. */
  module: string;
}

/** `data.gatekeeper` of the admission bundle. */
export interface GatekeeperData {
  templates: CompiledTemplate[];
  constraints: Constraint[];
}

const selector = {
  type: 'object',
  properties: {
    matchLabels: { type: 'object', additionalProperties: { type: 'string' } },
    matchExpressions: {
      type: 'array',
      items: {
        type: 'object',
        required: ['key', 'operator'],
        properties: { key: { type: 'string' }, operator: { enum: ['In', 'NotIn', 'Exists', 'DoesNotExist'] }, values: { type: 'array', items: { type: 'string' } } },
      },
    },
  },
} as const;

/** JSON Schema of a Constraint (what Warden relies on; other fields are ignored). */
export const constraintSchema = {
  $id: 'https://warden.dev/schemas/gatekeeper-constraint.json',
  type: 'object',
  required: ['apiVersion', 'kind', 'metadata'],
  properties: {
    apiVersion: { type: 'string', pattern: '^constraints\\.gatekeeper\\.sh/' },
    kind: { type: 'string', minLength: 1 },
    metadata: { type: 'object', required: ['name'], properties: { name: { type: 'string', minLength: 1 } } },
    spec: {
      type: 'object',
      properties: {
        enforcementAction: { enum: ['deny', 'warn', 'dryrun'] },
        match: {
          type: 'object',
          properties: {
            kinds: { type: 'array', items: { type: 'object', properties: { apiGroups: { type: 'array', items: { type: 'string' } }, kinds: { type: 'array', items: { type: 'string' } } } } },
            namespaces: { type: 'array', items: { type: 'string' } },
            excludedNamespaces: { type: 'array', items: { type: 'string' } },
            labelSelector: selector,
            namespaceSelector: selector,
            scope: { enum: ['*', 'Cluster', 'Namespaced'] },
            name: { type: 'string' },
          },
        },
      },
    },
  },
} as const;

/** JSON Schema of a ConstraintTemplate (the fields the compiler reads). */
export const constraintTemplateSchema = {
  $id: 'https://warden.dev/schemas/gatekeeper-constraint-template.json',
  type: 'object',
  required: ['apiVersion', 'kind', 'metadata', 'spec'],
  properties: {
    apiVersion: { type: 'string', pattern: '^templates\\.gatekeeper\\.sh/' },
    kind: { const: 'ConstraintTemplate' },
    metadata: { type: 'object', required: ['name'], properties: { name: { type: 'string', minLength: 1 } } },
    spec: {
      type: 'object',
      required: ['crd', 'targets'],
      properties: {
        crd: {
          type: 'object',
          required: ['spec'],
          properties: { spec: { type: 'object', required: ['names'], properties: { names: { type: 'object', required: ['kind'], properties: { kind: { type: 'string' } } } } } },
        },
        targets: { type: 'array', minItems: 1, items: { type: 'object', required: ['target'], properties: { target: { type: 'string' } } } },
      },
    },
  },
} as const;

export const constraint = validator<Constraint>(constraintSchema);
export const constraintTemplate = validator<ConstraintTemplate>(constraintTemplateSchema);
