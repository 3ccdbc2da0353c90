// The stream a long-running Warden process writes its pino lines to when it logs a line per call.
// A synchronous write per decision would block the event loop on the log pipe for every call; here
// lines collect in a list, go out joined in writes of at least 4 KiB on libuv's thread pool (through
// pino's SonicBoom), at least once a second when traffic is light, and are all written, in order,
// before close() resolves. Lines are joined once per batch: handing each one to SonicBoom's own
// buffer would re-copy that growing buffer on every line (~8 KiB of garbage per decision).
import { pino } from 'pino';

const BATCH = 4096;

/** What pino writes to: one serialized line per call. */
export interface LineSink {
  writable: true;
  write(line: string): boolean;
}

/** A buffered log destination and the function that flushes and stops it. */
export interface LogStream {
  stream: LineSink;
  /** The file writer underneath (emits 'ready' once the file is open). */
  destination: ReturnType<typeof pino.destination>;
  close(): Promise<void>;
}

/** Open a buffered destination on a file descriptor (1 = stdout) or a path. */
export function bufferedLogStream(dest: number | string = 1, flushEveryMs = 1000): LogStream {
  const destination = pino.destination({ dest, sync: false, minLength: BATCH });
  let lines: string[] = [];
  let size = 0;
  const pass = () => {
    if (lines.length === 0) return;
    const text = lines.length === 1 ? lines[0]! : lines.join('');
    lines = [];
    size = 0;
    destination.write(text);
  };
  const stream: LineSink = {
    // pino tells a destination from its options by this flag.
    writable: true,
    write(line: string): boolean {
      lines.push(line);
      size += line.length;
      if (size >= BATCH) pass();
      return true;
    },
  };
  const timer = setInterval(() => {
    pass();
    destination.flush();
  }, flushEveryMs);
  timer.unref();
  return {
    stream,
    destination,
    close() {
      clearInterval(timer);
      pass();
      // Resolves once every buffered line is written (after any write already in flight: order is kept).
      return new Promise<void>((resolve) => destination.flush(() => resolve()));
    },
  };
}
