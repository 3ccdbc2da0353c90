// A background task on a timer that never overlaps itself: a tick that comes while the previous run
// is still going is skipped. The timer does not keep the process alive.

/** Run `task` every `everyMs`; returns a function that stops it. */
export function runEvery(everyMs: number, task: () => Promise<unknown>, onError?: (err: unknown) => void): () => void {
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    task()
      .catch((err: unknown) => onError?.(err))
      .finally(() => {
        running = false;
      });
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
