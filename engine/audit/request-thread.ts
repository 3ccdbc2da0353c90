// A worker thread of the audit store that answers requests by id (the SQLite writer and reader
// threads): it keeps the process alive only while a request is pending, rejects what it held with
// the reason when it dies, and a new one is started by the next request.
import type { Worker } from 'node:worker_threads';

/** A request thread as its owner sees it. */
export interface RequestThread<Request extends object, Reply extends { id: number }> {
  /** Hand a request over; requests are answered in the order they were sent. */
  send(request: Request, transfer?: ArrayBuffer[]): Promise<Reply>;
  /** Send `close` (the thread answers it, closes what it holds and ends), then wait for the thread's exit. */
  stop(close: Request): Promise<void>;
}

/** Requests to the threads that `start` creates; `what` names the thread in errors ("audit store writer thread for <path>"). */
export function requestThread<Request extends object, Reply extends { id: number }>(what: string, start: () => Worker): RequestThread<Request, Reply> {
  type Pending = Map<number, { resolve: (r: Reply) => void; reject: (err: Error) => void }>;
  let current: { worker: Worker; pending: Pending; exited: Promise<void> } | undefined;
  let nextId = 1;
  const spawn = () => {
    const worker = start();
    const pending: Pending = new Map();
    worker.unref();
    worker.on('message', (reply: Reply) => {
      const p = pending.get(reply.id);
      pending.delete(reply.id);
      if (pending.size === 0) worker.unref();
      p?.resolve(reply);
    });
    // The first reason the thread stopped is the one its pending requests are rejected with.
    const fail = (err: Error) => {
      if (current?.worker === worker) current = undefined;
      for (const [id, p] of pending) {
        pending.delete(id);
        p.reject(new Error(`${what} stopped: ${err.message}`));
      }
    };
    worker.on('error', fail);
    const exited = new Promise<void>((resolve) => worker.once('exit', (code) => {
      fail(new Error(`exited with code ${code}`));
      resolve();
    }));
    return { worker, pending, exited };
  };
  const send = (request: Request, transfer: ArrayBuffer[] = []): Promise<Reply> => {
    current ??= spawn();
    const { worker, pending } = current;
    const id = nextId++;
    return new Promise<Reply>((resolve, reject) => {
      pending.set(id, { resolve, reject });
      worker.ref();
      worker.postMessage({ ...request, id }, transfer);
    });
  };
  return {
    send,
    async stop(close) {
      if (!current) return;
      const { worker, exited } = current;
      // A thread that dies meanwhile has stopped too: its exit is all stop waits for.
      await send(close).catch(() => undefined);
      current = undefined;
      // Referenced until it exits (the answer unreferenced it): otherwise a process with nothing else
      // to do ends before the exit, and whoever awaits stop() never resumes.
      worker.ref();
      await exited;
    },
  };
}
