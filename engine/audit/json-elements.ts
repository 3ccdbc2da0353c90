// Where each element of a JSON array body sits in its bytes, and how many object keys it spells out.
// POST /logs stores each event as the bytes its sender wrote instead of re-serialising the parsed event
// (re-serialising cost as much as parsing). That is only sound when the bytes say exactly what was
// validated: JSON.parse keeps the last of two equal keys in one object, while another reader may keep the
// first, so an event whose text holds more keys than its parsed value has is refused.
import { isJsonSpace, JSON_CHAR } from '../../runtime/json-text.js';

/** One top-level element: bytes [start, end) and the number of object keys written inside it. */
export interface ElementSpan {
  start: number;
  end: number;
  keys: number;
}

const { QUOTE, BACKSLASH, COMMA, OPEN_OBJECT, CLOSE_OBJECT, OPEN_ARRAY, CLOSE_ARRAY } = JSON_CHAR;
const isSpace = isJsonSpace;

/** Index just past the string whose opening quote is at `i`. */
function skipString(b: Uint8Array, i: number): number {
  for (let j = i + 1; j < b.length; j++) {
    const c = b[j];
    if (c === BACKSLASH) j++;
    else if (c === QUOTE) return j + 1;
  }
  return b.length;
}

/**
 * The spans of the elements of the top-level array in `b`, which must be JSON that JSON.parse accepted
 * (the scan relies on it and checks nothing else); undefined when the top level is not an array.
 * Multi-byte UTF-8 never contains the bytes of `"` or `\`, so a byte scan finds every string's end.
 */
export function arrayElements(b: Uint8Array): ElementSpan[] | undefined {
  let i = 0;
  while (isSpace(b[i])) i++;
  if (b[i] !== OPEN_ARRAY) return undefined;
  i++;
  const spans: ElementSpan[] = [];
  // Per open container of the element being scanned: is it an object? And is the next string a key?
  const inObject: boolean[] = [];
  for (;;) {
    while (isSpace(b[i])) i++;
    if (i >= b.length || b[i] === CLOSE_ARRAY) return spans;
    const start = i;
    let keys = 0;
    const first = b[i];
    if (first === QUOTE) {
      i = skipString(b, i);
    } else if (first !== OPEN_OBJECT && first !== OPEN_ARRAY) {
      while (i < b.length && b[i] !== COMMA && b[i] !== CLOSE_ARRAY && !isSpace(b[i])) i++; // number, true, false, null
    } else {
      let depth = 0;
      let keyNext = false;
      do {
        const c = b[i];
        if (c === QUOTE) {
          if (keyNext && inObject[depth - 1]) {
            keys++;
            keyNext = false;
          }
          i = skipString(b, i);
          continue;
        }
        if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
          inObject[depth++] = c === OPEN_OBJECT;
          keyNext = c === OPEN_OBJECT;
        } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
          depth--;
        } else if (c === COMMA && inObject[depth - 1]) {
          keyNext = true;
        }
        i++;
      } while (depth > 0 && i < b.length);
    }
    spans.push({ start, end: i, keys });
    while (isSpace(b[i])) i++;
    if (b[i] === COMMA) i++;
  }
}

/** The number of object keys in a parsed JSON value, nested ones included. */
export function countKeys(value: unknown): number {
  if (value === null || typeof value !== 'object') return 0;
  let n = 0;
  if (Array.isArray(value)) {
    for (const v of value) n += countKeys(v);
    return n;
  }
  for (const v of Object.values(value)) n += 1 + countKeys(v);
  return n;
}
