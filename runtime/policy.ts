// Evaluating a bundle's WASM policy in-process: meter the module (wasm-metering.ts), compile it once,
// instantiate it over OPA's WASM ABI (wasm-abi.ts, Warden's own: no SDK), check every builtin the
// module needs is supplied, then evaluate entrypoints synchronously per call, each within its
// EvaluationLimits. Results are OPA's JSON output (opa-json.ts): sets sorted, integers exact. An evaluation stopped by a limit throws EvaluationLimitError, and the instance
// (whose heap it may have left grown or half-written) is replaced by a fresh one from the same module.
import { rememberAtMost } from './bounded-map.js';
import { decision as decisionFormat, type Decision } from '../formats/decision.js';
import { BundleError } from './archive.js';
import type { VerifiedBundle } from './bundle.js';
import { createHostBuiltins, missingBuiltins, NOT_PURE_BUILTINS, type HostBuiltin } from './builtins.js';
import { EvaluationInstant, systemClock, type Clock } from './clock.js';
import { CaseVariantInput, InputJson, type InputSelection } from './input-selection.js';
import { EvaluationBudget, FUEL_PER_TICK, LimitExceeded, SIDECAR_LIMITS, type EvaluationLimits, type LimitKind } from './evaluation-limits.js';
import { jsonText } from './opa-json.js';
import { deepFreeze, wellFormedJson, type OpaJson } from './rego-value.js';
import { instantiatePolicy, RETAINED_HEAP_BYTES, type PolicyInstance } from './wasm-abi.js';
import { meterModule, MeteringError } from './wasm-metering.js';

/** Raised when evaluation fails; callers deny (fail closed). */
export class EvaluationError extends Error {
  override name = 'EvaluationError';
}

/** Raised when an evaluation is stopped by its deadline or memory bound; callers deny and say which. */
export class EvaluationLimitError extends EvaluationError {
  override name = 'EvaluationLimitError';
  constructor(
    readonly limit: LimitKind,
    message: string,
  ) {
    super(message);
  }
}

/** Options for loading a policy. */
export interface PolicyOptions {
  /** The clock time builtins read (default: the system clock); pinned once per evaluation. */
  clock?: Clock;
  /** Replace Warden's host builtins altogether (tests of the loader only). */
  builtins?: Readonly<Record<string, HostBuiltin>>;
  /** A builtin error fails the evaluation instead of leaving the expression undefined (default: the bundle's `metadata.strictBuiltinErrors`). */
  strictBuiltinErrors?: boolean;
  /** Deadline and memory bound of each evaluation (default: SIDECAR_LIMITS). */
  limits?: EvaluationLimits;
  /**
   * Reuse a pure module's result for an input text it decided before (default true). Off: every call
   * evaluates (the benchmarks of evaluation itself).
   */
  reuse?: boolean;
  /** Load the module unmetered, with no deadline: only bench/deadline.bench.ts's baseline; never in a part. */
  unmeteredBaseline?: true;
}

const PAGE = 64 * 1024;
// The warm-up evaluation's deadline: ten of the policy's, at least 100 ms (it pays the compilation).
const WARM_UP_FACTOR = 10;
const WARM_UP_FLOOR_MS = 100;
const encoder = new TextEncoder();
// Evaluations a pure module remembers (see Policy.evaluate), and the longest input text remembered:
// at most about 2 Mi characters held per loaded bundle.
const MEMO_ENTRIES = 512;
const MEMO_INPUT_CHARS = 4096;
// A remembered undefined result (a rule with no value for that input), told apart from no entry in one lookup.
const UNDEFINED = Symbol('undefined result');


// The input's JSON text for the module: only the parts the bundle's Rego reads (its manifest's
// inputPaths; runtime/input-selection.ts), whoever evaluates, so no caller can hand the WASM more than
// it reads. undefined is no input (any other value, `null` and `false` too, is an input, as in `opa
// eval`). Integers beyond 2^53 given as bigint are written exactly. An InputJson is already serialized.
function inputText(input: unknown, selection: InputSelection): string | undefined {
  if (input === undefined) return undefined;
  return wellFormedJson((input instanceof InputJson ? input : selection.json(input)).text);
}

// The pages the module's imported memory must start with: what its import section declares (large
// policies carry more than the default 5 pages), or more when its active data segments reach further —
// OPA 1.22's compiler can declare a page too few for a policy with many rules (a 1,000-operation spec),
// and instantiating then fails with "data segment is out of bounds". Reads the import and data sections.
export function importedMemoryMinimum(wasm: Uint8Array): number | undefined {
  let pos = 8;
  const leb = (): number => {
    let result = 0;
    let shift = 0;
    for (;;) {
      const b = wasm[pos++]!;
      result |= (b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result >>> 0;
      shift += 7;
    }
  };
  const skip = () => {
    const n = leb(); // read first: leb() moves pos
    pos += n;
  };
  // An `i32.const n; end` offset expression (signed LEB128); undefined for any other expression.
  const constOffset = (): number | undefined => {
    if (wasm[pos] !== 0x41) {
      while (wasm[pos++] !== 0x0b); // not something OPA emits; skip to `end`
      return undefined;
    }
    pos++;
    let result = 0;
    let shift = 0;
    let b: number;
    do {
      b = wasm[pos++]!;
      result |= (b & 0x7f) << shift;
      shift += 7;
    } while (b & 0x80);
    if (shift < 32 && b & 0x40) result |= -1 << shift;
    pos++; // end
    return result;
  };
  let declared: number | undefined;
  let dataEnd = 0;
  while (pos < wasm.length) {
    const id = wasm[pos++]!;
    const size = leb();
    const next = pos + size;
    if (id === 2) {
      const count = leb();
      for (let i = 0; i < count && declared === undefined; i++) {
        skip(); // module name
        skip(); // field name
        const kind = wasm[pos++]!;
        if (kind === 0) leb();
        else if (kind === 1) {
          pos++;
          if (leb() & 1) leb();
          leb();
        } else if (kind === 2) {
          const flags = leb();
          declared = leb();
          if (flags & 1) leb(); // maximum
        } else if (kind === 3) pos += 2;
      }
    } else if (id === 11) {
      const count = leb();
      for (let i = 0; i < count; i++) {
        const flags = leb();
        if (flags === 1) {
          skip(); // passive: not placed at instantiation
          continue;
        }
        if (flags === 2) leb(); // memory index
        const offset = constOffset();
        const length = leb();
        pos += length;
        if (offset !== undefined) dataEnd = Math.max(dataEnd, (offset >>> 0) + length);
      }
    }
    pos = next;
  }
  if (declared === undefined) return undefined;
  return Math.max(declared, Math.ceil(dataEnd / PAGE));
}

/** A loaded policy: the bundle it came from plus its evaluator. */
export class Policy {
  // The live instance; replaced by a fresh one from the same compiled module after a stopped evaluation.
  private live: PolicyInstance | undefined;
  // Results by entrypoint and input text, for a module whose builtins all depend on their operands
  // alone (none reads the clock or randomness): the same text, data and module decide the same way.
  private readonly memo: Map<string, OpaJson | typeof UNDEFINED> | undefined;
  // Decision results already checked for their shape (remembered ones come back as the same object).
  private readonly checked = new WeakSet<object>();
  /** Evaluations answered with a remembered result so far. */
  reused = 0;

  private constructor(
    readonly bundle: VerifiedBundle,
    /** The bounds each evaluation runs within. */
    readonly limits: EvaluationLimits,
    private readonly instantiate: () => PolicyInstance,
    private readonly budget: EvaluationBudget,
    private readonly beforeEvaluate: (() => void) | undefined,
    pure: boolean,
  ) {
    this.memo = pure ? new Map() : undefined;
  }

  /** Load a verified bundle's WASM; refuses a module that needs a builtin nobody supplies. */
  static async load(bundle: VerifiedBundle, opts: PolicyOptions = {}): Promise<Policy> {
    // OPA requires time.now_ns() to be one instant per evaluation: builtins read it from here.
    const instant = new EvaluationInstant(opts.clock ?? systemClock);
    const host = opts.builtins ? { functions: opts.builtins, beginEvaluation: () => undefined } : createHostBuiltins({ clock: instant, strictBuiltinErrors: opts.strictBuiltinErrors ?? bundle.manifest.metadata?.strictBuiltinErrors === true });
    const limits = opts.limits ?? SIDECAR_LIMITS;
    const budget = new EvaluationBudget(limits);
    let module: WebAssembly.Module;
    try {
      module = await WebAssembly.compile(opts.unmeteredBaseline ? (bundle.wasm as Uint8Array<ArrayBuffer>) : meterModule(bundle.wasm, FUEL_PER_TICK).wasm);
    } catch (err) {
      const why = err instanceof MeteringError ? err.message : `policy.wasm does not load: ${String((err as Error)?.message ?? err)}`;
      throw new BundleError(`bundle ${bundle.revision}: ${why}`);
    }
    // Pages of 64 KiB: the bound, plus what earlier evaluations may have left on the heap (RETAINED_HEAP_BYTES).
    const bound = limits.memoryMiB * 16;
    const maximum = bound + RETAINED_HEAP_BYTES / PAGE;
    const initial = Math.max(5, importedMemoryMinimum(bundle.wasm) ?? 0);
    if (initial > bound) {
      throw new BundleError(`bundle ${bundle.revision}: policy.wasm needs ${initial / 16} MiB of memory to start, above the memory bound of ${limits.memoryMiB} MiB: raise memoryMiB`);
    }
    const data = encoder.encode(wellFormedJson(jsonText(bundle.data as OpaJson)));
    const instantiate = () => instantiatePolicy(module, { initial, maximum }, host.functions, budget, data);
    let live: PolicyInstance;
    try {
      live = instantiate();
    } catch (err) {
      throw new BundleError(`bundle ${bundle.revision}: policy.wasm does not load: ${String((err as Error)?.message ?? err)}`);
    }
    const missing = missingBuiltins(live.builtins, host.functions);
    if (missing.length > 0) {
      throw new BundleError(`bundle ${bundle.revision}: the policy uses builtins this runtime does not provide: ${missing.join(', ')}`);
    }
    // V8 compiles WASM functions lazily, on this thread, at their first call, and that CPU time would
    // count against the first decisions' deadlines: one evaluation per entrypoint compiles the common
    // path now, under a longer deadline (a policy that loops on any input must not hang the load).
    // One that fails may leave the instance unsound: start afresh.
    let warm = live;
    for (const entrypoint of Object.keys(live.entrypoints)) {
      budget.begin(Math.max(limits.deadlineMs * WARM_UP_FACTOR, WARM_UP_FLOOR_MS));
      try {
        warm.evaluate(entrypoint, '{}');
      } catch {
        warm = instantiate();
      }
    }
    budget.disarm();
    // Builtins given by the caller are of unknown purity: never reused.
    const pure = opts.reuse !== false && !opts.builtins && live.builtins.every((b) => !NOT_PURE_BUILTINS.has(b));
    const policy = new Policy(bundle, limits, instantiate, budget, () => {
      instant.begin();
      host.beginEvaluation();
    }, pure);
    policy.live = warm;
    return policy;
  }

  /** Entrypoint names the module exports. */
  get entrypoints(): string[] {
    return Object.keys(this.instance().entrypoints);
  }

  private instance(): PolicyInstance {
    if (this.live) return this.live;
    try {
      this.live = this.instantiate();
    } catch (err) {
      throw new EvaluationError(`rebuilding the policy instance of bundle ${this.bundle.revision} failed: ${String((err as Error)?.message ?? err)}`);
    }
    return this.live;
  }

  /**
   * Evaluate an entrypoint; `undefined` when the rule is undefined for this input. The value is as
   * OPA's JSON output prints it: sets as arrays in OPA's order, integers beyond 2^53 as bigint.
   * `deadlineMs` shortens this one evaluation's deadline (the webhook passes what is left of a review's budget).
   * A pure module's result for an input text it decided before is reused (frozen), not evaluated again.
   */
  evaluate(entrypoint: string, input: unknown, deadlineMs?: number): OpaJson | undefined {
    let result: OpaJson | undefined;
    // Before the evaluation: an input the selection refuses (CaseVariantInput) is refused as such; one
    // that cannot be written (nested past the stack) fails the evaluation.
    let text: string | undefined;
    try {
      text = inputText(input, this.bundle.inputs);
    } catch (err) {
      if (err instanceof CaseVariantInput) throw err;
      throw new EvaluationError(`evaluating ${entrypoint} failed: ${String((err as Error)?.message ?? err)}`);
    }
    const memo = this.memo;
    const key = memo && (text === undefined || text.length <= MEMO_INPUT_CHARS) ? `${entrypoint}\u0000${text ?? '\u0000'}` : undefined;
    const remembered = key === undefined ? undefined : memo!.get(key);
    if (remembered !== undefined) {
      this.reused++;
      return remembered === UNDEFINED ? undefined : remembered;
    }
    this.beforeEvaluate?.();
    const live = this.instance();
    this.budget.begin(deadlineMs === undefined ? this.limits.deadlineMs : Math.max(0, Math.min(deadlineMs, this.limits.deadlineMs)));
    try {
      result = live.evaluate(entrypoint, text);
    } catch (err) {
      const limit = err instanceof LimitExceeded ? err.limit : memoryExhausted(err, live.mem, this.limits) ? 'memory' : undefined;
      // A stopped or trapped evaluation may leave the heap grown or half-written: start afresh.
      if (limit || err instanceof WebAssembly.RuntimeError || err instanceof RangeError) {
        this.live = undefined;
        try {
          this.live = this.instantiate();
        } catch {
          // rebuilt on the next evaluation instead
        }
      }
      if (limit === 'memory') throw new EvaluationLimitError('memory', `evaluating ${entrypoint} was stopped: it needed more than the memory bound of ${this.limits.memoryMiB} MiB`);
      if (limit) throw new EvaluationLimitError(limit, `evaluating ${entrypoint} was stopped: ${(err as Error).message}`);
      throw new EvaluationError(`evaluating ${entrypoint} failed: ${String((err as Error)?.message ?? err)}`);
    }
    if (key !== undefined) {
      rememberAtMost(memo!, key, result === undefined ? UNDEFINED : deepFreeze(result), MEMO_ENTRIES); // shared by every call that reuses it
    }
    return result;
  }

  /** Evaluate the decision entrypoint and check the result's shape; anything malformed is an error. */
  decide(entrypoint: string, input: unknown): Decision {
    const result = this.evaluate(entrypoint, input);
    if (result === undefined) throw new EvaluationError(`${entrypoint} is undefined for this input (the policy must always decide)`);
    const known = typeof result === 'object' && result !== null;
    if (known && this.checked.has(result)) return result as unknown as Decision;
    const issues = decisionFormat.check(result);
    if (issues.length > 0) throw new EvaluationError(`${entrypoint} returned a malformed decision: ${issues.map((i) => `${i.path || '(root)'} ${i.message}`).join('; ')}`);
    if (known) this.checked.add(result);
    return result as unknown as Decision;
  }
}

// OPA's malloc aborts when the memory cannot grow; writing a large input grows it from JavaScript.
function memoryExhausted(err: unknown, mem: WebAssembly.Memory, limits: EvaluationLimits): boolean {
  const message = String((err as Error)?.message ?? err);
  if (message.includes('opa_malloc: failed')) return true;
  return err instanceof RangeError && /WebAssembly\.Memory\.grow|Maximum memory size/i.test(message) && mem.buffer.byteLength <= limits.memoryMiB * 1024 * 1024 + RETAINED_HEAP_BYTES;
}
