// How long one evaluation may run and how much WASM memory it may use, per part. The deadline is
// enforced inside the policy module itself (see wasm-metering.ts: every loop spends fuel, and an
// empty tank asks the host whether the deadline has passed), the memory bound by the WebAssembly
// memory's maximum. Exceeding either stops the evaluation; the caller denies and rebuilds the instance.
import { openSync, readSync } from 'node:fs';

/** Bounds of one evaluation. */
export interface EvaluationLimits {
  /** CPU milliseconds the evaluating thread may spend (wall clock: see WALL_CLOCK_FACTOR) before it is stopped. */
  deadlineMs: number;
  /** Bound on the policy's WASM memory (heap, input and data together), in MiB. */
  memoryMiB: number;
}

/** A sidecar decides in ~13 µs; 10 ms keeps a hostile call cheap (see MIN_TICKS for pauses). */
export const SIDECAR_LIMITS: EvaluationLimits = Object.freeze({ deadlineMs: 10, memoryMiB: 256 });

/**
 * The webhook: one review may evaluate several templates inside the API server's 5 s call timeout
 * (manifests.ts sets timeoutSeconds: 5), so each evaluation gets a slice that leaves the review room.
 */
export const ADMISSION_LIMITS: EvaluationLimits = Object.freeze({ deadlineMs: 500, memoryMiB: 64 });

/**
 * Wall-clock ms one admission review may spend evaluating, all its modules together: inside the 5 s
 * timeoutSeconds the webhook registers, with room for the coverage lookup and the network.
 */
export const ADMISSION_REVIEW_BUDGET_MS = 3_000;

/** `warden diff` replays recorded traffic offline: generous, but still bounded. */
export const REPLAY_LIMITS: EvaluationLimits = Object.freeze({ deadlineMs: 1_000, memoryMiB: 256 });

/** Loop turns between two looks at the clock: ~0.1 ms of OPA runtime work on this machine. */
export const FUEL_PER_TICK = 10_000;

/** Host builtin calls between two looks at the clock (a power of two). */
export const HOST_CALLS_PER_CHECK = 16;

/**
 * The deadline counts the evaluating thread's CPU time: on a loaded node a light decision can be paused for
 * tens of ms (GC, descheduling: 116 ms were measured during the test suite), and a wall-clock deadline
 * denied valid calls of the project's own policies; a paused process burns no CPU. The wall clock
 * still stops an evaluation after WALL_CLOCK_FACTOR deadlines, and never before WALL_CLOCK_FLOOR_MS,
 * so that a pause alone (observed above 100 ms with the whole suite on two cores) never denies.
 */
export const WALL_CLOCK_FACTOR = 10;

/** The least wall-clock time an evaluation is given, whatever its deadline (see WALL_CLOCK_FACTOR). */
export const WALL_CLOCK_FLOOR_MS = 1_000;

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

/**
 * `base` with the fields `override` sets (a workload's `limits` as carried in its bundle); throws an
 * Error naming `where` and the field when a value is out of range or a field is unknown.
 */
export function withLimits(base: EvaluationLimits, override: unknown, where: string): EvaluationLimits {
  if (override === undefined) return base;
  if (typeof override !== 'object' || override === null || Array.isArray(override)) throw new Error(`${where}: limits must be an object with deadlineMs and/or memoryMiB`);
  const out = { ...base };
  for (const [key, value] of Object.entries(override)) {
    if (key !== 'deadlineMs' && key !== 'memoryMiB') throw new Error(`${where}: limits.${key} is not a limit (use deadlineMs or memoryMiB)`);
    const problem = limitProblem(key, value);
    if (problem) throw new Error(`${where}: limits.${problem}`);
    out[key] = value as number;
  }
  return out;
}

// CPU time of the calling thread in ms: Linux's per-thread schedstat (2.6 µs a read here), so that
// V8's background compilation and GC threads do not count against a decision; elsewhere the whole
// process's CPU time. Only read at ticks, never per decision.
let schedstat: number | undefined | null;
const schedBuf = Buffer.alloc(128);
function threadCpuMs(): number {
  if (schedstat === undefined) {
    try {
      schedstat = openSync('/proc/thread-self/schedstat', 'r');
    } catch {
      schedstat = null;
    }
  }
  if (schedstat !== null) {
    const n = readSync(schedstat, schedBuf, 0, schedBuf.length, 0);
    const ns = Number(schedBuf.toString('latin1', 0, n).split(' ', 1)[0]);
    if (Number.isFinite(ns)) return ns / 1e6;
  }
  const cpu = process.cpuUsage();
  return (cpu.user + cpu.system) / 1000;
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

/**
 * The deadline of the evaluation in progress; `tick` is the metered module's `warden.tick` import.
 * `begin` costs one clock read; CPU time is first read at the first tick, so an evaluation that never
 * loops 10,000 turns never pays for it (the turns before that first tick go uncounted).
 */
export class EvaluationBudget {
  private started = 0;
  private wallDeadline = Infinity;
  private cpuStart: number | undefined;
  private hostCalls = 0;
  private deadlineMs: number;

  constructor(readonly limits: EvaluationLimits) {
    this.deadlineMs = limits.deadlineMs;
  }

  /** Arms the deadline for the evaluation about to start (a longer one for warming a module up). */
  begin(deadlineMs = this.limits.deadlineMs): void {
    this.deadlineMs = deadlineMs;
    this.started = performance.now();
    this.wallDeadline = this.started + Math.max(deadlineMs * WALL_CLOCK_FACTOR, WALL_CLOCK_FLOOR_MS);
    this.cpuStart = undefined;
  }

  /** No deadline: for work outside an evaluation that runs WASM (instantiation, loading data). */
  disarm(): void {
    this.wallDeadline = Infinity;
    this.started = Infinity;
  }

  /** Called by the module every FUEL_PER_TICK loop turns: stop the evaluation or refill the fuel. */
  tick = (): number => {
    this.check();
    return FUEL_PER_TICK;
  };

  /**
   * Called before every host builtin call: a loop whose turns each call an expensive builtin (a regex
   * over a large string) would otherwise run 10,000 such calls between two ticks.
   */
  hostCall(): void {
    if ((++this.hostCalls & (HOST_CALLS_PER_CHECK - 1)) === 0) this.check();
  }

  private check(): void {
    if (this.started === Infinity) return;
    if (this.cpuStart === undefined) {
      this.cpuStart = threadCpuMs();
      return;
    }
    const cpuMs = threadCpuMs() - this.cpuStart;
    const now = performance.now();
    if (cpuMs > this.deadlineMs || now > this.wallDeadline) {
      throw new LimitExceeded('deadline', `evaluation stopped at its deadline of ${this.deadlineMs} ms (${cpuMs.toFixed(1)} ms CPU, ${(now - this.started).toFixed(0)} ms elapsed)`);
    }
  }
}
