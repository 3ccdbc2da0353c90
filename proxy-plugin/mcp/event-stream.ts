// text/event-stream, incrementally: split a byte stream into events without waiting for its end,
// and let a caller rewrite the data of the events it cares about. Untouched events pass byte for byte.
import { StringDecoder } from 'node:string_decoder';
import { Transform, type TransformCallback } from 'node:stream';

/** One event as received. `raw` is its exact text including the blank line that ends it. */
export interface SseEvent {
  raw: string;
  /** The `event:` field ("message" when absent). */
  type: string;
  /** The `data:` lines joined with "\n". */
  data: string;
  hasData: boolean;
}

/** Returns new data for the event, undefined to pass it untouched, or null to drop it. */
export type SseRewrite = (e: SseEvent) => string | undefined | null;

/** Largest single event buffered while waiting for its end (a server cannot make the proxy hold more). */
export const MAX_EVENT_CHARS = 8 * 1024 * 1024;

// The lines of one text, read in order: where each ends (CR, LF or CRLF) and where its field name ends (its
// first colon). The next CR, LF and colon are each looked up once and kept until passed, so reading every
// line of a text is linear in its length whatever it holds (a search per line for a character the text
// lacks would run to its end each time: quadratic).
class FieldLines {
  private lf = -2;
  private cr = -2;
  private colon = -2;
  /** Where the line after the one `end` last found starts. */
  after = 0;

  constructor(private readonly text: string) {}

  /** The first line end at or after `pos` (-1: none); sets `after`. */
  end(pos: number): number {
    const text = this.text;
    if (this.lf !== -1 && this.lf < pos) this.lf = text.indexOf('\n', pos);
    if (this.cr !== -1 && this.cr < pos) this.cr = text.indexOf('\r', pos);
    const { lf, cr } = this;
    const at = cr < 0 ? lf : lf < 0 ? cr : Math.min(cr, lf);
    this.after = at === cr && lf === at + 1 ? at + 2 : at + 1;
    return at;
  }

  /** Where the field name of the line text[pos, end) ends: at its first colon, or `end` when it has none. */
  nameEnd(pos: number, end: number): number {
    if (this.colon !== -1 && this.colon < pos) this.colon = this.text.indexOf(':', pos);
    return this.colon < 0 || this.colon > end ? end : this.colon;
  }
}

// Whether the field name text[start, nameEnd) is `name`, read in place (no slice per line).
const isField = (text: string, start: number, nameEnd: number, name: string): boolean => nameEnd - start === name.length && text.startsWith(name, start);

/** Incremental parser: feed text, get back the events completed so far. */
export class SseParser {
  private buf = '';
  // Text of the open line that came after `buf` in pieces with no line end: kept apart and joined once a
  // line end arrives, so a long line sent in many small pieces is scanned once, not once per piece
  // (a server could otherwise make the proxy's work grow with the square of the line's length).
  private tail: string[] = [];
  private tailChars = 0;
  // The open event: its text so far (lines already read), its type and its data lines.
  private raw = '';
  private type = 'message';
  private data: string[] = [];
  private started = false;

  push(text: string): SseEvent[] {
    // A byte order mark opening the stream is dropped, as clients drop it: else `\uFEFFdata: …` would be
    // no data field here and a data field to the client.
    if (!this.started && text.length > 0) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    if (text === '') return [];
    // A piece with no line end only lengthens the open line (unless `buf` ends in a `\r` that may be half of a `\r\n`).
    if (text.indexOf('\n') < 0 && text.indexOf('\r') < 0 && !this.buf.endsWith('\r')) {
      this.tail.push(text);
      this.tailChars += text.length;
      this.checkSize();
      return [];
    }
    if (this.tail.length > 0) {
      this.buf += this.tail.join('');
      this.tail = [];
      this.tailChars = 0;
    }
    const buf = this.buf + text;
    const out: SseEvent[] = [];
    // Lines are read by position: `pos` is where the next line starts, `from` where the open event's text
    // in `buf` starts.
    const lines = new FieldLines(buf);
    let pos = 0;
    let from = 0;
    for (;;) {
      const at = lines.end(pos);
      if (at < 0) break;
      // A lone \r at the end may be the first half of \r\n: wait for the next chunk.
      if (at === buf.length - 1 && buf.charCodeAt(at) === 0x0d) break;
      const next = lines.after;
      if (at === pos) {
        out.push(this.finish(this.raw + buf.slice(from, next)));
        from = next;
      } else if (buf.charCodeAt(pos) !== 0x3a) {
        this.field(buf, pos, lines.nameEnd(pos, at), at); // a comment (`:…`) is skipped
      }
      pos = next;
    }
    this.raw += buf.slice(from, pos);
    this.buf = buf.slice(pos);
    this.checkSize();
    return out;
  }

  /** Whatever was left unterminated when the stream ended. */
  rest(): string {
    return this.raw + this.buf + this.tail.join('');
  }

  private checkSize(): void {
    if (this.raw.length + this.buf.length + this.tailChars > MAX_EVENT_CHARS) throw new Error(`an event-stream event exceeds ${MAX_EVENT_CHARS} characters`);
  }

  // One field line of the open event, buf[start, end), its name ending at `colon` (`end` when it has none):
  // `event` sets the event's type and `data` adds a data line (one space after the colon dropped); any
  // other field does neither.
  private field(buf: string, start: number, colon: number, end: number): void {
    let v = colon + 1;
    if (v < end && buf.charCodeAt(v) === 0x20) v++;
    const value = v < end ? buf.slice(v, end) : '';
    if (isField(buf, start, colon, 'event')) this.type = value;
    else if (isField(buf, start, colon, 'data')) this.data.push(value);
  }

  private finish(raw: string): SseEvent {
    const data = this.data;
    const e: SseEvent = { raw, type: this.type, data: data.join('\n'), hasData: data.length > 0 };
    this.raw = '';
    this.type = 'message';
    this.data = [];
    return e;
  }
}

// The fields a client acts on besides data; any other line (a comment, an unknown field) it ignores.
const KEPT_FIELDS = ['event', 'id', 'retry'];

/**
 * Serialize an event with new data, keeping its other fields (event, id, retry) in place. Comments and
 * unknown fields are left out: a client that follows the spec ignores them, and a lenient one must not
 * read in them what the new data replaced (a line of JSON after the data, say).
 */
export function withData(e: SseEvent, data: string): string {
  const raw = e.raw;
  const dataLines = `data: ${data.replaceAll('\n', '\ndata: ')}\n`;
  const lines = new FieldLines(raw);
  let out = '';
  let placed = false;
  for (let pos = 0; pos < raw.length; ) {
    const found = lines.end(pos);
    const at = found < 0 ? raw.length : found;
    if (at > pos) {
      const nameEnd = lines.nameEnd(pos, at);
      if (isField(raw, pos, nameEnd, 'data')) {
        if (!placed) out += dataLines;
        placed = true;
      } else if (KEPT_FIELDS.some((f) => isField(raw, pos, nameEnd, f))) {
        out += `${raw.slice(pos, at)}\n`;
      }
    }
    pos = found < 0 ? raw.length : lines.after;
  }
  if (!placed) out += dataLines;
  return `${out}\n`;
}

/** An event carrying one JSON-RPC message (what MCP servers send as `event: message`). */
export function messageEvent(message: unknown): string {
  return `event: message\ndata: ${JSON.stringify(message)}\n\n`;
}

/** Rewrites an event stream piece by piece: `push` returns the text of the events completed so far. */
export interface EventRewriter {
  push(chunk: Buffer): string;
  /** The last events and whatever was left unterminated. */
  end(): string;
}

/** Rewrite events as they complete (synchronously, for the sidecar's fast path and the Transform below). */
export function eventRewriter(rewrite: SseRewrite): EventRewriter {
  const decoder = new StringDecoder('utf8');
  const parser = new SseParser();
  const emit = (text: string): string => {
    let out = '';
    for (const e of parser.push(text)) {
      const data = rewrite(e);
      if (data !== null) out += data === undefined ? e.raw : withData(e, data);
    }
    return out;
  };
  return {
    push: (chunk) => emit(decoder.write(chunk)),
    end: () => {
      const out = emit(decoder.end());
      const rest = parser.rest();
      if (rest === '') return out;
      // An event cut off by the end of the stream is never dispatched by a client that follows the spec, so
      // it passes as is; but one the rewrite would change or drop (a tool list) is dropped, so that a
      // lenient client that dispatches it anyway cannot read what the rewrite never let through.
      const cut = parser.push('\n\n');
      return cut.every((e) => rewrite(e) === undefined) ? out + rest : out;
    },
  };
}

/** A Transform that rewrites events as they complete; each event is flushed as soon as it ends. */
export function rewriteEventStream(rewrite: SseRewrite): Transform {
  const r = eventRewriter(rewrite);
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      try {
        const out = r.push(chunk);
        if (out) this.push(out);
        cb();
      } catch (err) {
        cb(err as Error);
      }
    },
    flush(cb: TransformCallback) {
      try {
        const out = r.end();
        if (out) this.push(out);
        cb();
      } catch (err) {
        cb(err as Error);
      }
    },
  });
}
