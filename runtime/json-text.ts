// A JSON request body kept as its text: checked once, without building its value, so that a body the
// policy never reads costs one scan and no allocation, and a body it reads goes into the policy input
// as the text that arrived (integers beyond 2^53 stay exact). Its value is built only when something
// needs it (masking a sensitive field, the decision log's serialization, an older consumer).

/** Why a text is not a body Warden accepts. */
export type JsonTextProblem = 'invalid' | 'too-deep';

/** One JSON text that passed `checkJsonText`; serializes (JSON.stringify) as its value. */
export class JsonText {
  private parsed: { value: unknown } | undefined;

  constructor(
    /** The text as received, one JSON value with optional surrounding whitespace. */
    readonly text: string,
    /** It escapes a UTF-16 surrogate (`\ud800`): OPA's parser reads those differently; go through the value. */
    readonly escapesSurrogates: boolean,
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

/**
 * Check that `text` is exactly one JSON value (RFC 8259, as JSON.parse reads it) nesting at most
 * `maxDepth` objects and arrays. Iterative: a body nested a million levels deep costs one pass. An
 * invalid text is reported as invalid even when it also nests too deep (JSON.parse would fail first).
 */
export function checkJsonText(text: string, maxDepth: number): JsonText | JsonTextProblem {
  const n = text.length;
  let i = 0;
  let surrogates = false;
  let tooDeep = false;
  // Open containers, innermost last: true for an object.
  const open: boolean[] = [];
  const space = () => {
    for (let c = text.charCodeAt(i); c === 32 || c === 10 || c === 13 || c === 9; c = text.charCodeAt(++i));
  };
  const string = (): boolean => {
    i++; // opening quote
    for (;;) {
      if (i >= n) return false;
      const c = text.charCodeAt(i++);
      if (c === 34) return true;
      if (c < 32) return false;
      if (c !== 92) continue;
      const e = text.charCodeAt(i++);
      if (e === 117) {
        let code = 0;
        for (let k = 0; k < 4; k++) {
          const h = text.charCodeAt(i++);
          const d = h >= 48 && h <= 57 ? h - 48 : h >= 97 && h <= 102 ? h - 87 : h >= 65 && h <= 70 ? h - 55 : -1;
          if (d < 0) return false;
          code = code * 16 + d;
        }
        if (code >= 0xd800 && code <= 0xdfff) surrogates = true;
      } else if (e !== 34 && e !== 92 && e !== 47 && e !== 98 && e !== 102 && e !== 110 && e !== 114 && e !== 116) return false;
    }
  };
  const digits = (): boolean => {
    const start = i;
    for (let c = text.charCodeAt(i); c >= 48 && c <= 57; c = text.charCodeAt(++i));
    return i > start;
  };
  const number = (): boolean => {
    if (text.charCodeAt(i) === 45) i++;
    if (text.charCodeAt(i) === 48) i++;
    else if (!digits()) return false;
    if (text.charCodeAt(i) === 46) {
      i++;
      if (!digits()) return false;
    }
    const e = text.charCodeAt(i);
    if (e === 101 || e === 69) {
      i++;
      const s = text.charCodeAt(i);
      if (s === 43 || s === 45) i++;
      if (!digits()) return false;
    }
    return true;
  };
  const literal = (word: string): boolean => {
    if (!text.startsWith(word, i)) return false;
    i += word.length;
    return true;
  };
  // An object member's key and colon; the value follows.
  const key = (): boolean => {
    space();
    if (text.charCodeAt(i) !== 34 || !string()) return false;
    space();
    return text.charCodeAt(i++) === 58;
  };
  for (;;) {
    // A value.
    space();
    const c = text.charCodeAt(i);
    if (c === 123 || c === 91) {
      i++;
      open.push(c === 123);
      if (open.length > maxDepth) tooDeep = true;
      space();
      const close = text.charCodeAt(i);
      if (close === (c === 123 ? 125 : 93)) {
        i++;
        open.pop();
      } else {
        if (c === 123 && !key()) return 'invalid';
        continue;
      }
    } else if (c === 34) {
      if (!string()) return 'invalid';
    } else if (c === 45 || (c >= 48 && c <= 57)) {
      if (!number()) return 'invalid';
    } else if (!(c === 116 ? literal('true') : c === 102 ? literal('false') : c === 110 ? literal('null') : false)) return 'invalid';
    // After a value: the next member, or the end of containers, or the end of the text.
    for (;;) {
      space();
      if (open.length === 0) {
        if (i !== n) return 'invalid';
        return tooDeep ? 'too-deep' : new JsonText(text, surrogates);
      }
      const isObject = open[open.length - 1]!;
      const d = text.charCodeAt(i++);
      if (d === 44) {
        if (isObject && !key()) return 'invalid';
        break;
      }
      if (d !== (isObject ? 125 : 93)) return 'invalid';
      open.pop();
    }
  }
}
