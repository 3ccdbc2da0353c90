// Where a build sits in the policy repository's history: the commit it was built from, and its
// generation, the number pods order bundles by (never build time: a re-created old engine pod builds
// old rules *later*, and must not roll anyone back).
//
// generation = the number of commits reachable from that commit (`git rev-list --count`). A commit
// reaches every commit its parents reach plus itself, so the count strictly grows along history,
// whichever machine builds and whenever. A CI-given number (`warden build --generation N`, e.g. the
// run number) replaces it where the history is not at hand.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { CompileError } from './compile-error.js';

const execFileP = promisify(execFile);

/** The commit a bundle was built from and its generation. */
export interface PolicyVersion {
  /** Last commit touching the inputs; "uncommitted" in a Git repository without one, "unversioned" outside Git. */
  commit: string;
  /** Orders bundles of one workload: a pod never replaces a bundle by one of a lower generation. */
  generation: number;
}

const git = async (cwd: string, args: string[]): Promise<string> => (await execFileP('git', args, { cwd })).stdout.trim();

/** Check a CI-given generation: a non-negative safe integer. */
export function parseGeneration(raw: string, where: string): number {
  const n = /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
  if (!Number.isSafeInteger(n)) throw new CompileError([], `${where} must be a whole number of 0 or more that grows with every build (e.g. the CI run number), not ${JSON.stringify(raw)}`);
  return n;
}

/**
 * The version of `paths` (inside the repository at `root`): their last commit, and that commit's
 * generation, or `given` when the caller supplies one. Outside Git: "unversioned", generation 0.
 * A shallow clone is refused: its commit count is the clone depth, not the history.
 */
export async function policyVersion(root: string, paths: string[], given?: number): Promise<PolicyVersion> {
  let commit: string;
  try {
    commit = (await git(root, ['log', '-1', '--format=%H', '--', ...paths])) || 'uncommitted';
  } catch {
    return { commit: 'unversioned', generation: given ?? 0 };
  }
  if (given !== undefined) return { commit, generation: given };
  if (commit === 'uncommitted') return { commit, generation: 0 };
  if ((await git(root, ['rev-parse', '--is-shallow-repository'])) === 'true') {
    throw new CompileError(
      [],
      `the policy repository at ${root} is a shallow clone, so its commit count cannot order bundles; fetch its whole history (actions/checkout: fetch-depth: 0, or git fetch --unshallow) or pass --generation N with a number that grows with every build`,
    );
  }
  return { commit, generation: Number(await git(root, ['rev-list', '--count', commit])) };
}
