// The console's graph snapshots on a real SQLite store (its aggregate runs on the store's reader thread):
// a wide window is answered for exactly the window it names as of the time it names, refreshed off the
// request path, and a narrow one is computed for each request.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeEvents } from '../../test/support/decision-events.js';
import { SqliteStore } from '../audit/sqlite-store.js';
import { GraphSnapshots, type GraphPending, type GraphView } from './graph-snapshots.js';

const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 10, 25, 12, 0, 0);
const dir = mkdtempSync(join(tmpdir(), 'warden-graph-snapshots-'));
let store: SqliteStore;

beforeAll(async () => {
  store = SqliteStore.open(join(dir, 'audit.db'));
  // 30 hours of calls, one every 10 minutes, from 3 callers to 2 workloads; a few seconds off the minute so windows cut hours.
  await store.append(makeEvents(180, (i) => ({ time: new Date(T0 - 30 * HOUR + i * 600_000 + 7000), principal: `spiffe://c/ns/a/sa/p${i % 3}`, workload: i % 2 ? 'orders' : 'payments', outcome: i % 5 ? 'allow' : 'deny' })), T0);
});
afterAll(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** What the events table says for [from, to), the top `limit` edges, computed by the store's plain aggregate. */
async function truth(from: number | undefined, to: number, limit: number, workload?: string[]) {
  const all = await store.edges({ ...(from !== undefined ? { from } : {}), to, ...(workload ? { workload } : {}), sort: '-time', limit: 10_000 });
  return { edges: all.slice(0, limit), edgeCount: all.length, eventCount: all.reduce((n, e) => n + e.total, 0) };
}

const ready = async (p: Promise<GraphView | GraphPending>) => {
  const v = await p;
  if ('pending' in v) throw new Error('still pending');
  return v;
};

describe('graph snapshots', () => {
  it('answers a narrow window for each request, as of the request', async () => {
    let now = T0;
    const g = new GraphSnapshots({ summarize: (f) => store.edgeSummary(f), now: () => now });
    const v = await ready(g.view({}, '1h', 200));
    expect(v).toEqual({ ...(await truth(T0 - HOUR, T0, 200)), from: T0 - HOUR, to: T0, asOf: T0 });
    now = T0 - 5 * HOUR;
    expect(await ready(g.view({ since: '90m' }, '1h', 200))).toMatchObject({ from: now - 90 * 60_000, to: now, asOf: now });
  });

  it('answers a wide window from a snapshot that names the exact window it covers, top edges and what the rest add up to', async () => {
    let now = T0;
    let computed = 0;
    const g = new GraphSnapshots({ summarize: (f) => (computed++, store.edgeSummary(f)), now: () => now, maxAgeMs: 60_000, waitMs: 10_000 });
    const first = await ready(g.view({ since: '24h' }, '1h', 2));
    expect(first).toEqual({ ...(await truth(T0 - 24 * HOUR, T0, 2)), from: T0 - 24 * HOUR, to: T0, asOf: T0 });
    expect(first.edges).toHaveLength(2);
    expect(first.edgeCount).toBe(6);
    expect(first.eventCount).toBe(144);
    // Within maxAge the snapshot is served as it is: the same window, said to be as of T0.
    now = T0 + 30_000;
    expect(await g.view({ since: '24h' }, '1h', 2)).toEqual(first);
    expect(computed).toBe(1);
    // Past maxAge: the old snapshot is served once more while the new one is computed, then the new one.
    now = T0 + 2 * HOUR;
    expect(await g.view({ since: '24h' }, '1h', 2)).toEqual(first);
    let next: GraphView | undefined;
    // Polled (bounded, 10 s) until the reader thread has answered.
    for (let i = 0; i < 1000 && !next; i++) {
      const v = await ready(g.view({ since: '24h' }, '1h', 2));
      if (v.asOf !== T0) next = v;
      else await new Promise((r) => setTimeout(r, 10));
    }
    expect(next).toEqual({ ...(await truth(now - 24 * HOUR, now, 2)), from: now - 24 * HOUR, to: now, asOf: now });
    expect(computed).toBe(2);
    // The whole store is a wide window too; another filter or limit is another snapshot.
    expect(await ready(g.view({ since: '7d', workload: 'orders' }, '1h', 200))).toEqual({ ...(await truth(now - 7 * 24 * HOUR, now, 200, ['orders'])), from: now - 7 * 24 * HOUR, to: now, asOf: now });
  });

  it('tells the first request of a wide window to come back when its aggregate takes longer than the wait, and never blocks on it', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const g = new GraphSnapshots({ summarize: async (f) => (await gate, store.edgeSummary(f)), now: () => T0, waitMs: 20 });
    expect(await g.view({ since: '24h' }, '1h', 200)).toEqual({ pending: true, since: T0 });
    expect(await g.view({ since: '24h' }, '1h', 200)).toEqual({ pending: true, since: T0 });
    release();
    const v = await ready(new GraphSnapshots({ summarize: (f) => store.edgeSummary(f), now: () => T0, waitMs: 10_000 }).view({ since: '24h' }, '1h', 200));
    for (let i = 0; i < 1000; i++) {
      const again = await g.view({ since: '24h' }, '1h', 200);
      if (!('pending' in again)) return expect(again).toEqual(v);
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error('the snapshot never became ready');
  });

  it('computes at most maxRunning wide windows at once: a reader asking for many distinct ones queues nothing more', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const started: string[] = [];
    const g = new GraphSnapshots({ summarize: async (f) => (started.push(String(f.workload)), await gate, store.edgeSummary(f)), now: () => T0, waitMs: 5, maxRunning: 2 });
    for (const w of ['a', 'b', 'c', 'd']) expect(await g.view({ since: '24h', workload: w }, '1h', 200)).toEqual({ pending: true, since: T0 });
    expect(started).toEqual(['a', 'b']);
    release();
    // Once those two are done, the next request of a waiting window starts it.
    for (let i = 0; i < 1000 && !('edges' in (await g.view({ since: '24h', workload: 'a' }, '1h', 200))); i++) await new Promise((r) => setTimeout(r, 10));
    for (let i = 0; i < 1000 && !('edges' in (await g.view({ since: '24h', workload: 'b' }, '1h', 200))); i++) await new Promise((r) => setTimeout(r, 10));
    await g.view({ since: '24h', workload: 'c' }, '1h', 200);
    expect(started).toEqual(['a', 'b', 'c']);
  });

  it('reports a failed aggregate to the request that waits for it, and tries again on the next one', async () => {
    let fail = true;
    const g = new GraphSnapshots({ summarize: (f) => (fail ? Promise.reject(new Error('disk I/O error')) : store.edgeSummary(f)), now: () => T0, waitMs: 10_000 });
    await expect(g.view({ since: '24h' }, '1h', 200)).rejects.toThrow(/the graph aggregate failed: disk I\/O error/);
    fail = false;
    await expect(ready(g.view({ since: '24h' }, '1h', 200))).resolves.toMatchObject({ asOf: T0, eventCount: 144 });
  });
});
