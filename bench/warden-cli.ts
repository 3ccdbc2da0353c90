// The sidecar as users run it, for the benchmarks' "shipped configuration": `bin/warden.js proxy …` as its
// own process (the MCP handler registered for its http:// upstream, exactly as in a pod), its decision
// lines on a stdout that goes to /dev/null, and its CPU time read from /proc (Linux), since it answers
// no benchmark messages.
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const warden = fileURLToPath(new URL('../bin/warden.js', import.meta.url));
const TICKS_PER_SECOND = 100; // USER_HZ: /proc/<pid>/stat counts CPU time in these on Linux

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

// CPU time (user + system) in a /proc stat file (a process's or a thread's), µs. Fields after the command
// name (which may hold spaces): utime and stime are the 12th and 13th.
function cpuOf(path: string): number {
  const stat = readFileSync(path, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1e6) / TICKS_PER_SECOND;
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
  const cpuMicros = () => cpuOf(`/proc/${child.pid}/stat`);
  // Threads live as long as the process (V8's and libuv's pools), so none is lost between two readings.
  const backgroundCpuMicros = () =>
    readdirSync(`/proc/${child.pid}/task`)
      .filter((tid) => tid !== String(child.pid))
      .reduce((sum, tid) => sum + cpuOf(`/proc/${child.pid}/task/${tid}/stat`), 0);
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
