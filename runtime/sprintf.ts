// Rego's `sprintf` as OPA's Go evaluator computes it: OPA hands each Rego value to Go's fmt.Sprintf
// as an int64 (integral numbers), *big.Int (integers beyond int64), float64 (other numbers), string
// (strings), or — for everything else — the string of the value's Rego syntax. This module
// reproduces Go's fmt over those four argument types so that WASM decisions read exactly like
// `opa eval`'s (Gatekeeper messages rely on `%v`). It takes exact values (rego-value.ts): a number's
// spelling decides int or float as in Go (`1e2` is a float), sets print as Go prints them.

import { RegoNumber, RegoObject, RegoSet, type RegoValue } from './rego-value.js';
import { compareCodePoints, compareValues } from './value-order.js';

export { compareCodePoints } from './value-order.js';

/** A Rego value as host builtins that do not take exact values receive it: plain JSON (sets as arrays). */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** One operand of Go's fmt, typed as Go sees it (json.Number is a string kind that keeps its own name). */
export type GoArg =
  | { type: 'int64'; value: bigint }
  | { type: '*big.Int'; value: bigint }
  | { type: 'float64'; value: number }
  | { type: 'string' | 'json.Number'; value: string };

const INT64_MAX = 2n ** 63n - 1n;
const INT64_MIN = -(2n ** 63n);

/** Formats `format` with `args` the way OPA's Go `sprintf` does. */
export function sprintf(format: string, args: readonly RegoValue[]): string {
  if (typeof format !== 'string') throw new TypeError('sprintf: operand 1 must be string');
  if (!Array.isArray(args)) throw new TypeError('sprintf: operand 2 must be array');
  return new Printer(args.map(toGoArg)).print(format);
}

/** Go's fmt.Sprintf over operands already typed as Go values (text/template's printf). */
export function sprintfGoArgs(format: string, args: readonly GoArg[]): string {
  return new Printer(args).print(format);
}

function toGoArg(value: RegoValue): GoArg {
  if (typeof value === 'string') return { type: 'string', value };
  if (value instanceof RegoNumber) {
    // OPA tries int64 on the number's text, then big.Int, then float64, then prints the text itself (2e308).
    if (value.isInteger) {
      const n = BigInt(value.text);
      return { type: n >= INT64_MIN && n <= INT64_MAX ? 'int64' : '*big.Int', value: n };
    }
    const f = Number(value.text);
    return Number.isFinite(f) ? { type: 'float64', value: f } : { type: 'string', value: value.text };
  }
  if (typeof value === 'number') {
    // A plain number is an integer's text within 2^53 when it comes from the module; a caller's double
    // stands in for its text. Integral doubles from 1e21 on are taken as floats: JS itself writes them
    // in exponent form.
    if (Number.isInteger(value) && Math.abs(value) < 1e21) {
      const n = BigInt(value);
      if (n >= INT64_MIN && n <= INT64_MAX) return { type: 'int64', value: n };
      return { type: '*big.Int', value: n };
    }
    return { type: 'float64', value };
  }
  return { type: 'string', value: regoString(value) };
}

/** The text of a value in Rego syntax, as OPA's `ast.Value.String()` writes it. */
export function regoString(value: RegoValue): string {
  if (value === null) return 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') return numberText(value);
  if (typeof value === 'string') return goQuote(value, false);
  if (Array.isArray(value)) return `[${value.map(regoString).join(', ')}]`;
  if (value instanceof RegoNumber) return value.text;
  if (value instanceof RegoSet) return value.members.length === 0 ? 'set()' : `{${[...value.members].sort(compareValues).map(regoString).join(', ')}}`;
  if (value instanceof RegoObject) {
    const sorted = [...value.entries].sort(([p], [q]) => compareValues(p, q));
    return `{${sorted.map(([k, v]) => `${regoString(k)}: ${regoString(v)}`).join(', ')}}`;
  }
  const keys = Object.keys(value).sort(compareCodePoints);
  return `{${keys.map((k) => `${goQuote(k, false)}: ${regoString(value[k]!)}`).join(', ')}}`;
}

function numberText(n: number): string {
  return Object.is(n, -0) ? '0' : String(n);
}

// Go's unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space.
const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S} ]$/u;

function isPrint(cp: number): boolean {
  return PRINTABLE.test(String.fromCodePoint(cp));
}

function escapeRune(cp: number, quote: string, asciiOnly: boolean): string {
  const ch = String.fromCodePoint(cp);
  if (ch === quote || ch === '\\') return `\\${ch}`;
  if (asciiOnly ? cp < 0x80 && isPrint(cp) : isPrint(cp)) return ch;
  switch (ch) {
    case '\x07': return '\\a';
    case '\b': return '\\b';
    case '\f': return '\\f';
    case '\n': return '\\n';
    case '\r': return '\\r';
    case '\t': return '\\t';
    case '\v': return '\\v';
  }
  if (cp < 0x20 || cp === 0x7f) return `\\x${hex(cp, 2)}`;
  if (cp < 0x10000) return `\\u${hex(cp, 4)}`;
  return `\\U${hex(cp, 8)}`;
}

function hex(n: number, width: number): string {
  return n.toString(16).padStart(width, '0');
}

/** strconv.Quote (or QuoteToASCII when `asciiOnly`). */
export function goQuote(s: string, asciiOnly: boolean): string {
  let out = '"';
  for (const ch of s) out += escapeRune(ch.codePointAt(0) ?? 0xfffd, '"', asciiOnly);
  return `${out}"`;
}

function quoteRune(cp: number, asciiOnly: boolean): string {
  return `'${escapeRune(cp, "'", asciiOnly)}'`;
}

function runeCount(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

const MAX_RUNE = 0x10ffff;
const RUNE_ERROR = 0xfffd;

function validRune(n: bigint): number {
  if (n < 0n || n > BigInt(MAX_RUNE)) return RUNE_ERROR;
  const cp = Number(n);
  return cp >= 0xd800 && cp <= 0xdfff ? RUNE_ERROR : cp;
}

interface Flags {
  plus: boolean;
  minus: boolean;
  sharp: boolean;
  space: boolean;
  zero: boolean;
  wid: number;
  widPresent: boolean;
  prec: number;
  precPresent: boolean;
}

function cleanFlags(): Flags {
  return { plus: false, minus: false, sharp: false, space: false, zero: false, wid: 0, widPresent: false, prec: 0, precPresent: false };
}

const TOO_LARGE = 1e6;

// Follows the structure of Go's fmt.(*pp).doPrintf so that malformed formats degrade identically.
class Printer {
  private out = '';
  private f: Flags = cleanFlags();
  private reordered = false;
  private goodArgNum = true;

  constructor(private readonly args: readonly GoArg[]) {}

  print(format: string): string {
    // Go walks bytes; walking UTF-16 units is equivalent because every syntax character is ASCII.
    const end = format.length;
    let argNum = 0;
    let i = 0;
    this.reordered = false;
    while (i < end) {
      this.goodArgNum = true;
      const lasti = i;
      while (i < end && format[i] !== '%') i++;
      if (i > lasti) this.out += format.slice(lasti, i);
      if (i >= end) break;
      i++; // skip %
      this.f = cleanFlags();
      flags: for (; i < end; i++) {
        switch (format[i]) {
          case '#': this.f.sharp = true; break;
          case '0': this.f.zero = !this.f.minus; break;
          case '+': this.f.plus = true; break;
          case '-': this.f.minus = true; this.f.zero = false; break;
          case ' ': this.f.space = true; break;
          default: break flags;
        }
      }
      let afterIndex: boolean;
      [argNum, i, afterIndex] = this.argNumber(argNum, format, i);

      if (i < end && format[i] === '*') {
        i++;
        let w: number;
        [w, this.f.widPresent, argNum] = this.intFromArg(argNum);
        this.f.wid = w;
        if (!this.f.widPresent) this.out += '%!(BADWIDTH)';
        if (this.f.wid < 0) {
          this.f.wid = -this.f.wid;
          this.f.minus = true;
          this.f.zero = false;
        }
        afterIndex = false;
      } else {
        [this.f.wid, this.f.widPresent, i] = parseNum(format, i, end);
        if (afterIndex && this.f.widPresent) this.goodArgNum = false;
      }

      if (i + 1 <= end && format[i] === '.') {
        i++;
        if (afterIndex) this.goodArgNum = false;
        [argNum, i, afterIndex] = this.argNumber(argNum, format, i);
        if (i < end && format[i] === '*') {
          i++;
          [this.f.prec, this.f.precPresent, argNum] = this.intFromArg(argNum);
          if (this.f.prec < 0) {
            this.f.prec = 0;
            this.f.precPresent = false;
          }
          if (!this.f.precPresent) this.out += '%!(BADPREC)';
          afterIndex = false;
        } else {
          [this.f.prec, this.f.precPresent, i] = parseNum(format, i, end);
          if (!this.f.precPresent) {
            this.f.prec = 0;
            this.f.precPresent = true;
          }
        }
      }

      if (!afterIndex) [argNum, i, afterIndex] = this.argNumber(argNum, format, i);

      if (i >= end) {
        this.out += '%!(NOVERB)';
        break;
      }
      const verbCp = format.codePointAt(i) ?? 0;
      const verb = String.fromCodePoint(verbCp);
      i += verb.length;

      if (verb === '%') {
        this.out += '%';
      } else if (!this.goodArgNum) {
        this.out += `%!${verb}(BADINDEX)`;
      } else if (argNum >= this.args.length) {
        this.out += `%!${verb}(MISSING)`;
      } else {
        if (verb === 'v') {
          // %#v and %+v only change how Go prints structs and strings quoted; model %#v as %q below.
          this.sharpV = this.f.sharp;
          this.f.sharp = false;
          this.f.plus = false;
        }
        this.printArg(this.args[argNum] as GoArg, verb);
        this.sharpV = false;
        argNum++;
      }
    }
    if (!this.reordered && argNum < this.args.length) {
      this.f = cleanFlags();
      this.out += '%!(EXTRA ';
      this.args.slice(argNum).forEach((arg, k) => {
        if (k > 0) this.out += ', ';
        this.out += `${arg.type}=`;
        this.printArg(arg, 'v');
      });
      this.out += ')';
    }
    return this.out;
  }

  private sharpV = false;

  private argNumber(argNum: number, format: string, i: number): [number, number, boolean] {
    if (format.length <= i || format[i] !== '[') return [argNum, i, false];
    this.reordered = true;
    const [index, wid, ok] = parseArgNumber(format.slice(i));
    if (ok && index >= 0 && index < this.args.length) return [index, i + wid, true];
    this.goodArgNum = false;
    return [argNum, i + wid, ok];
  }

  private intFromArg(argNum: number): [number, boolean, number] {
    if (argNum < this.args.length) {
      const arg = this.args[argNum] as GoArg;
      if (arg.type === 'int64') {
        const n = Number(arg.value);
        const ok = n <= TOO_LARGE && n >= -TOO_LARGE;
        return [ok ? n : 0, ok, argNum + 1];
      }
      return [0, false, argNum + 1];
    }
    return [0, false, argNum];
  }

  private printArg(arg: GoArg, verb: string): void {
    if (verb === 'T') {
      this.fmtS(arg.type);
      return;
    }
    if (verb === 'p') {
      this.badVerb(arg, verb);
      return;
    }
    switch (arg.type) {
      case 'int64': this.fmtInteger(arg, verb); return;
      case '*big.Int': this.fmtBigInt(arg.value, verb); return;
      case 'float64': this.fmtFloatVerb(arg, verb); return;
      case 'string': case 'json.Number': this.fmtString(arg, verb); return;
    }
  }

  private badVerb(arg: GoArg, verb: string): void {
    this.out += `%!${verb}(${arg.type}=`;
    const saved = this.sharpV;
    this.sharpV = false;
    this.printArg(arg, 'v');
    this.sharpV = saved;
    this.out += ')';
  }

  private writePadding(n: number): void {
    if (n <= 0) return;
    this.out += (this.f.zero && !this.f.minus ? '0' : ' ').repeat(n);
  }

  private pad(s: string): void {
    if (!this.f.widPresent || this.f.wid === 0) {
      this.out += s;
      return;
    }
    const width = this.f.wid - runeCount(s);
    if (!this.f.minus) {
      this.writePadding(width);
      this.out += s;
    } else {
      this.out += s;
      this.writePadding(width);
    }
  }

  private truncate(s: string): string {
    if (!this.f.precPresent) return s;
    return Array.from(s).slice(0, this.f.prec).join('');
  }

  private fmtS(s: string): void {
    this.pad(this.truncate(s));
  }

  private fmtString(arg: GoArg & { type: 'string' | 'json.Number' }, verb: string): void {
    switch (verb) {
      case 'v': if (this.sharpV) this.fmtQ(arg.value); else this.fmtS(arg.value); return;
      case 's': this.fmtS(arg.value); return;
      case 'x': this.fmtSx(arg.value, false); return;
      case 'X': this.fmtSx(arg.value, true); return;
      case 'q': this.fmtQ(arg.value); return;
      default: this.badVerb(arg, verb);
    }
  }

  private fmtQ(s: string): void {
    const t = this.truncate(s);
    if (this.f.sharp && canBackquote(t)) this.pad(`\`${t}\``);
    else this.pad(goQuote(t, this.f.plus));
  }

  private fmtSx(s: string, upper: boolean): void {
    const bytes = Buffer.from(s, 'utf8');
    let length = bytes.length;
    if (this.f.precPresent && this.f.prec < length) length = this.f.prec;
    let width = 2 * length;
    if (width > 0) {
      if (this.f.space) {
        if (this.f.sharp) width *= 2;
        width += length - 1;
      } else if (this.f.sharp) {
        width += 2;
      }
    } else {
      if (this.f.widPresent) this.writePadding(this.f.wid);
      return;
    }
    if (this.f.widPresent && this.f.wid > width && !this.f.minus) this.writePadding(this.f.wid - width);
    const prefix = upper ? '0X' : '0x';
    let body = this.f.sharp ? prefix : '';
    for (let k = 0; k < length; k++) {
      if (this.f.space && k > 0) body += this.f.sharp ? ` ${prefix}` : ' ';
      const h = hex(bytes[k] ?? 0, 2);
      body += upper ? h.toUpperCase() : h;
    }
    this.out += body;
    if (this.f.widPresent && this.f.wid > width && this.f.minus) this.writePadding(this.f.wid - width);
  }

  private fmtInteger(arg: GoArg & { type: 'int64' }, verb: string): void {
    const v = arg.value;
    switch (verb) {
      case 'v': case 'd': this.fmtIntBase(v, 10, verb, false); return;
      case 'b': this.fmtIntBase(v, 2, verb, false); return;
      case 'o': case 'O': this.fmtIntBase(v, 8, verb, false); return;
      case 'x': this.fmtIntBase(v, 16, verb, false); return;
      case 'X': this.fmtIntBase(v, 16, verb, true); return;
      case 'c': this.pad(String.fromCodePoint(validRune(BigInt.asUintN(64, v)))); return;
      case 'q': this.pad(quoteRune(validRune(BigInt.asUintN(64, v)), this.f.plus)); return;
      case 'U': this.fmtUnicode(BigInt.asUintN(64, v)); return;
      default: this.badVerb(arg, verb);
    }
  }

  private fmtIntBase(v: bigint, base: number, verb: string, upper: boolean): void {
    const negative = v < 0n;
    const u = negative ? -v : v;
    let prec = 0;
    if (this.f.precPresent) {
      prec = this.f.prec;
      if (prec === 0 && u === 0n) {
        const oldZero = this.f.zero;
        this.f.zero = false;
        this.writePadding(this.f.wid);
        this.f.zero = oldZero;
        return;
      }
    } else if (this.f.zero && !this.f.minus && this.f.widPresent) {
      prec = this.f.wid;
      if (negative || this.f.plus || this.f.space) prec--;
    }
    let digits = u.toString(base);
    if (upper) digits = digits.toUpperCase();
    if (digits.length < prec) digits = '0'.repeat(prec - digits.length) + digits;
    if (this.f.sharp) {
      if (base === 2) digits = `0b${digits}`;
      else if (base === 8 && !digits.startsWith('0')) digits = `0${digits}`;
      else if (base === 16) digits = (upper ? '0X' : '0x') + digits;
    }
    if (verb === 'O') digits = `0o${digits}`;
    if (negative) digits = `-${digits}`;
    else if (this.f.plus) digits = `+${digits}`;
    else if (this.f.space) digits = ` ${digits}`;
    const oldZero = this.f.zero;
    this.f.zero = false;
    this.pad(digits);
    this.f.zero = oldZero;
  }

  private fmtUnicode(u: bigint): void {
    let digits = u.toString(16).toUpperCase();
    const prec = this.f.precPresent && this.f.prec > 4 ? this.f.prec : 4;
    if (digits.length < prec) digits = '0'.repeat(prec - digits.length) + digits;
    let s = `U+${digits}`;
    if (this.f.sharp && u <= BigInt(MAX_RUNE) && isPrint(Number(u))) s += ` '${String.fromCodePoint(Number(u))}'`;
    const oldZero = this.f.zero;
    this.f.zero = false;
    this.pad(s);
    this.f.zero = oldZero;
  }

  // math/big's Int.Format: its own padding rules, and bad verbs ignore width.
  private fmtBigInt(x: bigint, verb: string): void {
    let base: number;
    switch (verb) {
      case 'b': base = 2; break;
      case 'o': case 'O': base = 8; break;
      case 'd': case 's': case 'v': base = 10; break;
      case 'x': case 'X': base = 16; break;
      default:
        this.out += `%!${verb}(big.Int=${x.toString()})`;
        return;
    }
    const sign = x < 0n ? '-' : this.f.plus ? '+' : this.f.space ? ' ' : '';
    let prefix = '';
    if (this.f.sharp) prefix = ({ b: '0b', o: '0', x: '0x', X: '0X' } as Record<string, string>)[verb] ?? '';
    if (verb === 'O') prefix = '0o';
    let digits = (x < 0n ? -x : x).toString(base);
    if (verb === 'X') digits = digits.toUpperCase();
    let zeros = 0;
    if (this.f.precPresent) {
      if (digits.length < this.f.prec) zeros = this.f.prec - digits.length;
      else if (digits === '0' && this.f.prec === 0) return;
    }
    let left = 0;
    let right = 0;
    const length = sign.length + prefix.length + zeros + digits.length;
    if (this.f.widPresent && length < this.f.wid) {
      const d = this.f.wid - length;
      if (this.f.minus) right = d;
      else if (this.f.zero && !this.f.precPresent) zeros = d;
      else left = d;
    }
    this.out += ' '.repeat(left) + sign + prefix + '0'.repeat(zeros) + digits + ' '.repeat(right);
  }

  private fmtFloatVerb(arg: GoArg & { type: 'float64' }, verb: string): void {
    switch (verb) {
      case 'v': this.fmtFloat(arg.value, 'g', -1); return;
      case 'b': case 'g': case 'G': case 'x': case 'X': this.fmtFloat(arg.value, verb, -1); return;
      case 'f': case 'e': case 'E': this.fmtFloat(arg.value, verb, 6); return;
      case 'F': this.fmtFloat(arg.value, 'f', 6); return;
      default: this.badVerb(arg, verb);
    }
  }

  private fmtFloat(v: number, verb: string, defaultPrec: number): void {
    const prec = this.f.precPresent ? this.f.prec : defaultPrec;
    let num = formatFloat(v, verb, prec);
    if (num[0] !== '-' && num[0] !== '+') num = `+${num}`;
    if (this.f.space && num[0] === '+' && !this.f.plus) num = ` ${num.slice(1)}`;
    if (this.f.sharp && verb !== 'b') num = sharpFloat(num, verb, prec);
    if (this.f.plus || num[0] !== '+') {
      if (this.f.zero && !this.f.minus && this.f.widPresent && this.f.wid > num.length) {
        this.out += num[0];
        this.writePadding(this.f.wid - num.length);
        this.out += num.slice(1);
        return;
      }
      this.pad(num);
      return;
    }
    this.pad(num.slice(1));
  }
}

// The '#' flag on floats: keep a decimal point and pad %g/%x to their precision with zeros.
function sharpFloat(num: string, verb: string, prec: number): string {
  let digits = 0;
  if (verb === 'v' || verb === 'g' || verb === 'G' || verb === 'x') digits = prec === -1 ? 6 : prec;
  let tail = '';
  let body = num;
  let hasPoint = false;
  let sawNonzero = false;
  for (let k = 1; k < body.length; k++) {
    const c = body[k];
    if (c === '.') {
      hasPoint = true;
      continue;
    }
    if (c === 'p' || c === 'P' || ((c === 'e' || c === 'E') && verb !== 'x' && verb !== 'X')) {
      tail = body.slice(k);
      body = body.slice(0, k);
      break;
    }
    if (c !== '0') sawNonzero = true;
    if (sawNonzero) digits--;
  }
  if (!hasPoint) {
    if (body.length === 2 && body[1] === '0') digits--;
    body += '.';
  }
  while (digits > 0) {
    body += '0';
    digits--;
  }
  return body + tail;
}

function canBackquote(s: string): boolean {
  for (const ch of s) {
    const cp = ch.codePointAt(0) ?? 0;
    if (ch === '`' || cp === 0xfeff) return false;
    if (cp < 0x20 && ch !== '\t') return false;
    if (cp === 0x7f) return false;
  }
  return true;
}

function parseNum(s: string, start: number, end: number): [number, boolean, number] {
  if (start >= end) return [0, false, end];
  let num = 0;
  let isnum = false;
  let i = start;
  for (; i < end && s[i]! >= '0' && s[i]! <= '9'; i++) {
    if (num > TOO_LARGE || num < -TOO_LARGE) return [0, false, end];
    num = num * 10 + (s.charCodeAt(i) - 48);
    isnum = true;
  }
  return [num, isnum, i];
}

function parseArgNumber(format: string): [number, number, boolean] {
  if (format.length < 3) return [0, 1, false];
  for (let i = 1; i < format.length; i++) {
    if (format[i] === ']') {
      const [width, ok, newi] = parseNum(format, 1, i);
      if (!ok || newi !== i) return [0, i + 1, false];
      return [width - 1, i + 1, true];
    }
  }
  return [0, 1, false];
}

// ---- strconv.FormatFloat for float64, exact (digits come from BigInt arithmetic, not toFixed,
// because JS rounds decimal ties away from zero where Go rounds them to even).

interface Decimal {
  digits: string; // no leading zeros; '' for zero
  dp: number; // value = 0.digits × 10^dp
}

function floatBits(v: number): { neg: boolean; mant: bigint; exp: number } {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, v);
  const bits = view.getBigUint64(0);
  const neg = bits >> 63n === 1n;
  let exp = Number((bits >> 52n) & 0x7ffn);
  let mant = bits & ((1n << 52n) - 1n);
  if (exp === 0) exp++;
  else mant |= 1n << 52n;
  return { neg, mant, exp: exp - 1023 };
}

function exactDecimal(v: number): Decimal {
  if (v === 0) return { digits: '', dp: 0 };
  const { mant, exp } = floatBits(v);
  const e = exp - 52; // v = mant × 2^e
  let digits: string;
  let dp: number;
  if (e >= 0) {
    digits = (mant << BigInt(e)).toString();
    dp = digits.length;
  } else {
    digits = (mant * 5n ** BigInt(-e)).toString();
    dp = digits.length + e;
  }
  return trimZeros({ digits, dp });
}

function trimZeros(d: Decimal): Decimal {
  const digits = d.digits.replace(/0+$/, '');
  return digits === '' ? { digits: '', dp: 0 } : { digits, dp: d.dp };
}

function shortestDecimal(v: number): Decimal {
  if (v === 0) return { digits: '', dp: 0 };
  const [mantissa = '', exponent = '0'] = v.toExponential().split('e');
  return trimZeros({ digits: mantissa.replace('.', ''), dp: Number(exponent) + 1 });
}

// Round to nd significant digits, ties to even, as strconv's decimal.Round.
function roundDecimal(d: Decimal, nd: number): Decimal {
  if (nd < 0) return { digits: '', dp: 0 };
  if (nd >= d.digits.length) return d;
  const next = d.digits[nd] ?? '0';
  let up: boolean;
  if (next === '5' && nd + 1 === d.digits.length) up = nd > 0 && Number(d.digits[nd - 1]) % 2 === 1;
  else up = next >= '5';
  if (!up) return trimZeros({ digits: d.digits.slice(0, nd), dp: d.dp });
  const kept = d.digits.slice(0, nd).split('');
  let k = nd - 1;
  for (; k >= 0 && kept[k] === '9'; k--) kept.pop();
  if (k < 0) return { digits: '1', dp: d.dp + 1 };
  kept[k] = String(Number(kept[k]) + 1);
  return trimZeros({ digits: kept.join(''), dp: d.dp });
}

/** strconv.FormatFloat(v, fmt, prec, 64) for fmt in e E f g G b x X. */
export function formatFloat(v: number, fmt: string, prec: number): string {
  const { neg, mant, exp } = floatBits(v);
  if (fmt === 'b') {
    const e = exp - 52;
    return `${neg ? '-' : ''}${v === 0 ? 0 : mant}p${e >= 0 ? '+' : '-'}${Math.abs(v === 0 ? -1074 : e)}`;
  }
  if (fmt === 'x' || fmt === 'X') return fmtX(prec, fmt, neg, v === 0 ? 0n : mant, exp);
  const a = Math.abs(v);
  const shortest = prec < 0;
  let d: Decimal;
  if (shortest) {
    d = shortestDecimal(a);
    const nd = d.digits.length;
    if (fmt === 'e' || fmt === 'E') prec = Math.max(nd - 1, 0);
    else if (fmt === 'f') prec = Math.max(nd - d.dp, 0);
    else prec = nd;
  } else {
    const exact = exactDecimal(a);
    if (fmt === 'e' || fmt === 'E') d = roundDecimal(exact, prec + 1);
    else if (fmt === 'f') d = roundDecimal(exact, exact.dp + prec);
    else {
      if (prec === 0) prec = 1;
      d = roundDecimal(exact, prec);
    }
  }
  const sign = neg ? '-' : '';
  if (fmt === 'e' || fmt === 'E') return sign + fmtE(d, prec, fmt);
  if (fmt === 'f') return sign + fmtF(d, prec);
  const nd = d.digits.length;
  let eprec = prec;
  if (eprec > nd && nd >= d.dp) eprec = nd;
  if (shortest) eprec = 6;
  const e10 = d.dp - 1;
  if (e10 < -4 || e10 >= eprec) {
    if (prec > nd) prec = nd;
    return sign + fmtE(d, prec - 1, fmt === 'g' ? 'e' : 'E');
  }
  if (prec > d.dp) prec = nd;
  return sign + fmtF(d, Math.max(prec - d.dp, 0));
}

function fmtE(d: Decimal, prec: number, fmt: string): string {
  const nd = d.digits.length;
  let s = nd === 0 ? '0' : (d.digits[0] ?? '0');
  if (prec > 0) {
    s += '.';
    const m = Math.min(nd, prec + 1);
    s += d.digits.slice(1, Math.max(m, 1));
    s += '0'.repeat(Math.max(prec + 1 - Math.max(m, 1), 0));
  }
  let e = nd === 0 ? 0 : d.dp - 1;
  const esign = e < 0 ? '-' : '+';
  e = Math.abs(e);
  return `${s}${fmt}${esign}${e < 10 ? `0${e}` : e}`;
}

function fmtF(d: Decimal, prec: number): string {
  const nd = d.digits.length;
  let s: string;
  if (d.dp > 0) {
    s = d.digits.slice(0, Math.min(nd, d.dp)) + '0'.repeat(Math.max(d.dp - nd, 0));
  } else {
    s = '0';
  }
  if (prec > 0) {
    s += '.';
    for (let i = 1; i <= prec; i++) {
      const j = d.dp + i - 1;
      s += j >= 0 && j < nd ? d.digits[j] : '0';
    }
  }
  return s;
}

// Hexadecimal mantissa and binary exponent (%x on floats), with Go's round-half-even on bits.
function fmtX(prec: number, fmt: string, neg: boolean, mantIn: bigint, expIn: number): string {
  const U64 = (1n << 64n) - 1n;
  let mant = mantIn;
  let exp = mantIn === 0n ? 0 : expIn;
  mant = (mant << 8n) & U64; // leading 1 from bit 52 to bit 60
  while (mant !== 0n && (mant & (1n << 60n)) === 0n) {
    mant = (mant << 1n) & U64;
    exp--;
  }
  if (prec >= 0 && prec < 15) {
    const shift = BigInt(prec * 4);
    const extra = (mant << shift) & ((1n << 60n) - 1n);
    mant >>= 60n - shift;
    if ((extra | (mant & 1n)) > 1n << 59n) mant++;
    mant = (mant << (60n - shift)) & U64;
    if ((mant & (1n << 61n)) !== 0n) {
      mant >>= 1n;
      exp++;
    }
  }
  const digitsOf = (n: bigint): string => {
    const h = n.toString(16);
    return fmt === 'X' ? h.toUpperCase() : h;
  };
  let s = `${neg ? '-' : ''}0${fmt}${(mant >> 60n) & 1n}`;
  mant = (mant << 4n) & U64;
  if (prec < 0 && mant !== 0n) {
    s += '.';
    while (mant !== 0n) {
      s += digitsOf((mant >> 60n) & 15n);
      mant = (mant << 4n) & U64;
    }
  } else if (prec > 0) {
    s += '.';
    for (let k = 0; k < prec; k++) {
      s += digitsOf((mant >> 60n) & 15n);
      mant = (mant << 4n) & U64;
    }
  }
  s += fmt === 'X' ? 'P' : 'p';
  s += exp < 0 ? '-' : '+';
  const e = Math.abs(exp);
  return s + (e < 10 ? `0${e}` : String(e));
}
