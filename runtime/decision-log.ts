// The decision log's queue, shared by the proxy plugin and the admission webhook: every decision becomes
// a DecisionEvent (secrets masked before it is recorded: decision-mask.ts), queued and shipped in
// batches to the engine (decision-shipping.ts), with a bounded buffer, backoff, a local NDJSON spill
// file while the engine is away (replayed later), and a counter of anything that still had to be dropped.
//
// Nothing here may hold the event loop: the proxy decides every call of its pod on that loop. Each event
// is serialized when it is recorded (a few microseconds, and the queued text can no longer change) and a
// batch is compressed on libuv's thread pool. Serializing and gzipping 500 queued events at once took
// 7–17 ms on the main thread, every quarter second at 2,000 calls/s; without that stall the sidecar's
// added p99 in the proxy bench fell from 17–28 ms to 5–10 ms.
//
// A call's event can also be built after the call has gone on (recordLater): the proxy hands the log
// a builder when it decides and writes the request upstream first. Builders wait, in the order the calls
// were decided, until 16 are pending (then they run in the next turn's check phase, setImmediate) or the
// oldest has waited 20 ms (a timer), and then run together. A batch holds the loop for ~0.15 ms (32 held
// it ~0.35 ms for no less CPU; 8 cost more CPU per event). Masking, serializing and the log line are
// then off the call's path, and they run back to back on warm caches: built one at a time in each call's
// own turn, on caches the pod's other processes had just used, they made the sidecar's work per call a
// third to a half larger in the one-process harness (bench/NOTES.md, 2026-12-07). A pending
// builder holds its call's input, so what waits is bounded by count (16) and by time (what arrives in
// 20 ms). flush, close and the counters run what is pending first, so nothing decided is ever missing
// from what they see; a builder must only read values nobody changes after the call was decided.
import { appendFile, readFile, rename, stat, unlink } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { DecisionEvent } from '../formats/decision-event.js';
import { shipBatch } from './decision-shipping.js';
import { EngineConnection } from './engine-connection.js';
import { jsonText } from './opa-json.js';
import type { OpaJson } from './rego-value.js';

/** When deferred events are built (recordLater): once this many are pending, or the oldest is this old. */
export const DEFERRED_EVENTS = { batch: 16, ms: 20 } as const;

/** The counters the log keeps (prom-client Gauge/Counter fit; the caller owns the registry). */
export interface DecisionLogMetrics {
  logQueue: { set(value: number): void };
  logShipped: { inc(by: number): void };
  logDropped: { inc(by: number): void };
  logSpilled: { inc(by: number): void };
}

/**
 * Which decisions also get a local log line: `all`, `denied` (everything but allowed calls: denials,
 * dry-run denials, failures, and tool-list drift), or `none`. The shipped events are the same either way.
 */
export const DECISION_LINES = ['all', 'denied', 'none'] as const;
export type DecisionLines = (typeof DECISION_LINES)[number];

/** Options of the decision log. */
export interface DecisionLogOptions {
  /**
   * The engine events go to (`POST <engine>/logs`): a connection (carrying the pod's mTLS identity,
   * shared with the bundle puller) or a plain base URL. Without it, events are logged locally only.
   */
  engine?: EngineConnection | string;
  /** NDJSON file events spill to while the engine is away. */
  spillFile?: string;
  maxQueue?: number;
  maxSpillBytes?: number;
  batchSize?: number;
  flushIntervalMs?: number;
  maxBackoffMs?: number;
  logger: Logger;
  /** Local lines (default `all`); fewer lines only when events go to an engine, or nothing would keep them. */
  lines?: DecisionLines;
  metrics?: DecisionLogMetrics;
}

/** The shipping queue for one plugin instance. */
export class DecisionLog {
  /** Events as serialized when recorded (one JSON text each). */
  private queue: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private sending: Promise<void> | undefined;
  private again: Promise<void> | undefined;
  private failures = 0;
  private nextAttempt = 0;
  private readonly engine: EngineConnection | undefined;
  private readonly ownsConnection: boolean;
  /** Events lost for good (buffer full and no room to spill). */
  dropped = 0;
  shipped = 0;

  private readonly lines: DecisionLines;
  /** Events decided but not yet built (recordLater), oldest first. */
  private later: Array<() => DecisionEvent> = [];
  private laterTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: DecisionLogOptions) {
    this.lines = opts.lines ?? 'all';
    if (!DECISION_LINES.includes(this.lines)) throw new TypeError(`decision lines ${JSON.stringify(this.lines)} is not one of ${DECISION_LINES.join(', ')}`);
    if (this.lines !== 'all' && !opts.engine) throw new TypeError(`decision lines "${this.lines}" needs an engine to ship events to: without one the local lines are the only record of decisions`);
    this.ownsConnection = typeof opts.engine === 'string';
    this.engine = typeof opts.engine === 'string' ? new EngineConnection(opts.engine) : opts.engine;
    if (this.engine) {
      this.timer = setInterval(() => void this.flush(), opts.flushIntervalMs ?? 1000);
      this.timer.unref();
    }
  }

  /**
   * Queue the event `build` returns later, with the other pending ones (see the top of this file);
   * `build` must only read values nobody changes after the call was decided.
   */
  recordLater(build: () => DecisionEvent): void {
    const n = this.later.push(build);
    if (n === 1) this.laterTimer = setTimeout(this.settle, DEFERRED_EVENTS.ms);
    else if (n === DEFERRED_EVENTS.batch) setImmediate(this.settle);
  }

  /** Build and queue every event still pending, in order; a builder that throws costs its event only (logged). */
  private readonly settle = (): void => {
    if (this.laterTimer) clearTimeout(this.laterTimer);
    this.laterTimer = undefined;
    if (this.later.length === 0) return;
    const builds = this.later;
    this.later = [];
    for (const build of builds) {
      try {
        this.record(build());
      } catch (err) {
        // The rest are still built: one bad event must not take the others with it.
        this.dropped++;
        this.opts.metrics?.logDropped.inc(1);
        this.opts.logger.error({ err: String((err as Error)?.message ?? err) }, 'a decision event could not be built (dropped)');
      }
    }
  };

  /** Queue one event (already masked) and write its local log line (as `lines` says), after the events pending before it. */
  record(event: DecisionEvent): void {
    if (this.later.length > 0) this.settle();
    if (this.lines === 'all' || (this.lines === 'denied' && (event.outcome !== 'allow' || event.kind === 'drift'))) {
      this.opts.logger.info(
        { decision_id: event.decision_id, outcome: event.outcome, mode: event.mode, kind: event.kind, source: event.labels.source, revision: Object.values(event.bundles)[0]?.revision, reasons: (event.result as { reasons?: unknown } | undefined)?.reasons, error: event.error, principal: (event.input?.source as { principal?: string } | undefined)?.principal, call: callOf(event) },
        'decision',
      );
    }
    if (!this.engine) return;
    const max = this.opts.maxQueue ?? 10_000;
    if (this.queue.length >= max) {
      const overflow = this.queue.splice(0, Math.ceil(max / 10));
      void this.spill(overflow);
    }
    this.queue.push(jsonText(event as unknown as OpaJson)); // a result may hold integers beyond 2^53 (bigint)
    this.opts.metrics?.logQueue.set(this.queue.length);
    if (this.queue.length >= (this.opts.batchSize ?? 500)) void this.flush(false);
  }

  get depth(): number {
    this.settle();
    return this.queue.length;
  }

  /**
   * Ship what is queued (and replay the spill file) now, unless backing off; `all: false` ships full
   * batches only, leaving the rest for the timer.
   */
  flush(all = true): Promise<void> {
    this.settle();
    if (this.sending) {
      if (!all) return this.sending;
      // The send in progress may have taken its batches before the caller's events were queued: the
      // promise resolves once a send that started after this call is done.
      return (this.again ??= this.sending.then(() => {
        this.again = undefined;
        return this.flush();
      }));
    }
    this.sending = this.ship(all).finally(() => (this.sending = undefined));
    return this.sending;
  }

  /** Stop the timer; ship once more, spilling what cannot be sent. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.nextAttempt = 0;
    await this.flush();
    if (this.queue.length > 0) await this.spill(this.queue.splice(0));
    if (this.ownsConnection) this.engine?.close();
  }

  // POST one batch; what the engine refused for good is counted as dropped, what it could not take yet throws.
  private async post(events: string[]): Promise<void> {
    const answer = await shipBatch(this.engine!, events, this.dropped);
    if (answer.refused) return this.drop(events.length);
    if (answer.rejected.length > 0) {
      this.drop(answer.rejected.length);
      this.opts.logger.warn({ rejected: answer.rejected.slice(0, 10), count: answer.rejected.length }, 'engine rejected decision events');
    }
  }

  // Full batches go out as long as there are any; a partial one only holds what was queued when an `all`
  // flush (the timer, close) started. Chasing every event recorded during the last POST sent a few dozen
  // events at a time, back to back: 980 POSTs for 26,000 decisions in the proxy bench, 55 now.
  // A batch leaves the queue while it is in flight, so an overflow meanwhile cannot spill it twice.
  private async ship(all: boolean): Promise<void> {
    if (!this.engine || Date.now() < this.nextAttempt) return;
    const size = this.opts.batchSize ?? 500;
    try {
      await this.replaySpill();
      let rest = all ? this.queue.length : 0;
      for (;;) {
        const n = this.queue.length >= size ? size : Math.min(rest, this.queue.length);
        if (n === 0) break;
        const batch = this.queue.splice(0, n);
        rest = Math.max(0, rest - n);
        try {
          await this.post(batch);
        } catch (err) {
          this.queue.unshift(...batch);
          throw err;
        }
        this.shipped += batch.length;
        this.opts.metrics?.logShipped.inc(batch.length);
        this.opts.metrics?.logQueue.set(this.queue.length);
      }
      this.failures = 0;
    } catch {
      this.failures++;
      const base = Math.min((this.opts.flushIntervalMs ?? 1000) * 2 ** this.failures, this.opts.maxBackoffMs ?? 30_000);
      this.nextAttempt = Date.now() + base * (0.5 + Math.random() / 2);
      // The engine is away: move the queue to disk so memory stays bounded.
      if (this.opts.spillFile && this.queue.length > 0) await this.spill(this.queue.splice(0));
    }
  }

  private drop(n: number): void {
    this.dropped += n;
    this.opts.metrics?.logDropped.inc(n);
  }

  private async spill(events: string[]): Promise<void> {
    this.opts.metrics?.logQueue.set(this.queue.length);
    if (!this.opts.spillFile || events.length === 0) return this.drop(events.length);
    const size = await stat(this.opts.spillFile).then((s) => s.size, () => 0);
    const text = events.join('\n') + '\n';
    if (size + text.length > (this.opts.maxSpillBytes ?? 64 * 1024 * 1024)) return this.drop(events.length);
    await appendFile(this.opts.spillFile, text);
    this.opts.metrics?.logSpilled.inc(events.length);
  }

  // Replay the spill file: take it aside atomically, send it in batches, keep what failed.
  private async replaySpill(): Promise<void> {
    const file = this.opts.spillFile;
    if (!file) return;
    const taken = `${file}.replaying`;
    let text: string;
    try {
      text = await readFile(taken, 'utf8');
    } catch {
      try {
        await rename(file, taken);
      } catch {
        return;
      }
      text = await readFile(taken, 'utf8');
    }
    // A line that is not JSON (a write cut short by a crash) is dropped and counted: failing the replay
    // on it would hold every event behind it, and every later one, in the spill file for good.
    const lines = text.split('\n').filter((l) => l.trim() !== '');
    const events: string[] = [];
    for (const line of lines) {
      try {
        JSON.parse(line);
        events.push(line);
      } catch {
        // counted below
      }
    }
    if (events.length < lines.length) {
      this.drop(lines.length - events.length);
      this.opts.logger.warn({ file: taken, dropped: lines.length - events.length }, 'spill file lines that are not JSON were dropped');
    }
    const size = this.opts.batchSize ?? 500;
    for (let i = 0; i < events.length; i += size) await this.post(events.slice(i, i + size));
    this.shipped += events.length;
    this.opts.metrics?.logShipped.inc(events.length);
    await unlink(taken);
  }
}

function callOf(e: DecisionEvent): string | undefined {
  const r = e.input?.request as { method?: string; path?: string } | undefined;
  const m = e.input?.mcp as { method?: string; tool?: string } | undefined;
  if (m) return `MCP ${m.method ?? ''} ${m.tool ?? ''}`.trim();
  return r ? `${r.method ?? ''} ${r.path ?? ''}` : undefined;
}
