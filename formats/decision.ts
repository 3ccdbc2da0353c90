// The decision a workload bundle returns from its entrypoint (`data.warden.decision`).
import { validator } from './schema.js';

/** Entrypoint every workload bundle exposes. */
export const DECISION_ENTRYPOINT = 'warden/decision';
/** Entrypoint listing the MCP tools a caller may be offered (filtered tools/list). */
export const VISIBLE_TOOLS_ENTRYPOINT = 'warden/visible_tools';

/** What the policy decided for one call. */
export interface Decision {
  allow: boolean;
  /** Reasons the policy chose to expose (shown to the caller on denial, always logged). */
  reasons: string[];
  /** The matched OpenAPI operation id, when the call matched one. */
  operation?: string;
  /** Status and headers for a denial (defaults: 403, none). */
  status?: number;
  headers?: Record<string, string>;
  /** For a denied MCP call: the JSON-RPC error code and message. */
  rpc_error?: { code: number; message: string };
}

/** JSON Schema of Decision; the runtime checks every result against it (a malformed result denies). */
export const decisionSchema = {
  $id: 'https://warden.dev/schemas/decision.json',
  type: 'object',
  required: ['allow', 'reasons'],
  properties: {
    allow: { type: 'boolean' },
    reasons: { type: 'array', items: { type: 'string' } },
    operation: { type: 'string' },
    status: { type: 'integer', minimum: 400, maximum: 599 },
    headers: { type: 'object', additionalProperties: { type: 'string' } },
    rpc_error: {
      type: 'object',
      required: ['code', 'message'],
      properties: { code: { type: 'integer' }, message: { type: 'string' } },
    },
  },
} as const;

export const decision = validator<Decision>(decisionSchema);
