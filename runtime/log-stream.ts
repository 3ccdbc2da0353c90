// The stream a long-running Warden process writes its pino lines to when it logs a line per call.
// A synchronous write per decision would block the event loop on the log pipe for every call; here
// lines collect in a buffer, go out in 4 KiB writes on libuv's thread pool, at least once a second
// when traffic is light, and are all written, in order, before close() resolves.
import { pino } from 'pino';

/** A buffered log destination and the function that flushes and stops it. */
export interface LogStream {
  stream: ReturnType<typeof pino.destination>;
  close(): Promise<void>;
}

/** Open a buffered destination on a file descriptor (1 = stdout) or a path. */
export function bufferedLogStream(dest: number | string = 1, flushEveryMs = 1000): LogStream {
  const stream = pino.destination({ dest, sync: false, minLength: 4096 });
  const timer = setInterval(() => stream.flush(), flushEveryMs);
  timer.unref();
  return {
    stream,
    close() {
      clearInterval(timer);
      // Resolves once every buffered line is written (after any write already in flight: order is kept).
      return new Promise<void>((resolve) => stream.flush(() => resolve()));
    },
  };
}
