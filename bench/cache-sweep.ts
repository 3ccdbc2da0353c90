// The cache sweep of the in-process MCP benches: before a call, write one byte per 64-byte line of a buffer
// larger than the last-level cache (BENCH_EVICT_MB, default 32 MiB: the development VM's L3), pushing
// the code and data of what runs next out of every cache level, as the client, the server and the kernel
// do between two calls of a sidecar on a small node.

/** A sweep over a buffer of `mib` MiB, allocated once. */
export function cacheSweep(mib = Number(process.env.BENCH_EVICT_MB ?? 32)): { mib: number; sweep: () => void } {
  const lines = Buffer.alloc(mib * 1024 * 1024);
  return {
    mib,
    sweep: () => {
      for (let i = 0; i < lines.length; i += 64) lines[i] = (lines[i]! + 1) & 255;
    },
  };
}
