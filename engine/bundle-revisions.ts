// Every bundle revision the engine has served, kept so that any stored decision can be explained by
// the exact bundle that made it (`warden explain`). Content-addressed: `blobs/<sha256>.tar.gz` holds
// the archive bytes once however many workloads or revisions share them; `refs/<bundle>/<revision>.json`
// names the blob a (bundle, revision) pair was served from. Writes are atomic (temp file + rename), so
// a reader sees a whole archive or none. Pruned with the audit log: a revision no stored event names,
// and that is not being served, goes (see `prune`).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** One kept revision. */
export interface KeptRevision {
  bundle: string;
  revision: string;
  sha256: string;
  /** When the engine first kept it, ms since the epoch. */
  keptAt: number;
}

// Bundle names follow the bundle server's rule; revisions are `<commit>-<hash>` or similar tokens.
const BUNDLE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const REVISION = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

function atomicWrite(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

/** The revision archive under one folder. */
export class RevisionArchive {
  constructor(readonly dir: string) {}

  private refPath(bundle: string, revision: string): string | undefined {
    return BUNDLE.test(bundle) && REVISION.test(revision) ? join(this.dir, 'refs', bundle, `${revision}.json`) : undefined;
  }

  private blobPath(sha: string): string {
    return join(this.dir, 'blobs', `${sha}.tar.gz`);
  }

  /** Keep the archive bytes of (bundle, revision); a no-op when already kept. False when the names cannot be stored. */
  keep(bundle: string, revision: string, bytes: Uint8Array, now = Date.now()): boolean {
    const ref = this.refPath(bundle, revision);
    if (!ref) return false;
    if (existsSync(ref)) return true;
    const sha = sha256(bytes);
    mkdirSync(join(this.dir, 'blobs'), { recursive: true });
    mkdirSync(join(this.dir, 'refs', bundle), { recursive: true });
    if (!existsSync(this.blobPath(sha))) atomicWrite(this.blobPath(sha), bytes);
    const kept: KeptRevision = { bundle, revision, sha256: sha, keptAt: now };
    atomicWrite(ref, `${JSON.stringify(kept)}\n`);
    return true;
  }

  /** Whether (bundle, revision) is kept (without reading it). */
  has(bundle: string, revision: string): boolean {
    const ref = this.refPath(bundle, revision);
    return !!ref && existsSync(ref);
  }

  /** The archive bytes of (bundle, revision), checked against their address; undefined when not kept. */
  find(bundle: string, revision: string): { kept: KeptRevision; bytes: Buffer } | undefined {
    const ref = this.refPath(bundle, revision);
    if (!ref || !existsSync(ref)) return undefined;
    const kept = JSON.parse(readFileSync(ref, 'utf8')) as KeptRevision;
    const path = this.blobPath(kept.sha256);
    if (!/^[0-9a-f]{64}$/.test(kept.sha256) || !existsSync(path)) return undefined;
    const bytes = readFileSync(path);
    // A blob that no longer matches its address was altered on disk: never explain with it.
    if (sha256(bytes) !== kept.sha256) throw new Error(`revision archive: ${path} does not match its sha256; it was altered on disk`);
    return { kept, bytes };
  }

  /** Every kept revision. */
  list(): KeptRevision[] {
    const root = join(this.dir, 'refs');
    if (!existsSync(root)) return [];
    return readdirSync(root).flatMap((bundle) =>
      readdirSync(join(root, bundle))
        .filter((f) => f.endsWith('.json'))
        .map((f) => JSON.parse(readFileSync(join(root, bundle, f), 'utf8')) as KeptRevision),
    );
  }

  /**
   * Drop revisions that no stored decision names any more (the audit log's retention removed them)
   * and that are not served now; then blobs no revision points at. Returns the revisions dropped.
   */
  async prune(served: (bundle: string, revision: string) => boolean, referenced: (revision: string) => Promise<boolean>): Promise<KeptRevision[]> {
    const dropped: KeptRevision[] = [];
    for (const k of this.list()) {
      if (served(k.bundle, k.revision) || (await referenced(k.revision))) continue;
      rmSync(this.refPath(k.bundle, k.revision)!, { force: true });
      dropped.push(k);
    }
    if (dropped.length) {
      const live = new Set(this.list().map((k) => k.sha256));
      const blobs = join(this.dir, 'blobs');
      for (const f of existsSync(blobs) ? readdirSync(blobs) : []) {
        const sha = f.replace(/\.tar\.gz$/, '');
        // Temp files of a write in flight are left alone; finished blobs nobody names go.
        if (f.endsWith('.tar.gz') && !live.has(sha) && statSync(join(blobs, f)).isFile()) rmSync(join(blobs, f), { force: true });
      }
    }
    return dropped;
  }
}
