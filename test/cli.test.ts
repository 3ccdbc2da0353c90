// The warden command as a user runs it: help, version, exit codes, errors without stack traces.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../engine/toolchain/paths.js';
import { policyWorkspace, type PolicyWorkspace } from './support/policy-repo.js';

const execFileP = promisify(execFile);

async function warden(args: string[], cwd = repoRoot, env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await execFileP(process.execPath, [join(repoRoot, 'bin', 'warden.js'), ...args], { cwd, env: { ...process.env, ...env } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('warden CLI', () => {
  let ws: PolicyWorkspace;
  beforeAll(() => {
    ws = policyWorkspace();
  });
  afterAll(() => ws.remove());

  it('prints help for the program and every command, and its version', async () => {
    const help = await warden(['--help']);
    expect(help.code).toBe(0);
    const commands = [...help.stdout.split('Commands:')[1]!.matchAll(/^ {2}([a-z-]+)/gm)].map((m) => m[1]!).filter((c) => c !== 'help');
    expect(commands).toEqual(expect.arrayContaining(['doctor', 'build']));
    for (const c of commands) {
      const r = await warden([c, '--help']);
      expect(r.code, c).toBe(0);
      expect(r.stdout, c).toMatch(/^Usage: warden /);
    }
    expect((await warden(['--version'])).stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('doctor reports the pinned OPA, and says which version is needed when it is wrong', async () => {
    const ok = await warden(['doctor']);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/ok\s+opa\s+.*v1\.22\.3/);
    const wrong = await warden(['doctor'], repoRoot, { WARDEN_OPA: process.execPath });
    expect(wrong.code).toBe(1);
    expect(wrong.stdout).toMatch(/FAIL\s+opa/);
  });

  it('builds, then reports nothing rebuilt on the second run', async () => {
    const first = await warden(['build', '--repo', ws.repo, '--out', ws.out], ws.dir);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/3 of 3 workload\(s\) rebuilt/);
    const second = await warden(['build', '--repo', ws.repo, '--out', ws.out], ws.dir);
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/^nothing rebuilt/);
  });

  it('fails with a message for a person, not a stack trace', async () => {
    ws.edit('workloads/orders/openapi.yaml', 'operationId: createOrder', 'operationId: createOrder\n      x-warden-authz: { allow: [ { team: x } ] }\n      x-dup: 1');
    const r = await warden(['build', '--repo', ws.repo, '--out', ws.out], ws.dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^warden: /);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const unknown = await warden(['bogus']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/unknown command 'bogus'/);
  });
});
