// The engine's HTTP service: serves built bundles to pods (ETag, If-None-Match, long poll) and is the
// one express app other engine routers (decision-log ingestion, audit queries) are mounted into.
import express, { type Express, type Request, type Response, type Router } from 'express';
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REVISION_HEADER } from '../runtime/engine-connection.js';

/** bundles/index.json as `warden build` writes it. */
export interface BundleIndex {
  keyId: string;
  algorithm: string;
  bundles: Record<string, { revision: string; generation?: number; sha256: string }>;
  /** The admission bundle, served as GET /bundles/admission to the webhook (not a workload). */
  admission?: { revision: string; sha256: string };
}

/** The bundle name the admission bundle is served under (a workload may not take it). */
const ADMISSION = 'admission';

// The index entry a bundle name is served from.
const entryOf = (index: BundleIndex | undefined, name: string) => (name === ADMISSION ? index?.admission : index?.bundles?.[name]);

/** A router another part of the engine contributes, mounted at `path`. */
export interface EngineMount {
  path: string;
  router: Router;
}

/** Options of the engine app. */
export interface EngineAppOptions {
  bundlesDir: string;
  /** Longest long-poll a client may ask for, seconds. */
  maxWaitSeconds?: number;
  /** How often index.json is re-read when file-system events are missed (ms). */
  rescanMs?: number;
  /** Routers mounted next to the bundle routes (e.g. the audit store's POST /logs, GET /audit/...). */
  mounts?: EngineMount[];
  /** Called with each new index.json (e.g. to re-derive who may write the audit log); awaited. */
  onIndex?: (index: BundleIndex) => void | Promise<void>;
}

/** The app plus the watcher it owns; `close()` stops watching and releases waiting requests. */
export interface EngineApp {
  app: Express;
  close(): void;
  /** The index as last read (for tests and `warden serve` output). */
  index(): BundleIndex | undefined;
  /** Settles once the first scan of the bundles folder (and its `onIndex`) finished. */
  ready: Promise<void>;
}

const WORKLOAD_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

// How long the client asks to wait: `Prefer: wait=N` (RFC 7240) or `?wait=N`.
function requestedWait(req: Request, max: number): number {
  const fromHeader = /(?:^|[,;\s])wait=(\d+)/.exec(req.get('prefer') ?? '')?.[1];
  const fromQuery = typeof req.query.wait === 'string' ? req.query.wait : undefined;
  const n = Number(fromHeader ?? fromQuery ?? 0);
  return Number.isFinite(n) && n > 0 ? Math.min(n, max) : 0;
}

// A strong ETag for the bundle bytes, and the tag list of If-None-Match.
const etagOf = (sha256: string) => `"${sha256}"`;
const matchesIfNoneMatch = (header: string | undefined, etag: string) =>
  header !== undefined && header.split(',').some((t) => t.trim() === etag || t.trim() === '*');

/** Build the engine's express app around a bundles folder. */
export function createEngineApp(opts: EngineAppOptions): EngineApp {
  const maxWait = opts.maxWaitSeconds ?? 60;
  const changes = new EventEmitter();
  changes.setMaxListeners(0);
  let index: BundleIndex | undefined;
  let indexText = '';

  // Re-read index.json; emit one event per bundle whose sha256 changed (build writes it atomically).
  // Scans run one after another: a slow scan that read the old file must never apply it after a later
  // scan applied the new one (that would serve, and announce, the older index for a moment).
  let scans: Promise<void> = Promise.resolve();
  function rescan(): Promise<void> {
    scans = scans.then(scanOnce);
    return scans;
  }
  async function scanOnce(): Promise<void> {
    let text: string;
    try {
      text = await readFile(join(opts.bundlesDir, 'index.json'), 'utf8');
    } catch {
      return;
    }
    if (text === indexText) return;
    let next: BundleIndex;
    try {
      next = JSON.parse(text) as BundleIndex;
    } catch {
      return; // a half-written file from a non-atomic writer: the next scan sees the whole one
    }
    const before = index;
    index = next;
    indexText = text;
    try {
      await opts.onIndex?.(next);
    } catch {
      // the listener reports its own failures; serving bundles goes on regardless
    }
    for (const name of [...Object.keys(next.bundles ?? {}), ...(next.admission ? [ADMISSION] : [])]) {
      if (entryOf(before, name)?.sha256 !== entryOf(next, name)!.sha256) changes.emit('change', name);
    }
  }

  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(opts.bundlesDir, () => void rescan());
  } catch {
    watcher = undefined; // folder missing at start: the periodic rescan picks it up once it exists
  }
  const timer = setInterval(() => void rescan(), opts.rescanMs ?? 1000);
  timer.unref();
  const ready = rescan();

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok', bundles: Object.keys(index?.bundles ?? {}).length });
  });

  app.get('/bundles', async (_req, res) => {
    await ready;
    if (!index) return void res.status(503).json({ error: 'no bundles built yet (run warden build)' });
    res.json(index);
  });

  app.get('/bundles/:workload', async (req: Request, res: Response) => {
    await ready;
    const name = String(req.params.workload).replace(/\.tar\.gz$/, '');
    if (!WORKLOAD_NAME.test(name)) return void res.status(400).json({ error: `invalid workload name ${JSON.stringify(name)}` });
    const wait = requestedWait(req, maxWait);
    const inm = req.get('if-none-match');
    let entry = entryOf(index, name);
    if (wait > 0 && (!entry || matchesIfNoneMatch(inm, etagOf(entry.sha256)))) {
      // Long poll: hold until this bundle changes, the wait ends or the client goes away.
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(t);
          changes.off('change', onChange);
          changes.off('close', done);
          res.off('close', done);
          resolve();
        };
        const onChange = (changed: string) => changed === name && done();
        const t = setTimeout(done, wait * 1000);
        changes.on('change', onChange);
        changes.on('close', done);
        res.on('close', done);
      });
      if (res.destroyed) return;
      entry = entryOf(index, name);
    }
    if (!entry) return void res.status(404).json({ error: `no bundle for workload ${name}` });
    const etag = etagOf(entry.sha256);
    res.set('ETag', etag).set('Cache-Control', 'no-cache').set(REVISION_HEADER, entry.revision);
    if (matchesIfNoneMatch(inm, etag)) return void res.status(304).end();
    let bytes: Buffer;
    try {
      bytes = await readFile(join(opts.bundlesDir, `${name}.tar.gz`));
    } catch {
      return void res.status(404).json({ error: `bundle file for ${name} is missing` });
    }
    // The index may be a step behind the file; the ETag always names the bytes actually sent.
    const sha = createHash('sha256').update(bytes).digest('hex');
    res.set('ETag', etagOf(sha)).type('application/gzip').send(bytes);
  });

  // ---- mount point: other engine routers (audit store: POST /logs, GET /audit/...) go here.
  for (const m of opts.mounts ?? []) app.use(m.path, m.router);

  return {
    app,
    ready,
    index: () => index,
    close() {
      clearInterval(timer);
      watcher?.close();
      changes.emit('close');
    },
  };
}
