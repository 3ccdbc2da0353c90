// The extension point for calls that need more than the plain HTTP decision.
//
// The sidecar consults its CallHandlers after a call is normalized and identified, before the plain
// HTTP decision. The first handler whose `owns` returns true takes the call over completely: it must
// decide (through `call.pipeline`, with the pinned `call.bundle`, one decision event per JSON-RPC
// call), then either `call.forward(...)` or answer the caller itself. The MCP module
// (proxy-plugin/mcp/) registers one for the workload's MCP endpoint paths
// (data.warden.spec.mcp.transport_paths, read by `mcpSpec` in proxy-plugin/mcp/spec.ts). With no handler registered, such
// calls take the plain HTTP path, which the core policy denies for POSTs (fail closed).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { EventSource } from '../formats/decision-event.js';
import type { Source } from '../formats/input.js';
import type { ActiveBundle } from './bundle-source.js';
import type { DecisionPipeline, Verdict } from './decide.js';
import type { BodyRewrite, WholeAnswer } from './fast-path.js';
import type { NormalizedRequest } from './normalize.js';
import type { HeaderPolicy } from './upstream-head.js';

/** One call a handler may take over. */
export interface Call {
  req: IncomingMessage;
  res: ServerResponse;
  request: NormalizedRequest;
  source: Source;
  /** The bundle pinned for this call (undefined: deny-all). */
  bundle: ActiveBundle | undefined;
  pipeline: DecisionPipeline;
  via: EventSource;
  /** Caller-sent fields never forwarded: a handler with its own way to the upstream applies it too. */
  headerPolicy: HeaderPolicy;
  /**
   * Forward to the upstream. `body` replaces the request body (for a handler that had to read it;
   * the bytes must be the ones received, or the call's own re-encoding of an allowed subset);
   * without it the body streams through untouched.
   */
  forward(opts: { decisionId: string; body?: Buffer }): void;
  /** Answer with the standard denial (status, JSON body, decision id header). */
  deny(verdict: Verdict): void;
}

/** A call a handler owns on the sidecar's fast path, with its whole body read (no req/res: raw sockets). */
export interface FastCall {
  request: NormalizedRequest;
  /** The header fields as received ([name, value, …]). */
  rawHeaders: readonly string[];
  body: Buffer;
  source: Source;
  bundle: ActiveBundle;
  pipeline: DecisionPipeline;
  via: EventSource;
  headerPolicy: HeaderPolicy;
}

/**
 * What the fast path does with a FastCall: hand it to node's path (only while nothing was decided: node's
 * path decides it again through `handle`), answer it, or forward `body` with the request fields `headers`
 * (a flat [name, value, …] list, framing included, without Host) and relay the answer (untouched unless
 * `answer` rewrites it), showing its head fields to `onResponse` first.
 */
export type FastOutcome =
  | { handOff: true }
  | { answer: { status: number; headers: Array<[string, string]>; body: string } }
  | {
      forward: {
        body: Buffer;
        headers: string[];
        decisionId: string | undefined;
        onResponse(rawHeaders: readonly string[]): void;
        /** A rewrite of the answer's body as it streams, or a read of it whole (MCP: a JSON answer checked, a tool list filtered); else it is relayed untouched. */
        answer?(status: number, rawHeaders: readonly string[]): BodyRewrite | WholeAnswer | undefined;
      };
    };

/** A module that takes over some calls (e.g. MCP JSON-RPC on the workload's MCP endpoint). */
export interface CallHandler {
  /** Short name for logs. */
  name: string;
  /** Whether the call's path is this handler's (asked for every request, upgrades included). */
  owns(call: Pick<Call, 'request' | 'bundle'>): boolean;
  handle(call: Call): Promise<void>;
  /** Its POSTs on the sidecar's fast path, when it can serve some there. */
  fast?: {
    /** Largest body read on the fast path; larger ones go node's way. */
    maxBodyBytes: number;
    admit(call: FastCall): FastOutcome;
  };
}
