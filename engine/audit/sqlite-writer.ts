// The SQLite store's writer: one connection that appends batches (chain head read, duplicate ids
// dropped, names resolved, hashes chained, rows inserted) in one immediate transaction each. It runs in
// a worker thread of its own (startSqliteWriter), so while it is inside SQLite the ingesting thread
// parses, validates and serialises the next batches: on two cores the two halves of an append overlap
// instead of adding up.
import Database from 'better-sqlite3';
import { Worker } from 'node:worker_threads';
import { chainDigest, GENESIS_HASH } from './chain.js';
import { NameIds } from './names.js';
import type { AppendResult, ChainHead } from './store.js';
import { COLUMN_NAMES, type EventColumns } from './table.js';

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

/** One batch to append: columns and stored text per event, worked out by the caller. */
export interface WriteBatch {
  columns: EventColumns[];
  texts: string[];
  receivedAt: number;
}

/** EventColumns fields in the order a packed batch lays them out. */
const FIELDS = ['decision_id', 'ts', 'workload', 'namespace', 'outcome', 'kind', 'principal', 'method', 'path', 'operation', 'tool', 'revision'] as const satisfies ReadonlyArray<keyof EventColumns>;
const WIDTH = FIELDS.length;

/**
 * A batch as it crosses to the writer thread: every column value in one flat array and every text in
 * one string with its end offsets. Copying a few large values between threads is several times cheaper
 * than copying a thousand small objects, and slicing the texts back out copies nothing.
 */
export interface PackedBatch {
  values: Array<string | number | null>;
  text: string;
  ends: number[];
  receivedAt: number;
}

function packBatch({ columns, texts, receivedAt }: WriteBatch): PackedBatch {
  const values: Array<string | number | null> = [];
  for (const c of columns) for (const f of FIELDS) values.push(c[f]);
  const ends: number[] = [];
  let end = 0;
  for (const t of texts) ends.push((end += t.length));
  return { values, text: texts.join(''), ends, receivedAt };
}

/** Appends batches through its own connection; used inside the writer thread. */
export class SqliteWriter {
  private readonly headStmt: Database.Statement<[], ChainHead>;
  private readonly storedIds: Database.Statement<[string], string>;
  private readonly nameId: Database.Statement<[string], number>;
  private readonly addName: Database.Statement<[string]>;
  private readonly inserts = new Map<number, Database.Statement>();
  private readonly names = new NameIds();

  constructor(private readonly db: Database.Database) {
    this.headStmt = db.prepare('SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1');
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

  private insert({ values: cols, text: allText, ends, receivedAt }: PackedBatch): AppendResult {
    let head = this.headStmt.get();
    let prev = head?.hash ?? GENESIS_HASH;
    let prevDigest: Buffer = Buffer.from(prev, 'hex');
    let seq = head?.seq ?? 0;
    const n = ends.length;
    const ids: string[] = [];
    for (let i = 0; i < n; i++) ids.push(cols[i * WIDTH] as string);
    // Already stored, or earlier in this batch: the first occurrence of a decision id wins.
    const taken = new Set(this.storedIds.all(JSON.stringify(ids)));
    const duplicates: string[] = [];
    const values: unknown[] = [];
    let rows = 0;
    const name = (v: string | number | null) => (v === null ? null : (this.names.get(v as string) ?? this.newName(v as string)));
    for (let i = 0; i < n; i++) {
      const o = i * WIDTH; // decision_id, ts, workload, namespace, outcome, kind, principal, method, path, operation, tool, revision
      const id = ids[i]!;
      if (taken.has(id)) {
        duplicates.push(id);
        continue;
      }
      taken.add(id);
      const text = allText.slice(i === 0 ? 0 : ends[i - 1], ends[i]);
      const digest = chainDigest(prevDigest, text);
      const hash = digest.toString('hex');
      seq += 1;
      values.push(seq, id, cols[o + 1], receivedAt, name(cols[o + 2]!), name(cols[o + 3]!), name(cols[o + 4]!), name(cols[o + 5]!), name(cols[o + 6]!), name(cols[o + 7]!), cols[o + 8], name(cols[o + 9]!), name(cols[o + 10]!), name(cols[o + 11]!), text, prev, hash);
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
  type Pending = Map<number, { resolve: (r: WriterReply) => void; reject: (err: Error) => void }>;
  let current: { worker: Worker; pending: Pending; exited: Promise<void> } | undefined;
  let nextId = 1;
  const spawn = () => {
    // No inherited node flags (a parent started with `--input-type` or `-e` would hand the thread flags it refuses).
    const worker = new Worker(new URL('./thread-boot.mjs', import.meta.url), { execArgv: [], workerData: { module: new URL('./sqlite-writer-thread.ts', import.meta.url).href, path } });
    const pending: Pending = new Map();
    worker.unref();
    worker.on('message', (reply: WriterReply) => {
      const p = pending.get(reply.id);
      pending.delete(reply.id);
      if (pending.size === 0) worker.unref();
      p?.resolve(reply);
    });
    // The first reason the thread stopped is the one its pending writes are rejected with.
    const fail = (err: Error) => {
      if (current?.worker === worker) current = undefined;
      for (const [id, p] of pending) {
        pending.delete(id);
        p.reject(new Error(`audit store writer thread for ${path} stopped: ${err.message}`));
      }
    };
    worker.on('error', fail);
    const exited = new Promise<void>((resolve) => worker.once('exit', (code) => {
      fail(new Error(`exited with code ${code}`));
      resolve();
    }));
    return { worker, pending, exited };
  };
  const send = (request: Omit<WriterRequest, 'id'>): Promise<WriterReply> => {
    current ??= spawn();
    const { worker, pending } = current;
    const id = nextId++;
    return new Promise<WriterReply>((resolve, reject) => {
      pending.set(id, { resolve, reject });
      worker.ref();
      worker.postMessage({ ...request, id });
    });
  };
  return {
    async write(batch) {
      const reply = await send({ batch: packBatch(batch) });
      if ('error' in reply) throw new Error(reply.error);
      if (!('result' in reply)) throw new Error('audit store writer thread answered a write with no result');
      return reply.result;
    },
    async stop() {
      if (!current) return;
      const { exited } = current;
      // A thread that dies meanwhile has stopped too: its exit is all stop waits for.
      await send({ close: true }).catch(() => undefined);
      current = undefined;
      await exited;
    },
  };
}
