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

/** Incremental parser: feed text, get back the events completed so far. */
export class SseParser {
  private buf = '';
  // Text of the open line that came after `buf` in pieces with no line end: kept apart and joined once a
  // line end arrives, so a long line sent in many small pieces is scanned once, not once per piece
  // (a server could otherwise make the proxy's work grow with the square of the line's length).
  private tail: string[] = [];
  private tailChars = 0;
  private lines: string[] = [];
  private raw = '';
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
    if (!/[\r\n]/.test(text) && !this.buf.endsWith('\r')) {
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
    this.buf += text;
    const out: SseEvent[] = [];
    for (let guard = 0; guard < 1_000_000; guard++) {
      const m = /\r\n|\n|\r/.exec(this.buf);
      if (!m) break;
      // A lone \r at the end may be the first half of \r\n: wait for the next chunk.
      if (m[0] === '\r' && m.index === this.buf.length - 1) break;
      const line = this.buf.slice(0, m.index);
      this.raw += this.buf.slice(0, m.index + m[0].length);
      this.buf = this.buf.slice(m.index + m[0].length);
      if (line === '') {
        out.push(this.finish());
      } else {
        this.lines.push(line);
      }
    }
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

  private finish(): SseEvent {
    let type = 'message';
    const data: string[] = [];
    for (const line of this.lines) {
      if (line.startsWith(':')) continue;
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      let value = i < 0 ? '' : line.slice(i + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') type = value;
      else if (field === 'data') data.push(value);
    }
    const e: SseEvent = { raw: this.raw, type, data: data.join('\n'), hasData: data.length > 0 };
    this.lines = [];
    this.raw = '';
    return e;
  }
}

// A line of a field a client acts on besides data; any other line (a comment, an unknown field) it ignores.
const KEPT_FIELD = /^(?:event|id|retry)(?::|$)/;

/**
 * Serialize an event with new data, keeping its other fields (event, id, retry) in place. Comments and
 * unknown fields are left out: a client that follows the spec ignores them, and a lenient one must not
 * read in them what the new data replaced (a line of JSON after the data, say).
 */
export function withData(e: SseEvent, data: string): string {
  const lines = e.raw.split(/\r\n|\n|\r/).filter((l) => l !== '');
  const out: string[] = [];
  let placed = false;
  for (const l of lines) {
    if (l === 'data' || l.startsWith('data:')) {
      if (!placed) out.push(...data.split('\n').map((d) => `data: ${d}`));
      placed = true;
    } else if (KEPT_FIELD.test(l)) {
      out.push(l);
    }
  }
  if (!placed) out.push(...data.split('\n').map((d) => `data: ${d}`));
  return `${out.join('\n')}\n\n`;
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
