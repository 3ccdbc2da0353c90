// The webhook's HTTPS endpoints: POST /validate, POST /mutate and /mutate/annotated (AdmissionReview
// v1 in, AdmissionReview v1 out; see admission/mutate.ts for the two mutating paths), GET /healthz. Bodies are bounded before they are parsed; nothing a client sends can crash it.
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { admit, type AdmissionDeps, type AdmissionOutcome } from './decide.js';
import { mutate } from './mutate.js';
import { readBody, sendJson } from '../runtime/http-body.js';

/** What each POST path answers with. */
const endpoints: Record<string, (body: unknown, deps: AdmissionDeps) => Promise<AdmissionOutcome>> = {
  '/validate': admit,
  '/mutate': (body, deps) => mutate(body, deps, 'namespace'),
  '/mutate/annotated': (body, deps) => mutate(body, deps, 'annotated'),
};

/** TLS material and where to listen. */
export interface WebhookServerOptions {
  certPem: string;
  keyPem: string;
  host?: string;
  port?: number;
}

/** A running webhook. */
export interface WebhookServer {
  server: Server;
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Handle one HTTP request (exported for the benchmark and tests that skip TLS). */
export async function handle(req: IncomingMessage, res: ServerResponse, deps: AdmissionDeps): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method === 'GET' && (path === '/healthz' || path === '/readyz')) {
    const ready = path === '/healthz' || deps.policies() !== undefined;
    return sendJson(res, ready ? 200 : 503, { status: ready ? 'ok' : 'no admission bundle loaded' });
  }
  const endpoint = path && Object.hasOwn(endpoints, path) ? endpoints[path] : undefined;
  if (!endpoint) return sendJson(res, 404, { error: `no such endpoint ${path}; the webhook serves POST ${Object.keys(endpoints).join(', ')}` });
  if (req.method !== 'POST') return sendJson(res, 405, { error: 'use POST with an AdmissionReview' });
  const body = await readBody(req, deps.config.maxBodyBytes);
  if (!body) return sendJson(res, 413, { error: `AdmissionReview larger than ${deps.config.maxBodyBytes} bytes refused` }, { connection: 'close' });
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return sendJson(res, 400, { error: 'the body is not JSON; the webhook expects an admission.k8s.io/v1 AdmissionReview' });
  }
  const outcome = await endpoint(parsed, deps);
  sendJson(res, outcome.httpStatus, outcome.body);
}

/** Start the HTTPS webhook; resolves once it listens. */
export async function startWebhookServer(deps: AdmissionDeps, opts: WebhookServerOptions): Promise<WebhookServer> {
  const server = createServer({ cert: opts.certPem, key: opts.keyPem, minVersion: 'TLSv1.2' }, (req, res) => {
    handle(req, res, deps).catch((err: unknown) => {
      // Defensive: admit() never throws, but a broken socket might; answer if we still can.
      if (!res.headersSent) sendJson(res, 500, { error: `internal error: ${(err as Error).message}` });
      else res.destroy();
    });
  });
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 8443, opts.host ?? '0.0.0.0', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    url: `https://${opts.host ?? '127.0.0.1'}:${port}`,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
