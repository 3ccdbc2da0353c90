// The front of the pipeline shared by the sidecar, ext_authz and middleware forms:
// normalize → identify → (hand over to a CallHandler, or) build input → decide.
import type { EventSource } from '../formats/decision-event.js';
import { ANONYMOUS, type PolicyInput, type Source } from '../formats/input.js';
import type { ActiveBundle } from './bundle-source.js';
import type { DecisionPipeline, Verdict } from './decide.js';
import { identify, type Identified, type IdentityConfig, type Presented } from './identity.js';
import { buildInput } from './input.js';
import { normalizeRequest, type NormalizedRequest } from './normalize.js';

/** What every front end needs to decide calls. */
export interface Gate {
  pipeline: DecisionPipeline;
  identity: IdentityConfig;
}

/** A call as it arrived. */
export interface Arrival {
  method: string;
  /** Request target as received (origin-form path + query). */
  target: string;
  rawHeaders: readonly string[];
  socket: Presented['socket'];
}

/** A call ready for policy, or the verdict that already refused it. */
export type Prepared =
  | { ok: true; request: NormalizedRequest; source: Source; bundle: ActiveBundle | undefined }
  | { ok: false; verdict: Verdict };

// The caller of a call refused before its credentials were read or after they failed: its address alone.
const anonymous = (a: Arrival): Source => ({ principal: ANONYMOUS, authn: 'none', claims: {}, address: a.socket.remoteAddress ?? '' });

// The input logged for a call refused before it could be parsed: what is known, nothing guessed.
function refusedInput(gate: Gate, a: Arrival): PolicyInput {
  const path = a.target.startsWith('/') ? a.target.split('?')[0]! : '/';
  return {
    source: anonymous(a),
    destination: gate.pipeline.destination,
    request: { method: /^[A-Z]+$/.test(a.method) ? a.method : 'INVALID', path, segments: [], query: {}, headers: {} },
  };
}

/**
 * Normalize and identify; the bundle is pinned here and used for the rest of the call. Synchronous
 * unless a bearer token's signature must be checked (identify), so the sidecar's common call pays
 * for no promise.
 */
export function prepare(gate: Gate, a: Arrival, via: EventSource): Prepared | Promise<Prepared> {
  const bundle = gate.pipeline.pin();
  // The middleware runs in the app's process: no hop drops what the request's Connection names.
  const n = normalizeRequest(a.method, a.target, a.rawHeaders, via !== 'middleware');
  if (!n.ok) {
    // The input can only hold a path; the reason carries the target as received (escaped, bounded).
    const received = JSON.stringify(a.target.length > 256 ? `${a.target.slice(0, 256)}…` : a.target);
    return { ok: false, verdict: gate.pipeline.refuse(refusedInput(gate, a), { kind: 'http', via, bundle }, `request refused: ${n.refusal.reason} (received ${received})`, n.refusal.status) };
  }
  const request = n.request;
  const repeated = request.repeated && refuseRepeatedRead(request.repeated, bundle);
  if (repeated) return { ok: false, verdict: gate.pipeline.refuse(buildInput(anonymous(a), gate.pipeline.destination, request), { kind: 'http', via, bundle }, `request refused: ${repeated}`, 400) };
  const id = identify({ socket: a.socket, headers: request.headers, rawHeaders: a.rawHeaders }, gate.identity);
  return id instanceof Promise ? id.then((v) => identified(gate, a, via, bundle, request, v)) : identified(gate, a, via, bundle, request, id);
}

// Why a request is refused for a header it sends more than once that the policy reads (in any spelling an
// app reads as it: headerKeyOf), if it is. The policy reads the lines joined with ", "; Go's Header.Get
// reads the first, a CGI server may keep the last: `X-Region: eu` then `X-Region: us` was "eu, us" to a
// rule on "eu" and "eu" to a Go app.
function refuseRepeatedRead(repeated: readonly string[], bundle: ActiveBundle | undefined): string | undefined {
  const inputs = bundle?.policy.bundle.inputs;
  for (const name of repeated) {
    const read = inputs?.headerKeyOf(name);
    if (read !== undefined) return `the header ${JSON.stringify(name.slice(0, 64))} is sent more than once and the policy reads ${JSON.stringify(read)}: apps read the first, the last or all of them joined; send it once`;
  }
  return undefined;
}

// The call with its caller, or its refusal (logged) when the credentials presented did not verify.
function identified(gate: Gate, a: Arrival, via: EventSource, bundle: ActiveBundle | undefined, request: NormalizedRequest, id: Identified): Prepared {
  if (!id.ok) {
    const input = buildInput(anonymous(a), gate.pipeline.destination, request);
    return { ok: false, verdict: gate.pipeline.refuse(input, { kind: 'http', via, bundle }, id.reason, 401) };
  }
  return { ok: true, request, source: id.source, bundle };
}

/** Decide a plain HTTP call. */
export function decideHttp(gate: Gate, p: Extract<Prepared, { ok: true }>, via: EventSource, extra?: { body?: unknown; upgrade?: string }): Verdict {
  return gate.pipeline.decide(buildInput(p.source, gate.pipeline.destination, p.request, extra), { kind: 'http', via, bundle: p.bundle });
}

/** The denial body: the decision id and the reasons the policy exposes, never upstream details. */
export function denialBody(v: Verdict): string {
  return JSON.stringify({ decision_id: v.decisionId, reasons: v.reasons });
}

/** Response header carrying the decision id on every response. */
export { DECISION_ID_HEADER } from './upstream-head.js';
