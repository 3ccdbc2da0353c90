// Finding and running the pinned OPA binary: WARDEN_OPA, then .tools/bin/opa, then PATH.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from './paths.js';
import { UserError } from '../../formats/user-error.js';

const execFileP = promisify(execFile);

/** The OPA version Warden is built and tested against (tools.json). */
export const OPA_VERSION: string = (JSON.parse(readFileSync(join(repoRoot, 'tools.json'), 'utf8')) as { opa: { version: string } }).opa.version;

/** A located OPA binary and how it was found. */
export interface OpaBinary {
  path: string;
  foundBy: 'WARDEN_OPA' | '.tools/bin' | 'PATH';
}

/** Raised when OPA is missing or the wrong version; the message says what to do. */
export class OpaToolError extends UserError {
  override name = 'OpaToolError';
}

/** Locate the opa binary without running it. */
export function locateOpa(env: NodeJS.ProcessEnv = process.env): OpaBinary | undefined {
  if (env.WARDEN_OPA) return { path: env.WARDEN_OPA, foundBy: 'WARDEN_OPA' };
  const local = join(repoRoot, '.tools', 'bin', 'opa');
  if (existsSync(local)) return { path: local, foundBy: '.tools/bin' };
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, 'opa'))) return { path: join(dir, 'opa'), foundBy: 'PATH' };
  }
  return undefined;
}

/** The version an opa binary reports (`opa version` → "Version: 1.22.3"). */
export async function opaVersion(path: string): Promise<string> {
  const { stdout } = await execFileP(path, ['version'], { timeout: 30_000 });
  const m = /^Version:\s*(\S+)/m.exec(stdout);
  if (!m?.[1]) throw new OpaToolError(`${path} did not report a version ("opa version" printed: ${stdout.slice(0, 200)})`);
  return m[1].startsWith('v') ? m[1] : `v${m[1]}`;
}

let verified: Promise<string> | undefined;

/** The path of a verified opa of the pinned version; cached for the process. */
export function requireOpa(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  verified ??= (async () => {
    const found = locateOpa(env);
    if (!found) {
      throw new OpaToolError(
        `OPA ${OPA_VERSION} was not found (looked at $WARDEN_OPA, .tools/bin/opa, PATH). Run \`node bin/setup.js\` (or \`npm test\`/\`npm start\`, which run it) to build it from the Go module proxy.`,
      );
    }
    const version = await opaVersion(found.path);
    if (version !== OPA_VERSION) {
      throw new OpaToolError(
        `${found.path} (found by ${found.foundBy}) is OPA ${version}, but Warden needs OPA ${OPA_VERSION}. Unset WARDEN_OPA or point it at OPA ${OPA_VERSION}, or run \`node bin/setup.js\`.`,
      );
    }
    return found.path;
  })();
  verified.catch(() => (verified = undefined));
  return verified;
}

/** Result of one opa invocation. */
export interface OpaRun {
  stdout: string;
  stderr: string;
  code: number;
}

/** Run opa with arguments; never throws for a non-zero exit (callers turn output into user errors). */
export async function runOpa(args: string[], opts: { cwd?: string; input?: string; timeoutMs?: number } = {}): Promise<OpaRun> {
  const bin = await requireOpa();
  return new Promise((resolve, reject) => {
    const child = execFile(
      bin,
      args,
      { cwd: opts.cwd, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 256 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err && typeof (err as NodeJS.ErrnoException).code === 'string') return reject(err);
        resolve({ stdout, stderr, code: err ? ((err as { code?: number }).code ?? 1) : 0 });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}
