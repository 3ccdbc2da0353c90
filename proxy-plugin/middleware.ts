// The in-process form: express middleware that decides each request before the app's routes run.
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { decideHttp, DECISION_ID_HEADER, denialBody, prepare, type Gate } from './admit.js';
import type { Verdict } from './decide.js';

/** Express middleware; the verdict of an allowed call is left in `res.locals.warden`. */
export function wardenMiddleware(gate: Gate): RequestHandler {
  return async (req: Request, res: Response, next: NextFunction) => {
    const p = await prepare(gate, { method: req.method, target: req.originalUrl, rawHeaders: req.rawHeaders, socket: req.socket }, 'middleware');
    const v: Verdict = p.ok ? decideHttp(gate, p, 'middleware') : p.verdict;
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

// The package entry `warden/middleware` is this module: the gate a middleware needs comes from startPlugin.
export { startPlugin, type Plugin, type PluginConfig } from './plugin.js';
