// JSON-RPC 2.0 as MCP carries it over HTTP: parse one POST body into classified messages, or the
// one error that refuses the whole body. Nothing here decides; it only says what the body is.

import type {
  INVALID_PARAMS,
  INVALID_REQUEST,
  JSONRPC_VERSION,
  METHOD_NOT_FOUND,
  PARSE_ERROR,
  Error as RpcErrorObject,
  JSONRPCNotification,
  JSONRPCRequest,
  RequestId,
} from '@modelcontextprotocol/sdk/spec.types.js';
import { otherSpelling, readKeys } from '../../runtime/json-text.js';
import { foreignEncoding, holdsMethodKey, MAX_JSON_DEPTH, nestsDeeperThan } from '../json-body.js';

// The message shapes and error codes are the MCP SDK's (its spec.types module), imported as types only:
// the sidecar image holds its import graph alone, and the SDK is no part of it. The type checker holds
// each code below to the SDK's constant; the classifier stays Warden's own.

/** JSON-RPC ids: MCP forbids null for requests. */
export type JsonRpcId = RequestId;

const VERSION = '2.0' satisfies typeof JSONRPC_VERSION;

/** Error codes Warden answers with (JSON-RPC 2.0 reserved range plus MCP's server range). */
export const RPC_ERRORS = {
  PARSE_ERROR: -32700 satisfies typeof PARSE_ERROR,
  INVALID_REQUEST: -32600 satisfies typeof INVALID_REQUEST,
  METHOD_NOT_FOUND: -32601 satisfies typeof METHOD_NOT_FOUND,
  INVALID_PARAMS: -32602 satisfies typeof INVALID_PARAMS,
  /** Warden's default for a call the policy forbids (server-defined range -32000..-32099). */
  FORBIDDEN: -32003,
} as const;

/** A call that expects an answer; `params` is an object once the classifier accepted it. */
export type JsonRpcRequest = Omit<JSONRPCRequest, 'params'> & { params?: Record<string, unknown> };

/** A call that expects none. */
export type JsonRpcNotification = Omit<JSONRPCNotification, 'params'> & { params?: Record<string, unknown> };

/**
 * An answer: from the server to a request, or from the client to a server-initiated request. Looser
 * than the SDK's JSONRPCResponse: JSON-RPC 2.0 answers a body it could not read with `"id": null`,
 * which the SDK's types leave out, and answers relayed from a server are checked, not trusted.
 */
export interface JsonRpcResponse {
  jsonrpc: typeof VERSION;
  id: JsonRpcId | null;
  result?: unknown;
  error?: RpcErrorObject;
}

/** One message of a body, classified; `invalid` is a request answered locally with `error`. */
export type Classified =
  | { kind: 'request'; message: JsonRpcRequest }
  | { kind: 'notification'; message: JsonRpcNotification }
  | { kind: 'response'; message: JsonRpcResponse }
  | { kind: 'invalid'; message: JsonRpcRequest; error: JsonRpcResponse };

/** A parsed body: the messages in order and whether they came as a batch (array). */
export type ParsedBody =
  | { ok: true; batch: boolean; messages: Classified[] }
  | { ok: false; status: number; error: JsonRpcResponse };

/** Bounds on what one body may hold. */
export interface JsonRpcLimits {
  /** Largest body accepted, bytes (413 above). */
  maxBodyBytes: number;
  /** Most messages in one batch. */
  maxBatch: number;
  /** Largest `params.arguments` of one call, bytes of JSON. */
  maxArgumentsBytes: number;
}

/** Defaults: generous for real agents, small enough that one body cannot starve the proxy. */
export const DEFAULT_LIMITS: JsonRpcLimits = { maxBodyBytes: 1024 * 1024, maxBatch: 64, maxArgumentsBytes: 64 * 1024 };

/** An error response. */
export function rpcError(id: JsonRpcId | null, code: number, message: string, data?: unknown): JsonRpcResponse {
  return { jsonrpc: VERSION, id, error: { code, message, ...(data !== undefined ? { data } : {}) } };
}

function refuse(status: number, code: number, message: string): ParsedBody {
  return { ok: false, status, error: rpcError(null, code, message) };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function validId(v: unknown): v is JsonRpcId {
  return (typeof v === 'string' && v.length <= 256) || (typeof v === 'number' && Number.isFinite(v));
}

/** The media type a Content-Type value names, lower case, without parameters ('' when absent): `Text/Event-Stream; charset=utf-8` is `text/event-stream`. */
export function mediaType(ct: string | undefined): string {
  if (!ct) return '';
  // What clients send, as sent: no split, trim or copy on the path every call takes.
  if (ct === 'application/json' || ct === 'text/event-stream') return ct;
  return ct.split(';')[0]!.trim().toLowerCase();
}

/** True when the Content-Type names JSON (`application/json`, parameters allowed). */
export function isJsonContentType(ct: string | undefined): boolean {
  return mediaType(ct) === 'application/json';
}

// One element: a message, or the reason the whole body is refused.
// The members Warden reads of a message and of its params. A key a case-insensitive server (mcp-go, Go's
// encoding/json: the last match wins) takes for one of them (`Name` beside `name`, `Arguments` alone,
// `Params`, `Method`) while Warden reads the exact key is refused: the call would be decided on another
// member than the server reads. The arguments' own keys are checked where the policy reads them
// (runtime/input-selection.ts).
const MESSAGE_MEMBERS = readKeys(['jsonrpc', 'id', 'method', 'params', 'result', 'error']);
const PARAMS_MEMBERS = readKeys(['name', 'arguments', 'uri']);

function classify(v: unknown, at: string, limits: JsonRpcLimits): Classified | string {
  if (!isObject(v)) return `${at}is not a JSON-RPC object`;
  const other = otherSpelling(v, MESSAGE_MEMBERS) ?? (isObject(v.params) ? otherSpelling(v.params, PARAMS_MEMBERS) : undefined);
  if (other) return `${at}spells a member otherwise than it is read (${other}): servers that read keys regardless of case differ`;
  // Laravel reads a POST's JSON as its form, `_method` included, as the request's method (normalize.ts).
  if (holdsMethodKey(v)) return `${at}holds "_method", a method override to some servers`;
  if (v.jsonrpc !== VERSION) return `${at}lacks "jsonrpc": "2.0"`;
  const hasMethod = 'method' in v;
  const isAnswer = 'result' in v || 'error' in v;
  if (hasMethod && isAnswer) return `${at}has both a method and a result/error`;
  if (hasMethod) {
    if (typeof v.method !== 'string' || v.method === '') return `${at}method must be a non-empty string`;
    if ('params' in v && !isObject(v.params)) return `${at}params must be an object (MCP uses named params)`;
    const params = v.params as Record<string, unknown> | undefined;
    if (!('id' in v)) return { kind: 'notification', message: params ? { jsonrpc: VERSION, method: v.method, params } : { jsonrpc: VERSION, method: v.method } };
    if (!validId(v.id)) return `${at}id must be a string or a number`;
    // Members in the order the sender's SDKs write them (the re-encoded body's order).
    const message: JsonRpcRequest = params ? { jsonrpc: VERSION, method: v.method, params, id: v.id } : { jsonrpc: VERSION, method: v.method, id: v.id };
    const bad = paramsProblem(message, limits);
    return bad ? { kind: 'invalid', message, error: rpcError(message.id, RPC_ERRORS.INVALID_PARAMS, bad) } : { kind: 'request', message };
  }
  if (isAnswer) {
    if (!validId(v.id) && v.id !== null) return `${at}id must be a string or a number`;
    if ('result' in v && 'error' in v) return `${at}has both result and error`;
    // Nothing else: an answer goes on undecided, and a server that reads keys regardless of case would
    // take `"Method"`, `"Params"` beside a `"result"` for a call.
    for (const k of Object.keys(v)) if (k !== 'jsonrpc' && k !== 'id' && k !== 'result' && k !== 'error') return `${at}is a response, which holds only jsonrpc, id and result or error (not ${JSON.stringify(k.slice(0, 64))})`;
    return { kind: 'response', message: v as unknown as JsonRpcResponse };
  }
  return `${at}is neither a request, a notification nor a response`;
}

// Invalid params of the methods Warden decides on: the decision would otherwise see a different call than the server.
function paramsProblem(m: JsonRpcRequest, limits: JsonRpcLimits): string | undefined {
  const p = m.params ?? {};
  if (m.method === 'tools/call' || m.method === 'prompts/get') {
    if (typeof p.name !== 'string' || p.name === '') return `${m.method} needs a string params.name`;
    if ('arguments' in p && !isObject(p.arguments)) return `${m.method} params.arguments must be an object`;
    if (p.arguments !== undefined && Buffer.byteLength(JSON.stringify(p.arguments)) > limits.maxArgumentsBytes) {
      return `${m.method} params.arguments exceed ${limits.maxArgumentsBytes} bytes`;
    }
  }
  if (m.method === 'resources/read' && typeof p.uri !== 'string') return 'resources/read needs a string params.uri';
  return undefined;
}

/**
 * Parse a POST body. A body the proxy cannot read exactly as the server would (wrong content type,
 * bad JSON, any malformed member of a batch, duplicate ids) is refused whole: forwarding part of a
 * malformed batch would let the proxy and the server disagree about what was called.
 */
export function parseBody(body: Buffer, headers: { 'content-type'?: string | undefined; 'content-encoding'?: string | undefined }, limits: JsonRpcLimits = DEFAULT_LIMITS): ParsedBody {
  const contentType = headers['content-type'];
  if (!isJsonContentType(contentType)) {
    return refuse(415, RPC_ERRORS.INVALID_REQUEST, `MCP messages must be sent as application/json (got ${contentType ? JSON.stringify(contentType.slice(0, 80)) : 'no Content-Type'})`);
  }
  // The message is forwarded re-encoded as UTF-8 JSON, but a server that decodes by the caller's charset or
  // inflates by its Content-Encoding could read other bytes than those decided: refused, as any JSON body.
  const undecoded = foreignEncoding(contentType, headers['content-encoding']);
  if (undecoded) return refuse(415, RPC_ERRORS.INVALID_REQUEST, `MCP messages: ${undecoded}`);
  if (body.length > limits.maxBodyBytes) return refuse(413, RPC_ERRORS.INVALID_REQUEST, `body exceeds ${limits.maxBodyBytes} bytes`);
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    return refuse(400, RPC_ERRORS.PARSE_ERROR, 'Parse error: the body is not valid JSON');
  }
  // Checked before anything walks the value (sizes, masking, the policy input): no recursion input can drive.
  if (nestsDeeperThan(doc, MAX_JSON_DEPTH)) return refuse(400, RPC_ERRORS.INVALID_REQUEST, `Invalid Request: the body nests deeper than ${MAX_JSON_DEPTH} levels`);
  const batch = Array.isArray(doc);
  const items: unknown[] = batch ? (doc as unknown[]) : [doc];
  if (batch && items.length === 0) return refuse(400, RPC_ERRORS.INVALID_REQUEST, 'empty batch');
  if (items.length > limits.maxBatch) return refuse(400, RPC_ERRORS.INVALID_REQUEST, `batch holds more than ${limits.maxBatch} messages`);
  const messages: Classified[] = [];
  const requestIds = new Set<JsonRpcId>();
  const responseIds = new Set<JsonRpcId | null>();
  for (let i = 0; i < items.length; i++) {
    const c = classify(items[i], batch ? `batch[${i}] ` : 'message ', limits);
    if (typeof c === 'string') return refuse(400, RPC_ERRORS.INVALID_REQUEST, `Invalid Request: ${c}`);
    if (c.kind === 'request' || c.kind === 'invalid') {
      // Same number and string forms ("1" vs 1) are different ids in JSON-RPC; keep them apart.
      const key = typeof c.message.id === 'number' ? c.message.id : `s:${c.message.id}`;
      if (requestIds.has(key)) return refuse(400, RPC_ERRORS.INVALID_REQUEST, `Invalid Request: duplicate id ${JSON.stringify(c.message.id)} in batch`);
      requestIds.add(key);
    } else if (c.kind === 'response') {
      if (responseIds.has(c.message.id)) return refuse(400, RPC_ERRORS.INVALID_REQUEST, `Invalid Request: duplicate response id ${JSON.stringify(c.message.id)} in batch`);
      responseIds.add(c.message.id);
    }
    messages.push(c);
  }
  return { ok: true, batch, messages };
}
