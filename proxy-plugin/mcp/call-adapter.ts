// The MCP handler as a CallHandler of the proxy plugin's sidecar (proxy-plugin/call-handler.ts).
//
// The interfaces below mirror the sidecar's `Call` and `DecisionPipeline` structurally, so this
// module compiles and is tested without importing the sidecar, and the sidecar can register
// `mcpCallHandler(...)` as it is. Every JSON-RPC call goes through the sidecar's pipeline (one
// decision event each, dry-run honoured, sensitive arguments masked there); the handler forwards
// with its own `upstream` because it must read and rewrite answers (the sidecar's `forward` streams
// the upstream's answer straight to the caller).
import { newDecisionId } from '../../formats/decision-id.js';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Decision } from '../../formats/decision.js';
import type { DecisionEvent, EventKind, EventSource } from '../../formats/decision-event.js';
import type { Destination, PolicyInput, Source } from '../../formats/input.js';
import type { DriftAction } from '../../formats/workload.js';
import type { Policy } from '../../runtime/policy.js';
import { readBody, sendJson } from '../../runtime/http-body.js';
import { fieldMap } from '../../runtime/field-map.js';
import { inputRequest } from '../input.js';
import { driftEvent, type DriftRecord } from './drift.js';
import { McpHandler, type FastOutcome, type McpCallContext, type Upstream } from './handler.js';
import { DEFAULT_LIMITS, RPC_ERRORS, rpcError, type JsonRpcLimits } from './jsonrpc.js';
import type { OAuthConfig } from './oauth.js';
import type { HeaderPolicy } from '../upstream-head.js';

/** What the adapter needs of the sidecar's pinned bundle. */
export interface BundleLike {
  policy: Policy;
  revision: string;
}

/** What the adapter needs of the sidecar's verdict. */
export interface VerdictLike {
  decisionId: string;
  allow: boolean;
  reasons: string[];
  decision?: Decision;
}

/** What the adapter needs of the sidecar's DecisionPipeline. */
export interface PipelineLike<B extends BundleLike> {
  readonly destination: Destination;
  decide(input: PolicyInput, ctx: { kind: EventKind; via: EventSource; bundle?: B | undefined }): VerdictLike;
  /** Log a call refused before policy as a denial (the sidecar's pipeline always can). */
  refuse?(input: PolicyInput, ctx: { kind: EventKind; via: EventSource; bundle?: B | undefined }, error: string, status: number): VerdictLike;
}

/** What the adapter needs of the sidecar's Call. */
export interface CallLike<B extends BundleLike> {
  req: IncomingMessage;
  res: ServerResponse;
  request: { method: string; path: string; segments: string[]; query: Record<string, string[]>; rawQuery: string; headers: Record<string, string> };
  source: Source;
  bundle: B | undefined;
  pipeline: PipelineLike<B>;
  via: EventSource;
  /** The sidecar's caller-sent fields never forwarded (else the defaults). */
  headerPolicy?: HeaderPolicy;
}

/** What the adapter needs of the sidecar's FastCall (a POST it owns, body read, on the fast path). */
export interface FastCallLike<B extends BundleLike> {
  request: CallLike<B>['request'];
  rawHeaders: readonly string[];
  body: Buffer;
  source: Source;
  bundle: B;
  pipeline: PipelineLike<B>;
  via: EventSource;
  headerPolicy?: HeaderPolicy;
}

// Header fields as node would give them to the handler, lower-case names; undefined when a name repeats
// (node would fold the repeats its own way: such a request goes node's path, where `handle` sees them so).
function uniqueHeaders(raw: readonly string[]): IncomingHttpHeaders | undefined {
  const out = fieldMap<string>() as IncomingHttpHeaders; // a field named __proto__ is a field like any other
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (out[name] !== undefined) return undefined;
    out[name] = raw[i + 1]!;
  }
  return out;
}

/** Options of the adapter. */
export interface McpCallHandlerOptions {
  upstream: Upstream;
  oauth?: OAuthConfig;
  limits?: JsonRpcLimits;
  /** Where drift events go (the sidecar's DecisionLog.record). */
  recordDrift?: (e: DecisionEvent) => void;
  /** Where the handler says why it dropped part of an upstream answer (the sidecar's logger). */
  warn?: (message: string, fields: Record<string, unknown>) => void;
  /** Each lookup of a remembered tools/list answer: found or filtered anew (the sidecar's metrics). */
  listMemory?: (hit: boolean) => void;
  now?: () => Date;
}

/** A CallHandler for the workload's MCP transport paths. */
export function mcpCallHandler<B extends BundleLike>(opts: McpCallHandlerOptions) {
  const limits = opts.limits ?? DEFAULT_LIMITS;
  const now = opts.now ?? (() => new Date());
  const handler = new McpHandler({
    destination: { workload: '', namespace: '', principal: '' },
    upstream: opts.upstream,
    limits,
    ...(opts.oauth ? { oauth: opts.oauth } : {}),
    ...(opts.warn ? { warn: opts.warn } : {}),
    ...(opts.listMemory ? { listMemory: opts.listMemory } : {}),
  });
  // A drift record carries the labels and bundle revision of the call that saw it: per call, never
  // shared, so calls in flight across a bundle swap each name their own revision.
  const driftRecorder = (destination: Destination, revision: string, via: EventSource) => (r: DriftRecord, action: DriftAction) =>
    opts.recordDrift?.(driftEvent(r, { decisionId: newDecisionId(), now: now(), workload: destination.workload, namespace: destination.namespace, via, revision, action }));
  // What the handler needs of a call beyond the request: the pinned bundle, the sidecar's pipeline.
  // Built by assignment, not spreads: it is built for every call.
  type Pinned = Pick<CallLike<B>, 'source' | 'pipeline' | 'via' | 'headerPolicy'>;
  const context = (call: Pinned, bundle: B, request: PolicyInput['request']): McpCallContext => {
    const { pipeline, via } = call;
    const destination = pipeline.destination;
    const ctx: McpCallContext = {
      source: call.source,
      request,
      policy: bundle.policy,
      destination,
      onDrift: driftRecorder(destination, bundle.revision, via),
      decide: (input, kind) => pipeline.decide(input, { kind, via, bundle }),
    };
    if (call.headerPolicy) ctx.headerPolicy = call.headerPolicy;
    if (pipeline.refuse) ctx.refuse = (input: PolicyInput, reason: string, status: number) => pipeline.refuse!(input, { kind: 'mcp', via, bundle }, reason, status);
    return ctx;
  };
  return {
    name: 'mcp',
    owns: (call: Pick<CallLike<B>, 'request' | 'bundle'>): boolean => handler.owns(call.request.path, call.bundle?.policy),
    fast: {
      maxBodyBytes: limits.maxBodyBytes,
      admit(call: FastCallLike<B>): FastOutcome {
        const headers = uniqueHeaders(call.rawHeaders);
        if (!headers) return { handOff: true };
        const r = call.request;
        return handler.fastPost({ method: r.method, path: r.path, query: r.rawQuery, headers, rawHeaders: call.rawHeaders, body: call.body }, context(call, call.bundle, inputRequest(r)));
      },
    },
    async handle(call: CallLike<B>): Promise<void> {
      const bundle = call.bundle;
      if (!bundle) {
        return sendJson(call.res, 503, rpcError(null, RPC_ERRORS.FORBIDDEN, 'no policy bundle loaded yet (deny-all)'));
      }
      const body = await readBody(call.req, limits.maxBodyBytes);
      if (!body) {
        return sendJson(call.res, 413, rpcError(null, RPC_ERRORS.INVALID_REQUEST, `body exceeds ${limits.maxBodyBytes} bytes`), { connection: 'close' });
      }
      await handler.handle({ method: call.request.method, path: call.request.path, query: call.request.rawQuery, headers: call.req.headers, rawHeaders: call.req.rawHeaders, body }, context(call, bundle, inputRequest(call.request)), call.res);
    },
  };
}
