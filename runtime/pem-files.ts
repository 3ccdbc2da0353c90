// Certificates and keys that are rotated in place: SPIRE, cert-manager's csi-driver-spiffe and
// Kubernetes Secret volumes replace the files (a Secret volume swaps a symlink, so every file changes at
// once). The files are re-read on an interval; a new set is taken only when it forms a usable TLS
// context, so a half-written rotation keeps the old certificate until the set is whole again.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import { UserError } from '../formats/user-error.js';

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
  /** Applies the new texts once they changed and form a usable context; when it throws, they are not taken. */
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

/** The text of a PEM file a flag names; a UserError naming the flag and the file when it cannot be read. */
export function readPem(flag: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new UserError(`${flag} ${path}: ${why}; give the path of a PEM file`);
  }
}

/** Longest --cert-reload interval, seconds (a day; timers cannot wait longer than ~24.8 days). */
export const MAX_RELOAD_SECONDS = 86_400;

/** `--cert-reload <seconds>` as milliseconds; throws a UserError naming the flag when it is not 0…86400. */
export function reloadIntervalMs(value: string, flag = '--cert-reload'): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n > MAX_RELOAD_SECONDS) throw new UserError(`${flag} "${value}" must be a whole number of seconds from 0 (never) to ${MAX_RELOAD_SECONDS}`);
  return n * 1000;
}

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * Why a set cannot serve, or undefined when it can. Every file given must hold what it is named for:
 * TLS would take an empty file as "none", and an empty CA bundle as "trust the system roots".
 */
export function unusable(pems: PemSet): string | undefined {
  try {
    const cert = pems.cert !== undefined ? new X509Certificate(pems.cert) : undefined;
    const key = pems.key !== undefined ? createPrivateKey(pems.key) : undefined;
    if (cert && key && !cert.checkPrivateKey(key)) return 'the key does not belong to the certificate';
    if (pems.ca !== undefined) {
      const blocks = pems.ca.match(PEM_BLOCK) ?? [];
      if (blocks.length === 0) return 'the CA bundle holds no certificate';
      for (const b of blocks) new X509Certificate(b);
    }
    createSecureContext(pems);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Watch `paths`, whose current texts are `initial` (as read at start). */
export function watchPemFiles(paths: { cert?: string; key?: string; ca?: string }, initial: PemSet, opts: PemWatchOptions): PemWatch {
  let current = initial;
  let reported: string | undefined; // the problem last reported, until the files read well again
  let chain = Promise.resolve();
  let closed = false;
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
    const why = unusable(next);
    if (why !== undefined) return problem(`the new files ${Object.values(paths).join(', ')} do not form a usable TLS context (${why}); keeping the certificate in use`);
    if (closed) return;
    opts.onChange(next); // throws when it cannot apply them: the set in use stays current, retried next read
    current = next;
    reported = undefined;
  };
  // One read at a time, each after the previous one: a check asked for after a change sees the change.
  const check = () => (chain = chain.then(read).catch((err: unknown) => problem(`applying the new files ${Object.values(paths).join(', ')} failed (${String((err as Error)?.message ?? err)}); keeping the certificate in use`)));
  const timer = setInterval(() => void check(), opts.intervalMs ?? 10_000);
  timer.unref();
  return {
    get current() {
      return current;
    },
    check,
    close: () => {
      closed = true;
      clearInterval(timer);
    },
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
