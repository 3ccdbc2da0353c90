// A throwaway copy of the example policy repository in a temp folder, committed to its own Git
// repository, for tests that change policies or build into a fresh output folder.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../../engine/toolchain/paths.js';

/** A temp workspace: `dir/policies` (a Git repo), `dir/bundles`, a signing key path. */
export interface PolicyWorkspace {
  dir: string;
  repo: string;
  out: string;
  /** Replace text in a file of the policy repo (relative to it); throws when the text is absent. */
  edit(file: string, from: string, to: string): void;
  write(file: string, content: string): void;
  commit(message: string): string;
  git(...args: string[]): string;
  remove(): void;
}

/** Copy policies/ into a fresh temp folder and commit it. */
export function policyWorkspace(prefix = 'warden-test-'): PolicyWorkspace {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const repo = join(dir, 'policies');
  cpSync(join(repoRoot, 'policies'), repo, { recursive: true });
  const git = (...args: string[]) =>
    execFileSync('git', args, {
      cwd: repo,
      encoding: 'utf8',
      env: { ...process.env, GIT_AUTHOR_NAME: 'test', GIT_AUTHOR_EMAIL: 't@example.test', GIT_COMMITTER_NAME: 'test', GIT_COMMITTER_EMAIL: 't@example.test' },
    }).trim();
  git('init', '-q', '-b', 'main');
  git('add', '-A');
  git('commit', '-q', '-m', 'initial policies');
  return {
    dir,
    repo,
    out: join(dir, 'bundles'),
    edit(file, from, to) {
      const p = join(repo, file);
      const text = readFileSync(p, 'utf8');
      if (!text.includes(from)) throw new Error(`${file} does not contain ${JSON.stringify(from)}`);
      writeFileSync(p, text.replace(from, to));
    },
    write(file, content) {
      writeFileSync(join(repo, file), content);
    },
    commit(message) {
      git('add', '-A');
      git('commit', '-q', '-m', message);
      return git('rev-parse', 'HEAD');
    },
    git,
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
