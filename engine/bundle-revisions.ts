// Every bundle revision the engine has served, kept so that any stored decision can be explained by
// the exact bundle that made it (`warden explain`). The archive lives in the audit store (tables
// bundle_blobs and bundle_revisions), so every engine replica sharing a store sees what any of them
// kept. Content-addressed: a blob is stored once by its sha256 however many workloads or revisions
// share it, and checked against that address on every read. Pruned with the audit log: a revision no
// stored event names, and that is not being served, goes (see `prune`).
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AuditStore, KeptRevision } from './audit/store.js';

export type { KeptRevision } from './audit/store.js';

/** The store methods the archive keeps its rows with. */
export type RevisionRows = Pick<AuditStore, 'keepRevision' | 'findRevision' | 'listRevisions' | 'dropRevisions'>;

// Bundle names follow the bundle server's rule; revisions are `<commit>-<hash>` or similar tokens.
const BUNDLE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const REVISION = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * How long a freshly kept revision is safe from pruning: another replica may have kept it for an
 * index this replica has not scanned yet (so this one does not serve it) before any event names it.
 */
export const PRUNE_GRACE_MS = 3_600_000;

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** The revision archive in an audit store. */
export class RevisionArchive {
  constructor(
    private readonly rows: RevisionRows,
    /** Where it lives, for messages (the store's location). */
    readonly location: string,
  ) {}

  /** Keep the archive bytes of (bundle, revision); a no-op when already kept. False when the names are not a bundle name and a revision. */
  async keep(bundle: string, revision: string, bytes: Uint8Array, now = Date.now()): Promise<boolean> {
    if (!BUNDLE.test(bundle) || !REVISION.test(revision)) return false;
    await this.rows.keepRevision({ bundle, revision, sha256: sha256(bytes), keptAt: now }, bytes);
    return true;
  }

  /** Whether (bundle, revision) is kept. */
  async has(bundle: string, revision: string): Promise<boolean> {
    return (await this.list()).some((k) => k.bundle === bundle && k.revision === revision);
  }

  /** The archive bytes of (bundle, revision), checked against their address; undefined when not kept. */
  async find(bundle: string, revision: string): Promise<{ kept: KeptRevision; bytes: Buffer } | undefined> {
    if (!BUNDLE.test(bundle) || !REVISION.test(revision)) return undefined;
    const found = await this.rows.findRevision(bundle, revision);
    if (!found) return undefined;
    // A blob that no longer matches its address was altered in the store: never explain with it.
    if (sha256(found.bytes) !== found.kept.sha256) {
      throw new Error(`revision archive in ${this.location}: the blob of ${bundle} ${revision} does not match its sha256 ${found.kept.sha256}; it was altered in the store`);
    }
    return found;
  }

  /** Every kept revision. */
  list(): Promise<KeptRevision[]> {
    return this.rows.listRevisions();
  }

  /**
   * Drop revisions that no stored decision names any more (the audit log's retention removed them),
   * that are not served now, and that were kept more than PRUNE_GRACE_MS ago; then blobs no revision
   * names. Returns the revisions dropped.
   */
  async prune(served: (bundle: string, revision: string) => boolean, referenced: (revision: string) => Promise<boolean>, now = Date.now()): Promise<KeptRevision[]> {
    const dropped: KeptRevision[] = [];
    for (const k of await this.list()) {
      if (k.keptAt > now - PRUNE_GRACE_MS || served(k.bundle, k.revision) || (await referenced(k.revision))) continue;
      dropped.push(k);
    }
    if (dropped.length) await this.rows.dropRevisions(dropped);
    return dropped;
  }
}

/**
 * Copy a revision archive folder kept by an earlier Warden (`refs/<bundle>/<revision>.json` naming
 * `blobs/<sha256>.tar.gz`) into the store's archive. A ref whose blob is missing or does not match its
 * address is skipped and reported. Idempotent: revisions already kept stay as they are.
 */
export async function importArchiveFolder(dir: string, archive: RevisionArchive): Promise<{ imported: number; skipped: string[] }> {
  const refs = join(dir, 'refs');
  const skipped: string[] = [];
  let imported = 0;
  if (!existsSync(refs)) return { imported, skipped };
  const kept = new Set((await archive.list()).map((k) => `${k.bundle}\0${k.revision}`));
  for (const bundle of readdirSync(refs)) {
    for (const file of readdirSync(join(refs, bundle)).filter((f) => f.endsWith('.json'))) {
      const where = join(refs, bundle, file);
      try {
        const k = JSON.parse(readFileSync(where, 'utf8')) as Partial<KeptRevision>;
        if (typeof k.revision !== 'string' || typeof k.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(k.sha256) || k.bundle !== bundle) throw new Error('not a revision ref');
        if (kept.has(`${bundle}\0${k.revision}`)) continue;
        const bytes = readFileSync(join(dir, 'blobs', `${k.sha256}.tar.gz`));
        if (sha256(bytes) !== k.sha256) throw new Error('its blob does not match its sha256');
        if (!(await archive.keep(bundle, k.revision, bytes, typeof k.keptAt === 'number' ? k.keptAt : Date.now()))) throw new Error('not a bundle name and revision');
        imported++;
      } catch (err) {
        skipped.push(`${where}: ${(err as Error).message}`);
      }
    }
  }
  return { imported, skipped };
}
