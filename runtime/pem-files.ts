// Certificates and keys that are rotated in place: SPIRE, cert-manager's csi-driver-spiffe and
// Kubernetes Secret volumes replace the files (a Secret volume swaps a symlink, so every file changes at
// once). The files are re-read on an interval; a new set is taken only when it forms a usable TLS
// context, so a half-written rotation keeps the old certificate until the set is whole again.
import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';

/** The PEM texts of a certificate, its key and optionally a CA bundle. */
export interface PemSet {
  cert?: string;
  key?: string;
  ca?: string;
}

/** Options of a watch. */
export interface PemWatchOptions {
  /** How often the files are re-read (ms); default 10 s. */
  intervalMs?: number;
  /** Called with the new texts once they changed and form a usable context. */
  onChange: (pems: PemSet) => void;
  /** Called once per problem (a file that cannot be read, a key not matching the certificate), not on every read. */
  onError: (message: string) => void;
}

/** A running watch. */
export interface PemWatch {
  /** The texts in use. */
  readonly current: PemSet;
  /** Re-read now (the interval calls this); resolves once the files were read, compared and taken or refused. */
  check(): Promise<void>;
  close(): void;
}

const same = (a: PemSet, b: PemSet) => a.cert === b.cert && a.key === b.key && a.ca === b.ca;

/** Watch `paths`, whose current texts are `initial` (as read at start). */
export function watchPemFiles(paths: { cert?: string; key?: string; ca?: string }, initial: PemSet, opts: PemWatchOptions): PemWatch {
  let current = initial;
  let reported: string | undefined; // the problem last reported, until the files read well again
  let chain = Promise.resolve();
  const problem = (message: string) => {
    if (message !== reported) opts.onError(message);
    reported = message;
  };
  const read = async (): Promise<void> => {
    let next: PemSet;
    try {
      const [cert, key, ca] = await Promise.all([paths.cert, paths.key, paths.ca].map((p) => (p ? readFile(p, 'utf8') : Promise.resolve(undefined))));
      next = { ...(cert !== undefined ? { cert } : {}), ...(key !== undefined ? { key } : {}), ...(ca !== undefined ? { ca } : {}) };
    } catch (err) {
      return problem(`cannot re-read ${Object.values(paths).join(', ')}: ${(err as Error).message}; keeping the certificate in use`);
    }
    if (same(next, current)) {
      reported = undefined;
      return;
    }
    try {
      createSecureContext(next); // throws when the key does not match the certificate, or a PEM is broken
    } catch (err) {
      return problem(`the new files ${Object.values(paths).join(', ')} do not form a usable TLS context (${(err as Error).message}); keeping the certificate in use`);
    }
    current = next;
    reported = undefined;
    opts.onChange(next);
  };
  // One read at a time, each after the previous one: a check asked for after a change sees the change.
  const check = () => (chain = chain.then(read).catch((err: unknown) => opts.onError(`reloading the certificate failed: ${String(err)}`)));
  const timer = setInterval(() => void check(), opts.intervalMs ?? 10_000);
  timer.unref();
  return {
    get current() {
      return current;
    },
    check,
    close: () => clearInterval(timer),
  };
}

/** Where a rotation's messages go (a pino logger fits). */
export interface RotationLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/**
 * Watch the files of one credential (`what`, e.g. "serving certificate") and apply each new usable set;
 * undefined when `intervalMs` is 0 (reloading turned off) or no file is given.
 */
export function reloadOnRotation(what: string, paths: { cert?: string | undefined; key?: string | undefined; ca?: string | undefined }, initial: PemSet, apply: (pems: PemSet) => void, log: RotationLog, intervalMs: number): PemWatch | undefined {
  const given = Object.fromEntries(Object.entries(paths).filter(([, p]) => p !== undefined)) as { cert?: string; key?: string; ca?: string };
  if (intervalMs <= 0 || Object.keys(given).length === 0) return undefined;
  return watchPemFiles(given, initial, {
    intervalMs,
    onChange: (pems) => {
      apply(pems);
      log.info({ files: Object.values(given) }, `${what} reloaded`);
    },
    onError: (message) => log.warn({ files: Object.values(given) }, `${what}: ${message}`),
  });
}
