// The sidecar as users run it, for the benchmarks' "shipped configuration": `bin/warden.js proxy …` as its
// own process (the MCP handler registered for its http:// upstream, exactly as in a pod), its decision
// lines on a stdout that goes to /dev/null, and its CPU time read from /proc (Linux), since it answers
// no benchmark messages.
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { procBackgroundCpuMicros, procCpuMicros } from './proc-cpu.js';

const warden = fileURLToPath(new URL('../bin/warden.js', import.meta.url));

/**
 * The line `warden proxy` prints once it serves with a bundle (not "bundle none"): its port, and its admin
 * port when started with --admin.
 */
export const PROXY_READY = /on 127\.0\.0\.1:(\d+)(?: \(admin 127\.0\.0\.1:(\d+)\))? .*\(bundle [^n]/;

/** A running `warden proxy`. */
export interface WardenProxy {
  child: ChildProcess;
  port: number;
  /** CPU time (user + system) the process has used so far, µs. */
  cpuMicros(): number;
  /**
   * The part of it spent off the main thread (V8's compiler and GC threads, libuv's pool), µs: while V8 is
   * still optimizing the sidecar's code, its compiler threads show here.
   */
  backgroundCpuMicros(): number;
  /** With `--admin`: its calls forwarded so far and the seconds it held them (warden_proxy_held_seconds). */
  held(): Promise<{ seconds: number; calls: number }>;
  close(): Promise<void>;
}

/** Start `warden proxy <args>` (without --listen: it listens on a free loopback port) and wait until it has its bundle. */
export function startWardenProxy(args: string[]): Promise<WardenProxy> {
  // BENCH_CPU_PROF=<dir>: the proxy writes a CPU profile there when it exits (open it in Chrome DevTools);
  // BENCH_CPU_PROF_INTERVAL=<µs> samples more often than node's 1 ms (a call costs well under a millisecond).
  const interval = process.env.BENCH_CPU_PROF_INTERVAL ? [`--cpu-prof-interval=${Number(process.env.BENCH_CPU_PROF_INTERVAL)}`] : [];
  const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`, ...interval] : [];
  // BENCH_PROXY_NODE_FLAGS: more node flags for the proxy alone (e.g. `--trace-gc`); BENCH_PROXY_STDOUT: a
  // file for its stdout (its decision lines, and what such flags print) instead of /dev/null.
  const flags = (process.env.BENCH_PROXY_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  const stdout = openSync(process.env.BENCH_PROXY_STDOUT ?? '/dev/null', 'w');
  const child = spawn(process.execPath, [...prof, ...flags, warden, 'proxy', ...args, '--listen', '127.0.0.1:0'], { stdio: ['ignore', stdout, 'pipe'] });
  const cpuMicros = () => procCpuMicros(child.pid!);
  const backgroundCpuMicros = () => procBackgroundCpuMicros(child.pid!);
  const close = () => (child.exitCode !== null ? Promise.resolve() : new Promise<void>((r) => (child.once('exit', () => r()), child.kill('SIGTERM'))));
  return new Promise((resolve, reject) => {
    let err = '';
    const onData = (d: Buffer) => {
      err += d.toString();
      const m = PROXY_READY.exec(err);
      if (!m) return;
      // Ready: from here on stderr is drained, never kept.
      child.stderr!.off('data', onData);
      child.stderr!.resume();
      child.off('exit', onExit);
      const admin = m[2];
      const held = async () => {
        if (!admin) throw new Error('warden proxy was started without --admin: no metrics to read');
        const text = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
        const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
        return { seconds: value('warden_proxy_held_seconds_sum'), calls: value('warden_proxy_held_seconds_count') };
      };
      resolve({ child, port: Number(m[1]), cpuMicros, backgroundCpuMicros, held, close });
    };
    const onExit = (code: number | null) => reject(new Error(`warden proxy exited with ${code}: ${err}`));
    child.stderr!.on('data', onData);
    child.once('exit', onExit);
  });
}
