// The embedded audit store: one SQLite file in WAL mode, written by better-sqlite3 in one immediate
// transaction per batch (the chain head is read inside it, so two processes appending stay chained).
import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { DecisionEvent } from '../../formats/decision-event.js';
import { chainDigest, GENESIS_HASH, type Checkpoint, type CheckpointReason } from './chain.js';
import type { EventFilter } from './query.js';
import type { AppendResult, AuditStore, ChainHead, ChainRow, Edge, StoreBounds, StoredEvent, TopDimension, TopRow } from './store.js';
import { COLUMN_NAMES, prepareEvent, schemaStatements, selectEdges, selectEvents, selectTop, type EventColumns } from './table.js';

interface RowOut {
  seq: number;
  received_at: number;
  event: string;
}

type FullRow = EventColumns & { seq: number; received_at: number; event: string; prev_hash: string; hash: string };

/** AuditStore on a SQLite file. */
export class SqliteStore implements AuditStore {
  private readonly insert: Database.Statement;
  private readonly headStmt: Database.Statement<[], ChainHead>;

  private constructor(
    private readonly db: Database.Database,
    readonly id: string,
    readonly location: string,
  ) {
    this.insert = db.prepare(
      `INSERT INTO events (${COLUMN_NAMES.join(', ')}) VALUES (${COLUMN_NAMES.map(() => '?').join(', ')}) ON CONFLICT (decision_id) DO NOTHING`,
    );
    this.headStmt = db.prepare('SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1');
  }

  /** Open (creating if needed) the store at `path`. */
  static open(path: string): SqliteStore {
    const full = resolve(path);
    mkdirSync(dirname(full), { recursive: true });
    const db = new Database(full);
    db.pragma('journal_mode = WAL');
    // NORMAL in WAL mode: a commit survives a process crash (the WAL is written before COMMIT returns);
    // only an OS crash or power loss can lose the last commits (the WAL is fsynced at checkpoints, not
    // per commit), and it never corrupts the file or breaks the chain. FULL would fsync every batch.
    db.pragma('synchronous = NORMAL');
    // Checkpoint every 10,000 pages (~40 MiB of WAL) instead of 1,000: each batch dirties a page per
    // principal/revision index hot spot, and a page rewritten by many batches is copied back once.
    db.pragma('wal_autocheckpoint = 10000');
    db.pragma('busy_timeout = 5000');
    // 64 MiB of page cache: the decision_id and principal indexes take random inserts.
    db.pragma('cache_size = -65536');
    db.transaction(() => {
      for (const s of schemaStatements('sqlite')) db.exec(s);
      db.prepare('INSERT INTO audit_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING').run('store_id', randomUUID());
    }).immediate();
    const { value } = db.prepare('SELECT value FROM audit_meta WHERE key = ?').get('store_id') as { value: string };
    return new SqliteStore(db, value, full);
  }

  append(events: readonly DecisionEvent[], receivedAt: number): Promise<AppendResult> {
    const prepared = events.map(prepareEvent);
    const run = this.db.transaction((): AppendResult => {
      let head = this.headStmt.get();
      let prev = head?.hash ?? GENESIS_HASH;
      let prevDigest: Buffer = Buffer.from(prev, 'hex');
      let seq = head?.seq ?? 0;
      let stored = 0;
      const duplicates: string[] = [];
      for (const { columns: c, text } of prepared) {
        const digest = chainDigest(prevDigest, text);
        const hash = digest.toString('hex');
        const r = this.insert.run(seq + 1, c.decision_id, c.ts, receivedAt, c.workload, c.namespace, c.outcome, c.kind, c.principal, c.method, c.path, c.operation, c.tool, c.revision, text, prev, hash);
        if (r.changes === 1) {
          seq += 1;
          prev = hash;
          prevDigest = digest;
          stored += 1;
        } else {
          duplicates.push(c.decision_id);
        }
      }
      if (stored) head = { seq, hash: prev };
      return { stored, duplicates, head };
    });
    return Promise.resolve(run.immediate());
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
    const rows = this.db.prepare<[number, number], FullRow>('SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?').all(afterSeq, limit);
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

  close(): Promise<void> {
    if (this.db.open) {
      this.db.pragma('optimize');
      this.db.close();
    }
    return Promise.resolve();
  }
}

function toChainRow(r: FullRow): ChainRow {
  const { seq, received_at, event, prev_hash, hash, ...columns } = r;
  return { seq, received_at, event, prev_hash, hash, columns };
}
