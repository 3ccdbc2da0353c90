// A JSON request body kept as its text: checked once, without building its value, so that a body the
// policy never reads costs one scan and no allocation, and a body it reads goes into the policy input
// as the text that arrived (integers beyond 2^53 stay exact). Its value is built only when something
// needs it (masking a sensitive field, the decision log's serialization, an older consumer).

/** Why a text is not a body Warden accepts. */
export type JsonTextProblem = 'invalid' | 'too-deep';

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
      if (m.length === 1 || (m.length === 2 && m.charCodeAt(0) >= 0xd800 && m.charCodeAt(0) <= 0xdbff)) f = m;
    }
    out += f;
  }
  return out;
}
const lowerCase = (c: string): string => c.toLowerCase();
const upperCase = (c: string): string => c.toUpperCase();

/** Keys by their folded form (foldKey), and the longest of them: a key more than twice as long folds onto none. */
export interface FoldedKeys {
  readonly byFold: ReadonlyMap<string, readonly string[]>;
  readonly longest: number;
}

/** The keys a reader reads, folded once (for otherSpelling and the input selection's checks). */
export function readKeys(read: Iterable<string>): FoldedKeys {
  const byFold = new Map<string, string[]>();
  let longest = 0;
  for (const k of read) {
    const f = foldKey(k);
    byFold.set(f, [...(byFold.get(f) ?? []), k]);
    longest = Math.max(longest, k.length);
  }
  return { byFold, longest };
}

/**
 * The keys of `read` that `key` differs from only by case (a case-insensitive reader, Go's encoding/json or
 * ASP.NET, takes it for them), if it is not one of them itself: else undefined. Long keys are not folded
 * (simple case mappings keep a key's letters one for one, so its length at most doubles).
 */
export function meantBy(key: string, read: FoldedKeys): readonly string[] | undefined {
  if (key.length > 2 * read.longest + 2) return undefined;
  const meant = read.byFold.get(foldKey(key));
  return meant !== undefined && !meant.includes(key) ? meant : undefined;
}

/** A key of `o` spelled otherwise than a key of `read` it differs from only by case: its description, else undefined. */
export function otherSpelling(o: object, read: FoldedKeys): string | undefined {
  for (const k of Object.keys(o)) {
    const meant = meantBy(k, read);
    if (meant) return `"${k.slice(0, 64)}" for "${meant[0]}"`;
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
      if (open.length > maxDepth) tooDeep = true;
      while (i < n && isSpace(text.charCodeAt(i))) i++;
      if (text.charCodeAt(i) === (c === OPEN_OBJECT ? CLOSE_OBJECT : CLOSE_ARRAY)) {
        i++;
        open.pop();
      } else {
        expectKey = c === OPEN_OBJECT;
        continue;
      }
    } else if (c === QUOTE) {
      const start = i;
      i++;
      for (;;) {
        if (i >= n) return 'invalid';
        c = text.charCodeAt(i++);
        if (c === QUOTE) break;
        if (c < 32) return 'invalid';
        if (c !== BACKSLASH) continue;
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
    }
  }
}
