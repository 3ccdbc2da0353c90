import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { bufferedLogStream } from './log-stream.js';

const dir = mkdtempSync(join(tmpdir(), 'warden-log-stream-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const lines = (file: string): Array<{ msg: string; n?: number }> =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { msg: string; n?: number });

describe('bufferedLogStream', () => {
  it('holds lines below 4 KiB until the periodic flush writes them', async () => {
    const file = join(dir, 'periodic.log');
    const out = bufferedLogStream(file, 50);
    const logger = pino(out.stream);
    logger.info('one quiet line');
    // Wait for the flush timer (bounded): the line must arrive without close().
    const deadline = Date.now() + 5000;
    let seen: Array<{ msg: string }> = [];
    while (Date.now() < deadline) {
      seen = (() => {
        try {
          return lines(file);
        } catch {
          return [];
        }
      })();
      if (seen.length > 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(seen.map((l) => l.msg)).toEqual(['one quiet line']);
    await out.close();
  });

  it('loses no line at close, in order, under a burst larger than its buffer', async () => {
    const file = join(dir, 'burst.log');
    const out = bufferedLogStream(file, 60_000);
    await new Promise<void>((resolve) => out.destination.once('ready', () => resolve()));
    const logger = pino(out.stream);
    for (let n = 0; n < 5000; n++) logger.info({ n }, 'decision');
    await out.close();
    const got = lines(file);
    expect(got).toHaveLength(5000);
    expect(got.every((l, i) => l.n === i)).toBe(true);
  });
});
