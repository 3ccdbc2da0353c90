// Copies a SQLite store's WAL back into its database file from a worker thread, so the ingesting
// thread never waits for a checkpoint's page writes and fsyncs (they were about a third of its time).
// The worker has its own connection and runs PASSIVE checkpoints, which never block a writer. (It does
// not RESTART the WAL: that blocks writers, and a writer waiting on it failed with SQLITE_BUSY.)
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

// Plain CommonJS, evaluated as the worker: no TypeScript loader is needed in the thread.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path);
db.pragma('busy_timeout = 5000');
db.pragma('synchronous = NORMAL');
const timer = setInterval(() => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch (err) {
    parentPort.postMessage(String((err && err.message) || err));
  }
}, workerData.everyMs);
parentPort.on('message', () => { clearInterval(timer); db.close(); parentPort.close(); });
`;

/** A running checkpointer; stop() ends it and closes its connection. */
export interface WalCheckpointer {
  stop(): Promise<void>;
}

/**
 * Checkpoint the WAL of the database at `path` every `everyMs`. A failed checkpoint (say, the file is
 * busy past the timeout) is only retried on the next tick: nothing is lost meanwhile, the WAL just
 * grows, and the writer's own autocheckpoint is the backstop; `onError` hears of it.
 */
export function startWalCheckpointer(path: string, everyMs: number, onError: (message: string) => void): WalCheckpointer {
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(WORKER, { eval: true, workerData: { path, everyMs, driver } });
  worker.unref(); // a store left open must not keep the process alive
  worker.on('message', (m: string) => onError(m));
  worker.on('error', (err) => onError(err.message));
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  return {
    stop: () => {
      // Referenced again while stopping: otherwise a process with nothing else to do exits before
      // `exited` settles, and whoever awaits close() never resumes.
      worker.ref();
      worker.postMessage('stop');
      return exited;
    },
  };
}
