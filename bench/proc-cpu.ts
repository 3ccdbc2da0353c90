// CPU time of a process, or of one of its threads, read from /proc (Linux): for the benchmarks' processes
// that answer no benchmark messages (warden proxy as the CLI starts it, a sidecar timed to its first call).
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

// /proc counts CPU time in clock ticks (USER_HZ, 100 on Linux unless the system says otherwise).
const TICKS_PER_SECOND = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100;

/** CPU time (user + system) process `pid` has used so far, all threads, µs; with `tid`, that thread's alone. */
export function procCpuMicros(pid: number, tid?: number): number {
  const stat = readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces and parentheses): utime and stime are the 12th and 13th.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1e6) / TICKS_PER_SECOND;
}

/**
 * CPU time of every thread of `pid` but its main one (V8's compiler and GC threads, libuv's pool), µs.
 * Those threads live as long as the process, so none is lost between two readings.
 */
export function procBackgroundCpuMicros(pid: number): number {
  return readdirSync(`/proc/${pid}/task`)
    .map(Number)
    .filter((tid) => tid !== pid)
    .reduce((sum, tid) => sum + procCpuMicros(pid, tid), 0);
}
