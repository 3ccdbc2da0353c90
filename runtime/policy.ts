// Evaluating a bundle's WASM policy in-process: meter the module (wasm-metering.ts), compile it once,
// instantiate it with @open-policy-agent/opa-wasm's LoadedPolicy over Warden's own imports, check every
// builtin the module needs is supplied, then evaluate entrypoints synchronously per call, each within
// its EvaluationLimits. An evaluation stopped by a limit throws EvaluationLimitError, and the instance
// (whose heap it may have left grown or half-written) is replaced by a fresh one from the same module.
import { createRequire } from 'node:module';
import type { LoadedPolicy } from '@open-policy-agent/opa-wasm';
import { decision as decisionFormat, type Decision } from '../formats/decision.js';
import { BundleError } from './archive.js';
import type { VerifiedBundle } from './bundle.js';
import { createHostBuiltins, preferWardenBuiltins, sdkBuiltinFunctions, type HostBuiltin } from './builtins.js';
import { EvaluationInstant, systemClock, type Clock } from './clock.js';
import { InputJson } from './input-selection.js';
import { EvaluationBudget, FUEL_PER_TICK, LimitExceeded, SIDECAR_LIMITS, type EvaluationLimits, type LimitKind } from './evaluation-limits.js';
import { meterModule, METERING_IMPORTS, MeteringError } from './wasm-metering.js';

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
  /** Load the module unmetered, with no deadline: only bench/deadline.bench.ts's baseline; never in a part. */
  unmeteredBaseline?: true;
}

interface WasmExports {
  builtins(): number;
  opa_json_dump(addr: number): number;
  opa_json_parse(addr: number, length: number): number;
  opa_malloc(length: number): number;
  opa_eval?: (reserved: number, entrypoint: number, data: number, input: number, inputLength: number, heap: number, format: number) => number;
}

// The parts of the SDK's LoadedPolicy the one-shot evaluation reads (its own evaluate allocates a
// TextEncoder/TextDecoder per call and scans for the result's end byte by byte in JavaScript).
interface LoadedPolicyInternals {
  wasmInstance: { exports: WasmExports };
  mem: WebAssembly.Memory;
  minorVersion: number;
  dataAddr: number;
  dataHeapPtr: number;
  entrypoints: Record<string, number>;
}

const PAGE = 64 * 1024;
// The warm-up evaluation's deadline: ten of the policy's, at least 100 ms (it pays the compilation).
const WARM_UP_FACTOR = 10;
const WARM_UP_FLOOR_MS = 100;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

// The SDK's ESM side exports only loadPolicy; LoadedPolicy (heap bookkeeping, setData, the pre-1.2
// evaluate) is reached through its CommonJS entry.
const { LoadedPolicy: LoadedPolicyClass } = createRequire(import.meta.url)('@open-policy-agent/opa-wasm') as {
  LoadedPolicy: new (instance: WebAssembly.Instance, memory: WebAssembly.Memory, minorVersion: number) => LoadedPolicy;
};

/**
 * JSON text with every lone UTF-16 surrogate turned into U+FFFD, as OPA's Go decoder reads it (OPA's
 * WASM parser refuses the text instead). JSON.stringify writes a lone surrogate as a `\udXXX` escape
 * and a valid pair as raw characters, so every surrogate escape in its output is a lone one; escapes
 * are matched left to right so that an escaped backslash followed by `ud800` is left alone.
 */
export function wellFormedJson(json: string): string {
  if (!json.includes('\\ud')) return json;
  return json.replace(/\\(?:ud[89a-f][0-9a-f]{2}|[^])/g, (m) => (m.length === 6 ? '\\ufffd' : m));
}

/**
 * OPA's `replace(s, old, new)`. OPA runs Go's strings.NewReplacer(old, new): an empty `old` matches
 * before every byte (not rune) and at the end, so a multi-byte character is split into bytes that are
 * not UTF-8 on their own. OPA keeps those bytes; a JavaScript string cannot, so each becomes U+FFFD —
 * exactly what OPA prints for them, so the JSON of the result is the same.
 */
export function opaReplace(s: string, old: string, replacement: string): string {
  if (old !== '') return s.split(old).join(replacement);
  if (replacement === '') return s;
  const insert = encoder.encode(replacement);
  const bytes = encoder.encode(s);
  const out = new Uint8Array(insert.length * (bytes.length + 1) + bytes.length);
  let n = 0;
  out.set(insert, n);
  n += insert.length;
  for (const b of bytes) {
    out[n++] = b;
    out.set(insert, n);
    n += insert.length;
  }
  return decoder.decode(out);
}

// Go's json.Unmarshal takes exactly one JSON text (surrounding whitespace allowed), as JSON.parse does.
function isOneJsonText(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

// The input's JSON text for the module: an InputJson (runtime/input-selection.ts) is already serialized.
const inputText = (input: unknown): string => wellFormedJson(input instanceof InputJson ? input.text : JSON.stringify(input));

// ABI 1.2+ one-shot evaluation: the input's JSON is encoded straight into the heap just above the
// data, opa_eval parses it, evaluates, resets the heap and returns the address of the result set's JSON.
function evaluateOneShot(p: LoadedPolicyInternals, opaEval: NonNullable<WasmExports['opa_eval']>, entrypoint: number, input: unknown): unknown {
  const at = p.dataHeapPtr;
  let written = 0;
  // As the SDK does: a falsy input is no input.
  if (input) {
    const json = inputText(input);
    let heap = new Uint8Array(p.mem.buffer);
    // UTF-8 needs at most 3 bytes per UTF-16 unit; when that might not fit, encode first to learn the size.
    if (at + json.length * 3 <= heap.length) written = encoder.encodeInto(json, heap.subarray(at)).written;
    else {
      const bytes = encoder.encode(json);
      if (at + bytes.length > heap.length) p.mem.grow(Math.ceil((at + bytes.length - heap.length) / PAGE));
      heap = new Uint8Array(p.mem.buffer);
      heap.set(bytes, at);
      written = bytes.length;
    }
  }
  const result = opaEval(0, entrypoint, p.dataAddr, written ? at : 0, written, at + written, 0);
  const heap = new Uint8Array(p.mem.buffer); // evaluation may have grown the memory
  return JSON.parse(decoder.decode(heap.subarray(result, heap.indexOf(0, result))));
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
  private live: LiveInstance | undefined;

  private constructor(
    readonly bundle: VerifiedBundle,
    /** The bounds each evaluation runs within. */
    readonly limits: EvaluationLimits,
    private readonly instantiate: () => LiveInstance,
    private readonly budget: EvaluationBudget,
    private readonly beforeEvaluate: (() => void) | undefined,
  ) {}

  /** Load a verified bundle's WASM; refuses a module that needs a builtin nobody supplies. */
  static async load(bundle: VerifiedBundle, opts: PolicyOptions = {}): Promise<Policy> {
    // OPA requires time.now_ns() to be one instant per evaluation: builtins read it from here.
    const instant = new EvaluationInstant(opts.clock ?? systemClock);
    const host = opts.builtins ? { functions: opts.builtins, beginEvaluation: () => undefined } : createHostBuiltins({ clock: instant, strictBuiltinErrors: opts.strictBuiltinErrors ?? bundle.manifest.metadata?.strictBuiltinErrors === true });
    preferWardenBuiltins(Object.keys(host.functions));
    const limits = opts.limits ?? SIDECAR_LIMITS;
    const budget = new EvaluationBudget(limits);
    let module: WebAssembly.Module;
    try {
      module = await WebAssembly.compile(opts.unmeteredBaseline ? (bundle.wasm as Uint8Array<ArrayBuffer>) : meterModule(bundle.wasm, FUEL_PER_TICK).wasm);
    } catch (err) {
      const why = err instanceof MeteringError ? err.message : `policy.wasm does not load: ${String((err as Error)?.message ?? err)}`;
      throw new BundleError(`bundle ${bundle.revision}: ${why}`);
    }
    const maximum = limits.memoryMiB * 16;
    const initial = Math.max(5, importedMemoryMinimum(bundle.wasm) ?? 0);
    if (initial > maximum) {
      throw new BundleError(`bundle ${bundle.revision}: policy.wasm needs ${initial / 16} MiB of memory to start, above the memory bound of ${limits.memoryMiB} MiB: raise memoryMiB`);
    }
    const data = encoder.encode(wellFormedJson(JSON.stringify(bundle.data)));
    const instantiate = () => instantiatePolicy(module, { initial, maximum }, host.functions, budget, data);
    let live: LiveInstance;
    try {
      live = instantiate();
    } catch (err) {
      throw new BundleError(`bundle ${bundle.revision}: policy.wasm does not load: ${String((err as Error)?.message ?? err)}`);
    }
    const sdk = sdkBuiltinFunctions();
    const missing = live.builtins.filter((b) => !(b in sdk) && !(b in host.functions));
    if (missing.length > 0) {
      throw new BundleError(`bundle ${bundle.revision}: the policy uses builtins this runtime does not provide: ${missing.join(', ')}`);
    }
    // V8 compiles WASM functions lazily, on this thread, at their first call, and that CPU time would
    // count against the first decisions' deadlines: one evaluation per entrypoint compiles the common
    // path now, under a longer deadline (a policy that loops on any input must not hang the load).
    // One that fails may leave the instance unsound: start afresh.
    let warm = live;
    for (const entrypoint of Object.keys(live.loaded.entrypoints)) {
      budget.begin(Math.max(limits.deadlineMs * WARM_UP_FACTOR, WARM_UP_FLOOR_MS));
      try {
        warm.run(entrypoint, {});
      } catch {
        warm = instantiate();
      }
    }
    budget.disarm();
    const policy = new Policy(bundle, limits, instantiate, budget, () => {
      instant.begin();
      host.beginEvaluation();
    });
    policy.live = warm;
    return policy;
  }

  /** Entrypoint names the module exports. */
  get entrypoints(): string[] {
    return Object.keys(this.instance().loaded.entrypoints);
  }

  private instance(): LiveInstance {
    if (this.live) return this.live;
    try {
      this.live = this.instantiate();
    } catch (err) {
      throw new EvaluationError(`rebuilding the policy instance of bundle ${this.bundle.revision} failed: ${String((err as Error)?.message ?? err)}`);
    }
    return this.live;
  }

  /**
   * Evaluate an entrypoint; `undefined` when the rule is undefined for this input. `deadlineMs`
   * shortens this one evaluation's deadline (the webhook passes what is left of a review's budget).
   */
  evaluate(entrypoint: string, input: unknown, deadlineMs?: number): unknown {
    this.beforeEvaluate?.();
    const live = this.instance();
    let rs: Array<{ result: unknown }>;
    this.budget.begin(deadlineMs === undefined ? this.limits.deadlineMs : Math.max(0, Math.min(deadlineMs, this.limits.deadlineMs)));
    try {
      rs = live.run(entrypoint, input) as Array<{ result: unknown }>;
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
    return rs.length === 0 ? undefined : rs[0]!.result;
  }

  /** Evaluate the decision entrypoint and check the result's shape; anything malformed is an error. */
  decide(entrypoint: string, input: unknown): Decision {
    const result = this.evaluate(entrypoint, input);
    if (result === undefined) throw new EvaluationError(`${entrypoint} is undefined for this input (the policy must always decide)`);
    const issues = decisionFormat.check(result);
    if (issues.length > 0) throw new EvaluationError(`${entrypoint} returned a malformed decision: ${issues.map((i) => `${i.path || '(root)'} ${i.message}`).join('; ')}`);
    return result as Decision;
  }
}

// OPA's malloc aborts when the memory cannot grow; writing a large input grows it from JavaScript.
function memoryExhausted(err: unknown, mem: WebAssembly.Memory, limits: EvaluationLimits): boolean {
  const message = String((err as Error)?.message ?? err);
  if (message.includes('opa_malloc: failed')) return true;
  return err instanceof RangeError && /WebAssembly\.Memory\.grow|Maximum memory size/i.test(message) && mem.buffer.byteLength <= limits.memoryMiB * 1024 * 1024;
}

/** One instance of a policy module with the evaluator chosen for its ABI. */
interface LiveInstance {
  loaded: LoadedPolicy;
  mem: WebAssembly.Memory;
  /** The module's builtins() table: every function it will ask the host for. */
  builtins: string[];
  run(entrypoint: string, input: unknown): unknown;
}

// Instantiates the metered module over Warden's imports: OPA's `env` (memory, abort, builtin calls
// with JSON marshalling, as the SDK does them) plus the `warden` imports the metering added.
function instantiatePolicy(
  module: WebAssembly.Module,
  memory: { initial: number; maximum: number },
  hostFunctions: Readonly<Record<string, HostBuiltin>>,
  budget: EvaluationBudget,
  data: Uint8Array,
): LiveInstance {
  // Loading the data runs WASM too; the deadline of the evaluation that was just stopped is long past.
  budget.disarm();
  const mem = new WebAssembly.Memory(memory);
  // Set right after instantiation; the imports only run once the instance exists.
  const linked: { exports?: WasmExports } = {};
  const sdk = sdkBuiltinFunctions();
  const byId = new Map<number, string>();
  const cString = (addr: number): string => {
    const heap = new Uint8Array(mem.buffer);
    return decoder.decode(heap.subarray(addr, heap.indexOf(0, addr)));
  };
  const dump = (addr: number): unknown => JSON.parse(cString(linked.exports!.opa_json_dump(addr)));
  const load = (value: unknown): number => {
    if (value === undefined) return 0;
    const bytes = value instanceof ArrayBuffer ? new Uint8Array(value) : encoder.encode(wellFormedJson(JSON.stringify(value)));
    const addr = linked.exports!.opa_malloc(bytes.length);
    new Uint8Array(mem.buffer).set(bytes, addr);
    const parsed = linked.exports!.opa_json_parse(addr, bytes.length);
    if (parsed === 0) throw new Error('a builtin returned a value the policy cannot read');
    return parsed;
  };
  const call = (id: number, args: number[]): number => {
    const name = byId.get(id);
    const impl = (name !== undefined && (sdk[name] ?? hostFunctions[name])) as ((...a: unknown[]) => unknown) | undefined;
    if (!impl) throw new Error(`not implemented: built-in function ${name ?? id}`);
    budget.hostCall();
    return load(impl(...args.map(dump)));
  };
  const instance = new WebAssembly.Instance(module, {
    env: {
      memory: mem,
      opa_abort: (addr: number) => {
        throw new Error(cString(addr));
      },
      opa_println: (addr: number) => process.stderr.write(`${cString(addr)}\n`),
      opa_builtin0: (id: number) => call(id, []),
      opa_builtin1: (id: number, _ctx: number, a: number) => call(id, [a]),
      opa_builtin2: (id: number, _ctx: number, a: number, b: number) => call(id, [a, b]),
      opa_builtin3: (id: number, _ctx: number, a: number, b: number, c: number) => call(id, [a, b, c]),
      opa_builtin4: (id: number, _ctx: number, a: number, b: number, c: number, d: number) => call(id, [a, b, c, d]),
    },
    warden: {
      [METERING_IMPORTS.tick]: budget.tick,
      [METERING_IMPORTS.replace]: (s: number, old: number, replacement: number): number => {
        const [a, b, c] = [dump(s), dump(old), dump(replacement)];
        if (typeof a !== 'string' || typeof b !== 'string' || typeof c !== 'string') return 0;
        // Bound the result before building it: `replace(s, "", x)` multiplies the input's size.
        const matches = b === '' ? encoder.encode(a).length + 1 : a.split(b).length - 1;
        if (a.length + matches * c.length > budget.limits.memoryMiB * 1024 * 1024) throw new Error('opa_malloc: failed (replace result above the memory bound)');
        return load(opaReplace(a, b, c));
      },
      [METERING_IMPORTS.jsonComplete]: (addr: number): number => {
        const v = dump(addr);
        return typeof v !== 'string' || isOneJsonText(v) ? 1 : 0;
      },
    },
  });
  const exports = (linked.exports = instance.exports as unknown as WasmExports);
  const abi = instance.exports.opa_wasm_abi_version as WebAssembly.Global | undefined;
  if (abi?.value !== 1) throw new Error(`unsupported OPA WASM ABI version ${String(abi?.value)} (Warden reads ABI 1)`);
  const minor = (instance.exports.opa_wasm_abi_minor_version as WebAssembly.Global | undefined)?.value as number | undefined;
  const table = dump(exports.builtins()) as Record<string, number>;
  for (const [name, id] of Object.entries(table)) byId.set(id, name);
  const loaded = new LoadedPolicyClass(instance, mem, minor ?? 0);
  loaded.setData(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer);
  const inner = loaded as unknown as LoadedPolicyInternals;
  const sdkEvaluate = (entrypoint: string, input: unknown) => loaded.evaluate(input ? encoder.encode(inputText(input)).buffer : input, entrypoint);
  const opaEval = exports.opa_eval;
  const run =
    opaEval && inner.minorVersion >= 2
      ? (entrypoint: string, input: unknown) => (Object.hasOwn(inner.entrypoints, entrypoint) ? evaluateOneShot(inner, opaEval, inner.entrypoints[entrypoint]!, input) : sdkEvaluate(entrypoint, input))
      : sdkEvaluate;
  return { loaded, mem, builtins: Object.keys(table), run };
}
