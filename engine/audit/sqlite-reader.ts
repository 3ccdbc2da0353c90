// A read connection to a SQLite store in a worker thread, for the aggregates that take long enough to
// stall everything else the engine does (the graph over a day of a dense mesh groups ~100,000 edges):
// better-sqlite3 is synchronous, so on the serving thread such a query blocks every other request,
// SSE poll and ingestion for its whole duration. The SQL is built by the caller; the thread only runs it.
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

// Plain CommonJS, evaluated as the worker (as wal-checkpointer.ts does): no TypeScript loader in the thread.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path, { readonly: true, fileMustExist: true });
db.pragma('busy_timeout = 5000');
db.pragma('cache_size = -65536');
parentPort.on('message', (m) => {
  if (m.close) { db.close(); parentPort.close(); return; }
  try {
    parentPort.postMessage({ id: m.id, rows: db.prepare(m.sql).all(...m.values) });
  } catch (err) {
    parentPort.postMessage({ id: m.id, error: String((err && err.message) || err) });
  }
});
`;

/** The store's handle on its reader thread. */
export interface SqliteReaderThread {
  /** Run one SELECT in the thread; statements run one after another, in the order given. */
  all<T>(sql: string, values: readonly unknown[]): Promise<T[]>;
  /** Close the thread's connection and end it. */
  stop(): Promise<void>;
}

/**
 * Start a reader thread on the store file at `path`. It keeps the process alive only while a query is
 * pending; if it dies, its pending queries are rejected with the reason and the next query starts a new one.
 */
export function startSqliteReader(path: string): SqliteReaderThread {
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  type Pending = Map<number, { resolve: (rows: unknown[]) => void; reject: (err: Error) => void }>;
  let current: { worker: Worker; pending: Pending; exited: Promise<void> } | undefined;
  let nextId = 1;
  const spawn = () => {
    const worker = new Worker(WORKER, { eval: true, execArgv: [], workerData: { path, driver } });
    const pending: Pending = new Map();
    worker.unref();
    worker.on('message', (m: { id: number; rows?: unknown[]; error?: string }) => {
      const p = pending.get(m.id);
      pending.delete(m.id);
      if (pending.size === 0) worker.unref();
      if (m.error !== undefined) p?.reject(new Error(`audit store ${path}: ${m.error}`));
      else p?.resolve(m.rows ?? []);
    });
    const fail = (err: Error) => {
      if (current?.worker === worker) current = undefined;
      for (const [id, p] of pending) {
        pending.delete(id);
        p.reject(new Error(`audit store reader thread for ${path} stopped: ${err.message}`));
      }
    };
    worker.on('error', fail);
    const exited = new Promise<void>((resolve) => worker.once('exit', (code) => {
      fail(new Error(`exited with code ${code}`));
      resolve();
    }));
    return { worker, pending, exited };
  };
  return {
    all<T>(sql: string, values: readonly unknown[]): Promise<T[]> {
      current ??= spawn();
      const { worker, pending } = current;
      const id = nextId++;
      return new Promise<T[]>((resolve, reject) => {
        pending.set(id, { resolve: resolve as (rows: unknown[]) => void, reject });
        worker.ref();
        worker.postMessage({ id, sql, values });
      });
    },
    async stop() {
      if (!current) return;
      const { worker, exited } = current;
      current = undefined;
      worker.ref();
      worker.postMessage({ close: true });
      await exited;
    },
  };
}
