// The engine's audit HTTP API, as one express Router:
//   POST /logs            decision events from proxy plugins and the admission webhook (JSON array,
//                         plain or gzip, OPA decision-log uploader compatible), each validated alone
//                         and stored as the bytes its sender wrote
//   GET  /audit/events    filtered events (JSON, or NDJSON with Accept: application/x-ndjson)
//   GET  /audit/top       top denied principals / operations / tools (?by=…)
//   GET  /audit/graph     who talks to whom (?format=json|dot|mermaid)
//   GET  /audit/decisions/<id>/explain   why one decision came out so (when the engine can explain)
// Every route needs an identified caller; a workload may only log events labelled with its own name.
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { isUtf8 } from 'node:buffer';
import { gunzipSync } from 'node:zlib';
import { decisionEvent, DROPPED_HEADER, type DecisionEvent } from '../../formats/decision-event.js';
import { arrayElements, countKeys } from './json-elements.js';
import type { Identify } from './peer-identity.js';
import { deniedByDefault, FilterError, GRAPH_DEFAULTS, parseFilter, TOP_DEFAULTS, type RawFilter } from './query.js';
import { renderGraph } from './render.js';
import { isLayoutChanged } from './table.js';
import type { AuditStore, LogSender, TopDimension } from './store.js';

/** Options of the audit API. */
export interface AuditApiOptions {
  store: AuditStore;
  identify: Identify;
  /**
   * Principal → the workload names it may log events for (the admission webhook logs as `admission`);
   * a function is asked on every request, so the engine can follow its bundle index.
   */
  writers: Writers | (() => Writers);
  /** Principals that may query the audit log. */
  readers: readonly string[];
  /** Largest request body after gunzip, in bytes (default 16 MiB). */
  maxBodyBytes?: number;
  /** Most events in one batch (default 10,000). */
  maxEvents?: number;
  now?: () => number;
  /** Explains one decision (engine/explain); undefined = no event with that id. Passed in so the audit API does not depend on it. */
  explain?: (decisionId: string, format: string) => Promise<{ type: string; body: string } | undefined>;
}

/** Principal → the workload names it may log events for. */
export type Writers = Readonly<Record<string, readonly string[]>>;

/** One event of a batch that was not stored, and why. */
export interface Rejection {
  index: number;
  decision_id?: string;
  reason: string;
}

/** The answer to POST /logs. */
export interface IngestResponse {
  received: number;
  stored: number;
  /** Decision ids already stored (a retried batch): acknowledged, not stored twice. */
  duplicates: string[];
  rejected: Rejection[];
}

const GZIP_MAGIC = [0x1f, 0x8b];

function problem(res: Response, status: number, error: string, extra: Record<string, unknown> = {}): void {
  res.status(status).json({ error, ...extra });
}

/**
 * The sender's drop counter (DROPPED_HEADER) as a report for the pod its accepted events name, or
 * undefined: no header, not a plain decimal integer (a repeated header arrives joined by commas), or
 * no single pod behind the batch. Only accepted events count, so a sender reports for a workload it may
 * log as, never another's. A counter that cannot be read never costs the batch its events.
 */
export function dropReport(header: string | undefined, accepted: readonly DecisionEvent[], receivedAt: number): LogSender | undefined {
  if (header === undefined || !/^\d{1,15}$/.test(header)) return undefined;
  const first = accepted[0]?.labels;
  // A pod name is a DNS subdomain (≤ 253); anything longer is not one and is not kept.
  if (!first?.instance || first.instance.length > 253) return undefined;
  const same = accepted.every((e) => e.labels.workload === first.workload && e.labels.namespace === first.namespace && e.labels.instance === first.instance);
  return same ? { workload: first.workload, namespace: first.namespace, instance: first.instance, dropped: Number(header), reportedAt: receivedAt } : undefined;
}

/**
 * The last report stored per pod, so that a pod posting every second with an unchanged counter costs
 * one store write a minute, not one per batch (a write beside the SQLite writer thread can wait on it).
 */
class SenderReports {
  private readonly last = new Map<string, LogSender>();

  changed(r: LogSender): boolean {
    const key = `${r.workload}\0${r.namespace}\0${r.instance}`;
    const prev = this.last.get(key);
    if (prev && prev.dropped === r.dropped && r.reportedAt - prev.reportedAt < 60_000) return false;
    if (this.last.size >= 10_000) this.last.clear();
    this.last.set(key, r);
    return true;
  }
}

/** Build the router; mount it at the engine's root. */
export function auditRouter(opts: AuditApiOptions): Router {
  const maxBodyBytes = opts.maxBodyBytes ?? 16 * 1024 * 1024;
  const maxEvents = opts.maxEvents ?? 10_000;
  const now = opts.now ?? Date.now;
  const readers = new Set(opts.readers);
  const senders = new SenderReports();
  const writers = typeof opts.writers === 'function' ? opts.writers : () => opts.writers as Writers;
  const router = express.Router();

  // Authenticate before reading any body: anonymous callers cost us nothing.
  const authenticate = (may: (principal: string) => boolean, what: string) => async (req: Request, res: Response, next: NextFunction) => {
    const peer = await opts.identify(req);
    if (!peer) return problem(res, 401, 'unauthenticated: present a client certificate with a SPIFFE ID issued by the cluster CA');
    if (!may(peer.principal)) return problem(res, 403, `${peer.principal} may not ${what}`);
    res.locals.principal = peer.principal;
    next();
  };

  router.post(
    '/logs',
    authenticate((p) => (writers()[p]?.length ?? 0) > 0, 'log decisions (it is not a known workload identity)'),
    // Decoded size is what is limited, so a small gzip bomb is refused like a large body.
    express.raw({ type: () => true, limit: maxBodyBytes, inflate: true }),
    async (req: Request, res: Response) => {
      let body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      // OPA's uploader always says Content-Encoding: gzip; some shippers gzip without saying so.
      if (body[0] === GZIP_MAGIC[0] && body[1] === GZIP_MAGIC[1]) {
        try {
          body = gunzipSync(body, { maxOutputLength: maxBodyBytes });
        } catch (err) {
          const tooBig = (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
          return problem(res, tooBig ? 413 : 400, tooBig ? `batch larger than ${maxBodyBytes} bytes once decompressed` : `body looks gzipped but does not decompress: ${(err as Error).message}`);
        }
      }
      let batch: unknown;
      try {
        batch = JSON.parse(body.toString('utf8'));
      } catch (err) {
        return problem(res, 400, `body is not JSON: ${(err as Error).message}; send a JSON array of decision events`);
      }
      if (!Array.isArray(batch)) return problem(res, 400, 'body must be a JSON array of decision events');
      if (batch.length > maxEvents) return problem(res, 413, `batch of ${batch.length} events is larger than the limit of ${maxEvents}; send smaller batches`);
      // Each event's own bytes: stored as sent (when the body is valid UTF-8), and checked for repeated keys.
      const spans = arrayElements(body);
      if (spans?.length !== batch.length) return problem(res, 500, 'internal error: the body parsed as a JSON array but could not be split into its events');
      const keepBytes = isUtf8(body);
      const principal = res.locals.principal as string;
      const mayLogAs = writers()[principal] ?? [];
      const accepted: DecisionEvent[] = [];
      const sent: Uint8Array[] = [];
      const rejected: Rejection[] = [];
      batch.forEach((raw: unknown, index) => {
        const id = typeof (raw as { decision_id?: unknown })?.decision_id === 'string' ? (raw as { decision_id: string }).decision_id : undefined;
        const issues = decisionEvent.check(raw);
        if (issues.length) {
          rejected.push({ index, ...(id ? { decision_id: id } : {}), reason: `does not match the decision event schema: ${issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ')}` });
          return;
        }
        const e = raw as DecisionEvent;
        if (!mayLogAs.includes(e.labels.workload)) {
          rejected.push({ index, decision_id: e.decision_id, reason: `labels.workload is "${e.labels.workload}" but ${principal} may only log events of ${mayLogAs.map((w) => `"${w}"`).join(', ')}` });
          return;
        }
        const span = spans[index]!;
        if (span.keys !== countKeys(raw)) {
          rejected.push({ index, decision_id: e.decision_id, reason: 'repeats a key inside one JSON object; send each key once (readers disagree on which of two equal keys counts, and the audit log stores the event as sent)' });
          return;
        }
        accepted.push(e);
        sent.push(body.subarray(span.start, span.end));
      });
      const result = accepted.length ? await opts.store.append(accepted, now(), keepBytes ? sent : undefined) : { stored: 0, duplicates: [] };
      const drops = dropReport(req.get(DROPPED_HEADER), accepted, now());
      if (drops && senders.changed(drops)) await opts.store.reportDrops(drops);
      const answer: IngestResponse = { received: batch.length, stored: result.stored, duplicates: result.duplicates, rejected };
      res.status(200).json(answer);
    },
  );

  const mayRead = authenticate((p) => readers.has(p), 'read the audit log');

  // Express parses ?a=1&a=2 into arrays; anything else (nested objects) is refused by parseFilter's types.
  const rawQuery = (req: Request, drop: string[]): RawFilter => {
    const out: RawFilter = {};
    for (const [k, v] of Object.entries(req.query as Record<string, unknown>)) {
      if (drop.includes(k)) continue;
      if (typeof v === 'string' || (Array.isArray(v) && v.every((x) => typeof x === 'string'))) out[k] = v as string | string[];
      else throw new FilterError(k, `${k}: give it as a plain value`);
    }
    return out;
  };
  const single = (req: Request, name: string): string | undefined => {
    const v = req.query[name];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw new FilterError(name, `${name}: give it once, as a plain value`);
    return v;
  };

  router.get('/audit/events', mayRead, async (req, res) => {
    const events = await opts.store.query(parseFilter(rawQuery(req, []), now()));
    if (req.accepts(['application/json', 'application/x-ndjson']) === 'application/x-ndjson') {
      res.type('application/x-ndjson').send(events.map((e) => JSON.stringify(e)).join('\n') + (events.length ? '\n' : ''));
    } else {
      res.json({ events });
    }
  });

  router.get('/audit/top', mayRead, async (req, res) => {
    const by = single(req, 'by') ?? 'principal';
    if (!['principal', 'operation', 'tool'].includes(by)) throw new FilterError('by', `by: "${by}" is not one of principal, operation, tool`);
    const f = deniedByDefault(parseFilter(rawQuery(req, ['by']), now(), TOP_DEFAULTS));
    res.json({ by, rows: await opts.store.top(by as TopDimension, f) });
  });

  router.get('/audit/graph', mayRead, async (req, res) => {
    const format = single(req, 'format') ?? 'json';
    if (!['json', 'dot', 'mermaid'].includes(format)) throw new FilterError('format', `format: "${format}" is not one of json, dot, mermaid`);
    const edges = await opts.store.edges(parseFilter(rawQuery(req, ['format']), now(), GRAPH_DEFAULTS));
    if (format === 'json') res.json({ edges });
    else res.type(format === 'dot' ? 'text/vnd.graphviz' : 'text/plain').send(renderGraph(edges, format as 'dot' | 'mermaid'));
  });

  router.get('/audit/decisions/:id/explain', mayRead, async (req, res) => {
    const id = String(req.params.id);
    if (!/^[A-Za-z0-9._:-]{8,128}$/.test(id)) throw new FilterError('id', `decision id "${id.slice(0, 140)}" is not a decision id (8 to 128 of A-Z a-z 0-9 . _ : -)`);
    const format = single(req, 'format') ?? 'json';
    if (!['json', 'markdown', 'table'].includes(format)) throw new FilterError('format', `format: "${format}" is not one of json, markdown, table`);
    if (!opts.explain) return problem(res, 501, 'this engine cannot explain decisions (it keeps no bundle revisions)');
    const answer = await opts.explain(id, format);
    if (!answer) return problem(res, 404, `no decision ${id} in the audit log (it may have been removed by retention)`);
    res.type(answer.type).send(answer.body);
  });

  // Errors as JSON for machines: filter mistakes name the parameter; body-parser errors keep their status.
  router.use((err: unknown, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(err);
    if (err instanceof FilterError) return problem(res, 400, err.message, { parameter: err.param });
    const status = (err as { status?: number }).status;
    if (status === 413) return problem(res, 413, `batch larger than ${maxBodyBytes} bytes (after decompression); send smaller batches`);
    if (typeof status === 'number' && status >= 400 && status < 500) return problem(res, status, (err as Error).message);
    // The pods retry on 503 and keep their events meanwhile; the reason is the operator's to read.
    if (isLayoutChanged(err)) return problem(res, 503, (err as Error).message);
    return problem(res, 500, 'internal error storing or reading audit events');
  });
  return router;
}
