// How long one evaluation may run and how much WASM memory it may use, per part. The deadline is
// enforced inside the policy module itself (see wasm-metering.ts: every loop spends fuel, and an
// empty tank asks the host whether the deadline has passed), the memory bound by the WebAssembly
// memory's maximum. Exceeding either stops the evaluation; the caller denies and rebuilds the instance.

/** Bounds of one evaluation. */
export interface EvaluationLimits {
  /** Wall-clock milliseconds from the start of an evaluation until it is stopped. */
  deadlineMs: number;
  /** Bound on the policy's WASM memory (heap, input and data together), in MiB. */
  memoryMiB: number;
}

/**
 * A sidecar decides in ~13 µs, but a first call compiles WASM functions lazily and a loaded node adds
 * GC pauses: 5 ms denied valid calls of the project's own policies under the test suite's load, so
 * the default is 50 ms; a workload can lower it in workload.yaml (`limits.deadlineMs`).
 */
export const SIDECAR_LIMITS: EvaluationLimits = Object.freeze({ deadlineMs: 50, memoryMiB: 256 });

/**
 * The webhook: one review may evaluate several templates inside the API server's 5 s call timeout
 * (manifests.ts sets timeoutSeconds: 5), so each evaluation gets a slice that leaves the review room.
 */
export const ADMISSION_LIMITS: EvaluationLimits = Object.freeze({ deadlineMs: 500, memoryMiB: 64 });

/** `warden diff` replays recorded traffic offline: generous, but still bounded. */
export const REPLAY_LIMITS: EvaluationLimits = Object.freeze({ deadlineMs: 1_000, memoryMiB: 256 });

/** Loop turns between two looks at the clock: ~0.1 ms of OPA runtime work on this machine. */
export const FUEL_PER_TICK = 10_000;

/** Largest accepted values, so that a typo cannot switch the bound off in practice. */
export const LIMIT_CEILINGS: EvaluationLimits = Object.freeze({ deadlineMs: 60_000, memoryMiB: 4_096 });

/** What a limit check found wrong with a value, or undefined when it is acceptable. */
export function limitProblem(name: keyof EvaluationLimits, value: unknown): string | undefined {
  const ceiling = LIMIT_CEILINGS[name];
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > ceiling) {
    return `${name} must be a number above 0 and at most ${ceiling}, got ${JSON.stringify(value)}`;
  }
  if (name === 'memoryMiB' && !Number.isInteger(value)) return `memoryMiB must be a whole number of MiB, got ${value}`;
  return undefined;
}

/** Which bound stopped an evaluation. */
export type LimitKind = 'deadline' | 'memory';

/** Thrown inside an evaluation (through the WASM frames) when a bound is passed. */
export class LimitExceeded extends Error {
  override name = 'LimitExceeded';
  constructor(
    readonly limit: LimitKind,
    message: string,
  ) {
    super(message);
  }
}

/** The deadline of the evaluation in progress; `tick` is the metered module's `warden.tick` import. */
export class EvaluationBudget {
  private deadline = Infinity;

  constructor(readonly limits: EvaluationLimits) {}

  /** Arms the deadline for the evaluation about to start (one clock read). */
  begin(): void {
    this.deadline = performance.now() + this.limits.deadlineMs;
  }

  /** No deadline: for work outside an evaluation that runs WASM (instantiation, loading data). */
  disarm(): void {
    this.deadline = Infinity;
  }

  /** Called by the module every FUEL_PER_TICK loop turns: stop the evaluation or refill the fuel. */
  tick = (): number => {
    if (performance.now() > this.deadline) {
      throw new LimitExceeded('deadline', `evaluation stopped at its deadline of ${this.limits.deadlineMs} ms`);
    }
    return FUEL_PER_TICK;
  };
}
