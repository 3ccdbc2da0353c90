// The embedded audit store: one SQLite file in WAL mode. Appends go to a writer thread with its own
// connection (sqlite-writer.ts), one immediate transaction per batch, the chain head read inside it
// (so two processes appending stay chained); queries, retention and checkpoints use this thread's
// connection. A background thread copies the WAL back into the file (wal-checkpointer.ts).
import type Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { DecisionEvent } from '../../formats/decision-event.js';
import { type Checkpoint, type CheckpointReason } from './chain.js';
import { openSqlite, startSqliteWriter, type SqliteWriterThread } from './sqlite-writer.js';
import { startWalCheckpointer, type WalCheckpointer } from './wal-checkpointer.js';
import { startSqliteReader, type SqliteReaderThread } from './sqlite-reader.js';
import type { EventFilter } from './query.js';
import { pruneRefusalsSql, refusalHoursFillStatements, refusalHoursPruneStatements, selectRefusalHoursDrift, type RefusalHourDrift, refusalRules, insertRefusalsSql, selectAdmissionDenials, selectRefusalGroups, selectRefusalPage, selectRefusalRows, selectRefusedObjects, type RefusalGroup, type RefusalPage, type RefusalRow, type RefusalWindow } from './refusals.js';
import type { AppendResult, AuditStore, ChainHead, ChainRow, Edge, EdgeSummary, KeptRevision, LogSender, RollupDrift, StoreBounds, StoredEvent, TopDimension, TopRow } from './store.js';
import {
  edgeSummaryOf, fillsRollup, eventColumns, eventText, migrationStatements, rollupFillStatements, rollupPruneStatements, schemaAction, selectRollupDrift, SENDER_KEEP_MS, UNNAMED_BLOBS, upsertSender, schemaStatements, SCHEMA_VERSION, SELECT_HEAD, selectChainRows, selectEdges, selectEvents, selectTop,
  type EventColumns,
} from './table.js';

interface RowOut {
  seq: number;
  received_at: number;
  event: string;
}

type FullRow = EventColumns & { seq: number; received_at: number; event: string; prev_hash: string; hash: string };

/** How often the background checkpointer copies the WAL into the database file. */
const CHECKPOINT_EVERY_MS = 250;

/** AuditStore on a SQLite file. */
export class SqliteStore implements AuditStore {
  private readonly headStmt: Database.Statement<[], ChainHead>;
  private writer: SqliteWriterThread | undefined;
  private checkpointer: WalCheckpointer | undefined;
  private reader: SqliteReaderThread | undefined;
  /** The last background checkpoint failure, if any (for tests and diagnostics; ingestion goes on). */
  checkpointError: string | undefined;

  private constructor(
    private readonly db: Database.Database,
    readonly id: string,
    readonly location: string,
  ) {
    this.headStmt = db.prepare(SELECT_HEAD);
  }

  /** Open (creating if needed, migrating a version 1 layout in place) the store at `path`. */
  static open(path: string): SqliteStore {
    const full = resolve(path);
    mkdirSync(dirname(full), { recursive: true });
    const db = openSqlite(full);
    db.transaction(() => {
      const hasTable = (name: string) => db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined;
      const version = hasTable('audit_meta') ? db.prepare<[string], string>('SELECT value FROM audit_meta WHERE key = ?').pluck().get('schema_version') : undefined;
      const action = schemaAction(hasTable('events'), version, full);
      if (action === 'migrate-v1') for (const s of migrationStatements('sqlite')) db.exec(s);
      for (const s of schemaStatements('sqlite')) db.exec(s);
      if (fillsRollup(action)) for (const s of rollupFillStatements()) db.exec(s);
      if (action !== 'create-or-current') {
        fillRefusals(db);
        for (const s of refusalHoursFillStatements()) db.exec(s);
      }
      db.prepare('INSERT INTO audit_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING').run('store_id', randomUUID());
      db.prepare('INSERT INTO audit_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run('schema_version', SCHEMA_VERSION);
    }).immediate();
    const { value } = db.prepare('SELECT value FROM audit_meta WHERE key = ?').get('store_id') as { value: string };
    return new SqliteStore(db, value, full);
  }

  append(events: readonly DecisionEvent[], receivedAt: number, sent?: readonly Uint8Array[]): Promise<AppendResult> {
    // Only writers need the threads; a CLI query opening the store starts none.
    this.checkpointer ??= startWalCheckpointer(this.location, CHECKPOINT_EVERY_MS, (message) => (this.checkpointError = message));
    this.writer ??= startSqliteWriter(this.location);
    // Columns and text do not depend on the chain: worked out here while the writer is busy.
    return this.writer.write({ columns: events.map(eventColumns), texts: sent ?? events.map(eventText), rules: events.map(refusalRules), receivedAt });
  }

  query(filter: EventFilter): Promise<StoredEvent[]> {
    const { sql, values } = selectEvents('sqlite', filter);
    return Promise.resolve(this.db.prepare<unknown[], RowOut>(sql).all(...values).map(toStored));
  }

  refusalGroups(window: RefusalWindow, limit: number): Promise<{ groups: RefusalGroup[]; objects: number }> {
    const g = selectRefusalGroups('sqlite', window, limit);
    const o = selectRefusedObjects('sqlite', window);
    return Promise.resolve({ groups: this.db.prepare<unknown[], RefusalGroup>(g.sql).all(...g.values), objects: this.db.prepare<unknown[], number>(o.sql).pluck().get(...o.values) ?? 0 });
  }

  refusals(page: RefusalPage): Promise<StoredEvent[]> {
    const { sql, values } = selectRefusalPage('sqlite', page);
    return Promise.resolve(this.db.prepare<unknown[], RowOut>(sql).all(...values).map(toStored));
  }

  refusalRows(afterSeq: number, upToSeq: number): Promise<RefusalRow[]> {
    return Promise.resolve(this.db.prepare<[number, number], RefusalRow>(selectRefusalRows('sqlite')).all(afterSeq, upToSeq));
  }

  // The aggregates (top, who-talks-to-whom) run on the reader thread: over a wide window they take long
  // enough to block every other request, SSE poll and ingestion of the engine on this thread.
  async top(by: TopDimension, filter: EventFilter): Promise<TopRow[]> {
    const { sql, values } = selectTop('sqlite', by, filter);
    const rows = await this.aggregate<{ key: string; workload?: string | null; n: number }>(sql, values);
    return rows.map((r) => ({ key: r.key, ...(r.workload != null ? { workload: r.workload } : {}), count: r.n }));
  }

  edges(filter: EventFilter): Promise<Edge[]> {
    const { sql, values } = selectEdges('sqlite', filter);
    return this.aggregate<Edge>(sql, values);
  }

  async edgeSummary(filter: EventFilter): Promise<EdgeSummary> {
    const { sql, values } = selectEdges('sqlite', filter, { totals: true });
    return edgeSummaryOf(await this.aggregate<Record<string, unknown>>(sql, values));
  }

  /** Run an aggregate on the reader thread (started by the first one). */
  private aggregate<T>(sql: string, values: readonly unknown[]): Promise<T[]> {
    this.reader ??= startSqliteReader(this.location);
    return this.reader.all<T>(sql, values);
  }

  head(): Promise<ChainHead | undefined> {
    return Promise.resolve(this.headStmt.get());
  }

  bounds(): Promise<StoreBounds | undefined> {
    const r = this.db.prepare('SELECT MIN(seq) AS first, MAX(seq) AS last, COUNT(*) AS count FROM events').get() as { first: number | null; last: number | null; count: number };
    return Promise.resolve(r.first === null || r.last === null ? undefined : { first: r.first, last: r.last, count: r.count });
  }

  scan(afterSeq: number, limit: number): Promise<ChainRow[]> {
    const rows = this.db.prepare<[number, number], FullRow>(selectChainRows('sqlite')).all(afterSeq, limit);
    return Promise.resolve(rows.map(toChainRow));
  }

  oldest(limit: number): Promise<Array<{ seq: number; hash: string; received_at: number }>> {
    return Promise.resolve(
      this.db.prepare<[number], { seq: number; hash: string; received_at: number }>('SELECT seq, hash, received_at FROM events ORDER BY seq LIMIT ?').all(limit),
    );
  }

  findByHash(hash: string): Promise<{ seq: number; decision_id: string } | undefined> {
    return Promise.resolve(this.db.prepare<[string], { seq: number; decision_id: string }>('SELECT seq, decision_id FROM events WHERE hash = ? LIMIT 1').get(hash));
  }

  addCheckpoint(cp: Checkpoint): Promise<void> {
    this.db.prepare('INSERT INTO checkpoints (seq, hash, time, reason, jws) VALUES (?, ?, ?, ?, ?) ON CONFLICT (seq) DO NOTHING').run(cp.seq, cp.hash, cp.time, cp.reason, cp.jws);
    return Promise.resolve();
  }

  checkpoints(): Promise<Checkpoint[]> {
    const rows = this.db.prepare<[], Checkpoint & { reason: CheckpointReason }>('SELECT seq, hash, time, reason, jws FROM checkpoints ORDER BY seq').all();
    return Promise.resolve(rows);
  }

  prune(anchor: Checkpoint): Promise<number> {
    const run = this.db.transaction(() => {
      this.db.prepare('INSERT INTO checkpoints (seq, hash, time, reason, jws) VALUES (?, ?, ?, ?, ?) ON CONFLICT (seq) DO NOTHING').run(anchor.seq, anchor.hash, anchor.time, anchor.reason, anchor.jws);
      for (const [i, sql] of rollupPruneStatements('sqlite').entries()) this.db.prepare(sql).run(...(i === 0 ? [anchor.seq] : []));
      for (const [i, sql] of refusalHoursPruneStatements('sqlite').entries()) this.db.prepare(sql).run(...(i < 2 ? [anchor.seq] : []));
      this.db.prepare(pruneRefusalsSql('sqlite')).run(anchor.seq);
      const deleted = this.db.prepare('DELETE FROM events WHERE seq <= ?').run(anchor.seq).changes;
      this.db.prepare('DELETE FROM checkpoints WHERE seq < ?').run(anchor.seq);
      return deleted;
    });
    return Promise.resolve(run.immediate());
  }

  rollupDrift(limit: number): Promise<RollupDrift[]> {
    return Promise.resolve(this.db.prepare<[number], RollupDrift>(selectRollupDrift('sqlite')).all(limit));
  }

  refusalHoursDrift(limit: number): Promise<RefusalHourDrift[]> {
    return Promise.resolve(this.db.prepare<[number], RefusalHourDrift>(selectRefusalHoursDrift('sqlite')).all(limit));
  }

  keepRevision(k: KeptRevision, bytes: Uint8Array): Promise<void> {
    this.db.transaction(() => {
      const added = this.db.prepare('INSERT INTO bundle_revisions (bundle, revision, sha256, kept_at) VALUES (?, ?, ?, ?) ON CONFLICT (bundle, revision) DO NOTHING').run(k.bundle, k.revision, k.sha256, k.keptAt).changes;
      if (added) this.db.prepare('INSERT INTO bundle_blobs (sha256, bytes) VALUES (?, ?) ON CONFLICT (sha256) DO NOTHING').run(k.sha256, bytes);
    }).immediate();
    return Promise.resolve();
  }

  findRevision(bundle: string, revision: string): Promise<{ kept: KeptRevision; bytes: Buffer } | undefined> {
    const r = this.db
      .prepare<[string, string], KeptRevision & { bytes: Buffer }>('SELECT r.bundle, r.revision, r.sha256, r.kept_at AS keptAt, b.bytes FROM bundle_revisions AS r JOIN bundle_blobs AS b ON b.sha256 = r.sha256 WHERE r.bundle = ? AND r.revision = ?')
      .get(bundle, revision);
    return Promise.resolve(r && { kept: { bundle: r.bundle, revision: r.revision, sha256: r.sha256, keptAt: r.keptAt }, bytes: r.bytes });
  }

  listRevisions(): Promise<KeptRevision[]> {
    return Promise.resolve(this.db.prepare<[], KeptRevision>('SELECT bundle, revision, sha256, kept_at AS keptAt FROM bundle_revisions ORDER BY bundle, kept_at').all());
  }

  dropRevisions(which: ReadonlyArray<{ bundle: string; revision: string }>): Promise<void> {
    this.db.transaction(() => {
      const drop = this.db.prepare('DELETE FROM bundle_revisions WHERE bundle = ? AND revision = ?');
      for (const w of which) drop.run(w.bundle, w.revision);
      this.db.exec(UNNAMED_BLOBS);
    }).immediate();
    return Promise.resolve();
  }

  reportDrops(r: LogSender): Promise<void> {
    this.db.transaction(() => {
      this.db.prepare(upsertSender('sqlite')).run(r.workload, r.namespace, r.instance, r.dropped, r.reportedAt);
      this.db.prepare('DELETE FROM log_senders WHERE workload = ? AND reported_at < ?').run(r.workload, r.reportedAt - SENDER_KEEP_MS);
    }).immediate();
    return Promise.resolve();
  }

  logSenders(workload?: string): Promise<LogSender[]> {
    const sql = `SELECT workload, namespace, instance, dropped, reported_at AS reportedAt FROM log_senders ${workload === undefined ? '' : 'WHERE workload = ?'} ORDER BY workload, namespace, instance`;
    return Promise.resolve(this.db.prepare<unknown[], LogSender>(sql).all(...(workload === undefined ? [] : [workload])));
  }

  /** Direct access for tests and the benchmark (tampering, ANALYZE); not part of AuditStore. */
  get database(): Database.Database {
    return this.db;
  }

  async close(): Promise<void> {
    // The writer finishes what it was given; then the checkpointer's connection goes, so closing the
    // last one checkpoints and removes the WAL.
    await this.writer?.stop();
    this.writer = undefined;
    await this.checkpointer?.stop();
    this.checkpointer = undefined;
    await this.reader?.stop();
    this.reader = undefined;
    if (this.db.open) {
      this.db.pragma('optimize');
      this.db.close();
    }
  }
}

function toStored(r: RowOut): StoredEvent {
  return { seq: r.seq, received_at: new Date(r.received_at).toISOString(), event: JSON.parse(r.event) as DecisionEvent };
}

/**
 * Build admission_refusals from the stored admission refusals (opening a store of an older layout), in
 * the caller's transaction. An event whose text no longer parses gets no row; verify reports it.
 */
function fillRefusals(db: Database.Database): void {
  db.exec('DELETE FROM admission_refusals');
  const page = db.prepare<[number, number], { seq: number; namespace: number; ts: number; event: string }>(selectAdmissionDenials('sqlite'));
  const nameId = db.prepare<[string], number>('SELECT id FROM audit_names WHERE value = ?').pluck();
  const addName = db.prepare('INSERT INTO audit_names (value) VALUES (?)');
  const insert = db.prepare(insertRefusalsSql('sqlite', 1));
  for (let after = 0; ; ) {
    const rows = page.all(after, 1000);
    if (!rows.length) return;
    for (const r of rows) {
      after = r.seq;
      let rules: string[];
      try {
        rules = refusalRules(JSON.parse(r.event) as DecisionEvent);
      } catch {
        continue;
      }
      for (const rule of rules) insert.run(r.seq, nameId.get(rule) ?? Number(addName.run(rule).lastInsertRowid), r.namespace, r.ts);
    }
  }
}

function toChainRow(r: FullRow): ChainRow {
  const { seq, received_at, event, prev_hash, hash, ...columns } = r;
  return { seq, received_at, event, prev_hash, hash, columns };
}
