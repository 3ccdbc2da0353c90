// The SQLite store's writer: one connection that appends batches (chain head read, duplicate ids
// dropped, names resolved, hashes chained, rows inserted) in one immediate transaction each. It runs in
// a worker thread of its own (startSqliteWriter), so while it is inside SQLite the ingesting thread
// parses, validates and serialises the next batches: on two cores the two halves of an append overlap
// instead of adding up.
import Database from 'better-sqlite3';
import { Worker } from 'node:worker_threads';
import { chainDigestInPlace, GENESIS_HASH } from './chain.js';
import { requestThread } from './request-thread.js';
import { NameIds } from './names.js';
import type { AppendResult, ChainHead } from './store.js';
import { insertRefusalsSql, OBJECTS, refusalHoursAddSql, RefusalRows } from './refusals.js';
import { edgeHour } from './sql-dialect.js';
import { checkLayoutUnchanged, COLUMN_NAMES, BucketCounts, rollupAddSql, SELECT_HEAD, SELECT_LAYOUT, type EventColumns } from './table.js';

/** Rows per INSERT statement: fewer calls into SQLite per batch, well under its 32,766 bind values. */
const ROWS_PER_INSERT = 100;

/** Open a connection to a store file with the settings every writer and reader of it uses. */
export function openSqlite(path: string): Database.Database {
  const db = new Database(path);
  // 16 KiB pages for a new file (an existing one keeps its size; WAL mode fixes it). An event row is
  // about 1 KiB, so a page holds a dozen rather than three: a third fewer pages to write to the WAL and
  // copy back per event, which measured 25-30 % more events/s; reads that fetch rows cost a little more.
  db.pragma('page_size = 16384');
  db.pragma('journal_mode = WAL');
  // NORMAL in WAL mode: a commit survives a process crash (the WAL is written before COMMIT returns);
  // only an OS crash or power loss can lose the last commits (the WAL is fsynced at checkpoints, not
  // per commit), and it never corrupts the file or breaks the chain. FULL would fsync every batch.
  db.pragma('synchronous = NORMAL');
  // The WAL is copied back by the checkpointer thread (wal-checkpointer.ts). The writer's own
  // autocheckpoint, past 16,384 pages (64 MiB), then finds nearly every page copied and synced: it
  // finishes the rest, and the next batch restarts the WAL from its start, keeping the file bounded.
  db.pragma('wal_autocheckpoint = 16384');
  db.pragma('busy_timeout = 5000');
  // 64 MiB of page cache: the index's hot pages and the names.
  db.pragma('cache_size = -65536');
  return db;
}

/** One batch to append: columns, stored text (a string, or its UTF-8 bytes) and refusal rules (refusals.ts) per event, worked out by the caller. */
export interface WriteBatch {
  columns: EventColumns[];
  texts: ReadonlyArray<string | Uint8Array>;
  rules: ReadonlyArray<readonly string[]>;
  receivedAt: number;
}

/** The name columns in the order a packed batch lays out their references, per event. */
const NAMED = ['workload', 'namespace', 'outcome', 'kind', 'principal', 'method', 'operation', 'tool', 'revision'] as const satisfies ReadonlyArray<keyof EventColumns>;
const WIDTH = NAMED.length;

/** Bytes in front of each packed text that the writer fills with the previous chain digest. */
const LINK = 32;

/**
 * A batch as it crosses to the writer thread, in a few large values (copying those between threads is
 * several times cheaper than copying a thousand small objects):
 * - `ids`, `ts`, `paths`: per event;
 * - `names`: each distinct name in the batch once, and `refs`: per event, WIDTH indexes into `names`
 *   (-1 for none), so the writer resolves a few hundred names per batch, not nine per event;
 * - `bytes`: every text UTF-8 encoded into one transferred buffer, each preceded by LINK spare bytes,
 *   so the writer hashes "previous digest || text" in place and binds the text bytes as they are (CAST
 *   to TEXT in the INSERT), never turning them back into a string. `ends[i]` is where text i ends;
 * - `refused`: (event index, index into `names`) pairs, one per rule that refused an admission object.
 */
export interface PackedBatch {
  ids: string[];
  ts: number[];
  paths: Array<string | null>;
  names: string[];
  refs: Int32Array;
  bytes: Uint8Array;
  ends: number[];
  refused: Int32Array;
  receivedAt: number;
}

function packBatch({ columns, texts, rules, receivedAt }: WriteBatch): PackedBatch {
  const names: string[] = [];
  const index = new Map<string, number>();
  const ref = (v: string) => {
    let r = index.get(v) ?? -1;
    if (r < 0) index.set(v, (r = names.push(v) - 1));
    return r;
  };
  const refs = new Int32Array(columns.length * WIDTH);
  let k = 0;
  for (const c of columns) {
    for (const f of NAMED) {
      const v = c[f];
      refs[k++] = v === null ? -1 : ref(v);
    }
  }
  const refused: number[] = [];
  rules.forEach((list, i) => list.forEach((rule) => refused.push(i, ref(rule))));
  let size = 0;
  for (const t of texts) size += LINK + (typeof t === 'string' ? Buffer.byteLength(t, 'utf8') : t.length);
  // Not from Buffer's shared pool: this memory is handed to the other thread.
  const bytes = Buffer.allocUnsafeSlow(size);
  const ends: number[] = [];
  let end = 0;
  for (const t of texts) {
    const at = end + LINK;
    if (typeof t === 'string') {
      end = at + bytes.write(t, at, 'utf8');
    } else {
      bytes.set(t, at);
      end = at + t.length;
    }
    ends.push(end);
  }
  return { ids: columns.map((c) => c.decision_id), ts: columns.map((c) => c.ts), paths: columns.map((c) => c.path), names, refs, bytes, ends, refused: Int32Array.from(refused), receivedAt };
}

/** Appends batches through its own connection; used inside the writer thread. */
export class SqliteWriter {
  private readonly headStmt: Database.Statement<[], ChainHead>;
  private readonly storedIds: Database.Statement<[string], string>;
  private readonly nameId: Database.Statement<[string], number>;
  private readonly addName: Database.Statement<[string]>;
  private readonly inserts = new Map<number, Database.Statement>();
  private readonly rollups = new Map<number, Database.Statement>();
  private readonly refusalInserts = new Map<number, Database.Statement>();
  private readonly refusalHours = new Map<number, Database.Statement>();
  private readonly names = new NameIds();
  private readonly layoutStmt: Database.Statement<[], string>;

  constructor(private readonly db: Database.Database) {
    this.headStmt = db.prepare(SELECT_HEAD);
    this.layoutStmt = db.prepare<[], string>(SELECT_LAYOUT).pluck();
    this.storedIds = db.prepare<[string], string>('SELECT decision_id FROM events WHERE decision_id IN (SELECT value FROM json_each(?))').pluck();
    this.nameId = db.prepare<[string], number>('SELECT id FROM audit_names WHERE value = ?').pluck();
    this.addName = db.prepare('INSERT INTO audit_names (value) VALUES (?)');
  }

  /** Append one batch in one transaction; on failure nothing of it is stored. */
  write(batch: PackedBatch): AppendResult {
    try {
      return this.db.transaction(() => this.insert(batch)).immediate();
    } catch (err) {
      this.names.forget(); // names this transaction created were rolled back with it
      throw err;
    }
  }

  private insert({ ids, ts, paths, names, refs, bytes: packed, ends, refused, receivedAt }: PackedBatch): AppendResult {
    checkLayoutUnchanged(this.layoutStmt.get()); // a newer engine may have upgraded the store since it was opened
    // A Buffer on the sending side arrives as a plain Uint8Array over the same memory.
    const bytes = Buffer.from(packed.buffer, packed.byteOffset, packed.byteLength);
    let head = this.headStmt.get();
    let prev = head?.hash ?? GENESIS_HASH;
    let prevDigest: Buffer = Buffer.from(prev, 'hex');
    let seq = head?.seq ?? 0;
    const nameIds = names.map((v) => this.names.get(v) ?? this.newName(v));
    const id = (k: number) => (refs[k]! < 0 ? null : nameIds[refs[k]!]);
    // Already stored, or earlier in this batch: the first occurrence of a decision id wins.
    const taken = new Set(this.storedIds.all(JSON.stringify(ids)));
    const duplicates: string[] = [];
    const values: unknown[] = [];
    const rollup = new BucketCounts(5);
    const refusals = new RefusalRows();
    const refusalCounts = new BucketCounts(3);
    let next = 0; // the next (event index, rule) pair of `refused`, in event order
    let rows = 0;
    for (let i = 0; i < ids.length; i++) {
      const decisionId = ids[i]!;
      if (taken.has(decisionId)) {
        duplicates.push(decisionId);
        while (refused[next] === i) next += 2;
        continue;
      }
      taken.add(decisionId);
      const at = i === 0 ? 0 : ends[i - 1]!;
      const text = bytes.subarray(at + LINK, ends[i]);
      const digest = chainDigestInPlace(bytes, at, ends[i]!, prevDigest);
      const hash = digest.toString('hex');
      const r = i * WIDTH; // workload, namespace, outcome, kind, principal, method, operation, tool, revision
      seq += 1;
      values.push(seq, decisionId, ts[i], receivedAt, id(r), id(r + 1), id(r + 2), id(r + 3), id(r + 4), id(r + 5), paths[i], id(r + 6), id(r + 7), id(r + 8), text, prev, hash);
      rollup.add(edgeHour(ts[i]!), id(r + 4) ?? 0, id(r)!, id(r + 1)!, id(r + 2)!);
      if (refused[next] === i) refusalCounts.add(edgeHour(ts[i]!), OBJECTS, id(r + 1)!);
      for (; refused[next] === i; next += 2) {
        refusals.add(seq, nameIds[refused[next + 1]!]!, id(r + 1)!, ts[i]!);
        refusalCounts.add(edgeHour(ts[i]!), nameIds[refused[next + 1]!]!, id(r + 1)!);
      }
      prev = hash;
      prevDigest = digest;
      if (++rows === ROWS_PER_INSERT) {
        this.insertRows(rows).run(values);
        values.length = 0;
        rows = 0;
      }
    }
    if (rows) this.insertRows(rows).run(values);
    // The hourly edge rollup, in this transaction: a few dozen buckets per batch, not a row per event.
    for (const chunk of rollup.chunks(ROWS_PER_INSERT)) this.rollupStmt(chunk.length / 6).run(chunk);
    for (const chunk of refusals.chunks(ROWS_PER_INSERT)) this.refusalStmt(chunk.length / 4).run(chunk);
    for (const chunk of refusalCounts.chunks(ROWS_PER_INSERT)) this.cached(this.refusalHours, chunk.length / 4, (n) => refusalHoursAddSql('sqlite', n)).run(chunk);
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

  private rollupStmt(groups: number): Database.Statement {
    let stmt = this.rollups.get(groups);
    if (!stmt) this.rollups.set(groups, (stmt = this.db.prepare(rollupAddSql('sqlite', groups))));
    return stmt;
  }

  private refusalStmt(rows: number): Database.Statement {
    return this.cached(this.refusalInserts, rows, (n) => insertRefusalsSql('sqlite', n));
  }

  /** The statement of `rows` rows from `cache`, prepared from `sql(rows)` the first time. */
  private cached(cache: Map<number, Database.Statement>, rows: number, sql: (rows: number) => string): Database.Statement {
    let stmt = cache.get(rows);
    if (!stmt) cache.set(rows, (stmt = this.db.prepare(sql(rows))));
    return stmt;
  }

  /** INSERT of `rows` rows; duplicates were filtered out, so a conflict is an error that aborts the batch. */
  private insertRows(rows: number): Database.Statement {
    let stmt = this.inserts.get(rows);
    if (!stmt) {
      // The event text is bound as its UTF-8 bytes (a blob) and stored as TEXT: the cast reinterprets
      // the bytes in the database's UTF-8 encoding, copying them once.
      const row = `(${COLUMN_NAMES.map((c) => (c === 'event' ? 'CAST(? AS TEXT)' : '?')).join(', ')})`;
      stmt = this.db.prepare(`INSERT INTO events (${COLUMN_NAMES.join(', ')}) VALUES ${Array.from({ length: rows }, () => row).join(', ')}`);
      this.inserts.set(rows, stmt);
    }
    return stmt;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

/** Messages between the store and its writer thread. */
export type WriterRequest = { id: number; batch: PackedBatch } | { id: number; close: true };
export type WriterReply = { id: number; result: AppendResult } | { id: number; error: string } | { id: number; closed: true };

/** The store's handle on its writer thread. */
export interface SqliteWriterThread {
  /** Append a batch; batches are written in the order they are handed over. */
  write(batch: WriteBatch): Promise<AppendResult>;
  /** Finish what was handed over, close the writer's connection and end the thread. */
  stop(): Promise<void>;
}

/**
 * Start the writer thread for the store file at `path` (its tables must exist). The thread runs
 * sqlite-writer-thread.ts through a plain-JS bootstrap that registers tsx, as bin/warden.js does for
 * the main thread. It keeps the process alive only while a write is pending. If the thread dies, the
 * writes it held are rejected and the next write starts a new one (SQLite rolled back any open
 * transaction, so nothing is half-written).
 */
export function startSqliteWriter(path: string): SqliteWriterThread {
  const thread = requestThread<Omit<WriterRequest, 'id'>, WriterReply>(`audit store writer thread for ${path}`, () =>
    // No inherited node flags (a parent started with `--input-type` or `-e` would hand the thread flags it refuses).
    // Compiled (dist/): the thread's module is plain JS. From the TypeScript sources: through tsx's loader.
    import.meta.url.endsWith('.js')
      ? new Worker(new URL('./sqlite-writer-thread.js', import.meta.url), { execArgv: [], workerData: { path } })
      : new Worker(new URL('./thread-boot.mjs', import.meta.url), { execArgv: [], workerData: { module: new URL('./sqlite-writer-thread.ts', import.meta.url).href, path } }),
  );
  return {
    async write(batch) {
      const packed = packBatch(batch);
      const reply = await thread.send({ batch: packed }, [packed.bytes.buffer as ArrayBuffer, packed.refs.buffer as ArrayBuffer, packed.refused.buffer as ArrayBuffer]);
      if ('error' in reply) throw new Error(reply.error);
      if (!('result' in reply)) throw new Error('audit store writer thread answered a write with no result');
      return reply.result;
    },
    stop: () => thread.stop({ close: true }),
  };
}
