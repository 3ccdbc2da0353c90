// OPA's WebAssembly ABI (version 1, minor 2 or later), implemented directly over the documented
// imports and exports, with no SDK in between: instantiate a compiled (and metered) policy module over
// the imports it expects (`env`: memory, opa_abort, opa_println, opa_builtin0…4; `warden`: what the
// metering added), load the bundle's data once, and evaluate through an evaluation context (the ABI's
// `opa_eval_ctx_*` and `eval`) on a heap that is not reset after every evaluation (see RETAINED_HEAP_BYTES).
//
// Values cross the boundary losslessly (rego-value.ts): the result is read as value text
// (opa_value_dump), so sets keep OPA's order and integers beyond 2^53 their digits. A host builtin
// gets plain JSON (opa_json_dump + JSON.parse: the cheap path; sets as arrays, numbers as doubles)
// unless it takes exact values (builtin-operand.ts's `exact`), then RegoValues; whatever a builtin
// returns goes back through opa_value_parse, so it may return a set or an exact integer.
import { rememberAtMost } from './bounded-map.js';
import { isJsonText, takesExactValues, type HostResult } from './builtin-operand.js';
import { jsonText, readPlainJson, toOpaJson } from './opa-json.js';
import { deepFreeze, parseValueText, valueText, wellFormedJson, type OpaJson, type RegoValue } from './rego-value.js';
import { FUEL_PER_TICK, type EvaluationBudget } from './evaluation-limits.js';
import { METERING_EXPORTS, METERING_IMPORTS, PATTERN_CACHE_LIMIT } from './wasm-metering.js';

/** A host builtin as the instance calls it: synchronous, plain JSON or RegoValues in, a value out. */
export type InstanceBuiltin = (...args: any[]) => HostResult | RegoValue | OpaJson; // eslint-disable-line @typescript-eslint/no-explicit-any

/** One instance of a policy module, its data loaded, ready to evaluate. */
export interface PolicyInstance {
  readonly mem: WebAssembly.Memory;
  /** The module's builtins() table: every function it will ask the host for. */
  readonly builtins: readonly string[];
  /** Entrypoint name → id (the module's entrypoints() table). */
  readonly entrypoints: Readonly<Record<string, number>>;
  /** Bytes of heap above the data: what the evaluations since the last reset left (at most RETAINED_HEAP_BYTES and one evaluation's). */
  heapInUse(): number;
  /** The entrypoint's value for this input (JSON text; undefined: no input), or undefined when it has none. */
  evaluate(entrypoint: string, input: string | undefined): OpaJson | undefined;
}

interface AbiExports {
  memory?: WebAssembly.Memory;
  opa_wasm_abi_version?: WebAssembly.Global;
  opa_wasm_abi_minor_version?: WebAssembly.Global;
  builtins(): number;
  entrypoints(): number;
  opa_malloc(length: number): number;
  opa_json_parse(addr: number, length: number): number;
  opa_value_parse(addr: number, length: number): number;
  opa_json_dump(addr: number): number;
  opa_value_dump(addr: number): number;
  opa_heap_ptr_get(): number;
  opa_heap_ptr_set(addr: number): void;
  opa_eval_ctx_new(): number;
  opa_eval_ctx_set_input(ctx: number, value: number): void;
  opa_eval_ctx_set_data(ctx: number, value: number): void;
  opa_eval_ctx_set_entrypoint(ctx: number, entrypoint: number): void;
  opa_eval_ctx_get_result(ctx: number): number;
  eval(ctx: number): number;
}

const REQUIRED_EXPORTS = [
  'builtins', 'entrypoints', 'opa_malloc', 'opa_json_parse', 'opa_value_parse', 'opa_json_dump', 'opa_value_dump', 'opa_heap_ptr_get', 'opa_heap_ptr_set',
  'opa_eval_ctx_new', 'opa_eval_ctx_set_input', 'opa_eval_ctx_set_data', 'opa_eval_ctx_set_entrypoint', 'opa_eval_ctx_get_result', 'eval',
] as const;

/**
 * Heap the evaluations may leave behind before the next one starts from the data again. OPA keeps its
 * compiled regular expressions and globs (regex.match, glob.match, …) in a cache on the heap, and any
 * reset of the heap (`opa_heap_ptr_set`, which the one-shot `opa_eval` calls first) empties it: RE2 then
 * compiles every pattern again at every evaluation, ~90 µs each. So once an evaluation has compiled a
 * pattern, evaluations follow one another on the heap, which is reset only once they have left this much
 * behind (a decision leaves ~10 KiB) or PATTERNS_BEFORE_RESET patterns were compiled. Evaluations that
 * compile none start from the data each time, as they did under `opa_eval`. The memory's maximum has this
 * much on top of the bound, so the bound an evaluation gets is unchanged.
 */
export const RETAINED_HEAP_BYTES = 1 << 20;

/**
 * Patterns compiled (counted by the metering in `warden_patterns`: every entry of OPA's regex cache was
 * compiled since the last reset) after which the next evaluation starts from a reset heap. OPA's cache
 * holds 100 patterns, and its eviction can free the very pattern it was asked for and keep it (regex.cc's
 * `reuse`: on a hit with a full cache it deletes an arbitrary entry, then re-inserts the one in hand): a
 * full cache corrupts the heap. Resetting after a few keeps the cache far from full; the metering's trap
 * at PATTERN_CACHE_LIMIT makes sure it never fills (evaluate says what follows).
 */
export const PATTERNS_BEFORE_RESET = 24;

/**
 * Result texts an instance remembers with the value it read from each, and the longest it remembers. A
 * workload's decisions print a handful of distinct texts (an allow per operation, a denial per reason)
 * however many distinct inputs reach them: an evaluation whose text was read before gets the value read
 * then, frozen and shared, with no parse, no freeze and no shape check again (Policy.decide remembers
 * which results it checked). The text is the value, so the entrypoint and input it came from do not matter.
 */
const RESULT_TEXTS = 64;
const RESULT_TEXT_CHARS = 4096;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

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

/**
 * Instantiates a compiled policy module and loads `data` (JSON text's UTF-8). Throws when the module
 * speaks another ABI or the data does not load. A builtin the module lists but `hostFunctions` lacks
 * fails only when called (Policy.load refuses such modules first).
 */
export function instantiatePolicy(
  module: WebAssembly.Module,
  memory: { initial: number; maximum: number },
  hostFunctions: Readonly<Record<string, InstanceBuiltin>>,
  budget: EvaluationBudget,
  data: Uint8Array,
): PolicyInstance {
  // Loading the data runs WASM too; the deadline of the evaluation that was just stopped is long past.
  budget.disarm();
  const mem = new WebAssembly.Memory(memory);
  // Set right after instantiation; the imports only run once the instance exists.
  const linked: { abi?: AbiExports } = {};
  const table: Array<{ name: string; impl: InstanceBuiltin | undefined; exact: boolean }> = [];
  const cString = (addr: number): string => {
    const heap = new Uint8Array(mem.buffer);
    return decoder.decode(heap.subarray(addr, heap.indexOf(0, addr)));
  };
  const dumpJson = (addr: number): unknown => JSON.parse(cString(linked.abi!.opa_json_dump(addr)));
  const dumpValue = (addr: number): RegoValue => parseValueText(cString(linked.abi!.opa_value_dump(addr)));
  // Writes a value into the heap as value text (a superset of JSON) and parses it there.
  const load = (value: unknown, exact: boolean): number => {
    if (value === undefined) return 0;
    // jsonText is JSON.stringify unless the value holds a set or a bigint (then value text).
    const bytes = value instanceof ArrayBuffer ? new Uint8Array(value) : encoder.encode(wellFormedJson(exact ? valueText(value as RegoValue) : jsonText(value as OpaJson)));
    const addr = linked.abi!.opa_malloc(bytes.length);
    new Uint8Array(mem.buffer).set(bytes, addr);
    const parsed = linked.abi!.opa_value_parse(addr, bytes.length);
    if (parsed === 0) throw new Error('a builtin returned a value the policy cannot read');
    return parsed;
  };
  const call = (id: number, args: number[]): number => {
    const builtin = table[id];
    if (!builtin?.impl) throw new Error(`not implemented: built-in function ${builtin?.name ?? id}`);
    budget.hostCall();
    return load(builtin.impl(...args.map(builtin.exact ? dumpValue : dumpJson)), builtin.exact);
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
        const [a, b, c] = [dumpJson(s), dumpJson(old), dumpJson(replacement)];
        if (typeof a !== 'string' || typeof b !== 'string' || typeof c !== 'string') return 0;
        // Bound the result before building it: `replace(s, "", x)` multiplies the input's size.
        const matches = b === '' ? encoder.encode(a).length + 1 : a.split(b).length - 1;
        if (a.length + matches * c.length > budget.limits.memoryMiB * 1024 * 1024) throw new Error('opa_malloc: failed (replace result above the memory bound)');
        return load(opaReplace(a, b, c), false);
      },
      [METERING_IMPORTS.jsonComplete]: (addr: number): number => {
        const v = dumpJson(addr);
        return typeof v !== 'string' || isJsonText(v) ? 1 : 0;
      },
    },
  });
  const exports = instance.exports as unknown as AbiExports;
  const version = exports.opa_wasm_abi_version?.value as number | undefined;
  const minor = (exports.opa_wasm_abi_minor_version?.value as number | undefined) ?? 0;
  if (version !== 1 || minor < 2) {
    throw new Error(`unsupported OPA WASM ABI version ${String(version)}.${minor}: Warden reads ABI 1.2 or later; rebuild the bundle with a current opa`);
  }
  const lacking = REQUIRED_EXPORTS.filter((name) => typeof exports[name] !== 'function');
  if (lacking.length > 0) throw new Error(`the policy module lacks the ABI exports ${lacking.join(', ')}`);
  linked.abi = exports;
  const builtinIds = dumpJson(exports.builtins()) as Record<string, number>;
  for (const [name, id] of Object.entries(builtinIds)) {
    const impl = Object.hasOwn(hostFunctions, name) ? hostFunctions[name] : undefined;
    table[id] = { name, impl, exact: impl !== undefined && takesExactValues(impl) };
  }
  const entrypoints = dumpJson(exports.entrypoints()) as Record<string, number>;

  // Entrypoints that once gave a result JSON.parse cannot read exactly (a set, say): theirs are read
  // exactly from then on, sparing a JSON.parse that would fail and throw each time (a tools/list's view
  // is a set of names). The exact reader reads plain JSON too, only slower.
  const exactEntrypoints = new Set<number>();
  const results = new Map<string, OpaJson>();

  // The data sits at the heap's base; evaluations follow it on the heap until they leave RETAINED_HEAP_BYTES behind.
  const dataAddr = load(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer, false);
  const dataHeapPtr = exports.opa_heap_ptr_get();
  // Each evaluation starts on a full tank, so one that loops fewer than FUEL_PER_TICK turns never calls
  // the host (which reads the thread's CPU time at its first tick): without this, the fuel left by the
  // evaluations before it made every few short decisions pay a tick and a file read.
  const fuel = (instance.exports as Record<string, unknown>)[METERING_EXPORTS.fuel];
  const tank = fuel instanceof WebAssembly.Global ? fuel : undefined;
  // Absent when the module compiles no pattern or its compilations could not be counted: then every evaluation starts from the data.
  const counter = (instance.exports as Record<string, unknown>)[METERING_EXPORTS.patterns];
  const patterns = counter instanceof WebAssembly.Global ? counter : undefined;
  let unfinished = false;

  return {
    mem,
    builtins: Object.keys(builtinIds),
    entrypoints,
    heapInUse: () => exports.opa_heap_ptr_get() - dataHeapPtr,
    evaluate(entrypoint: string, input: string | undefined): OpaJson | undefined {
      const id = Object.hasOwn(entrypoints, entrypoint) ? entrypoints[entrypoint] : undefined;
      if (id === undefined) throw new Error(`the policy has no entrypoint ${entrypoint} (it has ${Object.keys(entrypoints).join(', ') || 'none'})`);
      // From the data again when no pattern was compiled since the last reset (nothing to keep: the same
      // few pages serve every evaluation, warm in the caches), after an evaluation that did not finish (an
      // abort, a builtin's error), and at the bounds above.
      const used = patterns?.value ?? 0;
      const fresh = used === 0 || used >= PATTERNS_BEFORE_RESET || unfinished || exports.opa_heap_ptr_get() - dataHeapPtr > RETAINED_HEAP_BYTES;
      try {
        return run(id, input, fresh);
      } catch (err) {
        if (!patterns || patterns.value < PATTERN_CACHE_LIMIT) throw err;
      }
      // The metering's trap at the PATTERN_CACHE_LIMIT-th pattern since the last reset: once more from the
      // data if the cache held earlier evaluations' patterns, else (or again) the evaluation fails closed.
      if (!fresh) {
        try {
          return run(id, input, true);
        } catch (err) {
          if (patterns.value < PATTERN_CACHE_LIMIT) throw err;
        }
      }
      throw new Error(`the evaluation compiles ${PATTERN_CACHE_LIMIT} or more regular expressions (regex.match, glob.match, …): OPA's WASM holds at most ${PATTERN_CACHE_LIMIT - 1} in its pattern cache without corrupting its heap, so it was stopped (fail closed)`);
    },
  };

  // One evaluation (`reset`: from the data, the pattern count at 0).
  function run(id: number, input: string | undefined, reset: boolean): OpaJson | undefined {
    if (reset) {
      exports.opa_heap_ptr_set(dataHeapPtr);
      if (patterns) patterns.value = 0;
    }
    unfinished = true;
    const ctx = exports.opa_eval_ctx_new();
    if (input !== undefined) {
      // The input's UTF-8 straight into the heap (no encoder output, no copy), then parsed there.
      const length = Buffer.byteLength(input);
      const addr = exports.opa_malloc(length);
      encoder.encodeInto(input, new Uint8Array(mem.buffer, addr, length));
      const value = exports.opa_value_parse(addr, length);
      if (value === 0) throw new Error('the policy module could not parse the input');
      exports.opa_eval_ctx_set_input(ctx, value);
    }
    exports.opa_eval_ctx_set_data(ctx, dataAddr);
    exports.opa_eval_ctx_set_entrypoint(ctx, id);
    if (tank) tank.value = FUEL_PER_TICK;
    exports.eval(ctx);
    const result = exports.opa_value_dump(exports.opa_eval_ctx_get_result(ctx));
    unfinished = false;
    return read(cString(result), id);
  }

  // The value of a result text: as read before (RESULT_TEXTS), or read now and, frozen, remembered. A text
  // past RESULT_TEXT_CHARS is read every time, and never hashed for a lookup that could not find it.
  function read(text: string, id: number): OpaJson | undefined {
    if (text.length > RESULT_TEXT_CHARS) return firstResult(text, exactEntrypoints, id);
    const known = results.get(text);
    if (known !== undefined) return known;
    const value = firstResult(text, exactEntrypoints, id);
    if (value !== undefined) rememberAtMost(results, text, deepFreeze(value), RESULT_TEXTS);
    return value;
  }
}

// The result set's value text is a set of `{"result": …}` rows (`set()` when undefined). An
// entrypoint's set holds one row, whose text is the set's less its outer braces: read as such, the
// common case is plain JSON for JSON.parse, with no copy (a concatenation would be flattened first).
// `exact`: the entrypoints whose results are read exactly (see instantiatePolicy); one joins it when
// its result is not plain JSON.
function firstResult(text: string, exact: Set<number>, entrypoint: number): OpaJson | undefined {
  if (text === 'set()') return undefined;
  if (text[0] !== '{' || text.at(-1) !== '}') throw new Error(`malformed result set from the policy module: ${text.slice(0, 80)}`);
  const inner = text.slice(1, -1);
  if (!exact.has(entrypoint)) {
    const plain = readPlainJson(inner) as { result?: OpaJson } | undefined;
    if (plain !== undefined) return plain.result;
    exact.add(entrypoint);
  }
  let row: { result?: OpaJson };
  try {
    row = toOpaJson(parseValueText(inner)) as { result?: OpaJson };
  } catch {
    row = (toOpaJson(parseValueText(`[${inner}]`)) as Array<{ result?: OpaJson }>)[0]!; // more than one row: the first
  }
  return row.result;
}
