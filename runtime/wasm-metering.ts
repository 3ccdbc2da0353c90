// Rewriting an OPA policy.wasm before it is compiled, so that no evaluation can run unbounded:
// - every `loop` starts by spending one unit of fuel from a new mutable global; when the fuel runs
//   out the loop calls the host (`warden.tick`), which checks the evaluation's deadline and memory
//   bound and either throws (the evaluation stops there) or refills the fuel. A decision that never
//   loops long never calls the host: the hot path pays a few WASM instructions per loop turn only.
//   The global is exported (`warden_fuel`) so that each evaluation starts on a full tank.
// - calls to two functions of OPA's C runtime whose WASM behaviour differs from OPA's Go code are
//   redirected to the host: `opa_strings_replace` (loops forever on an empty `old`) and
//   `opa_json_unmarshal` (accepts trailing text), found by name in the module's `name` section.
// - RE2's constructor counts its calls in a second exported global: every pattern OPA's regex cache
//   holds was compiled by it (regex.match, regex.find_all_string_submatch_n, and glob.match, which
//   matches through RE2), so the host knows how many patterns the cache may hold (wasm-abi.ts keeps
//   the heap, and that cache, from one evaluation to the next; see PATTERNS_BEFORE_RESET); and it traps
//   at PATTERN_CACHE_LIMIT, before OPA's cache could fill.
// Adding imported functions shifts every defined function's index, so every place that names a
// function (calls, ref.func, element segments, exports, start) is renumbered; the `name` section,
// whose indices would be stale, is dropped. Anything the decoder does not know is refused rather
// than passed through unmetered.

/** Raised when a module cannot be metered (an instruction or section this rewriter does not know). */
export class MeteringError extends Error {
  override name = 'MeteringError';
}

/** Host imports the metered module adds, all in module `warden`. */
export const METERING_IMPORTS = {
  /** `() -> i32`: the fuel ran out; check the limits (throw to stop) and return the new fuel. */
  tick: 'tick',
  /** `(i32, i32, i32) -> i32`: OPA's `replace(s, old, new)` on value addresses; 0 = undefined. */
  replace: 'replace',
  /** `(i32) -> i32`: 1 when the value is not a string or is exactly one JSON text, else 0. */
  jsonComplete: 'json_complete',
} as const;

/** What the metered module exports besides the policy's own exports. */
export const METERING_EXPORTS = {
  /** The fuel global (mutable i32): the host fills it before each evaluation. */
  fuel: 'warden_fuel',
  /** Patterns compiled (RE2 constructed, mutable i32): at least as many as OPA's regex cache may hold; the host reads and clears it. */
  patterns: 'warden_patterns',
} as const;

/**
 * The function every pattern in OPA's regex cache was compiled by, by its name in the `name` section:
 * regex.cc's `compile` constructs an RE2 on a miss (and `regex.is_valid` one it never caches).
 */
const PATTERN_COMPILER = 're2::RE2::RE2(re2::StringPiece const&, re2::RE2::Options const&)';

/**
 * The compilation (counted since the heap's last reset) at which the evaluation is stopped with a trap.
 * OPA's regex cache holds 100 patterns, and once full its eviction can free the very pattern in hand and
 * keep it cached (regex.cc's `reuse`): a corrupt heap, and then decisions no one can vouch for. Stopped at
 * the 100th compilation, the cache never holds more than 99 and never evicts (wasm-abi.ts says why it stopped).
 */
export const PATTERN_CACHE_LIMIT = 100;

/** What the rewrite found and did. */
export interface MeteredModule {
  wasm: Uint8Array<ArrayBuffer>;
  /** Loops instrumented. */
  loops: number;
  /** OPA runtime functions whose calls now go to the host (by C name). */
  redirected: string[];
  /**
   * Whether the module's pattern compilations are counted in `warden_patterns`: false when it has no RE2
   * (no pattern to keep) or no `name` section to find it by; the counter is then not exported, and the
   * host resets the heap before every evaluation.
   */
  patternsCounted: boolean;
}

const I32 = 0x7f;
const FUNC_TYPE = 0x60;

class Reader {
  pos: number;
  constructor(
    readonly bytes: Uint8Array,
    pos = 0,
    readonly end = bytes.length,
  ) {
    this.pos = pos;
  }
  byte(): number {
    if (this.pos >= this.end) throw new MeteringError(`policy.wasm is truncated at byte ${this.pos}`);
    return this.bytes[this.pos++]!;
  }
  u32(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      const b = this.byte();
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
      shift += 7;
      if (shift > 35) throw new MeteringError(`policy.wasm has an over-long integer at byte ${this.pos}`);
    }
  }
  /** Skips a signed LEB128 of any width. */
  skipLeb(): void {
    while (this.byte() & 0x80);
  }
  name(): string {
    const n = this.u32();
    const s = new TextDecoder().decode(this.bytes.subarray(this.pos, this.pos + n));
    this.pos += n;
    return s;
  }
  slice(from: number): Uint8Array {
    return this.bytes.subarray(from, this.pos);
  }
}

// Bytes written into one growing buffer: a policy's module is rewritten whole at every load, so the
// writer copies with TypedArray.set rather than pushing numbers one by one (3× faster on a 160 KB policy).
class Writer {
  private buf = new Uint8Array(256);
  private len = 0;
  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }
  byte(b: number): this {
    this.room(1);
    this.buf[this.len++] = b;
    return this;
  }
  u32(n: number): this {
    do {
      let b = n % 128;
      n = Math.floor(n / 128);
      if (n !== 0) b |= 0x80;
      this.byte(b);
    } while (n !== 0);
    return this;
  }
  bytes(b: ArrayLike<number>): this {
    this.room(b.length);
    if (b instanceof Uint8Array) this.buf.set(b, this.len);
    else for (let i = 0; i < b.length; i++) this.buf[this.len + i] = b[i]!;
    this.len += b.length;
    return this;
  }
  name(s: string): this {
    const b = new TextEncoder().encode(s);
    return this.u32(b.length).bytes(b);
  }
  /** Length-prefixed contents (a section's or a function body's). */
  sized(inner: Writer): this {
    return this.u32(inner.length).bytes(inner.buf.subarray(0, inner.len));
  }
  get length(): number {
    return this.len;
  }
  done(): Uint8Array<ArrayBuffer> {
    return this.buf.slice(0, this.len);
  }
}

// Immediates of each single-byte opcode that carries any (opcodes not listed carry none, except
// the ranges handled in copyInstructions).
type Immediate = 'u32' | 'blocktype' | 'brtable' | 'call' | 'calli' | 'memarg' | 'byte' | 'sleb' | 'f32' | 'f64' | 'selectt';
const IMMEDIATES = new Map<number, Immediate>([
  [0x02, 'blocktype'], [0x03, 'blocktype'], [0x04, 'blocktype'],
  [0x0c, 'u32'], [0x0d, 'u32'], [0x0e, 'brtable'],
  [0x10, 'call'], [0x11, 'calli'], [0x12, 'call'], [0x13, 'calli'],
  [0x1c, 'selectt'],
  [0x20, 'u32'], [0x21, 'u32'], [0x22, 'u32'], [0x23, 'u32'], [0x24, 'u32'], [0x25, 'u32'], [0x26, 'u32'],
  [0x3f, 'byte'], [0x40, 'byte'],
  [0x41, 'sleb'], [0x42, 'sleb'], [0x43, 'f32'], [0x44, 'f64'],
  [0xd0, 'byte'], [0xd2, 'call'],
]);
for (let op = 0x28; op <= 0x3e; op++) IMMEDIATES.set(op, 'memarg');
// 0xFC sub-opcodes: how many u32 immediates follow.
const FC_IMMEDIATES = [0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 2, 1, 2, 1, 2, 1, 1, 1];

interface Rewrite {
  /** Old function index → new one (the index shift and the redirects). */
  func(index: number): number;
  /** Code inserted right after each `loop`'s block type. */
  loopPrologue: Uint8Array;
}

// Copies an instruction sequence up to the `end` that closes it (depth 0), renumbering function
// indices and inserting the loop prologue. Returns the number of loops seen.
function copyInstructions(r: Reader, w: Writer, rw: Rewrite, until: number): number {
  let depth = 0;
  let loops = 0;
  while (r.pos < until) {
    const start = r.pos;
    const op = r.byte();
    if (op === 0x0b) {
      w.byte(op);
      if (depth === 0) return loops;
      depth--;
      continue;
    }
    if (op === 0xfc) {
      const sub = r.u32();
      const n = FC_IMMEDIATES[sub];
      if (n === undefined) throw new MeteringError(`policy.wasm uses instruction 0xfc ${sub}, which Warden cannot meter`);
      for (let i = 0; i < n; i++) r.u32();
      w.bytes(r.slice(start));
      continue;
    }
    const imm = IMMEDIATES.get(op);
    if (imm === undefined) {
      if (op > 0xd2 || (op > 0x1c && op < 0x20) || (op > 0x13 && op < 0x1a) || (op > 0x05 && op < 0x0b) || (op > 0xc4 && op < 0xd0)) {
        throw new MeteringError(`policy.wasm uses opcode 0x${op.toString(16)} at byte ${start}, which Warden cannot meter`);
      }
      w.byte(op);
      continue;
    }
    switch (imm) {
      case 'blocktype': {
        const b = r.bytes[r.pos]!;
        if (b === 0x40 || (b >= 0x6f && b <= 0x7f)) r.pos++;
        else r.skipLeb();
        depth++;
        w.bytes(r.slice(start));
        if (op === 0x03) {
          w.bytes(rw.loopPrologue);
          loops++;
        }
        break;
      }
      case 'call':
        w.byte(op).u32(rw.func(r.u32()));
        break;
      case 'calli':
        r.u32();
        r.u32();
        w.bytes(r.slice(start));
        break;
      case 'brtable': {
        const n = r.u32();
        for (let i = 0; i <= n; i++) r.u32();
        w.bytes(r.slice(start));
        break;
      }
      case 'memarg':
        r.u32();
        r.u32();
        w.bytes(r.slice(start));
        break;
      case 'selectt': {
        const n = r.u32();
        r.pos += n;
        w.bytes(r.slice(start));
        break;
      }
      case 'u32':
      case 'byte':
        r.u32();
        w.bytes(r.slice(start));
        break;
      case 'sleb':
        r.skipLeb();
        w.bytes(r.slice(start));
        break;
      case 'f32':
        r.pos += 4;
        w.bytes(r.slice(start));
        break;
      case 'f64':
        r.pos += 8;
        w.bytes(r.slice(start));
        break;
    }
  }
  throw new MeteringError('policy.wasm has an expression without its end');
}

// The function names of the `name` custom section (subsection 1), index → name.
function functionNames(r: Reader): Map<number, string> {
  const names = new Map<number, string>();
  while (r.pos < r.end) {
    const id = r.byte();
    const size = r.u32();
    const next = r.pos + size;
    if (id === 1) {
      const count = r.u32();
      for (let i = 0; i < count; i++) {
        const index = r.u32();
        names.set(index, r.name());
      }
    }
    r.pos = next;
  }
  return names;
}

interface Section {
  id: number;
  start: number;
  end: number;
}

/** Meter every loop of an OPA policy module and route the two broken runtime functions to the host. */
export function meterModule(wasm: Uint8Array, fuel: number): MeteredModule {
  if (wasm.length < 8 || wasm[0] !== 0 || wasm[1] !== 0x61 || wasm[2] !== 0x73 || wasm[3] !== 0x6d) throw new MeteringError('policy.wasm is not a WebAssembly module');
  const sections: Section[] = [];
  const r = new Reader(wasm, 8);
  let names = new Map<number, string>();
  while (r.pos < wasm.length) {
    const id = r.byte();
    const size = r.u32();
    const start = r.pos;
    sections.push({ id, start, end: start + size });
    if (id === 0) {
      const sub = new Reader(wasm, start, start + size);
      if (sub.name() === 'name') names = functionNames(new Reader(wasm, sub.pos, start + size));
    }
    r.pos = start + size;
  }
  const section = (id: number) => sections.find((s) => s.id === id);

  // Types: read them to find (or add) the three signatures the new imports and wrapper need.
  const types: Array<{ params: number[]; results: number[]; raw: Uint8Array }> = [];
  const typeSec = section(1);
  if (typeSec) {
    const t = new Reader(wasm, typeSec.start, typeSec.end);
    const count = t.u32();
    for (let i = 0; i < count; i++) {
      const from = t.pos;
      if (t.byte() !== FUNC_TYPE) throw new MeteringError('policy.wasm has a type Warden cannot meter');
      const params = Array.from({ length: t.u32() }, () => t.byte());
      const results = Array.from({ length: t.u32() }, () => t.byte());
      types.push({ params, results, raw: t.slice(from) });
    }
  }
  const typeOf = (params: number[], results: number[]): number => {
    const found = types.findIndex((t) => t.params.join() === params.join() && t.results.join() === results.join());
    if (found >= 0) return found;
    const raw = new Writer().byte(FUNC_TYPE).u32(params.length).bytes(params).u32(results.length).bytes(results).done();
    types.push({ params, results, raw });
    return types.length - 1;
  };
  const tickType = typeOf([], [I32]);
  const replaceType = typeOf([I32, I32, I32], [I32]);
  const unaryType = typeOf([I32], [I32]);

  // Imports: count the imported functions (they come first in the function index space).
  let importedFuncs = 0;
  const importSec = section(2);
  const imports: Uint8Array[] = [];
  if (importSec) {
    const m = new Reader(wasm, importSec.start, importSec.end);
    const count = m.u32();
    for (let i = 0; i < count; i++) {
      const from = m.pos;
      m.name();
      m.name();
      const kind = m.byte();
      if (kind === 0) {
        m.u32();
        importedFuncs++;
      } else if (kind === 1) {
        m.byte();
        if (m.u32() & 1) m.u32();
        m.u32();
      } else if (kind === 2) {
        if (m.u32() & 1) m.u32();
        m.u32();
      } else if (kind === 3) m.pos += 2;
      else throw new MeteringError(`policy.wasm has an import of kind ${kind}, which Warden cannot meter`);
      imports.push(m.slice(from));
    }
  }
  const added = 3;
  const tickIndex = importedFuncs;
  const replaceIndex = importedFuncs + 1;
  const completeIndex = importedFuncs + 2;

  // Defined functions' types, to check the redirected functions have the signature the host expects.
  const funcSec = section(3);
  const funcTypes: number[] = [];
  if (funcSec) {
    const f = new Reader(wasm, funcSec.start, funcSec.end);
    const count = f.u32();
    for (let i = 0; i < count; i++) funcTypes.push(f.u32());
  }
  const byName = new Map([...names].map(([i, n]) => [n, i]));
  const definedWithType = (cName: string, type: number): number | undefined => {
    const index = byName.get(cName);
    if (index === undefined || index < importedFuncs) return undefined;
    const t = types[funcTypes[index - importedFuncs]!];
    return t && t.params.join() === types[type]!.params.join() && t.results.join() === types[type]!.results.join() ? index : undefined;
  };
  const replaceFn = definedWithType('opa_strings_replace', replaceType);
  const unmarshalFn = definedWithType('opa_json_unmarshal', unaryType);
  // The json.unmarshal wrapper is a new defined function, placed after all others.
  const wrapperIndex = importedFuncs + added + funcTypes.length;
  const shift = (i: number) => (i < importedFuncs ? i : i + added);
  const redirect = (i: number): number => {
    if (i === replaceFn) return replaceIndex;
    if (i === unmarshalFn) return wrapperIndex;
    return shift(i);
  };

  // Fuel global: appended after the module's globals (it imports none, so indices stay put).
  const globalSec = section(6);
  let globalCount = 0;
  if (globalSec) globalCount = new Reader(wasm, globalSec.start, globalSec.end).u32();
  const fuelGlobal = globalCount; // valid: imported globals are refused above only if present
  const patternGlobal = globalCount + 1;
  // At the entry of RE2's constructor: global.get P; i32.const 1; i32.add; global.set P;
  // global.get P; i32.const PATTERN_CACHE_LIMIT; i32.ge_u; if; unreachable; end.
  const countPattern = new Writer()
    .byte(0x23).u32(patternGlobal).byte(0x41).byte(0x01).byte(0x6a).byte(0x24).u32(patternGlobal)
    .byte(0x23).u32(patternGlobal).byte(0x41).bytes(signedLeb(PATTERN_CACHE_LIMIT)).byte(0x4f).byte(0x04).byte(0x40).byte(0x00).byte(0x0b)
    .done();
  const compiler = byName.get(PATTERN_COMPILER);
  const countable = compiler !== undefined && compiler >= importedFuncs;
  if (imports.length > 0) {
    for (const raw of imports) {
      const m = new Reader(raw);
      m.name();
      m.name();
      if (m.byte() === 3) throw new MeteringError('policy.wasm imports a global, which Warden cannot meter');
    }
  }
  // global.get F; i32.eqz; if; call tick; global.set F; end; global.get F; i32.const 1; i32.sub; global.set F
  const loopPrologue = new Writer()
    .byte(0x23).u32(fuelGlobal).byte(0x45).byte(0x04).byte(0x40).byte(0x10).u32(tickIndex).byte(0x24).u32(fuelGlobal).byte(0x0b)
    .byte(0x23).u32(fuelGlobal).byte(0x41).byte(0x01).byte(0x6b).byte(0x24).u32(fuelGlobal)
    .done();
  const rw: Rewrite = { func: redirect, loopPrologue };

  const out = new Writer().bytes(wasm.subarray(0, 8));
  const emit = (id: number, body: Writer) => out.byte(id).sized(body);
  let loops = 0;
  let wroteImports = false;
  const writeImports = () => {
    const w = new Writer().u32(imports.length + added);
    for (const raw of imports) w.bytes(raw);
    w.name('warden').name(METERING_IMPORTS.tick).byte(0).u32(tickType);
    w.name('warden').name(METERING_IMPORTS.replace).byte(0).u32(replaceType);
    w.name('warden').name(METERING_IMPORTS.jsonComplete).byte(0).u32(unaryType);
    emit(2, w);
    wroteImports = true;
  };
  for (const s of sections) {
    const raw = wasm.subarray(s.start, s.end);
    const rd = new Reader(wasm, s.start, s.end);
    switch (s.id) {
      case 0: {
        // Custom sections pass through, except `name`, whose function indices would be stale.
        if (new Reader(wasm, s.start, s.end).name() !== 'name') emit(0, new Writer().bytes(raw));
        break;
      }
      case 1: {
        const w = new Writer().u32(types.length);
        for (const t of types) w.bytes(t.raw);
        emit(1, w);
        if (!importSec) writeImports();
        break;
      }
      case 2:
        writeImports();
        break;
      case 3: {
        const w = new Writer().u32(funcTypes.length + 1);
        for (const t of funcTypes) w.u32(t);
        w.u32(unaryType);
        emit(3, w);
        break;
      }
      case 6: {
        const count = rd.u32();
        const w = new Writer().u32(count + 2).bytes(wasm.subarray(rd.pos, s.end));
        w.byte(I32).byte(1).byte(0x41).bytes(signedLeb(fuel)).byte(0x0b);
        w.byte(I32).byte(1).byte(0x41).byte(0).byte(0x0b);
        emit(6, w);
        break;
      }
      case 7: {
        const count = rd.u32();
        const w = new Writer().u32(count + (globalSec ? (countable ? 2 : 1) : 0));
        for (let i = 0; i < count; i++) {
          const name = rd.name();
          if (name === METERING_EXPORTS.fuel || name === METERING_EXPORTS.patterns) throw new MeteringError(`policy.wasm already exports ${name}`);
          w.name(name);
          const kind = rd.byte();
          const index = rd.u32();
          w.byte(kind).u32(kind === 0 ? shift(index) : index);
        }
        if (globalSec) w.name(METERING_EXPORTS.fuel).byte(3).u32(fuelGlobal);
        if (globalSec && countable) w.name(METERING_EXPORTS.patterns).byte(3).u32(patternGlobal);
        emit(7, w);
        break;
      }
      case 8:
        emit(8, new Writer().u32(shift(rd.u32())));
        break;
      case 9:
        emit(9, rewriteElements(rd, rw));
        break;
      case 10: {
        const count = rd.u32();
        const w = new Writer().u32(count + 1);
        for (let i = 0; i < count; i++) {
          const size = rd.u32();
          const end = rd.pos + size;
          const body = new Writer();
          const localsFrom = rd.pos;
          const groups = rd.u32();
          for (let g = 0; g < groups; g++) {
            rd.u32();
            rd.byte();
          }
          body.bytes(rd.slice(localsFrom));
          if (countable && importedFuncs + i === compiler) body.bytes(countPattern);
          loops += copyInstructions(rd, body, rw, end);
          if (rd.pos !== end) throw new MeteringError(`policy.wasm function ${i} has bytes after its end`);
          w.sized(body);
        }
        // The json.unmarshal wrapper: local.get 0; call complete; if (result i32) local.get 0; call orig; else i32.const 0; end
        const wrapper = new Writer().u32(0);
        if (unmarshalFn !== undefined) {
          wrapper.byte(0x20).u32(0).byte(0x10).u32(completeIndex).byte(0x04).byte(I32);
          wrapper.byte(0x20).u32(0).byte(0x10).u32(shift(unmarshalFn)).byte(0x05).byte(0x41).byte(0).byte(0x0b);
        } else wrapper.byte(0x41).byte(0);
        wrapper.byte(0x0b);
        w.sized(wrapper);
        emit(10, w);
        break;
      }
      default:
        emit(s.id, new Writer().bytes(raw));
    }
  }
  if (!wroteImports) throw new MeteringError('policy.wasm has no type section');
  if (!globalSec) throw new MeteringError('policy.wasm has no global section (not an OPA policy module)');
  if (!funcSec || !section(10)) throw new MeteringError('policy.wasm defines no functions (not an OPA policy module)');
  const redirected = [replaceFn !== undefined ? 'opa_strings_replace' : '', unmarshalFn !== undefined ? 'opa_json_unmarshal' : ''].filter(Boolean);
  return { wasm: out.done(), loops, redirected, patternsCounted: countable };
}

function signedLeb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

// Element segments (all eight encodings): function indices and ref.func expressions renumbered.
function rewriteElements(r: Reader, rw: Rewrite): Writer {
  const count = r.u32();
  const w = new Writer().u32(count);
  const expr = () => copyInstructions(r, w, rw, r.end);
  for (let i = 0; i < count; i++) {
    const flags = r.u32();
    w.u32(flags);
    if (flags > 7) throw new MeteringError(`policy.wasm has an element segment of kind ${flags}, which Warden cannot meter`);
    if (flags === 2 || flags === 6) w.u32(r.u32()); // table index
    if ((flags & 1) === 0) expr(); // offset
    if (flags & 3) w.byte(r.byte()); // elemkind or reftype
    const n = r.u32();
    w.u32(n);
    for (let j = 0; j < n; j++) {
      if (flags & 4) expr();
      else w.u32(rw.func(r.u32()));
    }
  }
  return w;
}
