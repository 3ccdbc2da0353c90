// The field names of a POST's form, read as its body streams to the app, for the one name the sidecar
// refuses there: `_method`, which Rails (Rack::MethodOverride), Laravel and Symfony take from a POST's form
// for the request's method (METHOD_PARAMETER in normalize.ts). A form is not buffered (it may be a large
// upload): a url-encoded one is read name by name, its values only searched for the next separator; a
// multipart one part by part, each part's header block read between its delimiter and the blank line
// after it, its content only searched for the next delimiter. A refusal comes before the bytes that
// complete the name go on, so the app receives a body cut short, which no server hands to it as a form.

import { MethodName } from './normalize.js';

/** What the relay feeds each chunk of a body to (relay.ts `Outgoing.inspect`). */
export interface FieldReader {
  /** Read the next chunk: the reason to refuse the body, if it names `_method`. */
  feed(chunk: Buffer): string | undefined;
}

/**
 * The reader a POST's form needs, if its body is one: url-encoded, or with no Content-Type at all (Rack
 * reads such a POST as a url-encoded form), or multipart (any subtype: Rack parses `mixed` and `related`
 * as forms too); or why it cannot be read (a multipart type without exactly one boundary).
 */
export function formReader(method: string, contentType: string | undefined): FieldReader | { refused: string } | undefined {
  if (method !== 'POST') return undefined;
  if (!contentType?.trim() || URLENCODED.test(contentType)) return new UrlencodedFields();
  if (!MULTIPART.test(contentType)) return undefined;
  const b = multipartBoundary(contentType);
  return 'refused' in b ? b : new MultipartFields(b.boundary);
}

// The media type as Rack and PHP read it: up to a ';' or a ',' (PHP: a space too).
const URLENCODED = /^\s*application\/x-www-form-urlencoded(?:[\s;,]|$)/i;
const MULTIPART = /^\s*multipart\/[\w.+-]+(?:[\s;,]|$)/i;

const METHOD_FIELD = 'a "_method" field of a form is a method override: frameworks (Rails, Laravel, Symfony) read it as the method instead of the request line\'s; send the method itself';

/**
 * A url-encoded form's names, as Rack and PHP read them: pairs split on `&` (and `;`, as Rack 2 does), a
 * name up to its `=`, `+` a space, `%XX` its byte where it decodes (as written where it does not), each
 * name read by MethodName. A name that is `_method` to one of them, with a value, is refused (a bare
 * `_method` has none, and overrides nothing). Values are skipped with a byte search.
 */
export class UrlencodedFields implements FieldReader {
  private name = new MethodName();
  private inName = true;
  // An escape begun and not yet whole: `%` and the hex digits after it.
  private escape: number[] = [];

  feed(chunk: Buffer): string | undefined {
    let i = 0;
    while (i < chunk.length) {
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
      if (this.escape.length > 0) {
        if (isHex(c)) {
          this.escape.push(c);
          if (this.escape.length === 3) {
            this.name.push(parseInt(String.fromCharCode(this.escape[1]!, this.escape[2]!), 16));
            this.escape = [];
          }
          continue;
        }
        for (const e of this.escape) this.name.push(e);
        this.escape = [];
      }
      if (c === 0x3d) {
        if (this.name.isMethod) return `request refused: ${METHOD_FIELD}`;
        this.inName = false;
      } else if (c === 0x26 || c === 0x3b) this.startName();
      else if (c === 0x25) this.escape = [c];
      else this.name.push(c === 0x2b ? 0x20 : c);
    }
    return undefined;
  }

  private startName(): void {
    this.inName = true;
    this.name = new MethodName();
    this.escape = [];
  }
}

const isHex = (c: number) => (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);

const NOTHING = Buffer.alloc(0);

/** Longest header block of one part (Rack and PHP refuse far longer ones). */
export const MAX_PART_HEAD_BYTES = 16 * 1024;

/** The boundary of a multipart Content-Type, or why there is none to read by: absent, empty, or given twice. */
export function multipartBoundary(contentType: string): { boundary: string } | { refused: string } {
  // Unquoted, it ends at a ';', a ',' (as Rack reads it) or a space.
  const found = [...contentType.matchAll(/;\s*boundary\s*=\s*(?:"([^"]*)"|([^;,\s]*))/gi)].map((m) => m[1] ?? m[2] ?? '');
  if (found.length !== 1 || found[0] === '' || found[0]!.length > 200) return { refused: 'a multipart body needs exactly one boundary (of at most 200 characters) in its Content-Type' };
  return { boundary: found[0]! };
}

/** A multipart body's part names (formReader): each part's header block read, its content searched for the next delimiter. */
export class MultipartFields implements FieldReader {
  private readonly delimiter: Buffer;
  // The end of the last chunk, which may hold the start of a delimiter (in content), or the header block read so far.
  private carry: Buffer = NOTHING;
  private inHead = false;
  // Past the close delimiter (`--boundary--`): parsers stop there, and so does this one.
  private done = false;

  constructor(boundary: string) {
    this.delimiter = Buffer.from(`--${boundary}`, 'latin1');
  }

  /** Read the next chunk: the reason to refuse the body if a part is named `_method` or its header block runs too long. */
  feed(chunk: Buffer): string | undefined {
    if (this.done) return undefined;
    let buf = chunk;
    if (this.inHead || chunk.length < this.delimiter.length) {
      if (this.carry.length > 0) buf = Buffer.concat([this.carry, chunk]);
    } else if (this.carry.length > 0) {
      // A delimiter across the seam: the tail kept and the chunk's first bytes (the chunk is not copied).
      const at = Buffer.concat([this.carry, chunk.subarray(0, this.delimiter.length - 1)]).indexOf(this.delimiter);
      if (at >= 0) {
        this.inHead = true;
        buf = chunk.subarray(at + this.delimiter.length - this.carry.length);
      }
    }
    this.carry = NOTHING;
    for (;;) {
      if (this.inHead) {
        if (buf.length < 2) {
          this.carry = Buffer.from(buf);
          return undefined;
        }
        if (buf[0] === 0x2d && buf[1] === 0x2d) {
          this.done = true;
          return undefined;
        }
        const end = blankLine(buf);
        if (end < 0) {
          if (buf.length > MAX_PART_HEAD_BYTES) return `request refused: a part's header block in the multipart body is longer than ${MAX_PART_HEAD_BYTES} bytes`;
          this.carry = Buffer.from(buf);
          return undefined;
        }
        if (namesMethod(buf.toString('latin1', 0, end))) return `request refused: ${METHOD_FIELD}`;
        this.inHead = false;
        buf = buf.subarray(end);
        continue;
      }
      const at = buf.indexOf(this.delimiter);
      if (at < 0) {
        // A delimiter may begin in this chunk's last bytes: keep them (a copy: the chunk goes on).
        this.carry = Buffer.from(buf.subarray(Math.max(0, buf.length - this.delimiter.length + 1)));
        return undefined;
      }
      this.inHead = true;
      buf = buf.subarray(at + this.delimiter.length);
    }
  }
}


// Where a header block ends: its blank line (CRLF CRLF, or LF LF, which lenient parsers take), -1 if not yet.
function blankLine(buf: Buffer): number {
  const crlf = buf.indexOf('\r\n\r\n', 0, 'latin1');
  const lf = buf.indexOf('\n\n', 0, 'latin1');
  if (crlf < 0) return lf < 0 ? -1 : lf + 2;
  return lf < 0 || crlf < lf ? crlf + 4 : lf + 2;
}

// True when a part's header block gives a `name` (or RFC 2231 `name*`) parameter that reads `_method` in
// any case, quoted or not, with backslash or percent escapes: more readings than any one parser takes.
function namesMethod(block: string): boolean {
  if (!/name/i.test(block)) return false;
  for (const m of block.matchAll(/(?:^|[;\s])name(\*?)\s*=\s*(?:"((?:\\.|[^"\\])*)"|([^;\s]*))/gim)) {
    let value = (m[2] ?? m[3] ?? '').replace(/\\(.)/g, '$1');
    if (m[1]) value = value.replace(/^[^']*'[^']*'/, '');
    value = value.replace(/%([0-9a-f]{2})/gi, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
    if (value.length === 7 && value.toLowerCase() === '_method') return true;
  }
  return false;
}
