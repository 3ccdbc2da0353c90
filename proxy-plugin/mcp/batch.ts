// A body of JSON-RPC messages, decided call by call: what goes upstream, what is answered here, and
// how the two sets of answers are put back together in the shape the client sent.
import type { Decision } from '../../formats/decision.js';
import type { McpInput } from '../../formats/input.js';
import { RPC_ERRORS, rpcError, type Classified, type JsonRpcId, type JsonRpcResponse } from './jsonrpc.js';
import { mcpInput } from './mcp-input.js';

/** The outcome of deciding one call. */
export interface CallVerdict {
  allow: boolean;
  decisionId: string;
  decision?: Decision;
  /** Reasons safe to show the caller. */
  reasons: string[];
}

/** Decides one JSON-RPC call (requests and notifications). */
export type DecideCall = (mcp: McpInput) => CallVerdict;

/** What to do with one body. */
export interface BatchPlan {
  batch: boolean;
  /** Messages to forward, in the client's order. */
  forward: Classified[];
  /** Answers made here (denials, invalid params), keyed by the request id. */
  local: JsonRpcResponse[];
  /** Ids of every request of the body, in order: the order answers are returned in. */
  order: JsonRpcId[];
  /** Verdicts, one per decided call, in order (for logs and tests). */
  verdicts: Array<{ method: string; verdict: CallVerdict }>;
}

/** The JSON-RPC error for a denied call: the policy's `rpc_error` or -32003 "Forbidden by policy". */
export function denialResponse(id: JsonRpcId, v: CallVerdict): JsonRpcResponse {
  const e = v.decision?.rpc_error;
  return rpcError(id, e?.code ?? RPC_ERRORS.FORBIDDEN, e?.message ?? 'Forbidden by policy', { decision_id: v.decisionId, reasons: v.reasons });
}

/**
 * Decide every call of a body on its own. Requests and notifications are decided; a denied
 * notification is dropped (JSON-RPC gives it no answer). Responses, which answer requests the
 * server itself sent (sampling, elicitation, roots), are forwarded without a decision.
 */
export function planBatch(batch: boolean, messages: Classified[], decide: DecideCall): BatchPlan {
  const plan: BatchPlan = { batch, forward: [], local: [], order: [], verdicts: [] };
  for (const c of messages) {
    if (c.kind === 'response') {
      plan.forward.push(c);
      continue;
    }
    if (c.kind === 'invalid') {
      plan.order.push(c.message.id);
      plan.local.push(c.error);
      continue;
    }
    const verdict = decide(mcpInput(c.message));
    plan.verdicts.push({ method: c.message.method, verdict });
    if (c.kind === 'request') plan.order.push(c.message.id);
    if (verdict.allow) plan.forward.push(c);
    else if (c.kind === 'request') plan.local.push(denialResponse(c.message.id, verdict));
  }
  return plan;
}

/** The body to send upstream: a batch stays a batch (even of one), a single message stays single. */
export function forwardBody(plan: BatchPlan): Buffer | undefined {
  if (plan.forward.length === 0) return undefined;
  const msgs = plan.forward.map((c) => c.message);
  return Buffer.from(JSON.stringify(plan.batch ? msgs : msgs[0]));
}

function idKey(id: JsonRpcId | null): string {
  return typeof id === 'number' ? `n:${id}` : `s:${String(id)}`;
}

/**
 * Put the upstream's answers and the local ones back together: answers to requests in the client's
 * order, then anything the upstream sent that matched no request (e.g. its own errors with a null id).
 * A single call gets a single object; a batch an array; nothing to say, undefined.
 */
export function mergeAnswers(plan: BatchPlan, upstream: JsonRpcResponse[]): JsonRpcResponse | JsonRpcResponse[] | undefined {
  const byId = new Map<string, JsonRpcResponse>();
  for (const r of [...upstream, ...plan.local]) byId.set(idKey(r.id), r);
  const out: JsonRpcResponse[] = [];
  const used = new Set<string>();
  for (const id of plan.order) {
    const r = byId.get(idKey(id));
    if (r) {
      out.push(r);
      used.add(idKey(id));
    }
  }
  for (const r of upstream) if (!used.has(idKey(r.id))) out.push(r);
  if (out.length === 0) return undefined;
  return plan.batch ? out : out[0];
}
