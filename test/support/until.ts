// Waiting for a condition in a test: readiness by polling with a bounded deadline, never by sleeping a guess.

/**
 * Resolve with the first value `probe` gives other than undefined; after `timeoutMs`, fail naming `what`
 * (a function is called then, e.g. to show a process's output so far).
 */
export async function until<T>(what: string | (() => string), probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
