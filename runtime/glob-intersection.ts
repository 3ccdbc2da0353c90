// regex.globs_match: whether two globs share a string, as OPA decides it with its library
// (yashtewari/glob-intersection v0.2.0): a glob is a sequence of tokens (a character, `.` for any
// character, or a `[…]` set with ranges; `\` escapes), each optionally followed by `+` or `*`.
// This is a port of that library's algorithm, quirks included, because the answer must be OPA's
// rather than the exact intersection of the two languages. Two bounds the library lacks, so that
// hostile input cannot stall a pod: sets are kept as ranges (never expanded rune by rune), and the
// search gives up with a builtin error after MAX_STEPS steps.
import { BuiltinError } from './builtin-operand.js';

const BUILTIN = 'regex.globs_match';
const MAX_STEPS = 200_000;

type Flag = 'none' | 'plus' | 'star';
// The type order matters: Match orders its operands character < dot < set.
type Token = { type: 0; rune: number; flag: Flag } | { type: 1; flag: Flag } | { type: 2; ranges: Array<[number, number]>; flag: Flag };

function invalid(input: number[], pos: number, message: string): never {
  throw new BuiltinError(BUILTIN, `input:${String.fromCodePoint(...input)}, pos:${pos}, ${message}: the input provided is invalid`);
}

// The next rune at `i`: [index after it, rune, escaped]; undefined at the end of the input.
function nextRune(input: number[], i: number): [number, number, boolean] | undefined {
  if (i >= input.length) return undefined;
  if (input[i] === 0x5c) {
    if (i === input.length - 1) invalid(input, i, 'input ends with a \\ (escape) character');
    return [i + 2, input[i + 1]!, true];
  }
  return [i + 1, input[i]!, false];
}

function tokenizeSet(input: number[], start: number): [number, Token] {
  const ranges: Array<[number, number]> = [];
  let prev: number | undefined;
  let i = start;
  for (let next = nextRune(input, i); next; next = nextRune(input, i)) {
    const [after, r, escaped] = next;
    i = after;
    if (!escaped && r === 0x2d /* - */) {
      if (prev === undefined) invalid(input, i, "range character '-' must be preceded by a Unicode character");
      if (i >= input.length - 1) invalid(input, i, "range character '-' must be followed by a Unicode character");
      const [afterHigh, high, highEscaped] = nextRune(input, i)!;
      i = afterHigh;
      if (!highEscaped && (high === 0x5d || high === 0x2d)) invalid(input, i, "range character '-' cannot be followed by a special symbol");
      if (high < prev) invalid(input, i, `range is out of order: '${String.fromCodePoint(high)}' comes before '${String.fromCodePoint(prev)}' in Unicode`);
      ranges.push([prev, high]);
      prev = undefined;
    } else if (!escaped && r === 0x5d /* ] */) {
      return [i, { type: 2, ranges, flag: 'none' }];
    } else {
      ranges.push([r, r]);
      prev = r;
    }
  }
  return invalid(input, i, 'found [ without matching ]');
}

function tokenize(text: string): Token[] {
  const input = Array.from(text, (c) => c.codePointAt(0)!);
  const tokens: Token[] = [];
  for (let i = 0, next = nextRune(input, 0); next; next = nextRune(input, i)) {
    const [after, r, escaped] = next;
    i = after;
    let token: Token;
    if (escaped) token = { type: 0, rune: r, flag: 'none' };
    else if (r === 0x2e /* . */) token = { type: 1, flag: 'none' };
    else if (r === 0x5d) invalid(input, i, "set-close ']' with no preceding '['");
    else if (r === 0x5b) [i, token] = tokenizeSet(input, i);
    else if (r === 0x2b || r === 0x2a) invalid(input, i, `flag '${String.fromCodePoint(r)}' must be preceded by a non-flag`);
    else token = { type: 0, rune: r, flag: 'none' };
    const flag = nextRune(input, i);
    if (flag && !flag[2] && (flag[1] === 0x2b || flag[1] === 0x2a)) {
      token!.flag = flag[1] === 0x2b ? 'plus' : 'star';
      i = flag[0];
    }
    tokens.push(token!);
  }
  return tokens;
}

function equal(a: Token, b: Token): boolean {
  if (a.type !== b.type) return false;
  if (a.type === 0) return a.rune === (b as typeof a).rune;
  if (a.type === 1) return true;
  const runes = (t: typeof a): string => mergeRanges(t.ranges).join(' ');
  return runes(a) === runes(b as typeof a);
}

function mergeRanges(ranges: Array<[number, number]>): string[] {
  const sorted = [...ranges].sort((x, y) => x[0] - y[0]);
  const out: Array<[number, number]> = [];
  for (const [lo, hi] of sorted) {
    const last = out[out.length - 1];
    if (last && lo <= last[1] + 1) last[1] = Math.max(last[1], hi);
    else out.push([lo, hi]);
  }
  return out.map(([lo, hi]) => `${lo}-${hi}`);
}

// Consecutive equal flagged tokens merge into one (a+a* is a+).
function simplify(tokens: Token[]): Token[] {
  const out: Token[] = [];
  for (const t of tokens) {
    const latest = out[out.length - 1];
    if (latest && t.flag !== 'none' && latest.flag !== 'none' && equal(t, latest)) {
      latest.flag = t.flag === 'plus' || latest.flag === 'plus' ? 'plus' : 'star';
    } else out.push(t);
  }
  return out;
}

function inRanges(rune: number, ranges: Array<[number, number]>): boolean {
  return ranges.some(([lo, hi]) => rune >= lo && rune <= hi);
}

function match(x: Token, y: Token): boolean {
  const [a, b] = x.type <= y.type ? [x, y] : [y, x];
  if (a.type === 0 && b.type === 0) return a.rune === b.rune;
  if (a.type === 0 && b.type === 2) return inRanges(a.rune, b.ranges);
  if (a.type === 2 && b.type === 2) return a.ranges.some(([lo, hi]) => b.ranges.some(([p, q]) => lo <= q && p <= hi));
  return true; // a dot matches anything
}

// A glob from a position on, so that the search never copies token arrays.
type View = { tokens: Token[]; at: number };
const from = (v: View, k: number): View => ({ tokens: v.tokens, at: v.at + k });
const tokenAt = (v: View, k: number): Token | undefined => v.tokens[v.at + k];
const length = (v: View): number => v.tokens.length - v.at;

class Intersection {
  private steps = 0;

  private step(): void {
    if (++this.steps > MAX_STEPS) throw new BuiltinError(BUILTIN, `the globs are too complex to intersect (more than ${MAX_STEPS} steps)`);
  }

  normal(g1: View, g2: View): boolean {
    this.step();
    let k = 0;
    for (; k < length(g1) && k < length(g2); k++) {
      const [a, b] = [tokenAt(g1, k)!, tokenAt(g2, k)!];
      if (a.flag === 'none' && b.flag === 'none') {
        if (!match(a, b)) return false;
      } else return this.special(from(g1, k), from(g2, k));
    }
    return k === length(g1) && k === length(g2);
  }

  private special(g1: View, g2: View): boolean {
    const [flagged, other] = tokenAt(g1, 0)!.flag !== 'none' ? [g1, g2] : [g2, g1];
    return tokenAt(flagged, 0)!.flag === 'plus' ? this.plus(flagged, other) : this.star(flagged, other);
  }

  private plus(plussed: View, other: View): boolean {
    if (!match(tokenAt(plussed, 0)!, tokenAt(other, 0)!)) return false;
    if (this.star(plussed, from(other, 1))) return true;
    return tokenAt(other, 0)!.flag !== 'none' && this.normal(from(plussed, 1), other);
  }

  private star(starred: View, other: View): boolean {
    this.step();
    const starToken = tokenAt(starred, 0)!;
    const nextToken = tokenAt(starred, 1);
    for (let i = 0; i < length(other); i++) {
      const t = tokenAt(other, i)!;
      if (nextToken && match(t, nextToken)) {
        if (this.normal(from(starred, 1), from(other, i))) return true;
      }
      if (!match(t, starToken)) return false;
    }
    return nextToken === undefined;
  }
}

// The library trims the runs of unflagged tokens both globs start and end with, failing on a mismatch.
function trim(g1: Token[], g2: Token[]): [Token[], Token[]] | undefined {
  let l = 0;
  for (; l < g1.length && l < g2.length && g1[l]!.flag === 'none' && g2[l]!.flag === 'none'; l++) {
    if (!match(g1[l]!, g2[l]!)) return undefined;
  }
  if (l > 0) l--;
  let r1 = g1.length - 1;
  let r2 = g2.length - 1;
  for (; r1 >= 0 && r1 >= l && r2 >= 0 && r2 >= l && g1[r1]!.flag === 'none' && g2[r2]!.flag === 'none'; r1--, r2--) {
    if (!match(g1[r1]!, g2[r2]!)) return undefined;
  }
  if (r1 < g1.length - 1) {
    r1++;
    r2++;
  }
  return [g1.slice(l, r1 + 1), g2.slice(l, r2 + 1)];
}

/** regex.globs_match(glob1, glob2): whether some string matches both globs (a BuiltinError for a malformed glob). */
export function globsMatch(glob1: unknown, glob2: unknown): boolean {
  if (typeof glob1 !== 'string') throw new BuiltinError(BUILTIN, 'operand 1 must be string');
  if (typeof glob2 !== 'string') throw new BuiltinError(BUILTIN, 'operand 2 must be string');
  const trimmed = trim(simplify(tokenize(glob1)), simplify(tokenize(glob2)));
  return trimmed !== undefined && new Intersection().normal({ tokens: trimmed[0], at: 0 }, { tokens: trimmed[1], at: 0 });
}
