// The Envoy ext_authz HTTP form: Envoy sends the original method, path (behind a configurable
// prefix) and headers; 200 allows (with headers Envoy may pass upstream), anything else denies.
// The caller's mTLS identity arrives as x-forwarded-client-cert, trusted only from the local Envoy.
// With `with_request_body`, Envoy sends the request's body too (or its first part, and says so): it is
// read as the sidecar reads a body (request-body.ts); without it no body is read.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { readBody } from '../runtime/http-body.js';
import { decideHttp, DECISION_ID_HEADER, denialBody, prepare, type Gate } from './admit.js';
import type { Verdict } from './decide.js';
import { bodyFieldReader, checkedJsonBody, readsJsonBody, refusal, undecodedBody, type Ready } from './request-body.js';
import { callerFields } from './upstream-head.js';

/** Envoy sets this on a check that carries the request's body (`with_request_body`): `true` when it sent only a part. */
export const PARTIAL_BODY_HEADER = 'x-envoy-auth-partial-body';

/** Most bytes of a body read from a check (Envoy's `max_request_bytes` bounds what it sends). */
export const MAX_CHECK_BODY_BYTES = 1024 * 1024;

/** Options of the ext_authz server. */
export interface ExtAuthzOptions {
  gate: Gate;
  /** Envoy's `path_prefix` (e.g. "/authz"); stripped before the path is normalized. */
  pathPrefix?: string;
  headersTimeoutMs?: number;
  maxHeaderBytes?: number;
  /** JSON bodies Envoy sends, up to this many bytes, go into `input.request.body` (--json-body; 0: none). */
  jsonBodyBytes?: number;
}

/** Handle one check request. */
export async function checkRequest(opts: ExtAuthzOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  // Envoy marks every check that carries the body; without the mark there is none to read.
  const partial = req.headers[PARTIAL_BODY_HEADER];
  const sent = partial === undefined ? (req.resume(), undefined) : await readBody(req, MAX_CHECK_BODY_BYTES);
  const prefix = (opts.pathPrefix ?? '').replace(/\/+$/, '');
  let target = req.url ?? '';
  if (prefix) {
    if (!target.startsWith(`${prefix}/`) && target !== prefix && !target.startsWith(`${prefix}?`)) {
      res.writeHead(403, { 'content-type': 'application/json' }).end('{"reasons":["check request outside the configured path prefix"]}');
      return;
    }
    target = target.slice(prefix.length) || '/';
    if (target.startsWith('?')) target = `/${target}`;
  }
  const p = await prepare(opts.gate, { method: req.method ?? '', target, rawHeaders: req.rawHeaders, socket: req.socket }, 'ext_authz');
  let v: Verdict;
  if (!p.ok) v = p.verdict;
  else if (partial === undefined) v = decideHttp(opts.gate, p, 'ext_authz');
  else {
    // Anything but Envoy's own `false` counts as a part: only a whole body is vouched for.
    const body = sentBody(opts, p, sent, partial !== 'false');
    v = 'refused' in body ? body.refused : decideHttp(opts.gate, p, 'ext_authz', body.value !== undefined ? { body: body.value } : undefined);
  }
  if (v.allow) {
    // Envoy's allowed_upstream_headers copies these onto the request, replacing any the caller sent.
    res.writeHead(200, [DECISION_ID_HEADER, v.decisionId, ...(p.ok ? callerFields(p.source) : [])]).end();
    return;
  }
  const body = denialBody(v);
  res.writeHead(v.status, { ...v.headers, 'content-type': 'application/json', [DECISION_ID_HEADER]: v.decisionId }).end(body);
}

/**
 * The body Envoy sent with a check, read as the sidecar reads the request's: a JSON body the policy reads
 * (--json-body) checked whole and put into the input; a POST's form, or a body Laravel reads as JSON, read
 * for `_method`. A body Warden reads that Envoy sent only in part, or larger than Warden reads, is refused
 * (413): what was cut off is what no check saw. Any other body is not read.
 */
function sentBody(opts: ExtAuthzOptions, p: Ready, sent: Buffer | undefined, partial: boolean): { value?: unknown } | { refused: Verdict } {
  const { gate } = opts;
  const via = 'ext_authz';
  const jsonBytes = opts.jsonBodyBytes ?? 0;
  if (sent === undefined) return { refused: refusal(gate, p, `request refused: the body Envoy sent with the check is larger than ${MAX_CHECK_BODY_BYTES} bytes`, 413, { via }) };
  const cut = 'Envoy sent only part of it: raise with_request_body.max_request_bytes';
  if (readsJsonBody(jsonBytes, p.request.headers['content-type'])) {
    const foreign = undecodedBody(gate, p, via);
    if (foreign) return foreign;
    if (partial || sent.length > jsonBytes) return { refused: refusal(gate, p, `request refused: JSON body larger than ${jsonBytes} bytes${partial ? ` (${cut})` : ''}`, 413, { via }) };
    const checked = checkedJsonBody(gate, p, sent, via);
    return 'refused' in checked ? checked : { value: checked.value };
  }
  const fields = bodyFieldReader(gate, p, via);
  if (!fields) return {};
  if ('refusal' in fields) return { refused: fields.refusal };
  if (partial) return { refused: refusal(gate, p, `request refused: a body the app may read "_method" or a query key from (a form, or JSON to Laravel) must reach the check whole (${cut})`, 413, { via }) };
  const why = fields.reader.feed(sent) ?? fields.reader.end?.();
  return why === undefined ? {} : { refused: refusal(gate, p, why, 400, { via }) };
}

/** The ext_authz HTTP server (not yet listening). */
export function createExtAuthzServer(opts: ExtAuthzOptions): http.Server {
  const server = http.createServer({ headersTimeout: opts.headersTimeoutMs ?? 10_000, requestTimeout: 30_000, maxHeaderSize: opts.maxHeaderBytes ?? 16 * 1024 });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    checkRequest(opts, req, res).catch(() => {
      if (!res.headersSent) res.writeHead(403, { 'content-type': 'application/json' }).end('{"reasons":["internal error (fail closed)"]}');
    });
  });
  return server;
}
