// Shipping figures, each beside its baseline measured in the same run: cold start (`warden --version`
// vs a bare `node -e 0`, and vs the old tsx path), a sidecar with a local bundle until /readyz answers
// and a first call is decided (the one-file dist/sidecar.js vs the per-file dist/),
// the sidecar's import graph (what its image holds) vs the whole CLI's, and a bundle pulled from a real
// OCI registry vs the same bundle from the engine's bundle server. The machine may be shared: compare
// ratios, not absolute times.
// Run: npx tsx bench/shipping.bench.ts   (BENCH_RUNS to change the repetitions, default 9)
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { procCpuMicros } from './proc-cpu.js';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { build, isStale } from '../bin/build.js';
import { createEngineApp } from '../engine/bundle-server.js';
import { buildRepo } from '../engine/compiler/build.js';
import { publishBundles } from '../engine/publish.js';
import { parseOciReference, pullBundle, RegistryClient } from '../runtime/oci-registry.js';
import { importClosure } from '../test/support/import-graph.js';
import { policyWorkspace } from '../test/support/policy-repo.js';
import { startRegistry } from '../test/support/registry.js';
import { median, type Figure } from './figure.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 9);
const root = resolve(import.meta.dirname, '..');

// Wall time of a process from spawn to exit, ms.
function timed(args: string[]): number {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited with ${r.status}`);
  return performance.now() - t0;
}

// CPU time (user + system, all threads) process `pid` has used so far, ms. On a loaded machine a process
// waits for a core, so wall time grows with the load; CPU time is close to what a quiet machine's wall
// time would be (a little more: V8's helper threads run beside the main one).
const cpuMs = (pid: number): number => procCpuMicros(pid) / 1000;

// `node -e 0`'s CPU time, as bash's `time` reports it (user + sys), ms.
function bareCpu(): number {
  const r = spawnSync('bash', ['-c', `TIMEFORMAT='%U %S'; time '${process.execPath}' -e 0`], { encoding: 'utf8' });
  const [user, sys] = r.stderr.trim().split(/\s+/).map(Number);
  return (user! + sys!) * 1000;
}

// Spawn until /readyz answers 200 and a first call is decided (an anonymous GET /orders, denied by the
// policy without reaching the upstream), for a sidecar with a local bundle started from `entry`: wall
// time and the sidecar's CPU time by then, ms.
async function sidecarReady(entry: string, bundle: string, key: string): Promise<{ wall: number; cpu: number }> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [entry, 'proxy', '--workload', 'orders', '--upstream', 'http://127.0.0.1:9', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--bundle', bundle, '--verification-key', key, '--spill', '/dev/null'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    const [listen, admin] = await new Promise<[string, string]>((ok, fail) => {
      let out = '';
      const onData = (d: Buffer) => {
        out += d.toString();
        const m = /on ([\d.]+:\d+) \(admin ([\d.]+:\d+)\)/.exec(out);
        if (m) ok([m[1]!, m[2]!]);
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData); // the banner goes to stderr
      child.once('exit', (code) => fail(new Error(`warden proxy exited with ${code}: ${out}`)));
      setTimeout(() => fail(new Error(`warden proxy printed no banner within 20 s: ${out}`)), 20_000).unref();
    });
    for (let i = 0; i < 4000; i++) {
      if ((await fetch(`http://${admin}/readyz`).catch(() => undefined))?.status === 200) {
        const call = await fetch(`http://${listen}/orders`);
        if (call.status !== 403) throw new Error(`the first call was not decided by the policy: ${call.status}`);
        return { wall: performance.now() - t0, cpu: cpuMs(child.pid!) };
      }
      await new Promise((r) => setTimeout(r, 2));
    }
    throw new Error('the sidecar did not become ready');
  } finally {
    child.kill('SIGTERM');
  }
}

const spread = (xs: number[]) => `min–max ${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)} ms over ${xs.length} runs`;

export async function run(): Promise<Figure[]> {
  if (isStale()) await build();
  const figures: Figure[] = [];

  // Cold start.
  const bare: number[] = [];
  const version: number[] = [];
  const viaTsx: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    bare.push(timed(['-e', '0']));
    version.push(timed(['bin/warden.js', '--version']));
    viaTsx.push(timed(['--import', 'tsx', 'cli/main.ts', '--version']));
  }
  figures.push(
    { suite: 'shipping', name: 'node -e 0 (baseline)', value: median(bare), unit: 'ms', detail: spread(bare) },
    { suite: 'shipping', name: 'warden --version (dist/)', value: median(version), unit: 'ms', detail: spread(version) },
    { suite: 'shipping', name: 'warden --version ÷ node -e 0', value: median(version) / median(bare), unit: '×', detail: 'target ≤ 5×' },
    { suite: 'shipping', name: 'warden --version through tsx (before)', value: median(viaTsx), unit: 'ms', detail: spread(viaTsx) },
  );

  // The sidecar's import graph (its image) vs the whole CLI's.
  const sidecar = importClosure(root, ['cli/main.ts'], (from, spec, dynamic) => from === 'cli/main.ts' && dynamic && !spec.endsWith('proxy-plugin/command.js'));
  const whole = importClosure(root, ['cli/main.ts']);
  figures.push(
    { suite: 'shipping', name: 'sidecar modules (ours)', value: sidecar.modules.length, unit: 'files', detail: `whole CLI: ${whole.modules.length}` },
    { suite: 'shipping', name: 'sidecar npm packages', value: sidecar.packages.length, unit: 'pkgs', detail: `${sidecar.packages.join(' ')}; whole CLI: ${whole.packages.length}` },
  );

  const ws = policyWorkspace('warden-bench-shipping-');
  const registry = await startRegistry();
  try {
    await buildRepo({ repo: 'policies', out: 'bundles', cwd: ws.dir, only: ['orders'] });
    const bundle = join(ws.out, 'orders.tar.gz');
    const key = join(ws.out, 'verification-key.pem');

    // Sidecar readiness with a local bundle: the one-file bundle the image runs (dist/sidecar.js, what
    // bin/warden.js picks for proxy) vs the per-file dist/ it ran before, interleaved with node -e 0.
    const ready: Array<{ wall: number; cpu: number }> = [];
    const perFile: Array<{ wall: number; cpu: number }> = [];
    const bareHere: number[] = [];
    const bareCpuHere: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      bareHere.push(timed(['-e', '0']));
      bareCpuHere.push(bareCpu());
      ready.push(await sidecarReady('dist/sidecar.js', bundle, key));
      perFile.push(await sidecarReady('dist/cli/main.js', bundle, key));
    }
    const wall = (xs: typeof ready) => xs.map((x) => x.wall);
    const cpu = (xs: typeof ready) => xs.map((x) => x.cpu);
    figures.push(
      { suite: 'shipping', name: 'node -e 0, during the sidecar runs (baseline)', value: median(bareHere), unit: 'ms', detail: spread(bareHere) },
      { suite: 'shipping', name: 'sidecar ready + first call decided, local bundle', value: median(wall(ready)), unit: 'ms', detail: `dist/sidecar.js (one file); ${spread(wall(ready))}; target ≤ 500 ms` },
      { suite: 'shipping', name: 'sidecar ready ÷ node -e 0', value: median(wall(ready)) / median(bareHere), unit: '×', detail: 'same runs' },
      { suite: 'shipping', name: 'sidecar ready, per-file dist/ (no bundle)', value: median(wall(perFile)), unit: 'ms', detail: `dist/cli/main.js proxy; ${spread(wall(perFile))}` },
      { suite: 'shipping', name: 'node -e 0, CPU time (baseline)', value: median(bareCpuHere), unit: 'ms', detail: `user + sys; ${spread(bareCpuHere)}` },
      { suite: 'shipping', name: 'sidecar CPU time until ready + first call', value: median(cpu(ready)), unit: 'ms', detail: `dist/sidecar.js; ${spread(cpu(ready))}; ≈ a quiet machine's wall time` },
      { suite: 'shipping', name: 'sidecar CPU time, per-file dist/ (no bundle)', value: median(cpu(perFile)), unit: 'ms', detail: spread(cpu(perFile)) },
    );

    // Bundle pull: registry (manifest + blob, digests checked) vs the engine's GET /bundles/orders.
    const ref = parseOciReference(`oci+http://${registry.host}/bench/bundles:main`);
    const client = new RegistryClient(registry.host, { plainHttp: true });
    await publishBundles(ws.out, ref, client);
    const orders = { ...ref, repository: `${ref.repository}/orders` };
    const engine = createEngineApp({ bundlesDir: ws.out });
    await engine.ready;
    const server = engine.app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const engineUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/bundles/orders`;
    const fromRegistry: number[] = [];
    const fromEngine: number[] = [];
    try {
      for (let i = 0; i < RUNS * 3; i++) {
        let t0 = performance.now();
        await pullBundle(new RegistryClient(registry.host, { plainHttp: true }), orders);
        fromRegistry.push(performance.now() - t0);
        t0 = performance.now();
        await (await fetch(engineUrl)).arrayBuffer();
        fromEngine.push(performance.now() - t0);
      }
    } finally {
      server.close();
      engine.close();
    }
    const size = readFileSync(bundle).length;
    figures.push(
      { suite: 'shipping', name: 'bundle pull from registry', value: median(fromRegistry), unit: 'ms', detail: `${size} B bundle; manifest + blob, digests checked; ${spread(fromRegistry)}` },
      { suite: 'shipping', name: 'bundle GET from engine (baseline)', value: median(fromEngine), unit: 'ms', detail: spread(fromEngine) },
    );
  } finally {
    await registry.remove();
    ws.remove();
  }
  return figures;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { printTable } = await import('./figure.js');
  printTable(await run());
}
