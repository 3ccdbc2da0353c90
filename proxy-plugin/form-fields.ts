// The field names of a POST's form, read as its body streams to the app, for the one name the sidecar
// refuses there: `_method`, which Rails (Rack::MethodOverride), Laravel and Symfony take from a POST's form
// for the request's method (METHOD_PARAMETER in normalize.ts). A form is not buffered (it may be a large
// upload): a url-encoded one is read name by name, its values only searched for the next separator; a
// multipart one part by part, each part's header block read between its delimiter and the blank line
// after it, its content only searched for the next delimiter. A refusal comes before the body's end goes
// on (before the bytes that complete a url-encoded name; before the last chunk, held back by the relay, for
// a multipart window), so the app receives a body cut short, which no server hands to it as a form.

import { namesMethodOverride } from './normalize.js';

/**
 * What else a field's name may be refused for, besides `_method`: the reason, if any (request-body.ts
 * refuses a field named as a query key the policy reads, which apps that merge a POST's fields over the
 * query read instead of the query's).
 */
export type NameCheck = (name: string) => string | undefined;

/** Longest field name read whole for a NameCheck; of a longer one, its first and last this many bytes. */
export const MAX_NAME_BYTES = 4096;

/** What the relay feeds each chunk of a body to (relay.ts `Outgoing.inspect`). */
export interface FieldReader {
  /** Read the next chunk: the reason to refuse the body, if it names `_method`. */
  feed(chunk: Buffer): string | undefined;
  /** The body ended: the reason to refuse it, if what is still open names `_method`. */
  end?(): string | undefined;
}

/**
 * How a JSON body's top-level keys are checked (JsonMethodMember): its own NameCheck; and the query's
 * values, by which a refused key or url-encoded field passes when its value is the one its exact name has
 * in the query (so the app reads what the policy read).
 */
export interface JsonNames {
  onName?: NameCheck;
  queryValue?: (name: string) => string | undefined;
}

/**
 * The reader a POST's form needs, if its body is one: url-encoded, or with no Content-Type at all (Rack
 * reads such a POST as a url-encoded form), or multipart (any subtype: Rack parses `mixed` and `related`
 * as forms too); or why it cannot be read (a multipart type without exactly one boundary). A POST whose
 * type Laravel reads as JSON (`namesJson`) is also read for a top-level `_method` member (JsonMethodMember):
 * alone, or beside the form's reader when the type names both. With `onName`, any method's form (formKind)
 * is read for its names, and its Laravel JSON for its top-level keys (`json.onName`, else `onName`).
 */
export function formReader(method: string, contentType: string | undefined, onName?: NameCheck, json: JsonNames = {}): FieldReader | { refused: string } | undefined {
  const kind = formKind(method, contentType, onName !== undefined);
  if (kind === undefined) return undefined;
  // Another method's body is read for its names alone (`_method` overrides a POST only).
  const overrides = method === 'POST';
  const form = kind === 'multipart' ? multipartReader(contentType!, onName, overrides) : kind === 'urlencoded' ? new UrlencodedFields(onName, overrides, json.queryValue) : undefined;
  if (!namesJson(contentType)) return form;
  if (form && 'refused' in form) return form;
  const member = new JsonMethodMember(json.onName ?? onName, overrides, json.queryValue);
  return form ? bothReaders(form, member) : member;
}

function multipartReader(contentType: string, onName: NameCheck | undefined, overrides: boolean): FieldReader | { refused: string } {
  const b = multipartBoundary(contentType);
  return 'refused' in b ? b : new MultipartFields(b.boundary, onName, overrides);
}

// Two readers of one body: the first refusal stands.
const bothReaders = (a: FieldReader, b: FieldReader): FieldReader => ({
  feed: (chunk) => a.feed(chunk) ?? b.feed(chunk),
  end: () => a.end?.() ?? b.end?.(),
});

/**
 * Which body of a request formReader reads, if any: the test alone, with no reader built. `json` is a body
 * that is no form but whose type Laravel reads as JSON (the sidecar reads it whole only as --json-body
 * says). A POST's is read for `_method`; another method's only for its names, where they are checked
 * (`namesChecked`: the policy reads a query key).
 */
export function formKind(method: string, contentType: string | undefined, namesChecked: boolean): 'urlencoded' | 'multipart' | 'json' | undefined {
  if (method !== 'POST') {
    // Rack and Symfony parse a PUT, PATCH or DELETE form too (typed: an untyped body is a form for a POST
    // only), and Laravel the JSON body of a request of any method, a GET's included.
    if (!namesChecked || !contentType) return undefined;
    if (FORM_METHODS.has(method) && URLENCODED.test(contentType)) return 'urlencoded';
    if (FORM_METHODS.has(method) && MULTIPART.test(contentType)) return 'multipart';
    return namesJson(contentType) ? 'json' : undefined;
  }
  if (!contentType?.trim() || URLENCODED.test(contentType)) return 'urlencoded';
  if (MULTIPART.test(contentType)) return 'multipart';
  return namesJson(contentType) ? 'json' : undefined;
}

/**
 * True when Laravel reads a body of this type as JSON, its `_method` member included (Request::isJson: the
 * Content-Type merely contains `/json` or `+json`: `text/plain; x=/json`, `application/jsonl`). Compared
 * in any case, which reads more types so than Laravel does, never fewer.
 */
export const namesJson = (contentType: string | undefined): boolean => !!contentType && /[/+]json/i.test(contentType);

// The methods other than POST whose form bodies apps parse into the fields they read over the query.
const FORM_METHODS = new Set(['PUT', 'PATCH', 'DELETE']);

// The media type as Rack and PHP read it: up to a ';' or a ',' (PHP: a space too).
const URLENCODED = /^\s*application\/x-www-form-urlencoded(?:[\s;,]|$)/i;
const MULTIPART = /^\s*multipart\/[\w.+-]+(?:[\s;,]|$)/i;

const METHOD_FIELD = 'a "_method" field of a form is a method override: frameworks (Rails, Laravel, Symfony) read it as the method instead of the request line\'s; send the method itself';

// Url-encoded bytes decoded as PHP and Rack decode them, one at a time across chunks: `+` a space, `%XX`
// its byte where two hex digits follow, as written where they do not.
class FormDecoding {
  // An escape begun and not yet whole: `%` and the hex digits after it.
  private escape: number[] = [];

  /** Decode `c`, handing each byte it completes to `out`: false as soon as `out` does. */
  byte(c: number, out: (b: number) => boolean): boolean {
    if (this.escape.length > 0) {
      if (isHex(c)) {
        this.escape.push(c);
        if (this.escape.length < 3) return true;
        const b = parseInt(String.fromCharCode(this.escape[1]!, this.escape[2]!), 16);
        this.escape = [];
        return out(b);
      }
      if (!this.flush(out)) return false;
    }
    if (c === 0x25) {
      this.escape = [c];
      return true;
    }
    return out(c === 0x2b ? 0x20 : c);
  }

  /** An escape left unfinished (a delimiter or the end came), handed on as written. */
  flush(out: (b: number) => boolean): boolean {
    const pending = this.escape;
    this.escape = [];
    return pending.every(out);
  }

  /** Forget an escape begun (a new field starts). */
  clear(): void {
    this.escape = [];
  }
}

/**
 * A url-encoded form's names, as Rack and PHP read them: pairs split on `&` (and `;`, as Rack 2 does), a
 * name up to its `=`, `+` a space, `%XX` its byte where it decodes (as written where it does not). A name
 * that is `_method` to one of them (namesMethodOverride), with a value, is refused (a bare `_method` has
 * none, and overrides nothing); every name, with or without a value, goes to `onName`. Values are skipped
 * with a byte search, except the value of a name `onName` refuses whose exact name the query gives one
 * value (`queryValue`): that one is decoded as it streams and compared with the query's, and the field
 * passes if they are equal (`?tenant=acme` with a field `tenant=acme`: the app reads what the policy read).
 * A raw `;` in such a value is refused: Rack 2 ends the value there, PHP does not.
 */
export class UrlencodedFields implements FieldReader {
  private inName = true;
  // The name's, or a held value's, percent-decoding (one at a time: a value follows its name's `=`).
  private readonly decoding = new FormDecoding();
  // The name's bytes, decoded, past the leading spaces and brackets PHP and Rack drop: all of them up to
  // MAX_NAME_BYTES; past it its first and its last MAX_NAME_BYTES (`tail`, a ring from `tailAt`), which is
  // where every reading of a name looks (PHP and Rack its start, Spring and ASP.NET Core its end).
  private bytes: number[] = [];
  private tail: number[] | undefined;
  private tailAt = 0;
  // The value of a refused name held to be compared with the query's (its UTF-8 bytes), and the refusal it gets if it differs.
  private held: { why: string; expected: Buffer; at: number } | undefined;
  private readonly toName = (b: number): boolean => (this.push(b), true);
  // False as soon as the held value read so far is not where the query's value begins.
  private readonly toHeld = (b: number): boolean => {
    const h = this.held!;
    return h.at < h.expected.length && h.expected[h.at++] === b;
  };

  constructor(
    private readonly onName?: NameCheck,
    /** A POST's form: its `_method` field is an override, refused. */
    private readonly overrides = true,
    private readonly queryValue?: (name: string) => string | undefined,
  ) {}

  feed(chunk: Buffer): string | undefined {
    let i = 0;
    while (i < chunk.length) {
      if (!this.inName && this.held) {
        const c = chunk[i++]!;
        if (c === 0x26) {
          const why = this.settle();
          if (why) return why;
          this.startName();
        } else if (c === 0x3b || !this.decoding.byte(c, this.toHeld)) return this.held.why;
        continue;
      }
      if (!this.inName) {
        const amp = chunk.indexOf(0x26, i);
        const semi = chunk.indexOf(0x3b, i);
        const next = amp < 0 ? semi : semi < 0 ? amp : Math.min(amp, semi);
        if (next < 0) return undefined;
        i = next + 1;
        this.startName();
        continue;
      }
      const c = chunk[i++]!;
      if (c !== 0x3d && c !== 0x26 && c !== 0x3b) {
        this.decoding.byte(c, this.toName);
        continue;
      }
      this.decoding.flush(this.toName);
      if (c === 0x3d) {
        const why = this.checkName(true);
        if (why) return why;
        this.inName = false;
      } else {
        // `&` or `;`: a name with no `=` is a field all the same (an empty value to PHP, nil to Rack).
        const why = this.checkName(false);
        if (why) return why;
        this.startName();
      }
    }
    return undefined;
  }

  /** The body ended: a last name with no `=` is a field too. */
  end(): string | undefined {
    if (!this.inName) return this.held ? this.settle() : undefined;
    this.decoding.flush(this.toName);
    return this.checkName(false);
  }

  private push(b: number): void {
    if (this.bytes.length === 0 && (b === 0x20 || b === 0x5b || b === 0x5d)) return;
    if (this.bytes.length < MAX_NAME_BYTES) return void this.bytes.push(b);
    this.tail ??= [...this.bytes];
    this.tail[this.tailAt] = b;
    this.tailAt = (this.tailAt + 1) % MAX_NAME_BYTES;
  }

  // The name just read (`valued`: with an `=` after it): `_method` with a value, or a name `onName` refuses.
  private checkName(valued: boolean): string | undefined {
    if (this.bytes.length === 0) return undefined;
    // `_method` starts with `_` (or `.`, which PHP reads as `_`): no other name is spelled out to test it.
    const first = this.bytes[0];
    if (valued && this.overrides && (first === 0x5f || first === 0x2e) && namesMethodOverride(String.fromCharCode(...this.bytes))) return `request refused: ${METHOD_FIELD}`;
    if (!this.onName) return undefined;
    const text = (bytes: number[]) => Buffer.from(bytes).toString('utf8');
    const name = text(this.bytes);
    const why = this.onName(name) ?? (this.tail ? this.onName(text([...this.tail.slice(this.tailAt), ...this.tail.slice(0, this.tailAt)])) : undefined);
    const sent = why && valued && !this.tail ? this.queryValue?.(name) : undefined;
    if (sent === undefined) return why;
    this.held = { why: why!, expected: Buffer.from(sent, 'utf8'), at: 0 };
    return undefined;
  }

  // The held value ended: its refusal unless it was the query's value whole.
  private settle(): string | undefined {
    const h = this.held!;
    const equal = this.decoding.flush(this.toHeld) && h.at === h.expected.length;
    this.held = undefined;
    return equal ? undefined : h.why;
  }

  private startName(): void {
    this.inName = true;
    this.held = undefined;
    this.decoding.clear();
    this.bytes = [];
    this.tail = undefined;
    this.tailAt = 0;
  }
}

/**
 * A top-level `_method` member of a JSON body the sidecar does not read whole (its type is one only Laravel
 * reads as JSON, or --json-body is off), found as the body streams: strings are followed through their
 * escapes (`\u005fmethod` is `_method`), and a key of the top-level object that reads `_method` in any case
 * (isMethodKey's rule for a body read whole) is refused when its closing quote arrives, so the app receives
 * a body cut short. Nested members and values are data, as they are in a body read whole. In valid JSON a
 * quote outside a string opens one and a backslash stands only inside one, so this reading is the parser's;
 * text that is not valid JSON is no JSON to Laravel either. With `onName`, every top-level key, unescaped,
 * goes to it as its closing quote arrives: Laravel's input() reads a JSON body's members over the query.
 * Laravel takes JSON keys as written (no brackets read), so a key longer than MAX_JSON_KEY_BYTES, which no
 * policy reads in the query, is not. A key onName refuses passes when its value is the string `queryValue`
 * gives for it (the query's one value: the app reads what the policy read); the refusal then comes at the
 * value, before the body is whole. `overrides` false reads names alone (`_method` overrides a POST only).
 */
export class JsonMethodMember implements FieldReader {
  constructor(
    private readonly onName?: NameCheck,
    private readonly overrides = true,
    private readonly queryValue?: (name: string) => string | undefined,
  ) {}

  private depth = 0;
  // The first container at depth 0 is an object; a string at depth 1 after `{` or `,` is a key.
  private topIsObject = false;
  private keyNext = false;
  private inString = false;
  // Within a string: is it a key of the top-level object; how many of its characters read `_method` so far (-1: none can).
  private candidate = false;
  private matched = 0;
  // Within an escape: -1 none, 0 after the backslash, 1–4 hex digits of a \u escape read, with their value.
  private escape = -1;
  private unit = 0;
  // The top-level key (or held value) read so far, its bytes as sent, when names are checked (up to one byte past the bound).
  private key: number[] = [];
  // A key onName refused, held until its value shows whether it is the string the query gives (queryValue).
  private held: { why: string; value: string } | undefined;
  private heldValue = false;

  feed(chunk: Buffer): string | undefined {
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i]!;
      if (this.inString) {
        // Every byte of a key but its closing quote (an escaped quote is the key's).
        if ((this.candidate || this.heldValue) && this.onName && (c !== 0x22 || this.escape === 0) && this.key.length <= MAX_JSON_KEY_BYTES) this.key.push(c);
        if (this.escape === 0) {
          if (c === 0x75) [this.escape, this.unit] = [1, 0];
          else [this.escape, this.matched] = [-1, -1];
        } else if (this.escape > 0) {
          const h = hexValue(c);
          if (h < 0) [this.escape, this.matched] = [-1, -1];
          else {
            this.unit = this.unit * 16 + h;
            if (this.escape++ === 4) {
              this.escape = -1;
              this.read(this.unit);
            }
          }
        } else if (c === 0x5c) this.escape = 0;
        else if (c === 0x22) {
          this.inString = false;
          if (this.heldValue) {
            const { why, value } = this.held!;
            [this.held, this.heldValue] = [undefined, false];
            if (this.key.length > MAX_JSON_KEY_BYTES || keyText(this.key) !== value) return why;
            continue;
          }
          if (!this.candidate) continue;
          if (this.overrides && this.matched === METHOD_KEY.length) return `request refused: ${METHOD_MEMBER}`;
          const name = this.onName && this.key.length <= MAX_JSON_KEY_BYTES ? keyText(this.key) : undefined;
          const why = name === undefined ? undefined : this.onName!(name);
          if (why === undefined) continue;
          const value = this.queryValue?.(name!);
          if (value === undefined) return why;
          this.held = { why, value };
        } else this.read(c);
        continue;
      }
      // A held key's value: the string the query gives, or refused at its first byte.
      if (this.held && c !== 0x3a && c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) {
        if (c !== 0x22) return this.held.why;
        this.heldValue = true;
      }
      if (c === 0x22) {
        [this.inString, this.candidate, this.matched, this.escape] = [true, this.depth === 1 && this.topIsObject && this.keyNext, 0, -1];
        this.key.length = 0;
      } else if (c === 0x7b || c === 0x5b) {
        if (this.depth === 0) this.topIsObject = c === 0x7b;
        if (++this.depth === 1) this.keyNext = true;
      } else if (c === 0x7d || c === 0x5d) this.depth = Math.max(0, this.depth - 1);
      else if (this.depth === 1 && c === 0x2c) this.keyNext = true;
      else if (this.depth === 1 && c === 0x3a) this.keyNext = false;
    }
    return undefined;
  }

  // One character of a string (a byte, or a \u escape's code unit).
  private read(unit: number): void {
    if (this.matched < 0) return;
    const lower = unit >= 0x41 && unit <= 0x5a ? unit + 0x20 : unit;
    this.matched = this.matched < METHOD_KEY.length && lower === METHOD_KEY.charCodeAt(this.matched) ? this.matched + 1 : -1;
  }
}

// A top-level key's bytes as sent, unescaped as JSON.parse reads them; undefined when it does not parse (no
// JSON to Laravel either).
function keyText(bytes: readonly number[]): string | undefined {
  const text = Buffer.from(bytes).toString('utf8');
  if (!text.includes('\\')) return text;
  try {
    return JSON.parse(`"${text}"`) as string;
  } catch {
    return undefined;
  }
}

const METHOD_KEY = '_method';

/** Longest top-level key of a streamed JSON body handed to a NameCheck, in bytes as sent. */
export const MAX_JSON_KEY_BYTES = 1024;
const METHOD_MEMBER = 'a "_method" member of a JSON body is a method override: Laravel reads a body whose Content-Type contains "/json" or "+json" as its form, "_method" included; send the method itself';

const hexValue = (c: number): number => (c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x41 && c <= 0x46 ? c - 0x37 : c >= 0x61 && c <= 0x66 ? c - 0x57 : -1);

const isHex = (c: number) => hexValue(c) >= 0;

const NOTHING = Buffer.alloc(0);

/** Most `name`/`filename` parameters one part's header block may give (PHP keeps the last, Rack the first). */
export const MAX_NAME_PARAMETERS = 8;

/** Longest header block of one part (Rack and PHP refuse far longer ones). */
export const MAX_PART_HEAD_BYTES = 16 * 1024;

/** The boundary of a multipart Content-Type, or why there is none to read by: absent, empty, or given twice. */
export function multipartBoundary(contentType: string): { boundary: string } | { refused: string } {
  // Unquoted, it ends at a ';', a ',' (as Rack reads it) or a space.
  const found = [...contentType.matchAll(/;\s*boundary\s*=\s*(?:"([^"]*)"|([^;,\s]*))/gi)].map((m) => m[1] ?? m[2] ?? '');
  if (found.length !== 1 || found[0] === '' || found[0]!.length > 200) return { refused: 'a multipart body needs exactly one boundary (of at most 200 characters) in its Content-Type' };
  // The parsers find it by other rules (PHP: the first "boundary" anywhere, then the first '=' after it;
  // Rack: the last "boundary=" anywhere): a type they read another boundary in is refused.
  if (phpBoundary(contentType) !== found[0] || rackBoundary(contentType) !== found[0]) return { refused: 'the multipart boundary in the Content-Type reads differently to different parsers' };
  return { boundary: found[0]! };
}

// rfc1867.c: `strstr(type, "boundary")` (then in lower case), `strchr(_, '=')`, to the closing quote or to ',' or ';'.
function phpBoundary(type: string): string | undefined {
  let at = type.indexOf('boundary');
  if (at < 0) at = type.toLowerCase().indexOf('boundary');
  const eq = at < 0 ? -1 : type.indexOf('=', at);
  if (eq < 0) return undefined;
  const v = type.slice(eq + 1);
  if (v.startsWith('"')) {
    const end = v.indexOf('"', 1);
    return end < 0 ? undefined : v.slice(1, end);
  }
  return v.split(/[,;]/)[0];
}

// Rack's MULTIPART: `%r|\Amultipart/.*boundary=\"?([^\";,]+)\"?|ni` (greedy: the last one).
const rackBoundary = (type: string): string | undefined => /^multipart\/.*boundary="?([^";,]+)"?/is.exec(type.trim())?.[1];

/**
 * A multipart body's part names (formReader). Every `--boundary` in the body, wherever it stands, opens a
 * header window, read up to the first CRLF CRLF after it: the longest header block a parser takes there
 * (Rack 2 needs CRLF CRLF; PHP ends a block at the first empty line, LF or CRLF, which comes no later).
 * A window is read once, when it closes (at its CRLF CRLF, past 16 KiB, or at the body's end: `end`), never
 * again per chunk, so bytes trickled in one at a time cost what a window in one piece does. A refusal then
 * comes after the window's own bytes went on but before the body's last chunk does (the relay holds each
 * chunk back until the next arrives or `end` passes): the app receives a body cut short, which no server
 * hands to it. Delimiters are sought on past a close delimiter (PHP reads any part after it), not inside a
 * window (which already covers them).
 */
export class MultipartFields implements FieldReader {
  private readonly delimiter: Buffer;
  // The last bytes of the body so far, which may hold the start of a delimiter.
  private tail: Buffer = NOTHING;
  // The header window open since the last delimiter, if any: its pieces (copies), their length, its last bytes.
  private window: Buffer[] | undefined;
  private windowLength = 0;
  private windowEnd: Buffer = NOTHING;

  constructor(
    boundary: string,
    private readonly onName?: NameCheck,
    /** A POST's form: a part named `_method` is an override, refused. */
    private readonly overrides = true,
  ) {
    this.delimiter = Buffer.from(`--${boundary}`, 'latin1');
  }

  // Why a part's header block is refused, if it is: a name that is `_method`, or one `onName` refuses.
  private refusedBlock(block: string): string | undefined {
    const names = partNames(block);
    if (!Array.isArray(names)) return `request refused: ${names.refused}`;
    if (this.overrides && names.some(namesMethodOverride)) return `request refused: ${METHOD_FIELD}`;
    if (!this.onName) return undefined;
    for (const name of names) {
      const why = this.onName(name);
      if (why) return why;
    }
    return undefined;
  }

  /** Read the next chunk: the reason to refuse the body if a part is named `_method` or its header block runs too long. */
  feed(chunk: Buffer): string | undefined {
    const d = this.delimiter;
    // Where each delimiter found ends, in the chunk: across the seam with the tail kept, then within.
    const ends: number[] = [];
    if (this.tail.length > 0) {
      const seam = Buffer.concat([this.tail, chunk.subarray(0, d.length - 1)]);
      for (let a = seam.indexOf(d); a >= 0 && a < this.tail.length; a = seam.indexOf(d, a + 1)) ends.push(a + d.length - this.tail.length);
    }
    for (let a = chunk.indexOf(d); a >= 0; a = chunk.indexOf(d, a + 1)) ends.push(a + d.length);
    const keep = d.length - 1;
    this.tail = chunk.length >= keep ? Buffer.from(chunk.subarray(chunk.length - keep)) : Buffer.from(Buffer.concat([this.tail, chunk]).subarray(-keep));
    let at = 0;
    for (;;) {
      if (!this.window) {
        const next = ends.find((e) => e >= at);
        if (next === undefined) return undefined;
        [this.window, this.windowLength, this.windowEnd] = [[], 0, NOTHING];
        at = next;
      }
      const piece = chunk.subarray(at);
      // The window's end, CRLF CRLF, sought across the seam with its last bytes: each byte is searched once.
      const crlf = Buffer.concat([this.windowEnd, piece]).indexOf('\r\n\r\n', 0, 'latin1');
      if (crlf >= 0) {
        const end = crlf + 4 - this.windowEnd.length;
        const why = this.refusedBlock(this.closeWindow(piece.subarray(0, end)));
        if (why) return why;
        at += end;
        continue;
      }
      this.window.push(Buffer.from(piece));
      this.windowLength += piece.length;
      this.windowEnd = Buffer.from(Buffer.concat([this.windowEnd, piece]).subarray(-3));
      if (this.windowLength <= MAX_PART_HEAD_BYTES) return undefined;
      // No CRLF CRLF within the bound: refused, unless an empty line ended the block for PHP (an LF-only
      // body, which Rack does not parse): its content is then searched for delimiters only.
      const text = this.closeWindow(NOTHING);
      const why = this.refusedBlock(text);
      if (why) return why;
      if (!/\n\r?\n/.test(text)) return `request refused: a part's header block in the multipart body is longer than ${MAX_PART_HEAD_BYTES} bytes`;
      return undefined;
    }
  }

  /** The body ended: a window still open (its CRLF CRLF never came) is read as it stands. */
  end(): string | undefined {
    return this.window ? this.refusedBlock(this.closeWindow(NOTHING)) : undefined;
  }

  // The window's text with its last piece, once: a window is read whole when it closes, never per chunk.
  private closeWindow(last: Buffer): string {
    const text = Buffer.concat([...this.window!, last]).toString('latin1');
    this.window = undefined;
    return text;
  }
}

// The names a part's header block gives its part, read more ways than any one parser takes: a `name` (or
// RFC 2231 `name*`) parameter in any case, quoted ("…" or '…', as PHP takes too; closed or, as PHP reads an
// unclosed one, to the end of its line), unquoted (to a space, as PHP; to a ';', as Rack 3), with and
// without backslash and percent escapes; a `Content-ID` (Rack 2 and 3 name a part without one by it). The
// block is also read with its line breaks removed: PHP appends a line with no ':' to the header before it,
// as is. Each is then read as the frameworks read a name (namesMethodOverride for `_method`: PHP reads ` _method`,
// `.method`, `_method\0x` so; the NameCheck reads the query keys' ways).
function partNames(block: string): string[] | { refused: string } {
  if (!/name|content-id|content-type/i.test(block)) return [];
  const names: string[] = [];
  const add = (v: string) => {
    for (const w of [v, v.replace(/\\(.)/g, '$1')]) names.push(w, w.replace(/%([0-9a-f]{2})/gi, (_, h: string) => String.fromCharCode(parseInt(h, 16))));
  };
  let named = false;
  const fallback: string[] = [];
  for (const text of [block, block.replace(/\r?\n/g, '')]) {
    for (const m of text.matchAll(/content-id:\s*([^\r\n]*)/gi)) add(m[1]!);
    // A parameter right after the header's colon counts too: PHP reads `Content-Disposition:name=x`.
    let seen = 0;
    for (const m of text.matchAll(/(?:^|[;\s:])(file)?name(\*?)\s*=\s*/gim)) {
      // Bounded work per block: a part names itself once (a filename beside); more is no form a client writes.
      if (++seen > MAX_NAME_PARAMETERS) return { refused: `a part's header block in the multipart body gives more than ${MAX_NAME_PARAMETERS} name parameters` };
      const rest = text.slice(m.index + m[0].length, m.index + m[0].length + 1024);
      const values: string[] = [];
      const q = rest[0];
      if (q === '"' || q === "'") {
        const inner = rest.slice(1);
        let end = -1;
        for (let i = 0; i < inner.length; i++) {
          if (inner[i] === '\\') i++;
          else if (inner[i] === q) {
            end = i;
            break;
          }
        }
        const quoted = end < 0 ? inner : inner.slice(0, end);
        values.push(quoted, quoted.split(/[\r\n]/)[0]!, inner.slice(0, Math.max(0, inner.indexOf(q))));
      } else values.push(rest.split(/[;\s]/)[0]!, rest.split(/[;\r\n]/)[0]!.trim());
      const read = values.map((v) => (m[2] ? v.replace(/^[^']*'[^']*'/, '') : v));
      if (m[1]) fallback.push(...read);
      else {
        named ||= read.some((v) => v !== '');
        read.forEach(add);
      }
    }
    // Rack names a part without a name by its filename, else by its type: `Content-Type: tenant` is `tenant[]`.
    for (const m of text.matchAll(/content-type:\s*([^\r\n;]*)/gi)) fallback.push(`${m[1]!.trim()}[]`);
  }
  if (!named) fallback.forEach(add);
  return [...new Set(names)].filter((n) => n !== '');
}
