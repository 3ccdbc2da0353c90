// The embedded audit store: one SQLite file in WAL mode, written by better-sqlite3 in one immediate
// transaction per batch (the chain head is read inside it, so two processes appending stay chained).
// Rows go in by multi-row INSERTs of ROWS_PER_INSERT, with names resolved to ids from a cache.
import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { DecisionEvent } from '../../formats/decision-event.js';
import { chainDigest, GENESIS_HASH, type Checkpoint, type CheckpointReason } from './chain.js';
import { NameIds } from './names.js';
import { startWalCheckpointer, type WalCheckpointer } from './wal-checkpointer.js';
import type { EventFilter } from './query.js';
import type { AppendResult, AuditStore, ChainHead, ChainRow, Edge, StoreBounds, StoredEvent, TopDimension, TopRow } from './store.js';
import {
  COLUMN_NAMES, eventColumns, eventText, migrationStatements, schemaAction, schemaStatements, SCHEMA_VERSION, selectChainRows, selectEdges, selectEvents, selectTop,
  type EventColumns,
} from './table.js';

interface RowOut {
  seq: number;
  received_at: number;
  event: string;
}

type FullRow = EventColumns & { seq: number; received_at: number; event: string; prev_hash: string; hash: string };

/** Rows per INSERT statement: fewer calls into SQLite per batch, well under its 32,766 bind values. */
const ROWS_PER_INSERT = 100;
/** How often the background checkpointer copies the WAL into the database file. */
const CHECKPOINT_EVERY_MS = 250;

/** AuditStore on a SQLite file. */
export class SqliteStore implements AuditStore {
  private readonly headStmt: Database.Statement<[], ChainHead>;
  private readonly storedIds: Database.Statement<[string], string>;
  private readonly nameId: Database.Statement<[string], number>;
  private readonly addName: Database.Statement<[string]>;
  private readonly inserts = new Map<number, Database.Statement>();
  private readonly names = new NameIds();
  private checkpointer: WalCheckpointer | undefined;
  /** The last background checkpoint failure, if any (for tests and diagnostics; ingestion goes on). */
  checkpointError: string | undefined;

  private constructor(
    private readonly db: Database.Database,
    readonly id: string,
    readonly location: string,
  ) {
    this.headStmt = db.prepare('SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1');
    this.storedIds = db.prepare<[string], string>('SELECT decision_id FROM events WHERE decision_id IN (SELECT value FROM json_each(?))').pluck();
    this.nameId = db.prepare<[string], number>('SELECT id FROM audit_names WHERE value = ?').pluck();
    this.addName = db.prepare('INSERT INTO audit_names (value) VALUES (?)');
  }

  /** Open (creating if needed, migrating a version 1 layout in place) the store at `path`. */
  static open(path: string): SqliteStore {
    const full = resolve(path);
    mkdirSync(dirname(full), { recursive: true });
    const db = new Database(full);
    db.pragma('journal_mode = WAL');
    // NORMAL in WAL mode: a commit survives a process crash (the WAL is written before COMMIT returns);
    // only an OS crash or power loss can lose the last commits (the WAL is fsynced at checkpoints, not
    // per commit), and it never corrupts the file or breaks the chain. FULL would fsync every batch.
    db.pragma('synchronous = NORMAL');
    // A writer's WAL is copied back by a worker thread (startWalCheckpointer, from the first append).
    // The writer's own autocheckpoint, past 16,384 pages (64 MiB), then finds nearly every page copied
    // and synced: it finishes the rest, and the next batch restarts the WAL from its start, keeping the
    // file bounded without the writer waiting on another connection.
    db.pragma('wal_autocheckpoint = 16384');
    db.pragma('busy_timeout = 5000');
    // 64 MiB of page cache: the decision_id and principal indexes take random inserts.
    db.pragma('cache_size = -65536');
    db.transaction(() => {
      const hasTable = (name: string) => db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined;
      const version = hasTable('audit_meta') ? db.prepare<[string], string>('SELECT value FROM audit_meta WHERE key = ?').pluck().get('schema_version') : undefined;
      if (schemaAction(hasTable('events'), version, full) === 'migrate-v1') for (const s of migrationStatements('sqlite')) db.exec(s);
      for (const s of schemaStatements('sqlite')) db.exec(s);
      const meta = db.prepare('INSERT INTO audit_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING');
      meta.run('store_id', randomUUID());
      meta.run('schema_version', SCHEMA_VERSION);
    }).immediate();
    const { value } = db.prepare('SELECT value FROM audit_meta WHERE key = ?').get('store_id') as { value: string };
    return new SqliteStore(db, value, full);
  }

  append(events: readonly DecisionEvent[], receivedAt: number): Promise<AppendResult> {
    // Only writers need one; a CLI query opening the store starts no thread.
    this.checkpointer ??= startWalCheckpointer(this.location, CHECKPOINT_EVERY_MS, (message) => (this.checkpointError = message));
    // Columns and text do not depend on the chain: worked out before the write lock is taken.
    const columns = events.map(eventColumns);
    const texts = events.map(eventText);
    try {
      return Promise.resolve(this.db.transaction(() => this.write(columns, texts, receivedAt)).immediate());
    } catch (err) {
      this.names.forget(); // names this transaction created were rolled back with it
      return Promise.reject(err as Error);
    }
  }

  private write(columns: EventColumns[], texts: string[], receivedAt: number): AppendResult {
    let head = this.headStmt.get();
    let prev = head?.hash ?? GENESIS_HASH;
    let prevDigest: Buffer = Buffer.from(prev, 'hex');
    let seq = head?.seq ?? 0;
    // Already stored, or earlier in this batch: the first occurrence of a decision id wins.
    const taken = new Set(this.storedIds.all(JSON.stringify(columns.map((c) => c.decision_id))));
    const duplicates: string[] = [];
    const values: unknown[] = [];
    let rows = 0;
    const name = (v: string | null) => (v === null ? null : (this.names.get(v) ?? this.newName(v)));
    for (let i = 0; i < columns.length; i++) {
      const c = columns[i]!;
      if (taken.has(c.decision_id)) {
        duplicates.push(c.decision_id);
        continue;
      }
      taken.add(c.decision_id);
      const text = texts[i]!;
      const digest = chainDigest(prevDigest, text);
      const hash = digest.toString('hex');
      seq += 1;
      values.push(seq, c.decision_id, c.ts, receivedAt, name(c.workload), name(c.namespace), name(c.outcome), name(c.kind), name(c.principal), name(c.method), c.path, name(c.operation), name(c.tool), name(c.revision), text, prev, hash);
      prev = hash;
      prevDigest = digest;
      if (++rows === ROWS_PER_INSERT) {
        this.insertRows(rows).run(values);
        values.length = 0;
        rows = 0;
      }
    }
    if (rows) this.insertRows(rows).run(values);
    const stored = seq - (head?.seq ?? 0);
    if (stored) head = { seq, hash: prev };
    return { stored, duplicates, head };
  }

  /** The id of a name not in the cache, adding it to audit_names when it is new. */
  private newName(value: string): number {
    const id = this.nameId.get(value) ?? Number(this.addName.run(value).lastInsertRowid);
    this.names.set(value, id);
    return id;
  }

  /** INSERT of `rows` rows; duplicates were filtered out, so a conflict is an error that aborts the batch. */
  private insertRows(rows: number): Database.Statement {
    let stmt = this.inserts.get(rows);
    if (!stmt) {
      const row = `(${COLUMN_NAMES.map(() => '?').join(', ')})`;
      stmt = this.db.prepare(`INSERT INTO events (${COLUMN_NAMES.join(', ')}) VALUES ${Array.from({ length: rows }, () => row).join(', ')}`);
      this.inserts.set(rows, stmt);
    }
    return stmt;
  }

  query(filter: EventFilter): Promise<StoredEvent[]> {
    const { sql, values } = selectEvents('sqlite', filter);
    const rows = this.db.prepare<unknown[], RowOut>(sql).all(...values);
    return Promise.resolve(rows.map((r) => ({ seq: r.seq, received_at: new Date(r.received_at).toISOString(), event: JSON.parse(r.event) as DecisionEvent })));
  }

  top(by: TopDimension, filter: EventFilter): Promise<TopRow[]> {
    const { sql, values } = selectTop('sqlite', by, filter);
    const rows = this.db.prepare<unknown[], { key: string; workload?: string; n: number }>(sql).all(...values);
    return Promise.resolve(rows.map((r) => ({ key: r.key, ...(r.workload !== undefined ? { workload: r.workload } : {}), count: r.n })));
  }

  edges(filter: EventFilter): Promise<Edge[]> {
    const { sql, values } = selectEdges('sqlite', filter);
    return Promise.resolve(this.db.prepare<unknown[], Edge>(sql).all(...values));
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
      const deleted = this.db.prepare('DELETE FROM events WHERE seq <= ?').run(anchor.seq).changes;
      this.db.prepare('DELETE FROM checkpoints WHERE seq < ?').run(anchor.seq);
      return deleted;
    });
    return Promise.resolve(run.immediate());
  }

  /** Direct access for tests and the benchmark (tampering, ANALYZE); not part of AuditStore. */
  get database(): Database.Database {
    return this.db;
  }

  async close(): Promise<void> {
    // The checkpointer's connection goes first, so closing the last one checkpoints and removes the WAL.
    await this.checkpointer?.stop();
    this.checkpointer = undefined;
    if (this.db.open) {
      this.db.pragma('optimize');
      this.db.close();
    }
  }
}

function toChainRow(r: FullRow): ChainRow {
  const { seq, received_at, event, prev_hash, hash, ...columns } = r;
  return { seq, received_at, event, prev_hash, hash, columns };
}
