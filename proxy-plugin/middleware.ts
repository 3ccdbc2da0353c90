// The in-process form: express middleware that decides each request before the app's routes run.
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { decideHttp, DECISION_ID_HEADER, denialBody, prepare, type Gate } from './admit.js';
import type { Verdict } from './decide.js';
import { holdsMethodKey, isJson, MAX_JSON_DEPTH, nestsDeeperThan } from './json-body.js';
import { METHOD_PARAMETER } from './normalize.js';
import { refusal, type Ready } from './request-body.js';

/** Express middleware; the verdict of an allowed call is left in `res.locals.warden`. */
export function wardenMiddleware(gate: Gate): RequestHandler {
  return async (req: Request, res: Response, next: NextFunction) => {
    const p = await prepare(gate, { method: req.method, target: req.originalUrl, rawHeaders: req.rawHeaders, socket: req.socket }, 'middleware');
    let v: Verdict;
    if (!p.ok) v = p.verdict;
    else {
      const body = appBody(gate, p, req.body as unknown);
      v = 'refused' in body ? body.refused : decideHttp(gate, p, 'middleware', body.value !== undefined ? { body: body.value } : undefined);
    }
    res.setHeader(DECISION_ID_HEADER, v.decisionId);
    if (!v.allow) {
      if (!req.complete) res.setHeader('connection', 'close');
      res.status(v.status).set(v.headers).type('application/json').send(denialBody(v));
      return;
    }
    res.locals.warden = v;
    next();
  };
}

/**
 * The body as the app's own parser read it (`express.json()`, `express.urlencoded()` mounted before Warden),
 * so the policy reads what the app reads: a JSON body goes into `input.request.body`; a POST whose parsed
 * body holds `_method` at its top is refused (method-override with a body getter reads it there). With no
 * parser before Warden, `req.body` is unset (express 5) and the policy sees no body, as the sidecar's
 * policy sees none of a type it does not read (`requests.unread_body` denies one where that matters).
 */
function appBody(gate: Gate, p: Ready, parsed: unknown): { value?: unknown } | { refused: Verdict } {
  if (parsed === null || typeof parsed !== 'object' || Buffer.isBuffer(parsed)) return {};
  const via = 'middleware';
  if (nestsDeeperThan(parsed, MAX_JSON_DEPTH)) return { refused: refusal(gate, p, `request refused: the body nests deeper than ${MAX_JSON_DEPTH} levels`, 400, { via }) };
  if (p.request.method === 'POST' && !Array.isArray(parsed) && holdsMethodKey(parsed)) return { refused: refusal(gate, p, `request refused: ${METHOD_PARAMETER}`, 400, { via }) };
  return isJson(p.request.headers['content-type']) ? { value: parsed } : {};
}

// The package entry `warden/middleware` is this module: the gate a middleware needs comes from startPlugin.
export { startPlugin, type Plugin, type PluginConfig } from './plugin.js';
