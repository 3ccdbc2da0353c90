// A read connection to a SQLite store in a worker thread, for the aggregates that take long enough to
// stall everything else the engine does (the graph over a day of a dense mesh groups ~100,000 edges):
// better-sqlite3 is synchronous, so on the serving thread such a query blocks every other request,
// SSE poll and ingestion for its whole duration. The SQL is built by the caller; the thread only runs it.
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { requestThread } from './request-thread.js';

// Plain CommonJS, evaluated as the worker (as wal-checkpointer.ts does): no TypeScript loader in the thread.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path, { readonly: true, fileMustExist: true });
db.pragma('busy_timeout = 5000');
db.pragma('cache_size = -65536');
parentPort.on('message', (m) => {
  if (m.close) { db.close(); parentPort.postMessage({ id: m.id, closed: true }); parentPort.close(); return; }
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

/** Start a reader thread on the store file at `path` (a request thread: request-thread.ts). */
export function startSqliteReader(path: string): SqliteReaderThread {
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  type Request = { sql: string; values: readonly unknown[] } | { close: true };
  type Reply = { id: number; rows?: unknown[]; error?: string };
  const thread = requestThread<Request, Reply>(`audit store reader thread for ${path}`, () => new Worker(WORKER, { eval: true, execArgv: [], workerData: { path, driver } }));
  return {
    async all<T>(sql: string, values: readonly unknown[]): Promise<T[]> {
      const reply = await thread.send({ sql, values });
      if (reply.error !== undefined) throw new Error(`audit store ${path}: ${reply.error}`);
      return (reply.rows ?? []) as T[];
    },
    stop: () => thread.stop({ close: true }),
  };
}
