// The MCP enforcement point: one entry for every request to a workload's MCP transport paths.
//
//   POST <endpoint>            Streamable HTTP: parse → decide each call → forward the allowed ones →
//                              merge local errors into the answer (JSON or event stream) → filter tools/list
//   GET <endpoint>, DELETE     the server's stream / end of session: decided as plain HTTP, answers checked
//                              for tool lists as error answers are (filterOtherBody)
//   GET <legacy stream>        HTTP+SSE (2024-11-05): the stream carries every answer; the handler
//                              learns the session from the `endpoint` event and filters tools/list answers
//   POST <legacy messages>     decided like POST <endpoint>; local errors are written into the session's stream
//   /.well-known/oauth-…       RFC 9728 metadata, when the workload is an OAuth protected resource
//
// The handler owns no socket and no identity: the sidecar gives it the parsed request, the verified
// caller, the pinned Policy and an `upstream` function (node:http) — see McpCallContext. It is usable
// alone (tests, bench) and from the proxy plugin's CallHandler (an adapter supplies `decide` so that
// every call goes through the shared DecisionPipeline and its decision log).
import { rememberAtMost } from '../../runtime/bounded-map.js';
import type { Transform } from 'node:stream';
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { VISIBLE_TOOLS_ENTRYPOINT } from '../../formats/decision.js';
import type { Destination, HttpRequestInput, McpInput, PolicyInput, Source } from '../../formats/input.js';
import type { DriftAction } from '../../formats/workload.js';
import type { Policy } from '../../runtime/policy.js';
import { readBody, sendJson, sendJsonText } from '../../runtime/http-body.js';
import { forwardBody, mergeAnswers, planBatch, type BatchPlan, type CallVerdict } from './batch.js';
import { eventRewriter, messageEvent, rewriteEventStream, type SseEvent, type SseRewrite } from './event-stream.js';
import { asciiCharset, isEncoded } from '../json-body.js';
import { DEFAULT_LIMITS, mediaType, RPC_ERRORS, parseBody, rpcError, type JsonRpcId, type JsonRpcLimits, type JsonRpcResponse, type ParsedBody } from './jsonrpc.js';
import type { DriftRecord } from './drift.js';
import { knownListAnswer, rewrittenAnswer } from './list-answers.js';
import { checkBearer, metadataPaths, protectedResourceMetadata, type OAuthConfig } from './oauth.js';
import { mcpSpec, transportPathMatch, type McpSpec } from './spec.js';
import { filterOtherBody, filterToolsJson, holdsToolList, mayListTools, otherwiseSpelled, parsedEventMayListTools, parsedMayListTools, type ToolsView } from './tools-filter.js';
import type { FastOutcome } from '../call-handler.js';
import type { BodyRewrite, OwnAnswer, WholeAnswer } from '../fast-path.js';
import { connectionTokens, DECISION_ID_HEADER, DEFAULT_HEADER_POLICY, flatHeaders, headerObject, isHopByHop, upstreamHeaders, type HeaderPolicy } from '../upstream-head.js';

/** Response header carrying the decision id(s); the same name the proxy plugin uses. */
export { DECISION_ID_HEADER };

/** What the sidecar's fast path does with a POST the handler owns (see `McpHandler.fastPost`). */
export type { FastOutcome };

/** A request to an MCP path, as the sidecar parsed it. */
export interface McpRequest {
  method: string;
  /** Normalized path, without the query. */
  path: string;
  /** Raw query string without "?", forwarded unchanged. */
  query: string;
  headers: IncomingHttpHeaders;
  /** The header fields as received ([name, value, …]); from `headers` when absent. */
  rawHeaders?: readonly string[];
  /** The body as received (read and bounded by the caller; see readBody). */
  body: Buffer;
}

/** What the handler asks the upstream for. */
export interface UpstreamRequest {
  method: string;
  /** Path and query. */
  target: string;
  headers: OutgoingHttpHeaders;
  body?: Buffer;
}

/** Sends one request to the upstream MCP server and resolves with its response head (body unread). */
export type Upstream = (r: UpstreamRequest) => Promise<IncomingMessage>;

/** Decides one policy input (kind `mcp` for a JSON-RPC call, `http` for GET/DELETE on the transport). */
export type Decide = (input: PolicyInput, kind: 'mcp' | 'http') => CallVerdict;

/** Per-request context from the sidecar. */
export interface McpCallContext {
  source: Source;
  /** The normalized HTTP request as the policy sees it. */
  request: HttpRequestInput;
  /** The bundle pinned for this request. */
  policy: Policy;
  /** The sidecar's decision pipeline for this call (one decision event per JSON-RPC call). */
  decide: Decide;
  /** The workload being called, when the sidecar knows it better than the handler's options. */
  destination?: Destination;
  /** Caller-sent fields never forwarded (the sidecar's); else the handler's own. */
  headerPolicy?: HeaderPolicy;
  /**
   * Log a body refused before any call in it could be decided (unreadable, malformed, nested too deep) as
   * a denial; its decision id goes to the caller. Without it the refusal is answered but not logged.
   */
  refuse?: (input: PolicyInput, reason: string, status: number) => { decisionId: string };
  /** Where this request's drift records go (its bundle revision and labels); else the handler's `onDrift`. */
  onDrift?: (r: DriftRecord, action: DriftAction) => void;
}

/** Handler configuration. */
export interface McpHandlerOptions {
  destination: Destination;
  upstream: Upstream;
  oauth?: OAuthConfig;
  limits?: JsonRpcLimits;
  /** Largest upstream JSON answer buffered for rewriting. */
  maxUpstreamJsonBytes?: number;
  /** Every tools/list answer that differs from the compiled list (log it as a `drift` event). */
  onDrift?: (r: DriftRecord, action: DriftAction) => void;
  /** Caller-sent fields never forwarded (default DEFAULT_HEADER_POLICY). */
  headerPolicy?: HeaderPolicy;
  /** Where the handler says why it refused part of an upstream answer (an event it could not read). */
  warn?: (message: string, fields: Record<string, unknown>) => void;
  /** Each lookup of a remembered tools/list answer (list-answers.ts): found (`true`) or filtered anew. */
  listMemory?: (hit: boolean) => void;
}

const HAND_OFF: FastOutcome = { handOff: true };

// The tools/list ids of a body that sends none (most calls): one set, never written to.
const NO_IDS: ReadonlySet<JsonRpcId> = new Set();

/** Largest upstream JSON answer buffered for checking or rewriting, by default. */
const MAX_UPSTREAM_JSON_BYTES = 16 * 1024 * 1024;

const UNREADABLE = 'the MCP server sent an answer that could not be read';

// Rewrites the events of a stream that may carry a tool list: results with a tool list are filtered for
// the caller (`view`, worked out when first needed). Every event read is re-encoded: the client reads
// what was checked. One that does not parse is dropped (fail closed: it might be the list itself, for a
// client with a more lenient parser), and said so. On a stream that answers no tools/list (`ids` empty),
// an event whose text cannot spell a `tools` key (neither the word nor any escape) passes unread, and so
// does one whose data parses and whose text spells neither `tools` nor a `\u` escape (a tool result with
// escaped quotes: in JSON only `\u` spells a letter), as a JSON answer's bytes do (`parsedMayListTools`).
function toolsEvents(ids: ReadonlySet<JsonRpcId>, view: () => ToolsView, { warn, listMemory }: Pick<McpHandlerOptions, 'warn' | 'listMemory'>): SseRewrite {
  return (e) => {
    const quiet = withoutData(e);
    if (quiet !== false) return quiet;
    if (ids.size === 0 && !mayListTools(e.raw)) return undefined;
    const known = ids.size > 0 ? remembered(e.data, view(), listMemory) : undefined;
    if (known !== undefined) return known;
    let msg: unknown;
    try {
      msg = JSON.parse(e.data) as unknown;
    } catch {
      warn?.('dropped an event-stream event that is not JSON from a stream that may carry a tool list (it could hold an unfiltered one)', { event: e.type, bytes: e.data.length });
      return null;
    }
    if (ids.size === 0 && !parsedEventMayListTools(e.raw)) return undefined;
    const other = otherwiseSpelled(msg);
    if (other) {
      warn?.(`dropped an event-stream event with a key spelled ${other}: a client reading keys regardless of case could find an unfiltered tool list in it`, { event: e.type, bytes: e.data.length });
      return null;
    }
    return rewrittenAnswer(e.data, msg, ids, view);
  };
}

// The remembered filtered text of a tools/list answer, if there is one (knownListAnswer), counted.
function remembered(text: string, view: ToolsView, count: McpHandlerOptions['listMemory']): string | undefined {
  const known = knownListAnswer(text, view);
  count?.(known !== undefined);
  return known;
}

// An event without data, which a client that follows the spec never dispatches: passed as sent (its id or
// retry still count), or dropped when its text could spell a `tools` key (a JSON body sent as an event
// stream is one such event, for a client that reads the body as JSON). False for an event with data.
function withoutData(e: SseEvent): undefined | null | false {
  if (e.hasData) return false;
  return mayListTools(e.raw) ? null : undefined;
}

// A JSON answer's text as a document: an object or an array (a batch's answers), else undefined.
function answerDocument(text: string): object | undefined {
  try {
    const doc = JSON.parse(text) as unknown;
    return doc && typeof doc === 'object' ? doc : undefined;
  } catch {
    return undefined;
  }
}

// The sidecar's 502 for an upstream answer it cannot pass on, as node's path sends it (sendJson).
function unreadable(decisionId: string | undefined): OwnAnswer {
  return { status: 502, headers: [['content-type', 'application/json'], ...(decisionId ? ([[DECISION_ID_HEADER, decisionId]] as Array<[string, string]>) : [])], body: JSON.stringify(rpcError(null, -32000, UNREADABLE)) };
}

// The same 502 on node's path.
function sendUnreadable(res: ServerResponse, head: OutgoingHttpHeaders): void {
  sendJson(res, 502, rpcError(null, -32000, UNREADABLE), head);
}

// True for a status whose answer carries no body (RFC 9110 §6.4.1).
const bodiless = (status: number) => status === 204 || status === 304;

/** The tools/list requests a body forwarded, and the caller's view of the tool list when it is needed. */
interface ToolsAnswer {
  ids: ReadonlySet<JsonRpcId>;
  view(): ToolsView;
}

/**
 * How the fast path passes on the answer to one forwarded message, as node's path does (`post`):
 * - a 2xx JSON answer is read whole and checked: one that is not a JSON object or array becomes a 502;
 *   one that holds a tool list (the answer to the tools/list, or a list a server slips into another
 *   call's answer under the id of a tools/list sent elsewhere) is filtered and re-encoded, and so is one
 *   whose bytes could spell a `tools` key at all (`parsedMayListTools`); any other goes out as the
 *   server's bytes (a tools/call result);
 * - an event stream, whatever its status, is rewritten event by event as it streams, for the same reason
 *   (`toolsEvents`);
 * - a 2xx answer with a body of any other type becomes a 502 (the transport allows none, and no client
 *   may find a tool list in it);
 * - an answer with any other status (3xx, 4xx, 5xx) is read whole and checked as `filterOtherBody` says:
 *   a lenient client may read a tool list in an error's body too;
 * - an encoded body (gzip, …), or one in a charset that does not read ASCII as UTF-8 does (UTF-16, UTF-7),
 *   becomes a 502 whatever its status: the filter cannot read what a client decodes from it.
 */
function fastAnswer(status: number, contentType: string, decisionId: string | undefined, tools: ToolsAnswer, max: number, opts: Pick<McpHandlerOptions, 'warn' | 'listMemory'>): BodyRewrite | WholeAnswer | undefined {
  if (status < 200 || bodiless(status)) return undefined;
  if (contentType === UNREADABLE_BODY) return { whole: true, max, end: () => unreadable(decisionId) };
  if (contentType === 'text/event-stream') return eventRewriter(toolsEvents(tools.ids, () => tools.view(), opts));
  if (status >= 300) return { whole: true, max, end: (body) => filterOtherBody(body, contentType, tools.ids, tools.view) ?? unreadable(decisionId) };
  if (contentType === 'application/json') {
    return {
      whole: true,
      max,
      end: (body) => {
        const text = body.toString('utf8');
        const known = tools.ids.size > 0 ? remembered(text, tools.view(), opts.listMemory) : undefined;
        if (known !== undefined) return Buffer.from(known, 'utf8');
        const doc = answerDocument(text);
        if (!doc) return unreadable(decisionId);
        if (tools.ids.size === 0 && !parsedMayListTools(text)) return body;
        if (otherwiseSpelled(doc)) return unreadable(decisionId);
        // Re-encoded, filtered where a list shows: a key given twice ("result", "tools") is read by JSON.parse
        // as its last value and by some clients as its first; the client now reads what was checked.
        return Buffer.from(rewrittenAnswer(text, doc, tools.ids, tools.view), 'utf8');
      },
    };
  }
  // Any other type: the Streamable HTTP transport answers a request with JSON or an event stream, and
  // anything else with 202 and no body. A body of another type is refused, so no lenient client can
  // find a tool list in it, and so is an empty 2xx other than 202 (a request went unanswered).
  return { whole: true, max, end: (body) => (body.length === 0 && status === 202 ? body : unreadable(decisionId)) };
}

// What answerType says of a body the filter cannot read (no media type is spelled so).
const UNREADABLE_BODY = ' unreadable';

// The media type of a raw head's Content-Type, lower case ('' when absent), or UNREADABLE_BODY when the body
// is encoded (isEncoded: the handler asks the upstream for identity, and a client decodes what it gets), in a
// charset that does not read ASCII as UTF-8 does (asciiCharset), or typed twice (node reads
// the first, a raw reader the last, fetch joins them: no reading of the type is the client's). Both paths
// read every answer's head here, the fast path's and node's (its rawHeaders): a name is lower-cased only
// when its length matches (no string per field).
function answerType(raw: readonly string[]): string {
  let type: string | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const n = raw[i]!.length;
    if (n === 16 && raw[i]!.toLowerCase() === 'content-encoding' && isEncoded(raw[i + 1])) return UNREADABLE_BODY;
    if (n === 12 && raw[i]!.toLowerCase() === 'content-type') {
      if (type !== undefined || !asciiCharset(raw[i + 1])) return UNREADABLE_BODY;
      type = mediaType(raw[i + 1]);
    }
  }
  return type ?? '';
}

// True when the filter cannot read the body of an answer node parsed: the fast path's rule, on its raw head.
const unreadableBody = (up: IncomingMessage): boolean => answerType(up.rawHeaders) === UNREADABLE_BODY;

// The Mcp-Session-Id of a raw response head; undefined when absent or repeated (never bound then).
function sessionField(raw: readonly string[]): string | undefined {
  let sid: string | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]!.length !== 14 || raw[i]!.toLowerCase() !== 'mcp-session-id') continue;
    if (sid !== undefined) return undefined;
    sid = raw[i + 1]!;
  }
  return sid;
}

/** Most Streamable HTTP sessions remembered at once. */
const MAX_SESSIONS = 10_000;

// Response fields from the upstream for the caller: hop-by-hop fields and the framing this handler sets itself dropped.
function copyHeaders(h: IncomingHttpHeaders, drop: ReadonlySet<string> = new Set()): OutgoingHttpHeaders {
  const named = connectionTokens(h.connection);
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined && !isHopByHop(k, named) && k !== 'content-length' && k !== DECISION_ID_HEADER && !drop.has(k)) out[k] = v;
  return out;
}

// Pipe an upstream body to the caller; a broken upstream ends the caller's response instead of hanging it.
function relay(up: IncomingMessage, res: ServerResponse, via?: Transform): void {
  up.on('error', () => res.destroy());
  res.on('close', () => up.destroy());
  if (via) {
    via.on('error', () => res.destroy());
    up.pipe(via).pipe(res);
  } else {
    up.pipe(res);
  }
}

/** Most tools/list requests one legacy session waits on at once (a caller that never reads its answers cannot grow it). */
export const MAX_PENDING_TOOLS_LISTS = 256;

/**
 * Remember that the tools/list `key` awaits its answer with `view`. The oldest is forgotten first: its
 * answer is then filtered with the session's latest view, the same caller's.
 */
export function awaitToolsList<V>(pending: Map<string, V>, key: string, view: V): void {
  pending.delete(key);
  rememberAtMost(pending, key, view, MAX_PENDING_TOOLS_LISTS);
}

function idKey(id: JsonRpcId): string {
  return typeof id === 'number' ? `n:${id}` : `s:${id}`;
}

/** A legacy HTTP+SSE session relayed by this handler. */
interface LegacySession {
  principal: string;
  stream: ServerResponse;
  /** tools/list requests waiting for their answer on the stream, with the view of the caller who asked. */
  pendingToolsList: Map<string, ToolsView>;
  /** The view of the last tools/list sent on this session: any tool list on the stream is filtered with it. */
  view?: ToolsView;
}

/** The MCP handler of one workload. */
export class McpHandler {
  private readonly limits: JsonRpcLimits;
  private readonly sessions = new Map<string, LegacySession>();
  /** Streamable HTTP session id → the principal that initialized it (insertion order = age). */
  private readonly owners = new Map<string, string>();
  /** Tools a live tools/list showed changed since review (drift: block): calls to them are refused until a whole list shows them as reviewed again. */
  private readonly drifted = new Set<string>();

  constructor(private readonly opts: McpHandlerOptions) {
    this.limits = opts.limits ?? DEFAULT_LIMITS;
  }

  /** True when this handler answers `path` for the given bundle (its MCP transport paths, OAuth metadata). */
  owns(path: string, policy: Policy | undefined): boolean {
    const oauth = this.oauthFor(policy);
    if (oauth && metadataPaths(oauth).includes(path)) return true;
    const spec = policy ? mcpSpec(policy.bundle) : undefined;
    return !!spec && transportPathMatch(spec, path) !== undefined;
  }

  // OAuth settings: the handler's own, else what the workload's bundle says (workload.yaml mcp.oauth).
  private oauthFor(policy: Policy | undefined): OAuthConfig | undefined {
    return this.opts.oauth ?? (policy ? mcpSpec(policy.bundle)?.oauth : undefined);
  }

  /** Legacy sessions currently relayed (for metrics and tests). */
  get legacySessions(): number {
    return this.sessions.size;
  }

  /** Answer one request. Never throws for bad input: every refusal is an HTTP or JSON-RPC answer. */
  async handle(req: McpRequest, ctx: McpCallContext, res: ServerResponse): Promise<void> {
    const oauth = this.oauthFor(ctx.policy);
    if (oauth && metadataPaths(oauth).includes(req.path)) {
      if (req.method !== 'GET') return sendJson(res, 405, { error: 'method not allowed' }, { allow: 'GET' });
      return sendJson(res, 200, protectedResourceMetadata(oauth), { 'cache-control': 'max-age=300' });
    }
    const spec = mcpSpec(ctx.policy.bundle);
    if (!spec) return sendJson(res, 404, rpcError(null, RPC_ERRORS.INVALID_REQUEST, 'this workload has no MCP endpoint'));
    if (oauth) {
      const refusal = checkBearer(oauth, ctx.source, req.headers.authorization);
      if (refusal) {
        res.setHeader('www-authenticate', refusal.challenge);
        return sendJson(res, refusal.status, rpcError(null, RPC_ERRORS.INVALID_REQUEST, `Unauthorized: ${refusal.reason}`));
      }
    }
    if (transportPathMatch(spec, req.path) === 'variant') {
      // Another spelling of a transport path (case, trailing slash) would skip the checks tied to the exact one.
      const reason = `request refused: ${req.path} is another spelling of an MCP transport path; use ${spec.transport_paths.join(' or ')} exactly`;
      const logged = ctx.refuse?.(this.input(ctx), reason, 400);
      return sendJson(res, 400, rpcError(null, RPC_ERRORS.INVALID_REQUEST, reason, logged ? { decision_id: logged.decisionId } : undefined), logged ? { [DECISION_ID_HEADER]: logged.decisionId } : {});
    }
    const decide = ctx.decide;
    const legacy = req.path !== spec.endpoint;
    if (!legacy) {
      const refused = this.checkSession(req, ctx);
      if (refused) return sendJson(res, refused.status, rpcError(null, RPC_ERRORS.INVALID_REQUEST, refused.message));
    }
    if (req.method === 'POST') return legacy ? this.legacyPost(req, ctx, spec, decide, res) : this.post(req, ctx, spec, decide, res);
    if (req.method === 'GET' || (req.method === 'DELETE' && !legacy)) return this.plain(req, ctx, decide, res, legacy ? spec : undefined);
    return sendJson(res, 405, rpcError(null, RPC_ERRORS.INVALID_REQUEST, `${req.method} is not an MCP transport method on ${req.path}`), { allow: legacy ? 'GET, POST' : 'GET, POST, DELETE' });
  }

  // A session is usable only by the caller that initialized it: its stream carries that caller's messages.
  private checkSession(req: McpRequest, ctx: McpCallContext): { status: number; message: string } | undefined {
    const sid = req.headers['mcp-session-id'];
    if (sid === undefined) return undefined;
    if (typeof sid !== 'string') return { status: 400, message: 'more than one Mcp-Session-Id header' };
    const owner = this.owners.get(sid);
    // Unknown here (never initialized through this proxy, or forgotten): the client re-initializes on 404.
    if (owner === undefined) return { status: 404, message: 'Session not found' };
    if (owner !== ctx.source.principal) return { status: 403, message: 'this session belongs to another caller' };
    return undefined;
  }

  // `sid`: the Mcp-Session-Id the server answered with.
  private bindSession(sid: unknown, req: McpRequest, ctx: McpCallContext): void {
    if (typeof sid !== 'string' || this.owners.has(sid) || req.headers['mcp-session-id'] !== undefined) return;
    // Bounded: the oldest sessions are forgotten first (their clients get 404 and re-initialize).
    rememberAtMost(this.owners, sid, ctx.source.principal, MAX_SESSIONS);
  }

  private input(ctx: McpCallContext, mcp?: McpInput): PolicyInput {
    const destination = ctx.destination ?? this.opts.destination;
    return mcp ? { source: ctx.source, destination, request: ctx.request, mcp } : { source: ctx.source, destination, request: ctx.request };
  }

  private plan(req: McpRequest, ctx: McpCallContext, spec: McpSpec, decide: Decide): { ok: true; plan: BatchPlan } | { ok: false; status: number; error: JsonRpcResponse; head: OutgoingHttpHeaders } {
    const parsed = parseBody(req.body, req.headers, this.limits);
    if (!parsed.ok) {
      // A refused body is a logged denial too: the caller gets its decision id in the error and the header.
      const e = parsed.error.error!;
      const logged = ctx.refuse?.(this.input(ctx), `request refused: ${e.message}`, parsed.status);
      if (!logged) return { ...parsed, head: {} };
      return { ok: false, status: parsed.status, error: rpcError(null, e.code, e.message, { decision_id: logged.decisionId }), head: { [DECISION_ID_HEADER]: logged.decisionId } };
    }
    return { ok: true, plan: this.decideAll(parsed, ctx, spec, decide) };
  }

  // Every call of a parsed body decided. The drift block is local state: a reviewed tool that changed on
  // the server is refused until it matches again.
  private decideAll(parsed: Extract<ParsedBody, { ok: true }>, ctx: McpCallContext, spec: McpSpec, decide: Decide): BatchPlan {
    return planBatch(parsed.batch, parsed.messages, (mcp) => {
      const v = decide(this.input(ctx, mcp), 'mcp');
      if (v.allow && spec.drift === 'block' && mcp.method === 'tools/call' && mcp.tool && this.drifted.has(mcp.tool)) {
        return { allow: false, decisionId: v.decisionId, reasons: [`tool ${mcp.tool} changed on the server since it was reviewed (drift: block)`] };
      }
      return v;
    });
  }

  /**
   * A POST to the endpoint on the sidecar's fast path: the same checks and decisions as `handle`, for a
   * single message. Anything else (a batch, a body that does not parse, OAuth, another spelling of the
   * path, a session refused) is handed off before anything is decided, and node's path answers it through
   * `handle`. An allowed call goes out re-encoded (what was decided is what the server reads) and its
   * answer comes back checked as node's path checks it (`fastAnswer`); a denied call is answered here.
   */
  fastPost(req: McpRequest, ctx: McpCallContext): FastOutcome {
    if (req.method !== 'POST' || this.oauthFor(ctx.policy)) return HAND_OFF;
    const spec = mcpSpec(ctx.policy.bundle);
    if (!spec || req.path !== spec.endpoint || this.checkSession(req, ctx)) return HAND_OFF;
    const parsed = parseBody(req.body, req.headers, this.limits);
    if (!parsed.ok || parsed.batch) return HAND_OFF;
    const plan = this.decideAll(parsed, ctx, spec, ctx.decide);
    const head = this.decisionHeader(plan);
    const decisionId = head[DECISION_ID_HEADER] as string | undefined;
    const body = forwardBody(plan);
    if (!body) {
      const answer = mergeAnswers(plan, []);
      const headers: Array<[string, string]> = decisionId ? [[DECISION_ID_HEADER, decisionId]] : [];
      if (answer === undefined) return { answer: { status: 202, headers, body: '' } };
      return { answer: { status: 200, headers: [['content-type', 'application/json'], ...headers], body: JSON.stringify(answer) } };
    }
    const fields = this.upstreamHeaders(req, ctx, head, ['content-type']);
    fields.push('content-type', 'application/json', 'content-length', String(body.length));
    const tools = this.toolsLater(this.toolsListIds(plan), ctx, spec);
    const max = this.opts.maxUpstreamJsonBytes ?? MAX_UPSTREAM_JSON_BYTES;
    return {
      forward: {
        body,
        headers: fields,
        decisionId,
        onResponse: (raw) => this.bindSession(sessionField(raw), req, ctx),
        answer: (status: number, raw: readonly string[]) => fastAnswer(status, answerType(raw), decisionId, tools, max, this.opts),
      },
    };
  }

  /**
   * The caller's view of the tool list, worked out once and only when needed. For a body with a
   * tools/list it is worked out while the server answers: the request goes out first (the fast path
   * writes it in this turn of the event loop), the evaluation runs in the next one, and an answer that
   * comes sooner works it out itself. Same pinned policy, same input: only the moment differs.
   */
  private toolsLater(ids: ReadonlySet<JsonRpcId>, ctx: McpCallContext, spec: McpSpec): ToolsAnswer {
    let view: ToolsView | undefined;
    const workOut = () => (view ??= this.toolsView(ctx, spec));
    if (ids.size > 0) setImmediate(workOut);
    return { ids, view: workOut };
  }

  private toolsView(ctx: McpCallContext, spec: McpSpec): ToolsView {
    let visible: Set<string>;
    try {
      const v = ctx.policy.evaluate(VISIBLE_TOOLS_ENTRYPOINT, this.input(ctx, { method: 'tools/list' }));
      visible = new Set(Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
    } catch {
      visible = new Set();
    }
    return {
      visible,
      spec,
      // A whole list on which a blocked tool is listed as reviewed again lifts its block: the review holds again.
      onList: (r, full) => {
        if (spec.drift !== 'block' || !full || this.drifted.size === 0) return;
        for (const tool of this.drifted) if (!r.removed.includes(tool) && !r.changed.some((c) => c.tool === tool)) this.drifted.delete(tool);
      },
      onDrift: (r) => {
        if (spec.drift === 'block') {
          for (const c of r.changed) this.drifted.add(c.tool);
        }
        (ctx.onDrift ?? this.opts.onDrift)?.(r, spec.drift);
      },
    };
  }

  private toolsListIds(plan: BatchPlan): ReadonlySet<JsonRpcId> {
    let ids: Set<JsonRpcId> | undefined;
    for (const c of plan.forward) if (c.kind === 'request' && c.message.method === 'tools/list') (ids ??= new Set()).add(c.message.id);
    return ids ?? NO_IDS;
  }

  private decisionHeader(plan: BatchPlan): OutgoingHttpHeaders {
    const ids = plan.verdicts.map((v) => v.verdict.decisionId);
    return ids.length > 0 ? { [DECISION_ID_HEADER]: ids.join(', ') } : {};
  }

  // The request fields for the upstream as a flat list, built like every other forwarder's
  // (upstream-head.ts); Host and the framing are the forwarder's own.
  private upstreamHeaders(req: McpRequest, ctx: McpCallContext, decisionIds: OutgoingHttpHeaders, alsoReplaced: readonly string[] = []): string[] {
    // An OAuth-protected resource must not pass the caller's token on (MCP spec: no token passthrough).
    // Answers are asked for unencoded: the filter reads them (an encoded one is refused: answerType).
    const replaced = ['host', 'content-length', 'accept-encoding', ...alsoReplaced, ...(this.oauthFor(ctx.policy) ? ['authorization'] : [])];
    const decisionId = decisionIds[DECISION_ID_HEADER] as string | undefined;
    const policy = ctx.headerPolicy ?? this.opts.headerPolicy ?? DEFAULT_HEADER_POLICY;
    const fields = upstreamHeaders(req.rawHeaders ?? flatHeaders(req.headers), policy, { source: ctx.source, decisionId, replaced });
    fields.push('accept-encoding', 'identity');
    return fields;
  }

  private target(req: McpRequest): string {
    return req.query ? `${req.path}?${req.query}` : req.path;
  }

  private async post(req: McpRequest, ctx: McpCallContext, spec: McpSpec, decide: Decide, res: ServerResponse): Promise<void> {
    const p = this.plan(req, ctx, spec, decide);
    if (!p.ok) return sendJson(res, p.status, p.error, p.head);
    const { plan } = p;
    const head = this.decisionHeader(plan);
    const body = forwardBody(plan);
    if (!body) {
      const answer = mergeAnswers(plan, []);
      if (answer === undefined) {
        res.writeHead(202, head);
        return void res.end();
      }
      return sendJson(res, 200, answer, head);
    }
    const tools = this.toolsLater(this.toolsListIds(plan), ctx, spec);
    const ids = tools.ids;
    let up: IncomingMessage;
    try {
      up = await this.opts.upstream({ method: 'POST', target: this.target(req), headers: { ...headerObject(this.upstreamHeaders(req, ctx, head)), 'content-type': 'application/json', 'content-length': body.length }, body });
    } catch {
      return sendJson(res, 502, rpcError(null, -32000, 'the MCP server could not be reached'), head);
    }
    this.bindSession(up.headers['mcp-session-id'], req, ctx);
    const ct = mediaType(up.headers['content-type']);
    const status = up.statusCode ?? 502;
    // A stream (a tool list may come on any call's stream, under the id of a tools/list sent elsewhere,
    // whatever its status says: filtered, this call's local answers first), no body, or an error status (the
    // upstream refused the body as a whole, e.g. an unknown session: its answer stands for all of it):
    // checked as every answer that is not a 2xx JSON-RPC answer is.
    if (ct === 'text/event-stream' || bodiless(status) || status >= 300) return this.relayChecked(up, res, status, head, tools, plan.local);
    if (this.refusedUnreadable(up, res, status, head)) return;
    // A 2xx body of another type is refused (the transport allows none): no client may find an
    // unfiltered tool list in it. Only a 202 without a body (to notifications or responses) passes.
    if (ct !== 'application/json') {
      const raw = await this.readAnswer(up);
      if (raw?.length !== 0 || status !== 202) return sendUnreadable(res, head);
      if (plan.local.length > 0) return sendJson(res, 200, mergeAnswers(plan, []) ?? [], { ...copyHeaders(up.headers, new Set(['content-type'])), ...head });
      res.writeHead(status, { ...copyHeaders(up.headers), ...head });
      return void res.end();
    }
    // A 2xx JSON answer.
    const raw = await this.readAnswer(up);
    const text = raw?.toString('utf8');
    // The answer to a body's one message (no batch, nothing answered here) is written as the fast path
    // writes it: from memory when it is a tool list filtered before (list-answers.ts), else re-encoded.
    const single = !plan.batch && plan.local.length === 0;
    const sendText = (out: string) => sendJsonText(res, status, out, { ...copyHeaders(up.headers, new Set(['content-type'])), ...head });
    const known = single && text !== undefined && ids.size > 0 ? remembered(text, tools.view(), this.opts.listMemory) : undefined;
    if (known !== undefined) return sendText(known);
    const doc = text === undefined ? undefined : answerDocument(text);
    if (!doc) return sendUnreadable(res, head);
    // One answer to one forwarded call, nothing to filter or merge (a tools/call result, say): the bytes
    // the server sent, once they parsed, go out as they are, unless they could spell a `tools` key (a key
    // given twice is read differently by other parsers: re-encoded, as on the fast path).
    const listed = ids.size > 0 || holdsToolList(doc);
    if (!listed && !plan.batch && plan.local.length === 0 && !Array.isArray(doc) && !parsedMayListTools(text!)) {
      res.writeHead(status, { ...copyHeaders(up.headers), ...head, 'content-type': 'application/json', 'content-length': raw!.length });
      return void res.end(raw);
    }
    if (otherwiseSpelled(doc)) return sendUnreadable(res, head);
    if (single && !Array.isArray(doc)) return sendText(rewrittenAnswer(text!, doc, ids, tools.view));
    const filtered = listed ? filterToolsJson(doc, ids, tools.view()) : doc;
    const answers = (Array.isArray(filtered) ? filtered : [filtered]) as JsonRpcResponse[];
    const merged = mergeAnswers(plan, answers);
    return sendJson(res, status, merged ?? [], { ...copyHeaders(up.headers, new Set(['content-type'])), ...head });
  }

  // An answer's body read whole, up to maxUpstreamJsonBytes; undefined (the upstream dropped) when it is
  // larger or breaks off.
  private async readAnswer(up: IncomingMessage): Promise<Buffer | undefined> {
    const raw = await readBody(up, this.opts.maxUpstreamJsonBytes ?? MAX_UPSTREAM_JSON_BYTES).catch(() => undefined);
    if (!raw) up.destroy();
    return raw;
  }

  // An answer with a body the filter cannot read (encoded, or in a charset that does not read ASCII as UTF-8
  // does) is a 502 (true when it was answered so), as on the fast path.
  private refusedUnreadable(up: IncomingMessage, res: ServerResponse, status: number, head: OutgoingHttpHeaders): boolean {
    if (bodiless(status) || !unreadableBody(up)) return false;
    up.destroy();
    sendUnreadable(res, head);
    return true;
  }

  // An answer that is not one of the transport's JSON-RPC answers (a GET's, a DELETE's, a legacy POST's),
  // whatever its status: a body the filter cannot read (encoded, another charset) is refused, an event
  // stream (any spelling of the type a client may accept as one, `Text/Event-Stream; charset=utf-8`)
  // filtered event by event, any other body checked.
  // `local`: answers the sidecar gives itself to calls of the same body, written first on a stream (it may
  // stay open after the upstream's own answers).
  private async relayChecked(up: IncomingMessage, res: ServerResponse, status: number, head: OutgoingHttpHeaders, tools: ToolsAnswer, local: readonly JsonRpcResponse[] = []): Promise<void> {
    if (this.refusedUnreadable(up, res, status, head)) return;
    if (mediaType(up.headers['content-type']) === 'text/event-stream') {
      res.writeHead(status, { ...copyHeaders(up.headers), ...head });
      for (const l of local) res.write(messageEvent(l));
      res.flushHeaders();
      return relay(up, res, rewriteEventStream(toolsEvents(tools.ids, tools.view, this.opts)));
    }
    if (bodiless(status)) {
      res.writeHead(status, { ...copyHeaders(up.headers), ...head });
      return relay(up, res);
    }
    return this.sendChecked(up, res, status, head, tools);
  }

  // A body read whole (bounded) and passed on with its status as `filterOtherBody` allows, else a 502: a
  // lenient client may read a tool list in any body.
  private async sendChecked(up: IncomingMessage, res: ServerResponse, status: number, head: OutgoingHttpHeaders, tools: ToolsAnswer): Promise<void> {
    const raw = await this.readAnswer(up);
    const out = raw && filterOtherBody(raw, mediaType(up.headers['content-type']), tools.ids, tools.view);
    if (!out) return sendUnreadable(res, head);
    res.writeHead(status, { ...copyHeaders(up.headers), ...head, 'content-length': out.length });
    res.end(out);
  }

  // GET and DELETE carry no JSON-RPC: decided as plain HTTP on the transport path.
  private async plain(req: McpRequest, ctx: McpCallContext, decide: Decide, res: ServerResponse, legacySpec: McpSpec | undefined): Promise<void> {
    const v = decide(this.input(ctx), 'http');
    const head = { [DECISION_ID_HEADER]: v.decisionId };
    if (!v.allow) return sendJson(res, v.decision?.status ?? 403, { decision_id: v.decisionId, reasons: v.reasons }, { ...(v.decision?.headers ?? {}), ...head });
    let up: IncomingMessage;
    try {
      up = await this.opts.upstream({ method: req.method, target: this.target(req), headers: headerObject(this.upstreamHeaders(req, ctx, head)) });
    } catch {
      return sendJson(res, 502, { decision_id: v.decisionId, reasons: ['the MCP server could not be reached'] }, head);
    }
    const status = up.statusCode ?? 502;
    if (req.method === 'DELETE' && status < 300) this.owners.delete(String(req.headers['mcp-session-id']));
    const stream = mediaType(up.headers['content-type']) === 'text/event-stream';
    if (req.method === 'GET' && legacySpec && stream && !unreadableBody(up)) {
      res.writeHead(status, { ...copyHeaders(up.headers), ...head });
      res.flushHeaders();
      return this.relayLegacyStream(up, res, ctx.source.principal);
    }
    // The transport answers GET with an event stream or 405, and the SDK reads a 2xx GET body as a stream
    // whatever its type says: any other 2xx body is refused, as a POST's is.
    if (req.method === 'GET' && !stream && status >= 200 && status < 300 && !bodiless(status)) {
      up.destroy();
      return sendUnreadable(res, head);
    }
    // The server's own stream may replay earlier answers (resumption with Last-Event-ID): any tools/list
    // result on it is filtered for this caller, so a replay cannot show what the POST answer hid.
    // Filtered by shape (any result with a tool list, batches included), as a POST's stream is.
    return this.relayChecked(up, res, status, head, this.toolsLater(new Set(), ctx, mcpSpec(ctx.policy.bundle)!));
  }

  // The legacy stream announces the session in its `endpoint` event and carries every answer.
  private relayLegacyStream(up: IncomingMessage, res: ServerResponse, principal: string): void {
    let sessionId: string | undefined;
    const rewrite = rewriteEventStream((e) => {
      if (e.type === 'endpoint' && sessionId === undefined) {
        try {
          sessionId = new URL(e.data, 'http://x').searchParams.get('sessionId') ?? undefined;
        } catch {
          sessionId = undefined;
        }
        // A session id another live stream announced stays that stream's: a server that announces it again
        // cannot hand one caller's session (its POSTs, its view of the tools) to another. This stream has none.
        const taken = sessionId ? this.sessions.get(sessionId) : undefined;
        if (taken && !taken.stream.writableEnded && !taken.stream.destroyed) sessionId = '';
        if (sessionId) this.sessions.set(sessionId, { principal, stream: res, pendingToolsList: new Map() });
        // Its other lines go out only when they cannot spell a tool list (re-encoded, they are left out).
        return mayListTools(e.raw) ? e.data : undefined;
      }
      // Before the endpoint event, or after one that named no session, no tools/list can have been sent on
      // the stream: a tool list there is dropped like any list nobody asked for.
      const s = sessionId ? this.sessions.get(sessionId) : undefined;
      const quiet = withoutData(e);
      if (quiet !== false) return quiet;
      // As toolsEvents: with no tools/list awaited, an event that cannot spell a `tools` key passes unread.
      const awaited = !!s && s.pendingToolsList.size > 0;
      if (!awaited && !mayListTools(e.raw)) return undefined;
      let msg: unknown;
      try {
        msg = JSON.parse(e.data) as unknown;
      } catch {
        // It might be a tool list, for a client with a more lenient parser.
        this.opts.warn?.('dropped an event of a legacy MCP stream that is not JSON (it could hold an unfiltered tool list)', { event: e.type, bytes: e.data.length });
        return null;
      }
      if (!awaited && !parsedEventMayListTools(e.raw)) return undefined;
      if (otherwiseSpelled(msg)) {
        this.opts.warn?.('dropped an event of a legacy MCP stream with a key spelled otherwise than the filter reads it', { event: e.type });
        return null;
      }
      const id = msg && typeof msg === 'object' && !Array.isArray(msg) ? (msg as JsonRpcResponse).id : undefined;
      const key = typeof id === 'string' || typeof id === 'number' ? idKey(id) : undefined;
      const view = (key !== undefined ? s?.pendingToolsList.get(key) : undefined) ?? s?.view;
      if (key !== undefined) s?.pendingToolsList.delete(key);
      // A tool list under any id (a decoy first, say) is filtered with the session's view; with no
      // tools/list ever sent on the session, there is no view and no client waits for one: dropped.
      if (!holdsToolList(msg)) return JSON.stringify(msg);
      if (!view) {
        this.opts.warn?.('dropped a tool list on a legacy MCP stream that no tools/list asked for', { event: e.type });
        return null;
      }
      return JSON.stringify(filterToolsJson(msg, new Set(), view));
    });
    const end = (): void => {
      if (sessionId) this.sessions.delete(sessionId);
    };
    res.on('close', end);
    relay(up, res, rewrite);
  }

  private async legacyPost(req: McpRequest, ctx: McpCallContext, spec: McpSpec, decide: Decide, res: ServerResponse): Promise<void> {
    const sessionId = new URLSearchParams(req.query).get('sessionId');
    const session = sessionId ? this.sessions.get(sessionId) : undefined;
    // Only sessions opened through this proxy, by the same caller: answers go to the stream's owner.
    if (session && (session.stream.writableEnded || session.stream.destroyed)) this.sessions.delete(sessionId!);
    if (!session || session.stream.writableEnded || session.stream.destroyed) return sendJson(res, 404, rpcError(null, RPC_ERRORS.INVALID_REQUEST, 'unknown session: open the event stream through this endpoint first'));
    if (session.principal !== ctx.source.principal) return sendJson(res, 403, rpcError(null, RPC_ERRORS.INVALID_REQUEST, 'this session belongs to another caller'));
    const p = this.plan(req, ctx, spec, decide);
    if (!p.ok) return sendJson(res, p.status, p.error, p.head);
    const { plan } = p;
    const head = this.decisionHeader(plan);
    const ids = this.toolsListIds(plan);
    if (ids.size > 0) {
      const view = this.toolsView(ctx, spec);
      session.view = view;
      for (const id of ids) awaitToolsList(session.pendingToolsList, idKey(id), view);
    }
    for (const l of plan.local) session.stream.write(messageEvent(l));
    const body = forwardBody(plan);
    if (!body) {
      res.writeHead(202, head);
      return void res.end('Accepted');
    }
    let up: IncomingMessage;
    try {
      up = await this.opts.upstream({ method: 'POST', target: this.target(req), headers: { ...headerObject(this.upstreamHeaders(req, ctx, head)), 'content-type': 'application/json', 'content-length': body.length }, body });
    } catch {
      return sendJson(res, 502, rpcError(null, -32000, 'the MCP server could not be reached'), head);
    }
    // The answers travel on the stream; this one is normally `202 Accepted`. Any other is checked as an
    // error answer is, with the session's view: a lenient client may read a tool list in it.
    let view: ToolsView | undefined;
    return this.relayChecked(up, res, up.statusCode ?? 502, head, { ids, view: () => (view ??= session.view ?? this.toolsView(ctx, spec)) });
  }
}
