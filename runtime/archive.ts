// Bundle archives (.tar.gz) in memory: read with limits and path checks, write deterministically.
import { gunzipSync, gzipSync } from 'node:zlib';
import { Header, Parser, type ReadEntry } from 'tar';
import { UserError } from '../formats/user-error.js';

/** Thrown for a bundle that is malformed, oversized, unsigned or fails verification. */
export class BundleError extends UserError {
  override name = 'BundleError';
}

/** Limits that keep a hostile archive from exhausting the pod. */
export interface ArchiveLimits {
  maxFiles: number;
  maxTotalBytes: number;
}

const defaultLimits: ArchiveLimits = { maxFiles: 10_000, maxTotalBytes: 256 * 1024 * 1024 };

/** Bundle file path as OPA names it in signatures: relative, `/`-separated, no leading slash. */
export function normalizeEntryPath(raw: string): string {
  const p = raw.replace(/^\.?\/+/, '');
  const segments = p.split('/');
  if (!p || segments.some((s) => s === '..' || s === '.' || s === '') || p.includes('\\') || p.includes('\0')) {
    throw new BundleError(`bundle entry has an unsafe path: ${JSON.stringify(raw)}`);
  }
  return p;
}

/** Read every regular file of a .tar.gz into memory. Directories are skipped; anything else is refused. */
export async function readArchive(gz: Uint8Array, limits: ArchiveLimits = defaultLimits): Promise<Map<string, Buffer>> {
  let tarBytes: Buffer;
  try {
    tarBytes = gunzipSync(gz, { maxOutputLength: limits.maxTotalBytes + 1024 * 1024 });
  } catch (err) {
    throw new BundleError(`bundle is not a valid gzip archive: ${(err as Error).message}`);
  }
  const files = new Map<string, Buffer>();
  let total = 0;
  let failure: Error | undefined;
  await new Promise<void>((resolve) => {
    const parser = new Parser({ strict: true });
    parser.on('entry', (entry: ReadEntry) => {
      if (failure) return entry.resume();
      if (entry.type === 'Directory') return entry.resume();
      if (entry.type !== 'File' && entry.type !== 'OldFile' && entry.type !== 'ContiguousFile') {
        failure = new BundleError(`bundle entry ${JSON.stringify(entry.path)} is a ${entry.type}, only regular files are allowed`);
        return entry.resume();
      }
      let name: string;
      try {
        name = normalizeEntryPath(entry.path);
      } catch (err) {
        failure = err as Error;
        return entry.resume();
      }
      if (files.has(name)) failure = new BundleError(`bundle has ${name} twice`);
      if (files.size >= limits.maxFiles) failure = new BundleError(`bundle has more than ${limits.maxFiles} files`);
      const chunks: Buffer[] = [];
      entry.on('data', (c: Buffer) => {
        total += c.length;
        if (total > limits.maxTotalBytes) failure ??= new BundleError(`bundle is larger than ${limits.maxTotalBytes} bytes`);
        else chunks.push(c);
      });
      entry.on('end', () => {
        if (!failure) files.set(name, Buffer.concat(chunks));
      });
    });
    parser.on('error', (err: Error) => (failure ??= new BundleError(`bundle is not a valid tar archive: ${err.message}`)));
    parser.on('warn', (_code: string, msg: string | Error) => (failure ??= new BundleError(`bundle is not a valid tar archive: ${String(msg)}`)));
    parser.on('end', () => resolve());
    parser.on('close', () => resolve());
    parser.end(tarBytes);
  });
  if (failure) throw failure;
  return files;
}

/** Write files as a deterministic .tar.gz (sorted, mtime 0, root-owned): equal content → equal bytes. */
export function writeArchive(files: ReadonlyMap<string, Uint8Array>): Buffer {
  const blocks: Buffer[] = [];
  for (const name of [...files.keys()].sort()) {
    const body = Buffer.from(files.get(name)!);
    const header = new Header({
      path: `/${normalizeEntryPath(name)}`,
      mode: 0o644,
      uid: 0,
      gid: 0,
      size: body.length,
      mtime: new Date(0),
      type: 'File',
      uname: '',
      gname: '',
    });
    const block = Buffer.alloc(512);
    header.encode(block, 0);
    if (header.needPax) throw new BundleError(`bundle path too long for the archive format: ${name}`);
    blocks.push(block, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks), { level: 9 });
}
