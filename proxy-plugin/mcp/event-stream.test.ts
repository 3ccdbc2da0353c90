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
