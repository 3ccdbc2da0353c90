// The policy input for one call: what Rego sees as `input` in the proxy plugin.
import { validator } from './schema.js';

/** How the caller's identity was established. */
export type Authn = 'mtls' | 'jwt' | 'header' | 'none';

/** The caller. `principal` is a SPIFFE ID (mTLS, trusted mesh header), a JWT `sub`, or "anonymous". */
export interface Source {
  principal: string;
  authn: Authn;
  claims: Record<string, unknown>;
  address: string;
  /** The caller's namespace when its principal is a Kubernetes SPIFFE ID. */
  namespace?: string;
}

/** The workload being called. */
export interface Destination {
  workload: string;
  namespace: string;
  principal: string;
}

/** The HTTP request, after normalization (the path is what the upstream will see). */
export interface HttpRequestInput {
  method: string;
  path: string;
  segments: string[];
  query: Record<string, string[]>;
  headers: Record<string, string>;
  /** Parsed JSON body, when the request carried one and the workload needs it. */
  body?: unknown;
  /**
   * The protocol an upgrade asks for (`Upgrade` value, lower case, e.g. "websocket"); absent on calls that
   * are not upgrades. Once the upstream switches, what flows through the tunnel is not decided.
   */
  upgrade?: string;
}

/** One JSON-RPC call to an MCP endpoint. */
export interface McpInput {
  method: string;
  /** `tools/call` tool name, `prompts/get` prompt name. */
  tool?: string;
  name?: string;
  /** `resources/read` URI. */
  uri?: string;
  arguments?: Record<string, unknown>;
  id?: string | number | null;
}

/** The full input document. `mcp` is present only for JSON-RPC calls to an MCP endpoint. */
export interface PolicyInput {
  source: Source;
  destination: Destination;
  request: HttpRequestInput;
  mcp?: McpInput;
}

/** JSON Schema of PolicyInput. */
export const policyInputSchema = {
  $id: 'https://warden.dev/schemas/input.json',
  type: 'object',
  additionalProperties: false,
  required: ['source', 'destination', 'request'],
  properties: {
    source: {
      type: 'object',
      additionalProperties: false,
      required: ['principal', 'authn', 'claims', 'address'],
      properties: {
        principal: { type: 'string' },
        authn: { enum: ['mtls', 'jwt', 'header', 'none'] },
        claims: { type: 'object' },
        address: { type: 'string' },
        namespace: { type: 'string' },
      },
    },
    destination: {
      type: 'object',
      additionalProperties: false,
      required: ['workload', 'namespace', 'principal'],
      properties: { workload: { type: 'string' }, namespace: { type: 'string' }, principal: { type: 'string' } },
    },
    request: {
      type: 'object',
      additionalProperties: false,
      required: ['method', 'path', 'segments', 'query', 'headers'],
      properties: {
        method: { type: 'string', pattern: '^[A-Z]+$' },
        path: { type: 'string', pattern: '^/' },
        segments: { type: 'array', items: { type: 'string' } },
        query: { type: 'object', additionalProperties: { type: 'array', items: { type: 'string' } } },
        headers: { type: 'object', additionalProperties: { type: 'string' } },
        body: {},
        upgrade: { type: 'string', pattern: '^[a-z0-9!#$%&\'*+.^_`|~-]+(/[a-z0-9!#$%&\'*+.^_`|~-]+)?$' },
      },
    },
    mcp: {
      type: 'object',
      additionalProperties: false,
      required: ['method'],
      properties: {
        method: { type: 'string' },
        tool: { type: 'string' },
        name: { type: 'string' },
        uri: { type: 'string' },
        arguments: { type: 'object' },
        id: { type: ['string', 'number', 'null'] },
      },
    },
  },
} as const;

export const policyInput = validator<PolicyInput>(policyInputSchema);

/** The anonymous principal: no verified identity. */
export const ANONYMOUS = 'anonymous';

/**
 * Where the input holds JSON the caller spelled itself, keys included: the request body, the query, an MCP
 * call's arguments. Everything else is Warden's own structure. A case-insensitive app reads keys there that
 * the policy, reading exact keys, does not (engine/compiler/input-paths.ts, runtime/input-selection.ts).
 */
export const CALLER_JSON: ReadonlyArray<readonly string[]> = [
  ['request', 'body'],
  ['request', 'query'],
  ['mcp', 'arguments'],
];
