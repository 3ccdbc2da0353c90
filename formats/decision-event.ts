// The decision-log event: one per decision, shipped from proxy plugins and the admission webhook to
// the engine (`POST /logs`), stored by the audit store. Shaped after OPA's decision log event.
import { validator } from './schema.js';

/** Which enforcement point produced the event. */
export type EventSource = 'proxy' | 'ext_authz' | 'middleware' | 'admission';
/** What kind of call was decided (`drift` records a tools/list that differs from the compiled list). */
export type EventKind = 'http' | 'mcp' | 'admission' | 'drift';
/** The effective outcome: `dry-run-deny` = the policy denied, the call went through (dry-run mode). */
export type Outcome = 'allow' | 'deny' | 'dry-run-deny';

/** One decision, as logged. `input` has secrets masked (their JSON pointers are in `masked`). */
export interface DecisionEvent {
  decision_id: string;
  /** RFC 3339 with milliseconds, UTC. */
  timestamp: string;
  kind: EventKind;
  outcome: Outcome;
  mode: 'enforce' | 'dry-run' | 'warn';
  labels: {
    workload: string;
    namespace: string;
    source: EventSource;
    /** Pod / instance that decided. */
    instance?: string;
    version?: string;
  };
  /** Bundle name → revision that decided (empty when no bundle was loaded). */
  bundles: Record<string, { revision: string }>;
  /** Entrypoint evaluated, e.g. warden/decision. */
  path: string;
  input?: Record<string, unknown>;
  result?: Record<string, unknown>;
  /** Why the call was denied without (or despite) the policy: no bundle, eval error, bad request. */
  error?: string;
  masked?: string[];
  erased?: string[];
  metrics?: Record<string, number>;
  trace_id?: string;
  span_id?: string;
}

/** JSON Schema of DecisionEvent; ingestion validates each event of a batch on its own. */
export const decisionEventSchema = {
  $id: 'https://warden.dev/schemas/decision-event.json',
  type: 'object',
  additionalProperties: false,
  required: ['decision_id', 'timestamp', 'kind', 'outcome', 'mode', 'labels', 'bundles', 'path'],
  properties: {
    decision_id: { type: 'string', pattern: '^[A-Za-z0-9._:-]{8,128}$' },
    timestamp: { type: 'string', format: 'date-time' },
    kind: { enum: ['http', 'mcp', 'admission', 'drift'] },
    outcome: { enum: ['allow', 'deny', 'dry-run-deny'] },
    mode: { enum: ['enforce', 'dry-run', 'warn'] },
    labels: {
      type: 'object',
      additionalProperties: false,
      required: ['workload', 'namespace', 'source'],
      properties: {
        workload: { type: 'string', minLength: 1, maxLength: 253 },
        namespace: { type: 'string', minLength: 1, maxLength: 63 },
        source: { enum: ['proxy', 'ext_authz', 'middleware', 'admission'] },
        instance: { type: 'string' },
        version: { type: 'string' },
      },
    },
    bundles: {
      type: 'object',
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['revision'],
        properties: { revision: { type: 'string' } },
      },
    },
    path: { type: 'string' },
    input: { type: 'object' },
    result: { type: 'object' },
    error: { type: 'string' },
    masked: { type: 'array', items: { type: 'string' } },
    erased: { type: 'array', items: { type: 'string' } },
    metrics: { type: 'object', additionalProperties: { type: 'number' } },
    trace_id: { type: 'string' },
    span_id: { type: 'string' },
  },
} as const;

export const decisionEvent = validator<DecisionEvent>(decisionEventSchema);

/**
 * The request header of POST /logs (a batch of events) carrying the sender's drop counter: the events
 * it lost for good since it started, a decimal integer. The engine keeps the latest per pod.
 */
export const DROPPED_HEADER = 'x-warden-log-dropped';
