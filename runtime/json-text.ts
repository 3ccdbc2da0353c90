// A JSON request body kept as its text: checked once, without building its value, so that a body the
// policy never reads costs one scan and no allocation, and a body it reads goes into the policy input
// as the text that arrived (integers beyond 2^53 stay exact). Its value is built only when something
// needs it (masking a sensitive field, the decision log's serialization, an older consumer).

/**
 * Two keys of one object that differ only by case (`amount` and `Amount`): readers differ on which one
 * counts. Go's encoding/json and ASP.NET's default web options match keys regardless of case (the last
 * match wins), JavaScript and Rego read the exact key, so a policy could decide on one value while the
 * app acts on the other.
 */
export class CaseVariants {
  constructor(readonly keys: readonly [string, string]) {}
}

/** Why a text is not a body Warden accepts. */
export type JsonTextProblem = 'invalid' | 'too-deep' | CaseVariants;

/**
 * A key as case-insensitive readers compare it, letter by letter: lower-cased, upper-cased and lower-cased
 * again, each step kept only when it maps the letter to one letter (simple case mapping), so that every
 * letter of a case orbit meets (`ſ` and `s`, the Kelvin sign and `k`, `ß` and `ẞ`, `ς` and `σ`) while `ß`
 * never meets `ss`. Go's encoding/json (simple folding) and .NET's ordinal ignore-case compare so.
 */
export function foldKey(key: string): string {
  // Plain ASCII, the common case: lower case, and no copy when there is nothing to lower.
  let upper = false;
  let i = 0;
  for (; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c >= 128) break;
    if (c >= 65 && c <= 90) upper = true;
  }
  if (i === key.length) return upper ? key.toLowerCase() : key;
  let out = '';
  for (const c of key) {
    let f = c;
    for (const step of [lowerCase, upperCase, lowerCase]) {
      const m = step(f);
      if ([...m].length === 1) f = m;
    }
    out += f;
  }
  return out;
}
const lowerCase = (c: string): string => c.toLowerCase();
const upperCase = (c: string): string => c.toUpperCase();

/** The keys a reader reads, by their folded form (foldKey): built once per list, for otherSpelling. */
export function readKeys(read: readonly string[]): ReadonlyMap<string, string> {
  return new Map(read.map((k) => [foldKey(k), k]));
}

/** A key of `o` that a case-insensitive reader takes for one of `read` (readKeys), or for another key of `o`, while Warden, reading exact keys, does not: its description, else undefined. */
export function otherSpelling(o: object, read: ReadonlyMap<string, string>): string | undefined {
  const keys = Object.keys(o);
  const folds = keys.map(foldKey);
  for (let i = 0; i < keys.length; i++) {
    const meant = read.get(folds[i]!);
    if (meant !== undefined && meant !== keys[i]) return `"${keys[i]!.slice(0, 64)}" for "${meant}"`;
  }
  const clash = clashOf(keys, folds);
  return clash ? `"${clash[0].slice(0, 64)}" beside "${clash[1].slice(0, 64)}"` : undefined;
}

/** Why a body holding `keys` is refused, for the caller. */
export const caseVariantsReason = (keys: readonly [string, string]): string =>
  `the keys ${keys.map((k) => JSON.stringify(k.slice(0, 64))).join(' and ')} of one object differ only by case: readers differ on which one counts`;

/** The first pair of keys of `keys` (decoded, in order) that differ but fold alike, if any. */
export function caseVariants(keys: readonly string[]): [string, string] | undefined {
  return keys.length < 2 ? undefined : clashOf(keys, keys.map(foldKey));
}

// The first two keys whose folds are equal while they are not (a few keys: compared in pairs, no map).
function clashOf(keys: readonly string[], folds: readonly string[]): [string, string] | undefined {
  if (keys.length <= 16) {
    for (let i = 1; i < keys.length; i++) for (let j = 0; j < i; j++) if (folds[j] === folds[i] && keys[j] !== keys[i]) return [keys[j]!, keys[i]!];
    return undefined;
  }
  const seen = new Map<string, string>();
  for (let i = 0; i < keys.length; i++) {
    const first = seen.get(folds[i]!);
    if (first === undefined) seen.set(folds[i]!, keys[i]!);
    else if (first !== keys[i]) return [first, keys[i]!];
  }
  return undefined;
}

/**
 * Every object of a parsed JSON value, at any depth and without recursion (the value's depth is bounded by
 * whoever parsed it), handed to `visit` as its own keys: the first result other than undefined.
 */
export function firstInObjects<T>(value: unknown, visit: (keys: string[]) => T | undefined): T | undefined {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (v === null || typeof v !== 'object') continue;
    if (Array.isArray(v)) {
      for (const x of v) if (x !== null && typeof x === 'object') stack.push(x);
      continue;
    }
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o);
    const found = visit(keys);
    if (found !== undefined) return found;
    for (const k of keys) if (o[k] !== null && typeof o[k] === 'object') stack.push(o[k]);
  }
  return undefined;
}

/** One JSON text that passed `checkJsonText`; serializes (JSON.stringify) as its value. */
export class JsonText {
  private parsed: { value: unknown } | undefined;

  constructor(
    /** The text as received, one JSON value with optional surrounding whitespace. */
    readonly text: string,
    /** It escapes a UTF-16 surrogate (`\ud800`): OPA's parser reads those differently; go through the value. */
    readonly escapesSurrogates: boolean,
    /**
     * When the text is an object: where each of its members lies, four offsets per member (key start,
     * key end, value start, value end; the key's with its quotes), so one member is read without a scan.
     */
    readonly members: readonly number[] | undefined,
  ) {}

  /** The parsed value (built once, on first use). */
  value(): unknown {
    return (this.parsed ??= { value: JSON.parse(this.text) }).value;
  }

  /** JSON.stringify writes the value: logs and events keep recording the body as a JSON value. */
  toJSON(): unknown {
    return this.value();
  }
}

/** The character codes of JSON's structure, for the scanners that read JSON text as bytes or code units. */
export const JSON_CHAR = { QUOTE: 34, BACKSLASH: 92, OPEN_OBJECT: 123, CLOSE_OBJECT: 125, OPEN_ARRAY: 91, CLOSE_ARRAY: 93, COMMA: 44, COLON: 58 } as const;
const { QUOTE, BACKSLASH, OPEN_OBJECT, CLOSE_OBJECT, OPEN_ARRAY, CLOSE_ARRAY, COMMA, COLON } = JSON_CHAR;

/** JSON's insignificant whitespace: space, line feed, carriage return, tab. */
export const isJsonSpace = (c: number | undefined): boolean => c === 32 || c === 10 || c === 13 || c === 9;
const isSpace = isJsonSpace;
const isDigit = (c: number) => c >= 48 && c <= 57;

/**
 * Check that `text` is exactly one JSON value (RFC 8259, as JSON.parse reads it) nesting at most
 * `maxDepth` objects and arrays. Iterative: a body nested a million levels deep costs one pass. An
 * invalid text is reported as invalid even when it also nests too deep (JSON.parse would fail first).
 * One function with its state in locals: this runs over every JSON body the sidecar reads.
 */
export function checkJsonText(text: string, maxDepth: number): JsonText | JsonTextProblem {
  const n = text.length;
  let i = 0;
  let surrogates = false;
  let tooDeep = false;
  // Open containers, innermost last: true for an object.
  const open: boolean[] = [];
  // Every open object's keys as offsets (start, end, quotes included), and where each object's begin in
  // `keys`; `foldable[d]`: a key of the object at depth d holds an upper-case ASCII letter, an escape or
  // a non-ASCII character, so it may fold onto another (objects of plain lower-case keys are not compared).
  const keys: number[] = [];
  const keysFrom: number[] = [];
  const foldable: boolean[] = [];
  const topObject = (() => {
    let k = 0;
    while (k < n && isSpace(text.charCodeAt(k))) k++;
    return text.charCodeAt(k) === OPEN_OBJECT;
  })();
  const members: number[] | undefined = topObject ? [] : undefined;
  let keyStart = 0;
  let keyEnd = 0;
  let valueStart = 0;
  // Whether the next token is an object key (after `{` or a `,` in an object).
  let expectKey = false;
  for (;;) {
    while (i < n && isSpace(text.charCodeAt(i))) i++;
    if (i >= n) return 'invalid';
    let c = text.charCodeAt(i);
    if (expectKey) {
      if (c !== QUOTE) return 'invalid';
    } else if (members && open.length === 1) valueStart = i;
    if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      i++;
      open.push(c === OPEN_OBJECT);
      keysFrom.push(keys.length);
      foldable.push(false);
      if (open.length > maxDepth) tooDeep = true;
      while (i < n && isSpace(text.charCodeAt(i))) i++;
      if (text.charCodeAt(i) === (c === OPEN_OBJECT ? CLOSE_OBJECT : CLOSE_ARRAY)) {
        i++;
        open.pop();
        keysFrom.pop();
        foldable.pop();
      } else {
        expectKey = c === OPEN_OBJECT;
        continue;
      }
    } else if (c === QUOTE) {
      const start = i;
      let folds = false;
      i++;
      for (;;) {
        if (i >= n) return 'invalid';
        c = text.charCodeAt(i++);
        if (c === QUOTE) break;
        if (c < 32) return 'invalid';
        if (c !== BACKSLASH) {
          if ((c >= 65 && c <= 90) || c >= 128) folds = true;
          continue;
        }
        folds = true;
        const e = text.charCodeAt(i++);
        if (e === 117) {
          let code = 0;
          for (let k = 0; k < 4; k++) {
            const h = text.charCodeAt(i++);
            const d = isDigit(h) ? h - 48 : h >= 97 && h <= 102 ? h - 87 : h >= 65 && h <= 70 ? h - 55 : -1;
            if (d < 0) return 'invalid';
            code = code * 16 + d;
          }
          if (code >= 0xd800 && code <= 0xdfff) surrogates = true;
        } else if (e !== QUOTE && e !== BACKSLASH && e !== 47 && e !== 98 && e !== 102 && e !== 110 && e !== 114 && e !== 116) return 'invalid';
      }
      if (expectKey) {
        // A key: its colon, then its value.
        expectKey = false;
        keys.push(start, i);
        if (folds) foldable[foldable.length - 1] = true;
        if (open.length === 1) {
          keyStart = start;
          keyEnd = i;
        }
        while (i < n && isSpace(text.charCodeAt(i))) i++;
        if (text.charCodeAt(i++) !== COLON) return 'invalid';
        continue;
      }
    } else if (c === 45 || isDigit(c)) {
      if (c === 45) c = text.charCodeAt(++i);
      if (c === 48) i++;
      else if (isDigit(c)) while (isDigit(text.charCodeAt(i))) i++;
      else return 'invalid';
      if (text.charCodeAt(i) === 46) {
        if (!isDigit(text.charCodeAt(++i))) return 'invalid';
        while (isDigit(text.charCodeAt(i))) i++;
      }
      c = text.charCodeAt(i);
      if (c === 101 || c === 69) {
        c = text.charCodeAt(++i);
        if (c === 43 || c === 45) i++;
        if (!isDigit(text.charCodeAt(i))) return 'invalid';
        while (isDigit(text.charCodeAt(i))) i++;
      }
    } else {
      const word = c === 116 ? 'true' : c === 102 ? 'false' : c === 110 ? 'null' : '';
      if (!word || !text.startsWith(word, i)) return 'invalid';
      i += word.length;
    }
    // After a value: the next member, or the end of containers, or the end of the text.
    for (;;) {
      if (members && open.length === 1) members.push(keyStart, keyEnd, valueStart, i);
      while (i < n && isSpace(text.charCodeAt(i))) i++;
      if (open.length === 0) {
        if (i !== n) return 'invalid';
        return tooDeep ? 'too-deep' : new JsonText(text, surrogates, members);
      }
      const isObject = open[open.length - 1]!;
      const d = text.charCodeAt(i++);
      if (d === COMMA) {
        expectKey = isObject;
        break;
      }
      if (d !== (isObject ? CLOSE_OBJECT : CLOSE_ARRAY)) return 'invalid';
      open.pop();
      const from = keysFrom.pop()!;
      if (foldable.pop()) {
        const clash = caseVariants([...keyTexts(text, keys, from)]);
        if (clash) return new CaseVariants(clash);
      }
      keys.length = from;
    }
  }
}

// The decoded keys at `keys` (offset pairs, quotes included) from index `from`.
function* keyTexts(text: string, keys: readonly number[], from: number): Generator<string> {
  for (let k = from; k < keys.length; k += 2) {
    const raw = text.slice(keys[k]! + 1, keys[k + 1]! - 1);
    yield raw.includes('\\') ? (JSON.parse(`"${raw}"`) as string) : raw;
  }
}
