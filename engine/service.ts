// The engine service `warden serve` runs: the bundle server, and — only over TLS with client
// certificates — decision-log ingestion and audit queries, with periodic checkpoints and retention.
// Request path: TLS accept (client certificate requested, verified against the cluster CA, optional
// so bundles stay public) → route → the audit router identifies the caller by its SPIFFE ID.
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createEngineApp, type BundleIndex, type EngineApp, type EngineMount } from './bundle-server.js';
import type { CheckpointSigner } from './audit/chain.js';
import { startCheckpoints } from './audit/checkpoints.js';
import { auditRouter, type Writers } from './audit/ingest.js';
import { spiffePeer } from './audit/peer-identity.js';
import { startRetention, type RetentionPolicy } from './audit/retention.js';
import { openStore } from './audit/open-store.js';
import type { AuditStore } from './audit/store.js';
import { BundleWriters } from './audit/writers.js';
import { importArchiveFolder, RevisionArchive } from './bundle-revisions.js';
import { consoleAccess, type ConsoleOidc } from './console/access.js';
import { consoleRouter } from './console/router.js';
import { explainDecision } from './explain/explanation.js';
import { renderExplanation, type ExplainFormat } from './explain/render.js';

/** PEM contents of the engine's serving certificate and the CA client certificates must chain to. */
export interface EngineServerTls {
  cert: string;
  key: string;
  /** Without it no client can be identified, so the audit routes are not mounted. */
  clientCa?: string;
}

/** Everything the engine service needs. */
export interface EngineServiceOptions {
  bundlesDir: string;
  host: string;
  port: number;
  maxWaitSeconds?: number;
  rescanMs?: number;
  tls?: EngineServerTls;
  /** Audit store URL (sqlite:… | postgres://…); opened only when the audit routes are mounted. */
  storeUrl: string;
  /**
   * A revision archive folder kept by an earlier Warden (before the archive moved into the audit
   * store): imported into the store at start when it exists.
   */
  revisionsDir?: string;
  /** Principals that may query GET /audit/*. */
  readers?: readonly string[];
  /** Principals of the admission webhook; they log events as the workload `admission`. */
  admissionPrincipals?: readonly string[];
  /**
   * Console at /ui (mounted with the audit routes): readers' certificates, and OIDC bearer tokens when
   * given; `graphWaitMs`: how long a wide graph window's first request waits for its snapshot (200 ms).
   */
  console?: { oidc?: ConsoleOidc; graphWaitMs?: number };
  checkpoints?: { signer: CheckpointSigner; everyMs: number };
  retention?: { policy: RetentionPolicy; everyMs: number };
  logger: Logger;
}

/** A running engine. */
export interface EngineService {
  server: Server;
  /** Base URL clients use (https://127.0.0.1:port or http://…). */
  url: string;
  engine: EngineApp;
  /** The audit store, when the audit routes are mounted. */
  store: AuditStore | undefined;
  /** Every bundle revision served (in the audit store), when the audit routes are mounted. */
  revisions: RevisionArchive | undefined;
  /** Who may write the audit log right now. */
  writers(): Writers;
  close(): Promise<void>;
}

/** Why the audit routes are off, or undefined when they are on. */
export function auditUnavailableReason(tls: EngineServerTls | undefined): string | undefined {
  if (!tls) return 'the engine serves plain HTTP, so no caller can be identified: POST /logs and /audit/* are not mounted (an unauthenticated log endpoint would let anyone write the audit log); pass --tls-cert, --tls-key and --client-ca to enable them';
  if (!tls.clientCa) return 'no --client-ca: client certificates cannot be verified, so POST /logs and /audit/* are not mounted; pass --client-ca <the CA that issues workload SVIDs>';
  return undefined;
}

/** Keep every bundle the index lists, as the bytes the index names (a file a step ahead of its index waits for the next scan). */
async function keepServed(archive: RevisionArchive, bundlesDir: string, index: BundleIndex, onError: (err: unknown, name: string) => void): Promise<void> {
  const entries = [...Object.entries(index.bundles ?? {}), ...(index.admission ? [['admission', index.admission] as const] : [])];
  let kept: Set<string>;
  try {
    kept = new Set((await archive.list()).map((k) => `${k.bundle}\0${k.revision}`));
  } catch (err) {
    return onError(err, '*');
  }
  for (const [name, entry] of entries) {
    try {
      if (kept.has(`${name}\0${entry.revision}`)) continue;
      const bytes = await readFile(join(bundlesDir, `${name}.tar.gz`));
      if (createHash('sha256').update(bytes).digest('hex') !== entry.sha256) continue;
      if (!(await archive.keep(name, entry.revision, bytes))) onError(new Error(`revision ${JSON.stringify(entry.revision)} is not a revision token`), name);
    } catch (err) {
      onError(err, name);
    }
  }
}

/** Drop archived revisions that are not served and that no stored event names any more. */
export function pruneRevisions(archive: RevisionArchive, store: AuditStore, index: () => BundleIndex | undefined) {
  const served = (name: string, revision: string) => {
    const i = index();
    return (name === 'admission' ? i?.admission : i?.bundles?.[name])?.revision === revision;
  };
  // By time, so SQLite tests the revision on its time index's entries instead of reading every row.
  return archive.prune(served, async (revision) => (await store.query({ revision: [revision], sort: 'time', limit: 1 })).length > 0);
}

/** Open the store (if audit is on), build the app, listen; resolves once listening and the first index scan is done. */
export async function startEngineService(opts: EngineServiceOptions): Promise<EngineService> {
  const log = opts.logger;
  // Retention signs a checkpoint before each deletion; without a key it must not run at all.
  if (opts.retention && !opts.checkpoints) throw new Error('retention needs checkpoints (their signer anchors the chain after a deletion)');
  const auditOff = auditUnavailableReason(opts.tls);
  const admission: Writers = Object.fromEntries((opts.admissionPrincipals ?? []).map((p) => [p, ['admission']]));
  const writers = new BundleWriters(opts.bundlesDir, admission);
  const store = auditOff ? undefined : await openStore(opts.storeUrl);
  const stops: Array<() => void> = [];
  const mounts: EngineMount[] = [];
  const revisions = store ? new RevisionArchive(store, store.location) : undefined;
  if (revisions && opts.revisionsDir) {
    const { imported, skipped } = await importArchiveFolder(opts.revisionsDir, revisions);
    if (imported) log.info({ imported, from: opts.revisionsDir }, 'bundle revisions imported into the audit store');
    for (const reason of skipped) log.warn({ reason }, 'bundle revision not imported');
  }
  let servedIndex: () => BundleIndex | undefined = () => undefined; // the engine app's, once it exists
  if (store) {
    const explainOne = (id: string) => explainDecision(id, { event: async (d) => (await store.query({ decisionId: [d], sort: 'seq', limit: 1 }))[0], ...(revisions ? { archive: revisions } : {}) });
    const explain = async (id: string, format: string) => {
      const x = await explainOne(id);
      return x && { type: format === 'json' ? 'application/json' : format === 'markdown' ? 'text/markdown' : 'text/plain', body: renderExplanation(x, format as ExplainFormat) };
    };
    mounts.push({ path: '/', router: auditRouter({ store, identify: spiffePeer, writers: () => writers.current(), readers: opts.readers ?? [], explain }) });
    const access = consoleAccess({ identify: spiffePeer, readers: opts.readers ?? [], ...(opts.console?.oidc ? { oidc: opts.console.oidc } : {}) });
    const bundle = async (name: string) => readFile(join(opts.bundlesDir, `${name}.tar.gz`)).catch(() => undefined);
    mounts.push({ path: '/ui', router: consoleRouter({ access, reader: store, explain: explainOne, index: () => servedIndex(), bundle, logSenders: (w) => store.logSenders(w), ...(revisions ? { revisions } : {}), ...(opts.console?.graphWaitMs !== undefined ? { graphWaitMs: opts.console.graphWaitMs } : {}) }) });
    if (opts.checkpoints) stops.push(startCheckpoints(store, opts.checkpoints.signer, { everyMs: opts.checkpoints.everyMs, onError: (err) => log.error({ err }, 'audit checkpoint failed') }));
    if (opts.retention && opts.checkpoints) {
      stops.push(
        startRetention(store, opts.checkpoints.signer, opts.retention.policy, {
          everyMs: opts.retention.everyMs,
          onError: (err) => log.error({ err }, 'audit retention failed'),
          onPass: (r) => {
            if (r.deleted) log.info({ deleted: r.deleted, firstSeq: r.firstSeq }, 'audit retention');
            // Bundle revisions share the audit log's retention: one no remaining event names goes too.
            if (r.deleted && revisions) void pruneRevisions(revisions, store, servedIndex).catch((err: unknown) => log.error({ err }, 'revision archive pruning failed'));
          },
        }),
      );
    }
  } else {
    log.warn(auditOff);
  }
  const engine = createEngineApp({
    bundlesDir: opts.bundlesDir,
    mounts,
    ...(opts.maxWaitSeconds !== undefined ? { maxWaitSeconds: opts.maxWaitSeconds } : {}),
    ...(opts.rescanMs !== undefined ? { rescanMs: opts.rescanMs } : {}),
    onIndex: async (index) => {
      if (revisions) await keepServed(revisions, opts.bundlesDir, index, (err, name) => log.warn({ err, bundle: name }, 'bundle revision not archived: warden explain cannot replay its decisions'));
      const problems = await writers.refresh(index);
      for (const p of problems) log.warn({ workload: p.workload, reason: p.reason }, 'workload cannot log decisions: its bundle names no principal');
      log.info({ writers: writers.current() }, 'audit writers');
    },
  });
  servedIndex = engine.index;
  // Request a certificate from every client but do not insist: bundles are signed and public,
  // the audit router turns away anyone without a verified SPIFFE ID.
  const server = opts.tls
    ? createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key, ...(opts.tls.clientCa ? { ca: opts.tls.clientCa, requestCert: true, rejectUnauthorized: false } : {}) }, engine.app)
    : createHttpServer(engine.app);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port, opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    engine.close();
    for (const stop of stops) stop();
    await store?.close();
    throw err;
  }
  await engine.ready;
  const a = server.address() as AddressInfo;
  const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  return {
    server,
    url: `${opts.tls ? 'https' : 'http'}://${host}:${a.port}`,
    engine,
    store,
    revisions,
    writers: () => writers.current(),
    async close() {
      for (const stop of stops) stop();
      engine.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await store?.close();
    },
  };
}
