// The web console at /ui: one express Router. Every route, assets included, first asks `access`
// (audit reader certificate or OIDC token); pages are rendered on the server from bounded queries
// (a page of events, SQL aggregates); the live feed is SSE polling the store after the last seq sent.
// Read-only: no route changes anything, so there is no form to forge. Strict CSP, no inline script.
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { FilterError, parseFilter, type RawFilter } from '../audit/query.js';
import type { AuditReader, GraphReader, LogSender, RefusalReader, StoredEvent } from '../audit/store.js';
import { GraphSnapshots } from './graph-snapshots.js';
import type { BundleIndex } from '../bundle-server.js';
import type { RevisionArchive } from '../bundle-revisions.js';
import { REVIEW_CSS, toHtml } from '../diff/render.js';
import { reviewBundles } from '../diff/review.js';
import { permissionMatrix, type WorkloadDiff } from '../diff/replay.js';
import type { Explanation } from '../explain/explanation.js';
import type { AccessResult } from './access.js';
import { admissionPage, decisionPage, errorPage, eventRow, feedPage, graphPage, refusalsPage, workloadPage, workloadsPage, type WorkloadSummary } from './pages.js';

/** What the console reads. */
export interface ConsoleDeps {
  access: (req: Request) => Promise<AccessResult>;
  reader: AuditReader & RefusalReader & GraphReader;
  /** How old a wide window's graph snapshot may be before it is recomputed (ms; graph-snapshots.ts). */
  graphMaxAgeMs?: number;
  /** How long the first request of a wide window waits for its snapshot before the page says it is being computed (ms). */
  graphWaitMs?: number;
  explain: (decisionId: string) => Promise<Explanation | undefined>;
  index: () => BundleIndex | undefined;
  /** Every revision the engine served (for the review of the last rollout); absent = no review page. */
  revisions?: RevisionArchive;
  /** The latest decision-log drop counter of each pod of a workload (absent: none known). */
  logSenders?: (workload: string) => Promise<LogSender[]>;
  /** The bytes of a bundle as served now. */
  bundle: (name: string) => Promise<Uint8Array | undefined>;
  now?: () => number;
  /** How often the live feed looks for new decisions (ms). */
  pollMs?: number;
  /** How long one SSE response lives before the browser reconnects (ms). */
  streamMs?: number;
}

const PAGE = 50;
// Groups are (rule, namespace) pairs: a few dozen in a cluster; the page shows at most this many.
const ADMISSION_GROUPS = 500;
// The graph's default window: an hour aggregates in tens of ms on a 1M-event store; a wider one is a filter away (bench/console.bench.ts).
const GRAPH_WINDOW = '1h';
/** Most edges the graph sends: a drawing of more is unreadable, and the page says what it left out. */
const GRAPH_TOP = 200;
const here = new URL('.', import.meta.url).pathname;
const require = createRequire(import.meta.url);

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** Build the console router; mount it at /ui. */
export function consoleRouter(deps: ConsoleDeps): Router {
  const now = deps.now ?? Date.now;
  const router = express.Router();
  const assets: Record<string, { type: string; body: Buffer }> = {
    'console.js': { type: 'text/javascript', body: readFileSync(join(here, 'assets', 'console.js')) },
    'console.css': { type: 'text/css', body: Buffer.from(`${readFileSync(join(here, 'assets', 'console.css'), 'utf8')}\n${REVIEW_CSS.replace(/body\{[^}]*\}/, '')}`) },
    'cytoscape.min.js': { type: 'text/javascript', body: readFileSync(require.resolve('cytoscape/dist/cytoscape.min.js')) },
  };
  const matrices = new Map<string, WorkloadDiff['matrix']>();
  const graphs = new GraphSnapshots({
    summarize: (f) => deps.reader.edgeSummary(f),
    now,
    ...(deps.graphMaxAgeMs !== undefined ? { maxAgeMs: deps.graphMaxAgeMs } : {}),
    ...(deps.graphWaitMs !== undefined ? { waitMs: deps.graphWaitMs } : {}),
  });

  router.use(async (req: Request, res: Response, next: NextFunction) => {
    res.set({ 'Content-Security-Policy': CSP, 'X-Content-Type-Options': 'nosniff', 'Referrer-Policy': 'no-referrer', 'Cache-Control': 'no-store' });
    const a = await deps.access(req);
    if (!a.ok) {
      if (a.status === 401) res.set('WWW-Authenticate', 'Bearer realm="warden-console"');
      return void res.status(a.status).type('html').send(errorPage(a.status, a.reason));
    }
    res.locals.who = a.who;
    next();
  });

  const raw = (req: Request, keep: readonly string[]): RawFilter => {
    const out: RawFilter = {};
    for (const [k, v] of Object.entries(req.query as Record<string, unknown>)) {
      if (!keep.includes(k) || v === '') continue;
      if (typeof v === 'string' || (Array.isArray(v) && v.every((x) => typeof x === 'string'))) out[k] = v as string | string[];
      else throw new FilterError(k, `${k}: give it as a plain value`);
    }
    return out;
  };
  const FEED_KEYS = ['since', 'from', 'to', 'workload', 'namespace', 'principal', 'decision', 'method', 'path-prefix', 'operation', 'tool', 'revision'];
  const paramsOf = (f: RawFilter) => new URLSearchParams(Object.entries(f).flatMap(([k, v]) => (Array.isArray(v) ? v.map((x) => [k, x]) : v !== undefined ? [[k, v]] : [])));

  router.get('/', (_req, res) => res.redirect(303, '/ui/feed'));
  router.get('/assets/:name', (req, res) => {
    const a = assets[String(req.params.name)];
    if (!a) return void res.status(404).type('text/plain').send('no such asset');
    res.type(a.type).send(a.body);
  });

  router.get('/feed', async (req, res) => {
    const rf = raw(req, FEED_KEYS);
    let events: StoredEvent[] = [];
    let error: string | undefined;
    try {
      // Newest first by event time: the time index serves both the first page and the `to` cursor of older ones.
      events = await deps.reader.query(parseFilter(rf, now(), { sort: '-time', limit: PAGE }));
    } catch (err) {
      if (!(err instanceof FilterError)) throw err;
      error = err.message;
    }
    const params = paramsOf(rf);
    // The stream starts after the store's head, whatever the page shows.
    const head = (await deps.reader.query({ sort: '-seq', limit: 1 }))[0]?.seq ?? 0;
    const stream = `/ui/feed/stream?${new URLSearchParams([...params, ['after-seq', String(head)]]).toString()}`;
    const last = events[events.length - 1];
    // Older pages by event time: everything before the oldest one shown.
    const older = events.length === PAGE && last ? `/ui/feed?${new URLSearchParams([...[...params].filter(([k]) => k !== 'to'), ['to', last.event.timestamp]]).toString()}` : undefined;
    res.type('html').send(feedPage(res.locals.who as string, events, params, stream, older, error));
  });

  router.get('/feed/stream', async (req, res) => {
    const rf = raw(req, [...FEED_KEYS, 'after-seq']);
    // A reconnecting EventSource says where it stopped.
    const lastId = req.get('last-event-id');
    if (lastId && /^\d+$/.test(lastId)) rf['after-seq'] = lastId;
    const base = parseFilter(rf, now(), { sort: 'seq', limit: 100 });
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
    res.write('retry: 1000\n\n');
    let after = base.afterSeq ?? 0;
    let open = true;
    const ends = setTimeout(() => res.end(), deps.streamMs ?? 5 * 60_000);
    req.on('close', () => {
      open = false;
      clearTimeout(ends);
    });
    while (open && !res.writableEnded) {
      const fresh = await deps.reader.query({ ...base, afterSeq: after });
      for (const s of fresh) {
        after = s.seq;
        res.write(`id: ${s.seq}\nevent: decision\ndata: ${JSON.stringify({ seq: s.seq, html: eventRow(s).text })}\n\n`);
      }
      if (fresh.length < base.limit) await new Promise((r) => setTimeout(r, deps.pollMs ?? 250));
    }
  });

  router.get('/decisions/:id', async (req, res) => {
    const id = String(req.params.id);
    if (!/^[A-Za-z0-9._:-]{8,128}$/.test(id)) return void res.status(400).type('html').send(errorPage(400, 'not a decision id'));
    const x = await deps.explain(id);
    if (!x) return void res.status(404).type('html').send(errorPage(404, `no decision ${id} in the audit log (retention may have removed it)`));
    res.type('html').send(decisionPage(res.locals.who as string, x));
  });

  // The graph's edges: the busiest GRAPH_TOP (or fewer, `limit`), with what the rest add up to; wide
  // windows from snapshots computed off the request path (graph-snapshots.ts).
  const graphOf = (req: Request) => {
    const rf = raw(req, [...FEED_KEYS, 'limit']);
    const { limit, ...filter } = rf;
    const top = limit === undefined ? GRAPH_TOP : Number(limit);
    if (!Number.isInteger(top) || top < 1 || top > GRAPH_TOP) throw new FilterError('limit', `limit: "${String(limit)}" is not a number of edges from 1 to ${GRAPH_TOP}`);
    return { rf, view: graphs.view(filter, GRAPH_WINDOW, top) };
  };
  router.get('/graph', async (req, res) => {
    const { rf, view } = graphOf(req);
    res.type('html').send(graphPage(res.locals.who as string, await view, paramsOf(rf), now()));
  });

  router.get('/api/graph', async (req, res) => {
    const view = await graphOf(req).view;
    if ('pending' in view) return void res.status(202).json({ ...view, retryMs: 1000 });
    res.json(view);
  });

  const summaries = (): WorkloadSummary[] =>
    Object.entries(deps.index()?.bundles ?? {})
      .map(([name, b]) => ({ name, revision: b.revision }))
      .sort((a, b) => a.name.localeCompare(b.name));

  router.get('/workloads', async (_req, res) => {
    const list = await Promise.all(summaries().map(async (w) => ({ ...w, ...(await builtAt(w.name)) })));
    res.type('html').send(workloadsPage(res.locals.who as string, list, now()));
  });

  // The bundle's build time and permission matrix, computed once per bundle content.
  async function builtAt(name: string): Promise<{ builtAt?: string }> {
    const bytes = await deps.bundle(name);
    if (!bytes) return {};
    const { openBundle } = await import('../../runtime/bundle.js');
    const b = await openBundle(bytes, 'unsigned-ok');
    const at = b.manifest.metadata?.builtAt;
    return typeof at === 'string' ? { builtAt: at } : {};
  }

  router.get('/workloads/:name', async (req, res) => {
    const w = summaries().find((s) => s.name === String(req.params.name));
    if (!w) return void res.status(404).type('html').send(errorPage(404, `no workload ${String(req.params.name)} in the engine's bundle index`));
    const bytes = await deps.bundle(w.name);
    const key = `${w.name}@${w.revision}`;
    let matrix = matrices.get(key);
    if (!matrix && bytes) {
      matrix = await permissionMatrix(bytes);
      matrices.set(key, matrix);
    }
    const day = parseFilter({ since: '24h', workload: w.name }, now(), { limit: 10 });
    const edges = await deps.reader.edges(day);
    const counts = edges.reduce((c, e) => ({ allow: c.allow + e.allow, deny: c.deny + e.deny }), { allow: 0, deny: 0 });
    const senders = (await deps.logSenders?.(w.name)) ?? [];
    res.type('html').send(workloadPage(res.locals.who as string, { ...w, ...(await builtAt(w.name)) }, matrix, counts, senders, now()));
  });

  // The last rollout of a workload as `warden diff --format html` shows a review: its two newest kept revisions.
  router.get('/review/:name', async (req, res) => {
    const name = String(req.params.name);
    const kept = ((await deps.revisions?.list()) ?? []).filter((k) => k.bundle === name).sort((a, b) => b.keptAt - a.keptAt);
    if (kept.length < 2) return void res.status(404).type('html').send(errorPage(404, `the engine has kept ${kept.length} revision(s) of ${name}: a review needs two (run warden diff --format html in CI to review a change before it ships)`));
    const [head, base] = [await deps.revisions!.find(name, kept[0]!.revision), await deps.revisions!.find(name, kept[1]!.revision)];
    if (!head || !base) return void res.status(404).type('html').send(errorPage(404, 'a kept revision disappeared while it was read; reload'));
    const review = await reviewBundles(name, { revision: base.kept.revision, bytes: base.bytes }, { revision: head.kept.revision, bytes: head.bytes });
    // The review page is self-contained (its style inline, no script): the one page that needs inline style.
    res.set('Content-Security-Policy', CSP.replace("style-src 'self'", "style-src 'unsafe-inline'")).type('html').send(toHtml(review));
  });

  // Admission refusals come from their own index (engine/audit/refusals.ts): grouping reads the
  // window's refusals only, however much other traffic the store holds around them.
  const refusalWindow = (rf: RawFilter) => {
    const f = parseFilter({ since: '24h', ...rf }, now(), { limit: 1 });
    return { ...(f.from !== undefined ? { from: f.from } : {}), ...(f.to !== undefined ? { to: f.to } : {}), ...(f.namespace ? { namespace: f.namespace } : {}) };
  };
  router.get('/admission', async (req, res) => {
    const rf = raw(req, ['since', 'from', 'to', 'namespace']);
    const { groups, objects } = await deps.reader.refusalGroups(refusalWindow(rf), ADMISSION_GROUPS);
    res.type('html').send(admissionPage(res.locals.who as string, groups, objects, groups.length === ADMISSION_GROUPS, paramsOf(rf)));
  });

  // One group's refusals, newest first, a page at a time (the `before` cursor is the last one shown: ts.seq).
  router.get('/admission/refusals', async (req, res) => {
    const rf = raw(req, ['since', 'from', 'to', 'rule', 'namespace', 'before']);
    const one = (k: string) => {
      const v = rf[k];
      if (typeof v !== 'string') throw new FilterError(k, `${k}: give exactly one (the group's ${k}, as the admission page links it)`);
      return v;
    };
    const [rule, namespace] = [one('rule'), one('namespace')];
    const before = rf.before === undefined ? undefined : /^(\d+)\.(\d+)$/.exec(String(rf.before));
    if (rf.before !== undefined && !before) throw new FilterError('before', 'before: not a cursor of this page (follow the "older" link)');
    const window = Object.fromEntries(Object.entries(rf).filter(([k]) => ['since', 'from', 'to'].includes(k))) as RawFilter;
    const events = await deps.reader.refusals({ rule, namespace, window: refusalWindow(window), limit: PAGE, ...(before ? { before: { ts: Number(before[1]), seq: Number(before[2]) } } : {}) });
    const last = events[events.length - 1];
    const params = paramsOf({ ...window, rule, namespace });
    const older = events.length === PAGE && last ? `/ui/admission/refusals?${new URLSearchParams([...params, ['before', `${Date.parse(last.event.timestamp)}.${last.seq}`]]).toString()}` : undefined;
    res.type('html').send(refusalsPage(res.locals.who as string, rule, namespace, events, params, older));
  });

  router.use((err: unknown, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(err);
    if (err instanceof FilterError) return void res.status(400).type('html').send(errorPage(400, err.message));
    res.status(500).type('html').send(errorPage(500, 'internal error reading the audit log'));
  });
  return router;
}
