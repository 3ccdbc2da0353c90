// The Envoy ext_authz HTTP form: Envoy sends the original method, path (behind a configurable
// prefix) and headers; 200 allows (with headers Envoy may pass upstream), anything else denies.
// The caller's mTLS identity arrives as x-forwarded-client-cert, trusted only from the local Envoy.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { decideHttp, DECISION_ID_HEADER, denialBody, prepare, type Gate } from './admit.js';
import { callerFields } from './upstream-head.js';

/** Options of the ext_authz server. */
export interface ExtAuthzOptions {
  gate: Gate;
  /** Envoy's `path_prefix` (e.g. "/authz"); stripped before the path is normalized. */
  pathPrefix?: string;
  headersTimeoutMs?: number;
  maxHeaderBytes?: number;
}

/** Handle one check request. */
export async function checkRequest(opts: ExtAuthzOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  req.resume(); // a body sent with with_request_body is not inspected here
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
  const v = p.ok ? decideHttp(opts.gate, p, 'ext_authz') : p.verdict;
  if (v.allow) {
    // Envoy's allowed_upstream_headers copies these onto the request, replacing any the caller sent.
    res.writeHead(200, [DECISION_ID_HEADER, v.decisionId, ...(p.ok ? callerFields(p.source) : [])]).end();
    return;
  }
  const body = denialBody(v);
  res.writeHead(v.status, { ...v.headers, 'content-type': 'application/json', [DECISION_ID_HEADER]: v.decisionId }).end(body);
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
