// Evaluating a bundle's WASM policy in-process with @open-policy-agent/opa-wasm: load once, check
// every builtin the module needs is supplied, then evaluate entrypoints synchronously per call.
import { loadPolicy, type LoadedPolicy } from '@open-policy-agent/opa-wasm';
import { decision as decisionFormat, type Decision } from '../formats/decision.js';
import { BundleError } from './archive.js';
import type { VerifiedBundle } from './bundle.js';
import { createHostBuiltins, preferWardenBuiltins, sdkBuiltinNames, type HostBuiltin } from './builtins.js';
import { EvaluationInstant, systemClock, type Clock } from './clock.js';

/** Raised when evaluation fails; callers deny (fail closed). */
export class EvaluationError extends Error {
  override name = 'EvaluationError';
}

/** Options for loading a policy. */
export interface PolicyOptions {
  /** The clock time builtins read (default: the system clock); pinned once per evaluation. */
  clock?: Clock;
  /** Replace Warden's host builtins altogether (tests of the loader only). */
  builtins?: Readonly<Record<string, HostBuiltin>>;
  /** WASM memory in 64 KiB pages; the maximum bounds what one hostile input can make the policy allocate. */
  memory?: { initial: number; maximum: number };
  /** A builtin error fails the evaluation instead of leaving the expression undefined (default: the bundle's `metadata.strictBuiltinErrors`). */
  strictBuiltinErrors?: boolean;
}

interface WasmExports {
  builtins(): number;
  opa_json_dump(addr: number): number;
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
const encoder = new TextEncoder();
const decoder = new TextDecoder();

// ABI 1.2+ one-shot evaluation: the input's JSON is encoded straight into the heap just above the
// data, opa_eval parses it, evaluates, resets the heap and returns the address of the result set's JSON.
function evaluateOneShot(p: LoadedPolicyInternals, opaEval: NonNullable<WasmExports['opa_eval']>, entrypoint: number, input: unknown): unknown {
  const at = p.dataHeapPtr;
  let written = 0;
  // As the SDK does: a falsy input is no input.
  if (input) {
    const json = JSON.stringify(input);
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

// The module's builtins() table: every function it will ask the host for.
function requiredBuiltins(policy: LoadedPolicy): string[] {
  const inner = policy as unknown as { wasmInstance: { exports: WasmExports }; mem: WebAssembly.Memory };
  const strAddr = inner.wasmInstance.exports.opa_json_dump(inner.wasmInstance.exports.builtins());
  const bytes = new Uint8Array(inner.mem.buffer);
  let end = strAddr;
  while (bytes[end] !== 0) end++;
  const table = JSON.parse(new TextDecoder().decode(bytes.subarray(strAddr, end))) as Record<string, number>;
  return Object.keys(table);
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
  // Chosen once at load: the ABI 1.2+ one-shot path when the module exports opa_eval, else the SDK's evaluate.
  private readonly run: (entrypoint: string, input: unknown) => unknown;

  private constructor(
    readonly bundle: VerifiedBundle,
    private readonly wasm: LoadedPolicy,
    private readonly beforeEvaluate: (() => void) | undefined,
  ) {
    const inner = wasm as unknown as LoadedPolicyInternals;
    const opaEval = inner.wasmInstance.exports.opa_eval;
    const sdk = (entrypoint: string, input: unknown) => wasm.evaluate(input, entrypoint);
    this.run =
      opaEval && inner.minorVersion >= 2
        ? (entrypoint, input) => (Object.hasOwn(inner.entrypoints, entrypoint) ? evaluateOneShot(inner, opaEval, inner.entrypoints[entrypoint]!, input) : sdk(entrypoint, input))
        : sdk;
  }

  /** Load a verified bundle's WASM; refuses a module that needs a builtin nobody supplies. */
  static async load(bundle: VerifiedBundle, opts: PolicyOptions = {}): Promise<Policy> {
    // OPA requires time.now_ns() to be one instant per evaluation: builtins read it from here.
    const instant = new EvaluationInstant(opts.clock ?? systemClock);
    const host = opts.builtins ? { functions: opts.builtins, beginEvaluation: () => undefined } : createHostBuiltins({ clock: instant, strictBuiltinErrors: opts.strictBuiltinErrors ?? bundle.manifest.metadata?.strictBuiltinErrors === true });
    preferWardenBuiltins(Object.keys(host.functions));
    const sdk = new Set(sdkBuiltinNames());
    let wasm: LoadedPolicy;
    try {
      const memory = opts.memory ?? { initial: 5, maximum: 4096 };
      const initial = Math.max(memory.initial, importedMemoryMinimum(bundle.wasm) ?? 0);
      wasm = await loadPolicy(bundle.wasm, { initial, maximum: Math.max(memory.maximum, initial) }, host.functions as Record<string, (...a: unknown[]) => unknown>);
    } catch (err) {
      throw new BundleError(`bundle ${bundle.revision}: policy.wasm does not load: ${String((err as Error)?.message ?? err)}`);
    }
    const missing = requiredBuiltins(wasm).filter((b) => !sdk.has(b) && !(b in host.functions));
    if (missing.length > 0) {
      throw new BundleError(`bundle ${bundle.revision}: the policy uses builtins this runtime does not provide: ${missing.join(', ')}`);
    }
    wasm.setData(bundle.data);
    return new Policy(bundle, wasm, () => {
      instant.begin();
      host.beginEvaluation();
    });
  }

  /** Entrypoint names the module exports. */
  get entrypoints(): string[] {
    return Object.keys(this.wasm.entrypoints);
  }

  /** Evaluate an entrypoint; `undefined` when the rule is undefined for this input. */
  evaluate(entrypoint: string, input: unknown): unknown {
    this.beforeEvaluate?.();
    let rs: Array<{ result: unknown }>;
    try {
      rs = this.run(entrypoint, input) as Array<{ result: unknown }>;
    } catch (err) {
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
