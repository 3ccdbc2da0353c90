// `warden up --exit-after-scenario` as a real process (what `npm start` runs, minus the wait for
// Ctrl-C): builds policies/ into a temp folder, starts the engine, the webhook and the workloads behind
// their sidecars on free loopback ports, runs the scenario and prints a summary read from the audit
// store. Then SIGINT on a `--scenario none` run: it stops cleanly with exit code 0.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../engine/toolchain/paths.js';

const dir = mkdtempSync(join(tmpdir(), 'warden-up-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

// Runs `warden up` with temp bundles/state and free ports; `onOutput` may signal the child.
function up(name: string, args: string[], onOutput?: (stdout: string, child: ReturnType<typeof spawn>) => void): Promise<Run> {
  const child = spawn(process.execPath, [join(repoRoot, 'bin', 'warden.js'), 'up', '--out', join(dir, name, 'bundles'), '--state-dir', join(dir, name, 'state'), '--engine-port', '0', '--webhook-port', '0', ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    onOutput?.(stdout, child);
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
}

describe('warden up', () => {
  it('runs the scenario against real services and summarises real decisions from the audit store', async () => {
    const r = await up('demo', ['--exit-after-scenario']);
    expect(r.code, r.stderr).toBe(0);
    const m = /(\d+) decisions: (\d+) allowed, (\d+) denied/.exec(r.stdout);
    expect(m, r.stdout).not.toBeNull();
    expect(Number(m![2])).toBeGreaterThan(0);
    expect(Number(m![3])).toBeGreaterThan(0);
    // The feed shows decisions as stored: a real service-to-service call over mTLS, and real denials.
    expect(r.stdout).toMatch(/ALLOW shop\/orders +← spiffe:\/\/cluster\.local\/ns\/shop\/sa\/storefront {2}POST \/orders \(createOrder\)/);
    expect(r.stdout).toMatch(/DENY {2}shop\/orders +← spiffe:\/\/cluster\.local\/ns\/shop\/sa\/storefront {2}GET \/orders\/export/);
    // The agent saw only the tools it may call, and the destructive one was refused.
    expect(r.stdout).toContain('tools offered: get_order, query, search_orders');
    expect(r.stdout).toMatch(/DENY {2}agents\/ops-mcp +← support-agent {2}tools\/call drop_table/);
    expect(r.stdout).toContain('destructive MCP tool drop_table: refused (the server never ran it)');
    // The webhook refused the Deployment, and its decision reached the audit store.
    expect(r.stdout).toMatch(/DENY {2}admission +CREATE Deployment shop\/payments/);
    expect(r.stdout).toContain('Deployment shop/payments: refused by the admission webhook');
    // The Pod of the admitted Deployment, injected (interception init, native sidecar, the app untouched) and admitted.
    expect(r.stdout).toMatch(/init +warden-init +init-net --redirect 8080=15101 --admin-port 15020/);
    expect(r.stdout).toMatch(/sidecar +warden-proxy +proxy --workload orders --namespace shop/);
    expect(r.stdout).toMatch(/^ +app +app *$/m);
    expect(r.stdout).toContain('the injected Pod, checked by the validating webhook: allowed: true');
    expect(r.stdout).toContain('who talked to whom:');
    expect(r.stdout).toContain('warden audit query --engine https://127.0.0.1:');
    // The console's URL, and the certificate it needs, with the rest of "running on".
    expect(r.stdout).toMatch(/console {6}https:\/\/127\.0\.0\.1:\d+\/ui {3}\(web console: the auditor client certificate \S+auditor\.pem/);
    expect(r.stdout).toContain('warden explain <decision-id> --engine https://127.0.0.1:');
    expect(r.stdout).toContain('warden up: stopped');
  }, 240_000);

  it('--scenario none starts only the services and stops cleanly on SIGINT', async () => {
    let signalled = false;
    const r = await up('none', ['--scenario', 'none'], (out, child) => {
      if (!signalled && out.includes('Ctrl-C to stop')) {
        signalled = true;
        child.kill('SIGINT');
      }
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toContain('live decision feed');
    expect(r.stdout).toMatch(/orders +https:\/\/127\.0\.0\.1:\d+/);
    expect(r.stdout).toContain('warden up: stopped');
  }, 240_000);
});
