// Rego values as OPA's WASM holds them, read and written losslessly. The module writes a value as
// value text (opa_value_dump: JSON plus set literals `{1, 2}` / `set()`, non-string object keys, and
// every number in its own spelling) and reads the same text back (opa_value_parse). JSON alone would
// turn sets into arrays and, once parsed by JavaScript, integers beyond 2^53 into doubles, `1e2` into
// the integer 100 and `2e308` into Infinity. Host builtins that care (sprintf, object.subset, cast_set,
// …) take RegoValues; results leave the runtime as OPA's JSON output prints them (OpaJson: sets as
// sorted arrays, integers exact; opa-json.ts).

/** A Rego set; members in the module's order (sort with compareValues for OPA's), each once. */
export class RegoSet {
  constructor(readonly members: RegoValue[]) {}

  /** JSON has no sets: JSON.stringify must not write one as an object; writers fall back to valueText. */
  toJSON(): never {
    throw new TypeError('a Rego set has no JSON form: write it as value text (valueText)');
  }
}

/**
 * A number whose spelling matters: an integer beyond 2^53, or any number written with a fraction or
 * an exponent (`1.0`, `1e2`, `2e308`), which Go's fmt treats as a float even when it is integral.
 */
export class RegoNumber {
  constructor(readonly text: string) {}

  /** True when the spelling is an integer (digits only). */
  get isInteger(): boolean {
    return INTEGER.test(this.text);
  }

  /** The nearest double (Infinity beyond the double range). */
  valueOf(): number {
    return Number(this.text);
  }
}

/** A Rego object with a key that is not a string (Rego allows any value as a key); entries in the module's order. */
export class RegoObject {
  constructor(readonly entries: Array<[RegoValue, RegoValue]>) {}
}

/**
 * A Rego value as exact host builtins receive it: plain integers up to 2^53 stay numbers; an object
 * whose keys are all strings is a plain object, any other a RegoObject.
 */
export type RegoValue = null | boolean | number | string | RegoNumber | RegoSet | RegoObject | RegoValue[] | { [key: string]: RegoValue };

/** A value as OPA's JSON output prints it: sets as sorted arrays, integers beyond 2^53 as bigint. */
export type OpaJson = null | boolean | number | bigint | string | OpaJson[] | { [key: string]: OpaJson };

const INTEGER = /^-?\d+$/;
const NUMBER = /-?[0-9.]+(?:[eE][+-]?[0-9]+)?/y;
const SPACE = /[ \t\n\r]*/y;

/** The value of a number's spelling: a number when exact as a plain integer, else a RegoNumber. */
export function regoNumber(text: string): number | RegoNumber {
  if (INTEGER.test(text)) {
    const n = Number(text);
    if (Number.isSafeInteger(n)) return n;
  }
  return new RegoNumber(text);
}

/** Parses value text as opa_value_dump writes it; throws on anything else (a fault of the module). */
export function parseValueText(text: string): RegoValue {
  let pos = 0;
  const fail = (what: string): never => {
    throw new Error(`malformed value text from the policy module at offset ${pos}: ${what}`);
  };
  const space = () => {
    SPACE.lastIndex = pos;
    SPACE.test(text);
    pos = SPACE.lastIndex;
  };
  const expect = (ch: string) => {
    space();
    if (text[pos] !== ch) fail(`expected ${JSON.stringify(ch)}`);
    pos++;
  };
  const string = (): string => {
    const start = pos;
    let escaped = false;
    for (pos++; pos < text.length; pos++) {
      const c = text.charCodeAt(pos);
      if (c === 0x5c) {
        escaped = true;
        pos++;
      } else if (c === 0x22) break;
    }
    if (pos >= text.length) fail('unterminated string');
    pos++;
    return escaped ? (JSON.parse(text.slice(start, pos)) as string) : text.slice(start + 1, pos - 1);
  };
  const value = (): RegoValue => {
    space();
    const c = text[pos];
    if (c === '"') return string();
    if (c === '[') {
      pos++;
      const out: RegoValue[] = [];
      space();
      if (text[pos] === ']') {
        pos++;
        return out;
      }
      for (;;) {
        out.push(value());
        space();
        if (text[pos++] === ']') return out;
        if (text[pos - 1] !== ',') fail('expected "," or "]"');
      }
    }
    if (c === '{') {
      pos++;
      space();
      if (text[pos] === '}') {
        pos++;
        return {};
      }
      const first = value();
      space();
      if (text[pos] === ':') {
        pos++;
        const entries: Array<[RegoValue, RegoValue]> = [];
        let key = first;
        for (;;) {
          entries.push([key, value()]);
          space();
          if (text[pos++] === '}') return entries.every(([k]) => typeof k === 'string') ? Object.fromEntries(entries) : new RegoObject(entries);
          if (text[pos - 1] !== ',') fail('expected "," or "}"');
          key = value();
          expect(':');
        }
      }
      const members = [first];
      for (;;) {
        space();
        if (text[pos++] === '}') return new RegoSet(members);
        if (text[pos - 1] !== ',') fail('expected "," or "}"');
        members.push(value());
      }
    }
    if (text.startsWith('null', pos)) return (pos += 4), null;
    if (text.startsWith('true', pos)) return (pos += 4), true;
    if (text.startsWith('false', pos)) return (pos += 5), false;
    if (text.startsWith('set()', pos)) return (pos += 5), new RegoSet([]);
    NUMBER.lastIndex = pos;
    const m = NUMBER.exec(text);
    if (!m) return fail('expected a value');
    pos = NUMBER.lastIndex;
    return regoNumber(m[0]);
  };
  const out = value();
  space();
  if (pos !== text.length) fail('trailing text');
  return out;
}

// OPA's own literals may be spelled `.5` or `5.`, which its JSON lexer does not read back.
function jsonNumber(text: string): string {
  return text.replace(/^(-?)\./, '$10.').replace(/\.(?=$|[eE])/, '.0');
}

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

/** Value text for opa_value_parse: sets as set literals, numbers in their own spelling. */
export function valueText(v: RegoValue | OpaJson): string {
  if (v === null || v === undefined) return 'null';
  switch (typeof v) {
    case 'boolean':
      return v ? 'true' : 'false';
    case 'number':
      return Number.isFinite(v) ? String(v) : 'null';
    case 'bigint':
      return v.toString();
    case 'string':
      return JSON.stringify(v);
  }
  if (Array.isArray(v)) return `[${v.map(valueText).join(',')}]`;
  if (v instanceof RegoNumber) return jsonNumber(v.text);
  if (v instanceof RegoSet) return v.members.length === 0 ? 'set()' : `{${v.members.map(valueText).join(',')}}`;
  if (v instanceof RegoObject) return `{${v.entries.map(([k, x]) => `${valueText(k)}:${valueText(x)}`).join(',')}}`;
  return `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}:${valueText(x)}`).join(',')}}`;
}

/** `v` and everything it holds, frozen: a value shared by many calls (a reused result, a cached token's claims) that none may change for another. */
export function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}
