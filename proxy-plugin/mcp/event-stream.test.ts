import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { SseParser, rewriteEventStream } from './event-stream.js';

async function run(chunks: string[], rewrite: Parameters<typeof rewriteEventStream>[0]): Promise<string> {
  const out: Buffer[] = [];
  const t = Readable.from(chunks.map((c) => Buffer.from(c))).pipe(rewriteEventStream(rewrite));
  for await (const c of t) out.push(c as Buffer);
  return Buffer.concat(out).toString();
}

describe('event streams', () => {
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
