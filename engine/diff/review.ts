// `warden diff`: build two Git revisions of the policy repository and review the decisions that flip.
import { createHash, generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { policyInput, type PolicyInput } from '../../formats/input.js';
import { SchemaError } from '../../formats/schema.js';
import { buildRepo, type WorkloadBuild } from '../compiler/build.js';
import { CompileError } from '../compiler/compile-error.js';
import { UserError } from '../../formats/user-error.js';
import { replay, type Direction, type WorkloadDiff } from './replay.js';
import { checkout, textualDiff, type Revision } from './revision.js';

/** The whole review. */
export interface Review {
  base: { ref: string; commit: string };
  head: { ref: string; commit: string };
  workloads: WorkloadDiff[];
  totals: Record<Direction, number>;
  recordedCalls: number;
  textDiff: string;
}

/**
 * Fixture inputs a workload keeps in Git (`workloads/<name>/fixtures/*.json`: one policy input or an
 * array of them), from both revisions, so reviewers can pin the calls that matter to them.
 */
export function fixtureInputs(revs: Revision[]): (workload: string) => PolicyInput[] {
  return (workload) => {
    const seen = new Set<string>();
    const out: PolicyInput[] = [];
    for (const rev of revs) {
      const dir = join(rev.repo, 'workloads', workload, 'fixtures');
      if (!existsSync(dir)) continue;
      for (const f of readdirSync(dir).filter((x) => x.endsWith('.json')).sort()) {
        const where = `${rev.ref}:workloads/${workload}/fixtures/${f}`;
        let value: unknown;
        try {
          value = JSON.parse(readFileSync(join(dir, f), 'utf8'));
        } catch (err) {
          throw new UserError(`${where} is not valid JSON: ${(err as Error).message}`);
        }
        (Array.isArray(value) ? value : [value]).forEach((v, i) => {
          try {
            const input = policyInput.parse(v, Array.isArray(value) ? `${where}[${i}]` : where);
            const key = JSON.stringify(input);
            if (!seen.has(key)) out.push(input);
            seen.add(key);
          } catch (err) {
            if (err instanceof SchemaError) throw new UserError(err.message);
            throw err;
          }
        });
      }
    }
    return out;
  };
}

/** Options of a review. */
export interface ReviewOptions {
  repo: string;
  base: string;
  head: string;
  /** Recorded calls per workload (from the audit store), replayed against both sides. */
  recorded?: (workload: string) => PolicyInput[];
  cacheDir?: string;
  cwd?: string;
}

async function buildSide(rev: Revision, side: 'base' | 'head', keyPath: string, cacheDir: string): Promise<WorkloadBuild[]> {
  try {
    const result = await buildRepo({ repo: rev.repo, out: join(rev.dir, 'bundles'), cwd: rev.dir, signingKey: keyPath, cacheDir });
    return result.workloads;
  } catch (err) {
    if (err instanceof CompileError) {
      throw new UserError(`the ${side} revision ${rev.ref} (${rev.commit.slice(0, 12)}) does not compile:\n${err.message}`);
    }
    throw err;
  }
}

/** Two served revisions of one workload's bundle (e.g. from the engine's revision archive). */
export interface BundleSide {
  revision: string;
  bytes: Uint8Array;
}

/**
 * Review two built bundles of one workload without Git: the spec probes replayed against both (the
 * console's review of the last rollout). The Rego text diff is left out: only bundles are at hand.
 */
export async function reviewBundles(workload: string, base: BundleSide, head: BundleSide): Promise<Review> {
  const dir = mkdtempSync(join(tmpdir(), 'warden-review-'));
  try {
    const side = (s: BundleSide, name: string): WorkloadBuild => {
      const bundle = join(dir, `${name}.tar.gz`);
      writeFileSync(bundle, s.bytes);
      return { workload, namespace: '', revision: s.revision, contentHash: createHash('sha256').update(s.bytes).digest('hex'), status: 'built', bundle, generated: '', ms: 0, generation: 0 }; // replay reads the bundle, not its place in history
    };
    const workloads = await replay([side(base, 'base')], [side(head, 'head')]);
    const totals: Record<Direction, number> = { 'deny-to-allow': 0, 'allow-to-deny': 0 };
    for (const w of workloads) for (const f of w.flips) totals[f.direction] += f.count;
    const ref = (r: string) => ({ ref: r, commit: r.split('-')[0] ?? r });
    return { base: ref(base.revision), head: ref(head.revision), workloads, totals, recordedCalls: 0, textDiff: '' };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Build both revisions (sharing the compiler's cache) and replay calls against them. */
export async function review(opts: ReviewOptions): Promise<Review> {
  const cwd = opts.cwd ?? process.cwd();
  const repo = resolve(cwd, opts.repo);
  const cacheDir = resolve(cwd, opts.cacheDir ?? '.warden/cache/opa');
  const [base, head] = await Promise.all([checkout(repo, opts.base), checkout(repo, opts.head)]);
  try {
    // Bundles here are never shipped: an ephemeral key signs them.
    const keyPath = join(base.dir, 'review-key.pem');
    writeFileSync(keyPath, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const baseBuilds = await buildSide(base, 'base', keyPath, cacheDir);
    const headBuilds = await buildSide(head, 'head', keyPath, cacheDir);
    let recordedCalls = 0;
    const recorded = (w: string) => {
      const calls = opts.recorded?.(w) ?? [];
      recordedCalls += calls.length;
      return calls;
    };
    const workloads = await replay(baseBuilds, headBuilds, recorded, fixtureInputs([base, head]));
    const totals: Record<Direction, number> = { 'deny-to-allow': 0, 'allow-to-deny': 0 };
    for (const w of workloads) for (const f of w.flips) totals[f.direction] += f.count;
    return {
      base: { ref: opts.base, commit: base.commit },
      head: { ref: opts.head, commit: head.commit },
      workloads,
      totals,
      recordedCalls,
      textDiff: await textualDiff(repo, base.commit, head.commit),
    };
  } finally {
    rmSync(base.dir, { recursive: true, force: true });
    rmSync(head.dir, { recursive: true, force: true });
  }
}
