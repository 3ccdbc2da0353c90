// tools/list answers rewritten per caller: only tools the caller may call, described by the
// reviewed (compiled) annotations, never the live server's own claims about itself.
import type { JsonRpcId, JsonRpcResponse } from './jsonrpc.js';
import { detectDrift, hasDrift, unreviewedTools, type DriftRecord, type LiveTool } from './drift.js';
import type { McpSpec } from './spec.js';
import { otherSpelling, readKeys } from '../../runtime/json-text.js';

/** What the filter needs to know about the caller and the workload. */
export interface ToolsView {
  /** Tools the caller may be offered (warden/visible_tools for this caller). */
  visible: ReadonlySet<string>;
  spec: McpSpec;
  /** Called once per tools/list answer that differs from the compiled list. */
  onDrift?: (r: DriftRecord) => void;
  /**
   * Called once per tool list filtered, drift or not, before `onDrift`: `full` when it is the whole list
   * (no page of a paginated one), so that a reviewed tool neither changed nor removed matches its review.
   * The record is read only (it may be frozen: a remembered answer's is handed out as it is).
   */
  onList?: (r: DriftRecord, full: boolean) => void;
}

/** Filter one tools/list result object; anything not shaped like one is returned as is. */
export function filterToolsResult(result: unknown, view: ToolsView): unknown {
  if (!result || typeof result !== 'object' || !Array.isArray((result as { tools?: unknown }).tools)) return result;
  const tools = ((result as { tools: unknown[] }).tools).filter((t): t is LiveTool => !!t && typeof t === 'object' && typeof (t as LiveTool).name === 'string');
  const drift = detectDrift(tools, view.spec);
  // One page of a paginated list lacks the other pages' tools: removals are only meaningful on a full list.
  const full = (result as { nextCursor?: unknown }).nextCursor === undefined && !('cursor' in (result as object));
  if (!full) drift.removed = [];
  view.onList?.(drift, full);
  if (hasDrift(drift)) view.onDrift?.(drift);
  const blocked = view.spec.drift === 'block' ? unreviewedTools(drift) : new Set<string>();
  // A name listed twice is offered once, as first listed: a client must not pick between two descriptions.
  const listed = new Set<string>();
  const kept = tools
    .filter((t) => view.visible.has(t.name) && Object.hasOwn(view.spec.tools, t.name) && !blocked.has(t.name) && !listed.has(t.name) && !!listed.add(t.name))
    .map((t) => reviewedTool(t, view.spec.tools[t.name]!.annotations));
  return { ...(result as object), tools: kept };
}

// A listed tool as offered: its members as listed, in order, but the server's own annotations, and the
// reviewed ones last when the spec has any. One copy, member by member (a rest pattern and a spread made
// two per tool); a parsed own `__proto__` member stays a member.
function reviewedTool(t: LiveTool, annotations: object | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k in t) {
    if (!Object.hasOwn(t, k) || k === 'annotations') continue;
    if (k === '__proto__') Object.defineProperty(out, k, { value: t[k], enumerable: true, writable: true, configurable: true });
    else out[k] = t[k];
  }
  if (annotations) out.annotations = annotations;
  return out;
}

/** True when a response's result holds a tool list (`result.tools` is an array). */
export function listsTools(r: JsonRpcResponse): boolean {
  return !!r.result && typeof r.result === 'object' && Array.isArray((r.result as { tools?: unknown }).tools);
}

/** True when a message (or a batch of them) holds a result with a tool list. */
export function holdsToolList(doc: unknown): boolean {
  const one = (m: unknown) => !!m && typeof m === 'object' && listsTools(m as JsonRpcResponse);
  return Array.isArray(doc) ? doc.some(one) : one(doc);
}

/**
 * False when JSON text cannot hold a tool list: it spells no `tools` key, neither as the word nor through an
 * escape (`t\u006fols`), nor in UTF-16 or UTF-32 (a NUL, which UTF-8 JSON and event streams never hold raw).
 * Such text passes unread, so a check costs a byte search on answers without one.
 */
export function mayListTools(text: string | Buffer): boolean {
  return spellsTools(text) || text.includes('\\') || text.includes('\0');
}

// The word `tools` in any case, or with the long s (`toolſ`), which case-insensitive readers (Go's
// encoding/json: mcp-go's client) take for it; in bytes, the long s is UTF-8's C5 BF.
const TOOLS_WORD = /tool[s\u017f]/i;
const TOOLS_BYTES = /tool(?:s|\u00c5\u00bf)/i;
const spellsTools = (text: string | Buffer): boolean => (typeof text === 'string' ? TOOLS_WORD.test(text) : text.includes('tools') || TOOLS_BYTES.test(text.toString('latin1')));

/**
 * False when text that JSON.parse accepted cannot spell a `tools` key for any parser: in valid JSON only a
 * `\u` escape spells a letter (`\n` and `\"` do not), so a tool result with escaped quotes needs no more look.
 */
export function parsedMayListTools(json: string): boolean {
  return TOOLS_WORD.test(json) || json.includes('\\u');
}

// The members the filter reads, by level: a message, its result, a listed tool.
const MESSAGE_KEYS = readKeys(['jsonrpc', 'id', 'result', 'error']);
const RESULT_KEYS = readKeys(['tools', 'nextCursor', 'cursor']);
const TOOL_KEYS = readKeys(['name', 'annotations']);

/**
 * Why a parsed answer (a message or a batch of them) cannot be vouched for, if it cannot: at a level the
 * filter reads (the message, its result, a listed tool), a key spelled otherwise than the filter reads it
 * (`Result`, `Tools`, `toolſ`, `Name`) or two keys that differ only by case. A client that matches keys
 * regardless of case (mcp-go's) would read a tool list, or a tool's name, the filter never saw.
 */
export function otherwiseSpelled(doc: unknown): string | undefined {
  for (const m of Array.isArray(doc) ? doc : [doc]) {
    if (!m || typeof m !== 'object' || Array.isArray(m)) continue;
    const bad = otherSpelling(m, MESSAGE_KEYS);
    if (bad) return bad;
    const result = (m as { result?: unknown }).result;
    if (!result || typeof result !== 'object' || Array.isArray(result)) continue;
    const inResult = otherSpelling(result, RESULT_KEYS);
    if (inResult) return inResult;
    const tools = (result as { tools?: unknown }).tools;
    if (!Array.isArray(tools)) continue;
    for (const t of tools) {
      const inTool = t && typeof t === 'object' && !Array.isArray(t) ? otherSpelling(t, TOOL_KEYS) : undefined;
      if (inTool) return inTool;
    }
  }
  return undefined;
}

/**
 * False when an event-stream event whose data JSON.parse accepted cannot hold a tool list for any client:
 * its text (all its lines) spells neither `tools` nor a `\u` escape (`parsedMayListTools`), nor holds a NUL
 * (`mayListTools`). Such an event may pass as sent.
 */
export function parsedEventMayListTools(raw: string): boolean {
  return parsedMayListTools(raw) || raw.includes('\0');
}

// Text a JSON parser may read as a document (an object or a batch), after any white space or byte order mark.
const JSON_DOCUMENT = /^[\s\uFEFF]*[[{]/;
// An event-stream data field: a client that reads the body as a stream (whatever its type says) gets its value.
const EVENT_DATA = /(?:^\uFEFF?|[\r\n])data(?:[:\r\n]|$)/;

/**
 * An answer body that is not one of the transport's JSON-RPC answers (an error status, a GET's or DELETE's
 * answer, a legacy POST's own answer), as it may go to the caller; undefined when it cannot go (502).
 * A client may still read a tool list in it, whatever its status and type say: JSON (by its type, or by its
 * first character) is parsed, and re-encoded with every tool list filtered, so that a client reads what was
 * checked (a key given twice is read alike by all); JSON that does not parse, and event-stream data lines,
 * are refused; any other body (an HTML error page) passes as sent, as does any body that spells no tool list.
 */
export function filterOtherBody(body: Buffer, mediaType: string, ids: ReadonlySet<JsonRpcId>, view: () => ToolsView): Buffer | undefined {
  if (!mayListTools(body)) return body;
  // UTF-16 or UTF-32 text (a client may decode it so) or binary: nothing the filter could read.
  if (body.includes(0)) return undefined;
  const text = body.toString('utf8');
  if (mediaType === 'application/json' || mediaType.endsWith('+json') || JSON_DOCUMENT.test(text)) {
    let doc: unknown;
    try {
      // A byte order mark fails here, as on a 2xx JSON answer: refused rather than guessed at.
      doc = JSON.parse(text) as unknown;
    } catch {
      return undefined;
    }
    if (!doc || typeof doc !== 'object') return body; // a bare string or number holds no list
    if (otherwiseSpelled(doc)) return undefined;
    return Buffer.from(JSON.stringify(holdsToolList(doc) ? filterToolsJson(doc, ids, view()) : doc), 'utf8');
  }
  return EVENT_DATA.test(text) ? undefined : body;
}

/**
 * Rewrite a response if it answers one of the tools/list requests in `ids`, or holds a tool list whatever
 * its id says: clients match ids loosely (the MCP SDK reads `"5"` and `5.0` as 5), so a list answered
 * under another spelling of the id is filtered all the same.
 */
export function filterToolsResponse(msg: unknown, ids: ReadonlySet<JsonRpcId>, view: ToolsView): unknown {
  const r = msg as JsonRpcResponse;
  if (!r || typeof r !== 'object' || Array.isArray(r) || !('result' in r)) return msg;
  if (!listsTools(r) && (r.id === null || !ids.has(r.id))) return msg;
  return { ...r, result: filterToolsResult(r.result, view) };
}

/** Rewrite a JSON body (single or batch of responses); undefined when nothing in it changed. */
export function filterToolsJson(body: unknown, ids: ReadonlySet<JsonRpcId>, view: ToolsView): unknown {
  if (Array.isArray(body)) return body.map((m) => filterToolsResponse(m, ids, view));
  return filterToolsResponse(body, ids, view);
}
