// A Git revision of the policy repository, checked out into a temp folder (the work tree is untouched).
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import { UserError } from '../../formats/user-error.js';

const execFileP = promisify(execFile);

/** A checked-out revision: the policy folder inside `dir`, and the commit the ref named. */
export interface Revision {
  ref: string;
  commit: string;
  repo: string;
  dir: string;
}

async function git(cwd: string, args: string[]): Promise<string> {
  const { stdout } = await execFileP('git', args, { cwd, maxBuffer: 256 * 1024 * 1024 });
  return stdout;
}

/** Where the policy folder sits in its Git repository. */
export async function gitLocation(repoPath: string): Promise<{ top: string; prefix: string }> {
  const abs = resolve(repoPath);
  let top: string;
  try {
    top = (await git(abs, ['rev-parse', '--show-toplevel'])).trim();
  } catch {
    throw new UserError(`${repoPath} is not inside a Git repository; warden diff compares Git revisions`);
  }
  return { top, prefix: relative(top, abs) };
}

/** Check out `ref` of the repository holding `repoPath` (only the policy folder) into a temp dir. */
export async function checkout(repoPath: string, ref: string): Promise<Revision> {
  const { top, prefix } = await gitLocation(repoPath);
  let commit: string;
  try {
    commit = (await git(top, ['rev-parse', '--verify', '--quiet', `${ref}^{commit}`])).trim();
  } catch {
    throw new UserError(`git ref "${ref}" does not exist in ${top} (try a branch, tag or commit: git log --oneline)`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'warden-diff-'));
  const tree = prefix ? `${commit}:${prefix}` : commit;
  try {
    await git(top, ['cat-file', '-e', tree]);
  } catch {
    throw new UserError(`${prefix || '.'} does not exist at ${ref} (${commit.slice(0, 12)})`);
  }
  const out = join(dir, 'policies');
  mkdirSync(out);
  await execFileP('sh', ['-c', `git archive --format=tar "$0" | tar -x -C "$1"`, tree, out], { cwd: top });
  // A Git repo of its own, so revisions computed inside name the real commit.
  await git(out, ['init', '-q']);
  await git(out, ['add', '-A']);
  await git(out, ['-c', 'user.name=warden', '-c', 'user.email=warden@localhost', 'commit', '-q', '--allow-empty', '-m', commit]);
  return { ref, commit, repo: out, dir };
}

/** `git diff` of the policy folder between two commits (for the review's textual part). */
export async function textualDiff(repoPath: string, base: string, head: string): Promise<string> {
  const { top, prefix } = await gitLocation(repoPath);
  return git(top, ['diff', '--no-color', base, head, '--', prefix || '.']);
}
