// The body of the SQLite store's writer thread: one SqliteWriter answering the store's messages in order.
import { parentPort, workerData } from 'node:worker_threads';
import { openSqlite, SqliteWriter, type WriterReply, type WriterRequest } from './sqlite-writer.js';

const port = parentPort;
if (!port) throw new Error('sqlite-writer-thread.ts runs as a worker thread (see startSqliteWriter)');
const writer = new SqliteWriter(openSqlite((workerData as { path: string }).path));
port.on('message', (request: WriterRequest) => {
  let reply: WriterReply;
  if ('close' in request) {
    writer.close();
    port.postMessage({ id: request.id, closed: true } satisfies WriterReply);
    port.close();
    return;
  }
  try {
    reply = { id: request.id, result: writer.write(request.batch) };
  } catch (err) {
    reply = { id: request.id, error: (err as Error).message };
  }
  port.postMessage(reply);
});
