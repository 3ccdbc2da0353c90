import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { SseParser, rewriteEventStream, withData, type SseEvent } from './event-stream.js';

async function run(chunks: string[], rewrite: Parameters<typeof rewriteEventStream>[0]): Promise<string> {
  const out: Buffer[] = [];
  const t = Readable.from(chunks.map((c) => Buffer.from(c))).pipe(rewriteEventStream(rewrite));
  for await (const c of t) out.push(c as Buffer);
  return Buffer.concat(out).toString();
}

// The event stream format read the plain way (WHATWG HTML, "interpreting an event stream"), as a model:
// the whole text split into lines at CR, LF or CRLF, each event ended by a blank line, and the rewritten
// event written from its lines (event, id and retry kept, data replaced once, anything else dropped).
function modelEvents(text: string): SseEvent[] {
  const events: SseEvent[] = [];
  let raw = '';
  let type = 'message';
  let data: string[] = [];
  for (const m of text.matchAll(/([^\r\n]*)(\r\n|\n|\r)/g)) {
    raw += m[0];
    const line = m[1]!;
    if (line === '') {
      events.push({ raw, type, data: data.join('\n'), hasData: data.length > 0 });
      [raw, type, data] = ['', 'message', []];
      continue;
    }
    if (line.startsWith(':')) continue;
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
    if (field === 'event') type = value;
    else if (field === 'data') data.push(value);
  }
  return events;
}

function modelWithData(e: SseEvent, data: string): string {
  const lines = e.raw.split(/\r\n|\n|\r/).filter((l) => l !== '');
  const fresh = data.split('\n').map((d) => `data: ${d}`);
  const out: string[] = [];
  let placed = false;
  for (const l of lines) {
    if (l === 'data' || l.startsWith('data:')) {
      if (!placed) out.push(...fresh);
      placed = true;
    } else if (/^(?:event|id|retry)(?::|$)/.test(l)) out.push(l);
  }
  if (!placed) out.push(...fresh);
  return `${out.join('\n')}\n\n`;
}

describe('event streams', () => {
  it('reads events and rewrites them as the format reads them, whatever the fields, colons and line ends', () => {
    let seed = 1207;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    const names = ['data', 'event', 'id', 'retry', 'dat', 'datas', 'Data', 'x', 'event ', ''];
    const values = ['', ' ', 'v', ' two words', ':colon', ' {"a":1}', 'a:b:c', '  indent'];
    const ends = ['\n', '\r', '\r\n'];
    for (let n = 0; n < 300; n++) {
      let text = '';
      for (let i = 0; i < 25; i++) {
        const r = rnd();
        const line = r < 0.2 ? '' : r < 0.3 ? `:${pick(values)}` : r < 0.45 ? pick(names) : `${pick(names)}:${pick(values)}`;
        text += line + pick(ends);
      }
      const events = new SseParser().push(`${text}\n`);
      const model = modelEvents(`${text}\n`);
      expect({ n, events }).toEqual({ n, events: model });
      for (const e of events) expect(withData(e, 'new\nlines'), e.raw).toBe(modelWithData(e, 'new\nlines'));
    }
  });

  // A search per line that ran to the end of the text (for a CR, a colon) would take minutes here; the bound
  // leaves the linear reading two orders of magnitude of room.
  it('reads an event of two million lines with no colon and no CR in time linear in its length', { timeout: 20_000 }, () => {
    const lines = 'x\n'.repeat(2_000_000);
    const [e] = new SseParser().push(`${lines}data: last\n\n`);
    expect(e!.data).toBe('last');
    expect(withData(e!, 'new')).toBe('data: new\n\n');
  });

  it('parses events split across chunks at any byte, including CRLF endings', () => {
    const text = 'event: message\r\ndata: {"a":\r\ndata: 1}\r\n\r\n: keepalive\n\nid: 7\ndata: x\n\n';
    const p = new SseParser();
    const events = [...text].flatMap((ch) => p.push(ch));
    expect(events.map((e) => [e.type, e.data, e.hasData])).toEqual([['message', '{"a":\n1}', true], ['message', '', false], ['message', 'x', true]]);
  });

  it('reads any stream cut into any pieces as it reads it whole: long lines sent in small pieces, CR, LF and CRLF', () => {
    // A seeded generator: lines of every length (one of 200,000 characters), every line end, comments.
    let seed = 2306;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const ends = ['\n', '\r', '\r\n'];
    const line = () => (rnd() < 0.05 ? `data: ${'x'.repeat(200_000)}` : rnd() < 0.2 ? ': comment' : `${rnd() < 0.5 ? 'data' : 'event'}: ${'v'.repeat(Math.floor(rnd() * 40))}`);
    for (let n = 0; n < 40; n++) {
      let text = '';
      for (let i = 0; i < 30; i++) text += (rnd() < 0.3 ? '' : line()) + ends[Math.floor(rnd() * 3)]!;
      const whole = new SseParser();
      const expected = { events: whole.push(text), rest: whole.rest() };
      const pieces = new SseParser();
      const events = [];
      for (let at = 0; at < text.length; ) {
        const size = rnd() < 0.5 ? 1 + Math.floor(rnd() * 3) : 1 + Math.floor(rnd() * 5000);
        events.push(...pieces.push(text.slice(at, at + size)));
        at += size;
      }
      expect({ n, events, rest: pieces.rest() }).toEqual({ n, ...expected });
    }
  });

  it('refuses an event longer than the bound also when it comes in small pieces with no line end', () => {
    const p = new SseParser();
    const piece = 'x'.repeat(64 * 1024);
    expect(() => {
      for (let i = 0; i < 200; i++) p.push(piece);
    }).toThrow(/exceeds/);
  });

  it('passes untouched events byte for byte and rewrites only the chosen one, keeping its id', async () => {
    const input = 'event: message\r\nid: 1\r\ndata: keep\r\n\r\nevent: message\nid: 2\ndata: old\n\n: comment\n\n';
    const out = await run([input.slice(0, 13), input.slice(13)], (e) => (e.data === 'old' ? 'new' : undefined));
    expect(out).toBe('event: message\r\nid: 1\r\ndata: keep\r\n\r\nevent: message\nid: 2\ndata: new\n\n: comment\n\n');
  });

  it('leaves comments and unknown fields out of a rewritten event, keeping event, id and retry', async () => {
    const out = await run([': note\nevent: message\nid: 4\nretry: 10\ndata: old\n{"x":1}\nfoo: bar\n\n'], () => 'new');
    expect(out).toBe('event: message\nid: 4\nretry: 10\ndata: new\n\n');
  });

  it('passes an event cut off by the end of the stream as is, unless the rewrite would change or drop it', async () => {
    const rewrite = (e: { data: string }) => (e.data.startsWith('old') ? 'new' : e.data === 'bad' ? null : undefined);
    expect(await run(['data: keep\n\ndata: ke', 'ep'], rewrite)).toBe('data: keep\n\ndata: keep');
    expect(await run(['data: keep\n\nid: 3\ndata: old'], rewrite)).toBe('data: keep\n\n');
    expect(await run(['data: keep\n\ndata: old\r'], rewrite)).toBe('data: keep\n\n');
    expect(await run(['data: keep\n\ndata: bad\n'], rewrite)).toBe('data: keep\n\n');
  });

  it('emits each event as soon as it is complete', async () => {
    const t = rewriteEventStream(() => undefined);
    const seen: string[] = [];
    t.on('data', (c: Buffer) => seen.push(c.toString()));
    t.write('data: 1\n\ndata: 2');
    expect(seen).toEqual(['data: 1\n\n']);
    t.end('\n\n');
    await new Promise((ok) => t.on('end', ok));
    expect(seen.join('')).toBe('data: 1\n\ndata: 2\n\n');
  });
});
