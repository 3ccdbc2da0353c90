// The front of the pipeline shared by the sidecar, ext_authz and middleware forms:
// normalize → identify → (hand over to a CallHandler, or) build input → decide.
import type { EventSource } from '../formats/decision-event.js';
import { ANONYMOUS, type Source } from '../formats/input.js';
import type { ActiveBundle } from './bundle-source.js';
import { masksPathParameter, type DecisionPipeline, type Verdict } from './decide.js';
import { identify, type Identified, type IdentityConfig, type Presented } from './identity.js';
import { buildInput } from './input.js';
import { MASK } from '../runtime/decision-mask.js';
import { METHOD, normalizeRequest, type NormalizedRequest } from './normalize.js';

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

// A target that could not be parsed, as the request its refusal logs: what is known, nothing guessed. Its
// query is left out (a credential rides there: `access_token`, a `query:` parameter the spec masks); its
// path, unsplit, is masked whole when the spec masks a path parameter (maskInput).
function unparsedTarget(a: Arrival): NormalizedRequest {
  const path = a.target.startsWith('/') ? a.target.split('?')[0]! : '/';
  return { method: METHOD.test(a.method) ? a.method : 'INVALID', path, segments: [], query: {}, rawQuery: '', headers: {} };
}

// A call refused before its caller was identified: logged with its request (masked as any call's) and an
// anonymous caller.
function refusedBefore(gate: Gate, a: Arrival, via: EventSource, bundle: ActiveBundle | undefined, request: NormalizedRequest, reason: string, status: number): Prepared {
  const input = buildInput(anonymous(a), gate.pipeline.destination, request);
  return { ok: false, verdict: gate.pipeline.refuse(input, { kind: 'http', via, bundle }, `request refused: ${reason}`, status) };
}

// A refused target as its refusal quotes it (to the caller and in the log): escaped, bounded, without its
// query, and not at all when the spec masks a path parameter (`hidden`).
function quoted(target: string, hidden: boolean): string {
  if (hidden) return MASK;
  const q = target.indexOf('?');
  const path = q < 0 ? target : `${target.slice(0, q)}?…`;
  return JSON.stringify(path.length > 256 ? `${path.slice(0, 256)}…` : path);
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
    const { reason, status } = n.refusal;
    // Refused for its header fields: the target parsed, and is logged (and masked) as any call's.
    if (n.target) return refusedBefore(gate, a, via, bundle, n.target, reason, status);
    return refusedBefore(gate, a, via, bundle, unparsedTarget(a), `${reason} (received ${quoted(a.target, masksPathParameter(bundle))})`, status);
  }
  const request = n.request;
  const repeated = request.repeated && refuseRepeatedRead(request.repeated, bundle);
  if (repeated) return refusedBefore(gate, a, via, bundle, request, repeated, 400);
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
