// Where Warden's runtime reads the time: passed in explicitly so tests can pin it.

/** A source of the current instant, in nanoseconds since the Unix epoch. */
export interface Clock {
  nowNs(): bigint;
}

/** The host's wall clock (millisecond resolution, widened to nanoseconds). */
export const systemClock: Clock = {
  nowNs: () => BigInt(Date.now()) * 1_000_000n,
};

/** A clock stuck at one instant, for tests and replays. */
export function fixedClock(ns: bigint): Clock {
  return { nowNs: () => ns };
}

/**
 * One instant per evaluation: OPA requires `time.now_ns()` to return the same value everywhere
 * within one evaluation, so the evaluator calls `begin()` before each evaluate and builtins read
 * the instant it captured.
 */
export class EvaluationInstant implements Clock {
  private instant: bigint | undefined;

  constructor(private readonly source: Clock) {}

  /** Captures the instant for the evaluation about to start. */
  begin(): void {
    this.instant = this.source.nowNs();
  }

  nowNs(): bigint {
    // Lazily captured if the evaluator forgot to begin; then stable until the next begin().
    this.instant ??= this.source.nowNs();
    return this.instant;
  }
}
