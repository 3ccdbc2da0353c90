// The workload manifest (`policies/workloads/<name>/workload.yaml`): who the workload is, which specs
// describe its API, and how its bundle is enforced.
import { validator } from './schema.js';

/** Enforcement mode: `enforce` denies; `dry-run` evaluates and logs but never denies. */
export type EnforcementMode = 'enforce' | 'dry-run';

/** What to do when a live `tools/list` differs from the compiled tool list. */
export type DriftAction = 'log' | 'block';

/** A workload as declared in its folder's workload.yaml. */
export interface WorkloadManifest {
  apiVersion: 'warden.dev/v1alpha1';
  kind: 'Workload';
  name: string;
  namespace: string;
  serviceAccount: string;
  /** Defaults to spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>. */
  spiffeId?: string;
  mode: EnforcementMode;
  specs?: {
    openapi?: string;
    mcp?: string;
  };
  mcp?: {
    /** Path of the MCP endpoint on this workload (Streamable HTTP), e.g. /mcp. */
    endpoint: string;
    /** Legacy HTTP+SSE transport: the GET stream path and the POST message path. */
    sse?: { stream: string; messages: string };
    drift?: DriftAction;
    /** Serve OAuth protected-resource metadata and demand audience-bound bearer tokens. */
    oauth?: { resource: string; authorizationServers: string[]; scopes?: string[] };
  };
  /** Bounds of each evaluation of this workload's policy (defaults: the sidecar's, see docs/evaluation-limits.md). */
  limits?: { deadlineMs?: number; memoryMiB?: number };
  description?: string;
  /**
   * OPA's strict builtin errors: a builtin that fails (a malformed time, a bad JWT) fails the whole
   * decision, so the call is denied, instead of leaving that one expression undefined (OPA's default).
   */
  strictBuiltinErrors?: boolean;
}

const name = { type: 'string', pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 63 } as const;

/** JSON Schema of WorkloadManifest. */
export const workloadManifestSchema = {
  $id: 'https://warden.dev/schemas/workload.json',
  type: 'object',
  additionalProperties: false,
  required: ['apiVersion', 'kind', 'name', 'namespace', 'serviceAccount', 'mode'],
  properties: {
    apiVersion: { const: 'warden.dev/v1alpha1' },
    kind: { const: 'Workload' },
    name,
    namespace: name,
    serviceAccount: name,
    spiffeId: { type: 'string', pattern: '^spiffe://[^/]+/.+' },
    mode: { enum: ['enforce', 'dry-run'] },
    description: { type: 'string' },
    strictBuiltinErrors: { type: 'boolean' },
    limits: {
      type: 'object',
      additionalProperties: false,
      properties: {
        deadlineMs: { type: 'number', exclusiveMinimum: 0, maximum: 60_000 },
        memoryMiB: { type: 'integer', minimum: 1, maximum: 4_096 },
      },
    },
    specs: {
      type: 'object',
      additionalProperties: false,
      properties: { openapi: { type: 'string', minLength: 1 }, mcp: { type: 'string', minLength: 1 } },
    },
    mcp: {
      type: 'object',
      additionalProperties: false,
      required: ['endpoint'],
      properties: {
        endpoint: { type: 'string', pattern: '^/' },
        sse: {
          type: 'object',
          additionalProperties: false,
          required: ['stream', 'messages'],
          properties: { stream: { type: 'string', pattern: '^/' }, messages: { type: 'string', pattern: '^/' } },
        },
        drift: { enum: ['log', 'block'] },
        oauth: {
          type: 'object',
          additionalProperties: false,
          required: ['resource', 'authorizationServers'],
          properties: {
            resource: { type: 'string', format: 'uri' },
            authorizationServers: { type: 'array', items: { type: 'string', format: 'uri' }, minItems: 1 },
            scopes: { type: 'array', items: { type: 'string' } },
          },
        },
      },
    },
  },
} as const;

export const workloadManifest = validator<WorkloadManifest>(workloadManifestSchema);

/** The SPIFFE ID a workload runs as. */
export function workloadPrincipal(w: WorkloadManifest, trustDomain = 'cluster.local'): string {
  return w.spiffeId ?? `spiffe://${trustDomain}/ns/${w.namespace}/sa/${w.serviceAccount}`;
}
