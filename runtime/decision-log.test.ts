import express from 'express';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { DecisionEvent } from '../formats/decision-event.js';
import { PluginMetrics } from '../proxy-plugin/metrics.js';
import { closeServer, listenLocal } from '../test/support/proxy-fixtures.js';
import { DecisionLog, DEFERRED_EVENTS } from './decision-log.js';

const event = (i: number): DecisionEvent => ({
  decision_id: `decision-${String(i).padStart(6, '0')}`,
  timestamp: new Date().toISOString(),
  kind: 'http',
  outcome: 'allow',
  mode: 'enforce',
  labels: { workload: 'orders', namespace: 'shop', source: 'proxy' },
  bundles: { orders: { revision: 'r1' } },
  path: 'warden/decision',
});

function collector(): { app: express.Express; got: DecisionEvent[] } {
  const got: DecisionEvent[] = [];
  const app = express();
  app.post('/logs', express.json({ limit: '10mb' }), (req, res) => {
    got.push(...(req.body as DecisionEvent[]));
    res.status(204).end();
  });
  return { app, got };
}

// Run `test` against a collecting engine on 127.0.0.1: its base URL, the events it got, its POST count.
async function withCollector(test: (engine: string, got: DecisionEvent[], posts: () => number) => Promise<void>): Promise<void> {
  const { app, got } = collector();
  let posts = 0;
  const server = http.createServer((req, res) => {
    posts++;
    app(req, res);
  });
  const port = await listenLocal(server);
  try {
    await test(`http://127.0.0.1:${port}`, got, () => posts);
  } finally {
    await closeServer(server);
  }
}

describe('DecisionLog', () => {
  it('builds deferred events in batches, in decision order, and before anything flush, close or record sees', async () => {
    await withCollector(async (engine, got) => {
      const log = new DecisionLog({ engine, logger: pino({ level: 'silent' }), flushIntervalMs: 60_000 });
      const built: number[] = [];
      const later = (i: number) => () => (built.push(i), event(i));
      log.recordLater(later(0));
      log.recordLater(later(1));
      expect(built).toEqual([]); // not on the caller's path
      await new Promise((r) => setImmediate(r));
      expect(built).toEqual([]); // nor one turn later: a batch waits for more
      log.record(event(2)); // a direct record (a drift event) comes after the calls decided before it
      expect(built).toEqual([0, 1]);
      // A full batch is built in the next turn.
      for (let i = 3; i < 3 + DEFERRED_EVENTS.batch; i++) log.recordLater(later(i));
      expect(built).toHaveLength(2);
      await new Promise((r) => setImmediate(r));
      expect(built).toEqual([0, 1, ...Array.from({ length: DEFERRED_EVENTS.batch }, (_, k) => 3 + k)]);
      // One call alone is built when its batch's time is up, with nothing else happening.
      const next = 3 + DEFERRED_EVENTS.batch;
      log.recordLater(later(next));
      await new Promise<void>((resolve, reject) => {
        const deadline = Date.now() + 5_000;
        const poll = () => (built.includes(next) ? resolve() : Date.now() > deadline ? reject(new Error('a lone deferred event was never built')) : setTimeout(poll, 1));
        poll();
      });
      log.recordLater(() => {
        throw new Error('a bug in a builder');
      });
      log.recordLater(later(next + 1));
      expect(log.depth).toBe(next + 2); // the counters see what is pending; the broken builder costs its event only
      log.recordLater(later(next + 2));
      await log.close();
      expect(got.map((e) => e.decision_id)).toEqual(Array.from({ length: next + 3 }, (_, i) => event(i).decision_id));
      expect(log.dropped).toBe(1);
    });
  });

  it('spills to a local file while the engine is away and replays it when it is back', async () => {
    // Find a free port, then leave it closed: the engine is "away".
    const probe = http.createServer();
    const port = await listenLocal(probe);
    await closeServer(probe);
    const spillFile = join(mkdtempSync(join(tmpdir(), 'warden-spill-')), 'spill.ndjson');
    const metrics = new PluginMetrics();
    const log = new DecisionLog({ engine: `http://127.0.0.1:${port}`, spillFile, logger: pino({ level: 'silent' }), metrics, flushIntervalMs: 10_000 });
    for (let i = 0; i < 25; i++) log.record(event(i));
    await log.flush();
    expect(readFileSync(spillFile, 'utf8').trim().split('\n')).toHaveLength(25);
    expect(log.depth).toBe(0);
    const { app, got } = collector();
    const engine = http.createServer(app);
    await new Promise<void>((r) => engine.listen(port, '127.0.0.1', r));
    try {
      for (let i = 25; i < 30; i++) log.record(event(i));
      await log.close(); // ignores the backoff: ships the spill file and the queue now
      expect(got.map((e) => e.decision_id)).toEqual(Array.from({ length: 30 }, (_, i) => event(i).decision_id));
      expect(existsSync(spillFile)).toBe(false);
      expect(log.dropped).toBe(0);
      expect((await metrics.logSpilled.get()).values[0]?.value).toBe(25);
    } finally {
      await closeServer(engine);
    }
  });

  it('replays a spill file whose last write was cut short, dropping and counting only the broken lines', async () => {
    const spillFile = join(mkdtempSync(join(tmpdir(), 'warden-spill-')), 'spill.ndjson');
    const whole = [event(0), event(1)].map((e) => JSON.stringify(e));
    // An edited line holding two events joined by a comma is not one JSON text: dropped, never shipped as two.
    const glued = `${JSON.stringify(event(7))},${JSON.stringify(event(8))}`;
    writeFileSync(spillFile, `${whole.join('\n')}\n${glued}\n${JSON.stringify(event(2)).slice(0, 40)}`);
    await withCollector(async (engine, got) => {
      const log = new DecisionLog({ engine, spillFile, logger: pino({ level: 'silent' }), flushIntervalMs: 60_000 });
      log.record(event(3));
      await log.close();
      expect(got.map((e) => e.decision_id)).toEqual([0, 1, 3].map((i) => event(i).decision_id));
      expect(log.dropped).toBe(2);
      expect(existsSync(spillFile)).toBe(false);
    });
  });

  it('ships an event as it was when recorded, whatever later happens to the object', async () => {
    await withCollector(async (engine, got) => {
      const log = new DecisionLog({ engine, logger: pino({ level: 'silent' }), flushIntervalMs: 60_000 });
      const e = event(1);
      log.record(e);
      e.outcome = 'deny';
      e.labels.workload = 'payments';
      await log.close();
      expect(got).toEqual([event(1)].map((x) => ({ ...x, timestamp: got[0]!.timestamp })));
      expect(got[0]!.outcome).toBe('allow');
    });
  });

  it('with lines "denied" writes local lines for all but allowed calls, and still ships every event', async () => {
    await withCollector(async (engine, got) => {
      const written: string[] = [];
      const logger = pino({ level: 'info' }, { write: (line: string) => written.push(line) });
      const log = new DecisionLog({ engine, logger, lines: 'denied', flushIntervalMs: 60_000 });
      const events: DecisionEvent[] = [
        event(0),
        { ...event(1), outcome: 'deny' },
        { ...event(2), outcome: 'dry-run-deny' },
        { ...event(3), outcome: 'deny', error: 'policy evaluation failed: boom' },
        { ...event(4), kind: 'drift' }, // a tools/list drift that was only warned about: still worth a line
        event(5),
      ];
      for (const e of events) log.record(e);
      await log.close();
      expect(written.map((l) => (JSON.parse(l) as { decision_id: string }).decision_id)).toEqual([1, 2, 3, 4].map((i) => event(i).decision_id));
      expect(got.map((e) => e.decision_id)).toEqual(events.map((e) => e.decision_id));
    });
  });

  it('refuses local lines other than "all" without an engine (nothing else would record the decisions) and unknown choices', () => {
    const logger = pino({ level: 'silent' });
    expect(() => new DecisionLog({ logger, lines: 'denied' })).toThrow('decision lines "denied" needs an engine to ship events to: without one the local lines are the only record of decisions');
    expect(() => new DecisionLog({ logger, engine: 'http://127.0.0.1:1', lines: 'some' as never })).toThrow('decision lines "some" is not one of all, denied, none');
  });

  it('ships full batches as they fill and leaves the rest for the timer', async () => {
    await withCollector(async (engine, got, posts) => {
      const log = new DecisionLog({ engine, logger: pino({ level: 'silent' }), batchSize: 10, flushIntervalMs: 60_000 });
      for (let i = 0; i < 25; i++) log.record(event(i));
      await log.flush(false);
      expect(got).toHaveLength(20); // two full batches; the five left over wait for the timer
      expect(log.depth).toBe(5);
      await log.flush();
      expect(got.map((e) => e.decision_id)).toEqual(Array.from({ length: 25 }, (_, i) => event(i).decision_id));
      expect(posts()).toBe(3);
      await log.close();
    });
  });

  it('never spills or resends a batch that is in flight when the queue overflows', async () => {
    const spillFile = join(mkdtempSync(join(tmpdir(), 'warden-spill-')), 'spill.ndjson');
    const got: string[] = [];
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let posts = 0;
    const engine = http.createServer(express().post('/logs', express.json(), async (req, res) => {
      if (posts++ === 0) await held; // the first batch waits while the queue overflows behind it
      got.push(...(req.body as DecisionEvent[]).map((e) => e.decision_id));
      res.json({ received: 0, stored: 0, duplicates: [], rejected: [] });
    }));
    const port = await listenLocal(engine);
    try {
      const log = new DecisionLog({ engine: `http://127.0.0.1:${port}`, spillFile, logger: pino({ level: 'silent' }), maxQueue: 10, batchSize: 5, flushIntervalMs: 60_000 });
      for (let i = 0; i < 5; i++) log.record(event(i)); // a full batch: POSTed, and held
      await new Promise((r) => setTimeout(r, 0));
      for (let i = 5; i < 16; i++) log.record(event(i)); // overflows: the oldest queued go to the spill file
      release();
      await log.close();
      const all = Array.from({ length: 16 }, (_, i) => event(i).decision_id);
      expect([...got].sort()).toEqual(all);
      expect(new Set(got).size).toBe(got.length);
      expect(log.dropped).toBe(0);
    } finally {
      release();
      await closeServer(engine);
    }
  });

  it('counts events it had to drop when the buffer is full and there is no spill file', async () => {
    const log = new DecisionLog({ engine: 'http://127.0.0.1:9', logger: pino({ level: 'silent' }), maxQueue: 10, flushIntervalMs: 60_000, batchSize: 1000 });
    for (let i = 0; i < 15; i++) log.record(event(i));
    await new Promise((r) => setImmediate(r));
    expect(log.dropped).toBe(5); // each overflow moves out a tenth of the queue (1 event); no spill file: dropped
    expect(log.depth).toBe(10);
  });

  it('ships batches as a gzip JSON array', async () => {
    let encoding: string | undefined;
    const got: DecisionEvent[] = [];
    const server = http.createServer((req, res) => {
      encoding = req.headers['content-encoding'];
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', async () => {
        const { gunzipSync } = await import('node:zlib');
        got.push(...(JSON.parse(gunzipSync(Buffer.concat(chunks)).toString()) as DecisionEvent[]));
        res.writeHead(204).end();
      });
    });
    const port = await listenLocal(server);
    try {
      const log = new DecisionLog({ engine: `http://127.0.0.1:${port}`, logger: pino({ level: 'silent' }) });
      log.record(event(1));
      await log.close();
      expect(encoding).toBe('gzip');
      expect(got).toHaveLength(1);
      expect((server.address() as AddressInfo).port).toBe(port);
    } finally {
      await closeServer(server);
    }
  });

  it('keeps events while the engine refuses its identity, and ships them once it is accepted', async () => {
    let accept = false;
    const got: DecisionEvent[] = [];
    const server = http.createServer(express().post('/logs', express.json(), (req, res) => {
      if (!accept) return void res.status(403).json({ error: 'spiffe://cluster.local/ns/shop/sa/orders may not log decisions' });
      got.push(...(req.body as DecisionEvent[]));
      res.json({ received: got.length, stored: got.length, duplicates: [], rejected: [] });
    }));
    const port = await listenLocal(server);
    const spillFile = join(mkdtempSync(join(tmpdir(), 'warden-spill-')), 'spill.ndjson');
    try {
      const log = new DecisionLog({ engine: `http://127.0.0.1:${port}`, spillFile, logger: pino({ level: 'silent' }), flushIntervalMs: 60_000 });
      for (let i = 0; i < 3; i++) log.record(event(i));
      await log.flush();
      expect(readFileSync(spillFile, 'utf8').trim().split('\n')).toHaveLength(3);
      accept = true;
      await log.close();
      expect(got.map((e) => e.decision_id)).toEqual([0, 1, 2].map((i) => event(i).decision_id));
      expect(log.dropped).toBe(0);
    } finally {
      await closeServer(server);
    }
  });

  it('counts events the engine rejected one by one as dropped', async () => {
    const server = http.createServer(express().post('/logs', express.json(), (req, res) => {
      const batch = req.body as DecisionEvent[];
      res.json({ received: batch.length, stored: batch.length - 1, duplicates: [], rejected: [{ index: 0, decision_id: batch[0]!.decision_id, reason: 'labels.workload is not yours' }] });
    }));
    const port = await listenLocal(server);
    try {
      const log = new DecisionLog({ engine: `http://127.0.0.1:${port}`, logger: pino({ level: 'silent' }) });
      log.record(event(1));
      log.record(event(2));
      await log.close();
      expect(log.dropped).toBe(1);
      expect(log.shipped).toBe(2);
    } finally {
      await closeServer(server);
    }
  });

  it('reports its drop counter with every batch it ships (the engine keeps it per pod)', async () => {
    const reported: Array<string | undefined> = [];
    const server = http.createServer(express().post('/logs', express.json(), (req, res) => {
      reported.push(req.get('x-warden-log-dropped'));
      const batch = req.body as DecisionEvent[];
      // The first batch loses its first event to the engine: that is one event dropped for good.
      const rejected = reported.length === 1 ? [{ index: 0, decision_id: batch[0]!.decision_id, reason: 'labels.workload is not yours' }] : [];
      res.json({ received: batch.length, stored: batch.length - rejected.length, duplicates: [], rejected });
    }));
    const port = await listenLocal(server);
    try {
      const log = new DecisionLog({ engine: `http://127.0.0.1:${port}`, logger: pino({ level: 'silent' }), flushIntervalMs: 60_000 });
      log.record(event(1));
      await log.flush();
      log.record(event(2));
      await log.close();
      expect(reported).toEqual(['0', '1']);
    } finally {
      await closeServer(server);
    }
  });
});
