// Who may write the audit log, derived from the bundles the engine serves: each workload's principal
// (its bundle manifest's metadata.principal) may log events of that workload only, plus fixed
// writers such as the admission webhook (logging as `admission`). Re-derived when the index changes,
// so a newly built workload can log as soon as its bundle is served.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BundleMetadata, BundleManifest } from '../../formats/bundle-manifest.js';
import { readArchive } from '../../runtime/archive.js';
import type { BundleIndex } from '../bundle-server.js';
import type { Writers } from './ingest.js';

/** A bundle whose principal could not be read, and why (it then has no writer). */
export interface WriterProblem {
  workload: string;
  reason: string;
}

/** The current writers, refreshed from a bundles folder. */
export class BundleWriters {
  private writers: Writers;
  // Per workload, the principal read from the bundle with this sha256: unchanged bundles are not re-read.
  private readonly principals = new Map<string, { sha256: string; principal: string }>();
  private generation = 0;

  /** `fixed`: principal → workload names that always hold (e.g. the admission webhook's identity → ['admission']). */
  constructor(
    private readonly bundlesDir: string,
    private readonly fixed: Writers = {},
  ) {
    this.writers = { ...fixed };
  }

  /** The writers now; pass this as `auditRouter({ writers: () => w.current() })`. */
  current(): Writers {
    return this.writers;
  }

  /**
   * Re-derive from `index`. The engine trusts its own bundles folder (it serves and signs from it),
   * so the manifest is read without verifying the signature again.
   */
  async refresh(index: BundleIndex): Promise<WriterProblem[]> {
    const generation = ++this.generation;
    const problems: WriterProblem[] = [];
    const next = new Map<string, { sha256: string; principal: string }>();
    for (const [workload, entry] of Object.entries(index.bundles ?? {})) {
      const known = this.principals.get(workload);
      if (known && known.sha256 === entry.sha256) {
        next.set(workload, known);
        continue;
      }
      try {
        const principal = await principalOf(join(this.bundlesDir, `${workload}.tar.gz`), workload);
        next.set(workload, { sha256: entry.sha256, principal });
      } catch (err) {
        problems.push({ workload, reason: (err as Error).message });
      }
    }
    if (generation !== this.generation) return problems; // a newer index won the race
    this.principals.clear();
    for (const [w, p] of next) this.principals.set(w, p);
    const writers: Record<string, string[]> = {};
    for (const [principal, workloads] of Object.entries(this.fixed)) writers[principal] = [...workloads];
    for (const [workload, { principal }] of this.principals) (writers[principal] ??= []).push(workload);
    this.writers = writers;
    return problems;
  }
}

// The SPIFFE ID a bundle's manifest names for its workload.
async function principalOf(file: string, workload: string): Promise<string> {
  const files = await readArchive(await readFile(file));
  const manifest = files.get('.manifest');
  if (!manifest) throw new Error(`${file} has no .manifest`);
  const metadata = (JSON.parse(manifest.toString('utf8')) as BundleManifest).metadata as Partial<BundleMetadata> | undefined;
  if (metadata?.workload !== undefined && metadata.workload !== workload) throw new Error(`${file} is the bundle of ${metadata.workload}, not ${workload}`);
  if (!metadata?.principal?.startsWith('spiffe://')) throw new Error(`${file}: .manifest metadata.principal is missing or not a spiffe:// ID`);
  return metadata.principal;
}
