// The compiled spec: what the compiler makes of a workload's API specs (OpenAPI operations, MCP tools,
// resources, prompts) and its manifest, carried in the signed bundle at `data.warden.spec`. The core
// Rego routes and grants with it; the proxy plugin reads the MCP endpoint, the reviewed tool list and the
// fields to mask from it; reviews and explanations read the grants. It crosses a process boundary
// (compiler → bundle → pod), so it is validated once, when a bundle is opened (runtime/bundle.ts).
//
// Known fields are typed and required; fields this version does not know are let through, the way OPA
// reads its manifest: a newer compiler's additions do not lock out an older sidecar, and only the signed
// bundle's own Rego could read them.
import { authzAnnotationSchema, type AuthzAnnotation } from './authz.js';
import { POINTER_PATTERN } from './json-pointer.js';
import { validator } from './schema.js';
import { workloadManifestSchema, type DriftAction, type EnforcementMode, type WorkloadManifest } from './workload.js';

/** One path segment of a route template: a literal, or a `{param}` matching one non-empty segment. */
export type RouteSegment = string | { param: string };

/** A route as the core matches it. */
export interface RouteEntry {
  /** The operationId. */
  id: string;
  /** Literal (1) / param (0) per segment: among matching routes the highest rank wins, as in OpenAPI. */
  rank: string;
  segments: RouteSegment[];
}

/**
 * One (method, segment count) bucket of the routing table: routes whose template has a literal at
 * `position` are listed under that literal; the others (a parameter there, or no segments at all) under `param`.
 */
export interface RouteBucket {
  position: number;
  literal: Record<string, RouteEntry[]>;
  param: RouteEntry[];
  /**
   * Per segment position, each literal the bucket's templates hold there, lower-cased → its spellings and
   * the routes holding it (its spelling, and the route's segments with literals lower-cased): a request segment that lower-cases
   * to a key without being one of its spellings, in a call whose other segments match such a route
   * regardless of case, differs only by case from a route (denied by the core: apps that route regardless of
   * case would read another operation).
   */
  folded: Array<Record<string, { spellings: string[]; routes: Array<{ spelling: string; route: RouteSegment[] }> }>>;
}

/**
 * JSON pointers into the policy input (`/input/...`) whose values are masked before a decision event
 * leaves the pod: the annotation's `sensitive` fields, compiled.
 */
export type MaskList = string[];

/** One OpenAPI operation. */
export interface CompiledOperation {
  method: string;
  template: string;
  authz: AuthzAnnotation;
  mask: MaskList;
}

/** MCP's behavioural hints (spec 2025-03-26 onward), as the reviewed tool list states them. */
export interface ToolAnnotations {
  title?: string;
  readOnlyHint?: boolean;
  destructiveHint?: boolean;
  idempotentHint?: boolean;
  openWorldHint?: boolean;
}

/** One reviewed MCP tool. */
export interface CompiledTool {
  annotations: ToolAnnotations;
  /** Destructive by MCP's defaults: not read-only, and destructiveHint not false. */
  destructive: boolean;
  read_only: boolean;
  authz: AuthzAnnotation;
  mask: MaskList;
  description: string;
  input_schema: Record<string, unknown>;
}

/** One MCP resource (keyed by URI) or prompt (keyed by name). */
export interface CompiledEntry {
  authz: AuthzAnnotation;
  mask: MaskList;
}

/** The workload manifest's mcp.oauth: serve as an OAuth protected resource. */
export type McpOAuth = NonNullable<NonNullable<WorkloadManifest['mcp']>['oauth']>;

/** The MCP part: the endpoint (null when the workload declares none), its transport paths and the reviewed lists. */
export interface CompiledMcp {
  endpoint: string | null;
  /** The Streamable HTTP endpoint and the legacy SSE stream and message paths. */
  transport_paths: string[];
  drift: DriftAction;
  oauth?: McpOAuth;
  tools: Record<string, CompiledTool>;
  resources: Record<string, CompiledEntry>;
  prompts: Record<string, CompiledEntry>;
}

/** `data.warden.spec`. */
export interface CompiledSpec {
  workload: { name: string; namespace: string; mode: EnforcementMode };
  http: {
    /** Per method, a list indexed by segment count (null where no template has that many segments). */
    routes: Record<string, Array<RouteBucket | null>>;
    operations: Record<string, CompiledOperation>;
  };
  mcp: CompiledMcp;
}

/** JSON Schema of ToolAnnotations (the compiler checks tool lists with it too). */
export const toolAnnotationsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    title: { type: 'string' },
    readOnlyHint: { type: 'boolean' },
    destructiveHint: { type: 'boolean' },
    idempotentHint: { type: 'boolean' },
    openWorldHint: { type: 'boolean' },
  },
} as const;

const authz = { $ref: authzAnnotationSchema.$id } as const;
const mask = { type: 'array', items: { type: 'string', pattern: POINTER_PATTERN } } as const;
const routeEntry = {
  type: 'object',
  required: ['id', 'rank', 'segments'],
  properties: {
    id: { type: 'string' },
    rank: { type: 'string', pattern: '^[01]*$' },
    segments: {
      type: 'array',
      items: { anyOf: [{ type: 'string' }, { type: 'object', required: ['param'], properties: { param: { type: 'string' } } }] },
    },
  },
} as const;
const routeBucket = {
  type: 'object',
  required: ['position', 'literal', 'param'],
  properties: {
    position: { type: 'integer', minimum: 0 },
    literal: { type: 'object', additionalProperties: { type: 'array', items: routeEntry } },
    param: { type: 'array', items: routeEntry },
  },
} as const;
const entry = { type: 'object', required: ['authz', 'mask'], properties: { authz, mask } } as const;

/** JSON Schema of CompiledSpec. */
export const compiledSpecSchema = {
  $id: 'https://warden.dev/schemas/compiled-spec.json',
  type: 'object',
  required: ['workload', 'http', 'mcp'],
  properties: {
    workload: {
      type: 'object',
      required: ['name', 'namespace', 'mode'],
      properties: { name: { type: 'string' }, namespace: { type: 'string' }, mode: { enum: ['enforce', 'dry-run'] } },
    },
    http: {
      type: 'object',
      required: ['routes', 'operations'],
      properties: {
        routes: { type: 'object', additionalProperties: { type: 'array', items: { anyOf: [{ type: 'null' }, routeBucket] } } },
        operations: {
          type: 'object',
          additionalProperties: {
            type: 'object',
            required: ['method', 'template', 'authz', 'mask'],
            properties: { method: { type: 'string' }, template: { type: 'string' }, authz, mask },
          },
        },
      },
    },
    mcp: {
      type: 'object',
      required: ['endpoint', 'transport_paths', 'drift', 'tools', 'resources', 'prompts'],
      properties: {
        endpoint: { type: ['string', 'null'], pattern: '^/' },
        transport_paths: { type: 'array', items: { type: 'string', pattern: '^/' } },
        drift: { enum: ['log', 'block'] },
        oauth: workloadManifestSchema.properties.mcp.properties.oauth,
        tools: {
          type: 'object',
          additionalProperties: {
            type: 'object',
            required: ['annotations', 'destructive', 'read_only', 'authz', 'mask', 'description', 'input_schema'],
            properties: {
              annotations: toolAnnotationsSchema,
              destructive: { type: 'boolean' },
              read_only: { type: 'boolean' },
              authz,
              mask,
              description: { type: 'string' },
              input_schema: { type: 'object' },
            },
          },
        },
        resources: { type: 'object', additionalProperties: entry },
        prompts: { type: 'object', additionalProperties: entry },
      },
    },
  },
} as const;

export const compiledSpec = validator<CompiledSpec>(compiledSpecSchema);
