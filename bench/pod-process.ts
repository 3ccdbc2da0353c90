// The benchmarks' pod: each container (the application, the MCP server, the pass-through proxies) is a
// child process running bench/proxy-servers.ts in one role; it reports its ports over IPC when ready and
// answers 'cpu' with its CPU time.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const servers = fileURLToPath(new URL('./proxy-servers.ts', import.meta.url));

/** What a pod process reports about itself since its last report. */
export interface PodStats {
  /** CPU time (user + system) used so far, µs. */
  cpu: number;
  /** How late its event loop ran, p99 and max, ms. */
  loopP99Ms: number;
  loopMaxMs: number;
  /** Longest and total GC pause, ms. */
  gcMaxMs: number;
  gcTotalMs: number;
  /** The pass-through's forwarded calls so far and the seconds it held them (SidecarOptions.held). */
  heldSeconds: number;
  heldCalls: number;
}

/** One container of the benchmark pod, running. */
export interface PodProcess<T> {
  child: ChildProcess;
  /** Resolves with the ports it reported once it listens. */
  ready: Promise<T>;
  /** Its CPU time so far and its event loop since the last call. */
  stats(): Promise<PodStats>;
  /** Let it exit on its own (so --cpu-prof can write its profile); killed after 5 s as a backstop. */
  stop(): Promise<void>;
}

/** Start `proxy-servers.ts <args>` in its own node process (execArgv: extra node flags, e.g. --cpu-prof). */
export function startPodProcess<T>(args: string[], execArgv: string[] = []): PodProcess<T> {
  const child = fork(servers, args, { execArgv: ['--import', 'tsx', ...execArgv], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const ready = new Promise<T>((resolve, reject) => {
    child.once('message', (m) => resolve(m as T));
    child.once('exit', (code) => reject(new Error(`benchmark server ${args[0]} exited with ${code}`)));
  });
  const stats = () =>
    new Promise<PodStats>((resolve) => {
      child.once('message', (m) => resolve(m as PodStats));
      child.send('cpu');
    });
  const stop = async () => {
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    if (child.exitCode === null && child.signalCode === null) {
      if (child.connected) child.disconnect();
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
    }
    child.kill();
  };
  return { child, ready, stats, stop };
}
