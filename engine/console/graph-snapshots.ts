// The who-talks-to-whom aggregate of the console, as of a stated time. A narrow window (up to two
// hours: the hourly rollup plus at most two partial hours) is computed for each request. A wide one
// on a dense graph groups ~100,000 edges per day (seconds on a loaded machine), so it is computed off
// the request path and kept as a snapshot: a request is answered from the newest snapshot of its
// window, which says the exact window it covers ([as of − width, as of)), and a snapshot older than
// `maxAgeMs` is recomputed in the background while the older one is still served (stale while
// revalidating). The first request of a wide window waits at most `waitMs`, then is told to come back.
import { parseFilter, type EventFilter, type RawFilter } from '../audit/query.js';
import type { EdgeSummary } from '../audit/store.js';

/** Widest window computed for each request; wider ones are served from snapshots. */
export const DIRECT_WINDOW_MS = 2 * 3_600_000;

/** The graph of a window as of a time: what the page shows, and how old it is. */
export interface GraphView extends EdgeSummary {
  /** Start of the window (inclusive, ms since the epoch); absent: since the oldest stored event. */
  from?: number;
  /** End of the window (exclusive, ms). */
  to: number;
  /** When the aggregate was computed (ms). */
  asOf: number;
}

/** A wide window whose first snapshot is still being computed. */
export interface GraphPending {
  pending: true;
  /** When its computation started (ms). */
  since: number;
}

interface Entry {
  view?: GraphView;
  running?: Promise<GraphView>;
  started?: number;
  usedAt: number;
  error?: string;
}

/** What the snapshots need: the aggregate itself (off this thread), a clock, and their freshness. */
export interface GraphSnapshotOptions {
  summarize: (filter: EventFilter) => Promise<EdgeSummary>;
  now: () => number;
  /** A snapshot older than this is recomputed (still served meanwhile). */
  maxAgeMs?: number;
  /** How long a request waits for a wide window's first snapshot before it is told to come back (0: not at all). */
  waitMs?: number;
  /** Snapshots kept (distinct windows and filters); the least recently used goes first. */
  maxEntries?: number;
  /**
   * Computations at once: a reader asking for many distinct wide windows starts no more than this;
   * the others are answered "pending" and start on a later request once one has finished.
   */
  maxRunning?: number;
}

/** The console's graph aggregates, narrow ones computed per request, wide ones kept as snapshots. */
export class GraphSnapshots {
  private readonly entries = new Map<string, Entry>();
  private readonly maxAgeMs: number;
  private readonly waitMs: number;
  private readonly maxEntries: number;
  private readonly maxRunning: number;
  private running = 0;

  constructor(private readonly opts: GraphSnapshotOptions) {
    this.maxAgeMs = opts.maxAgeMs ?? 60_000;
    this.waitMs = opts.waitMs ?? 200;
    this.maxEntries = opts.maxEntries ?? 64;
    this.maxRunning = opts.maxRunning ?? 2;
  }

  /** The graph of the filter `raw` (already validated names; `since` defaults to `defaultSince`), top `limit` edges. */
  async view(raw: RawFilter, defaultSince: string, limit: number): Promise<GraphView | GraphPending> {
    const now = this.opts.now();
    const probe = parseFilter({ since: defaultSince, ...raw }, now, { limit });
    if (probe.from !== undefined && (probe.to ?? now) - probe.from <= DIRECT_WINDOW_MS) return this.compute(raw, defaultSince, limit, now);
    const key = JSON.stringify([defaultSince, limit, Object.entries(raw).sort(([a], [b]) => (a < b ? -1 : 1))]);
    let entry = this.entries.get(key);
    if (!entry) {
      entry = { usedAt: now };
      this.entries.set(key, entry);
      this.evict();
    }
    entry.usedAt = now;
    // A failed computation is tried again by the next request (one at a time); a stale view is served meanwhile.
    if (!entry.running && (!entry.view || now - entry.view.asOf > this.maxAgeMs) && this.running < this.maxRunning) this.refresh(entry, raw, defaultSince, limit, now);
    if (entry.view) return entry.view;
    if (!entry.running) return { pending: true, since: now };
    if (this.waitMs <= 0) return { pending: true, since: entry.started! };
    const waited = await Promise.race([entry.running!.then((v) => v, () => undefined), new Promise<undefined>((r) => setTimeout(r, this.waitMs))]);
    if (waited) return waited;
    if (entry.error !== undefined) throw new Error(entry.error);
    return { pending: true, since: entry.started! };
  }

  private refresh(entry: Entry, raw: RawFilter, defaultSince: string, limit: number, now: number): void {
    entry.started = now;
    entry.error = undefined;
    const running = this.compute(raw, defaultSince, limit, now);
    entry.running = running;
    this.running += 1;
    running.then(
      (view) => {
        entry.view = view;
        entry.running = undefined;
        this.running -= 1;
      },
      (err: unknown) => {
        entry.error = `the graph aggregate failed: ${(err as Error).message}`;
        entry.running = undefined;
        this.running -= 1;
      },
    );
  }

  /** The aggregate of exactly [from, to) where `to` is the window's end or, when it has none, `asOf`. */
  private async compute(raw: RawFilter, defaultSince: string, limit: number, asOf: number): Promise<GraphView> {
    const f = parseFilter({ since: defaultSince, ...raw }, asOf, { limit });
    const to = f.to ?? asOf;
    const summary = await this.opts.summarize({ ...f, to });
    return { ...summary, ...(f.from !== undefined ? { from: f.from } : {}), to, asOf };
  }

  private evict(): void {
    while (this.entries.size > this.maxEntries) {
      let oldest: [string, Entry] | undefined;
      for (const e of this.entries) if (!oldest || e[1].usedAt < oldest[1].usedAt) oldest = e;
      this.entries.delete(oldest![0]);
    }
  }
}
