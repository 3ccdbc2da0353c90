// The field names of a multipart/form-data body, read as it streams to the app, for the one name the
// sidecar refuses there: `_method`, which Rails (Rack::MethodOverride), Laravel and Symfony take from a
// POST's form for the request's method (METHOD_PARAMETER in normalize.ts). The body is not buffered: each
// part's header block is read between its delimiter and the blank line after it, the part's content is
// only searched for the next delimiter. A refusal comes before the bytes that hold the name go on, so the
// app receives a body cut short, which no parser reads as a form.

/** Longest header block of one part (Rack and PHP refuse far longer ones). */
export const MAX_PART_HEAD_BYTES = 16 * 1024;

/** The boundary of a multipart Content-Type, or why there is none to read by: absent, empty, or given twice. */
export function multipartBoundary(contentType: string): { boundary: string } | { refused: string } {
  const found = [...contentType.matchAll(/;\s*boundary\s*=\s*(?:"([^"]*)"|([^;\s]*))/gi)].map((m) => m[1] ?? m[2] ?? '');
  if (found.length !== 1 || found[0] === '' || found[0]!.length > 200) return { refused: 'a multipart body needs exactly one boundary (of at most 200 characters) in its Content-Type' };
  return { boundary: found[0]! };
}

/**
 * True when a Content-Type is multipart (`multipart/form-data`, and any other subtype: Rack parses
 * `multipart/mixed` and `multipart/related` bodies as forms too), any case, any parameters.
 */
export const isMultipartForm = (contentType: string | undefined): boolean => !!contentType && /^\s*multipart\/[\w.+-]+\s*(?:;|$)/i.test(contentType);

/** One body's reader: `feed` each chunk before it goes on; a reason means stop the body there. */
export class MultipartFields {
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
        if (namesMethod(buf.toString('latin1', 0, end))) return `request refused: ${PART_REASON}`;
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

const NOTHING = Buffer.alloc(0);

const PART_REASON = 'a "_method" part of a multipart form is a method override: frameworks (Rails, Laravel, Symfony) read it as the method instead of the request line\'s; send the method itself';

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
