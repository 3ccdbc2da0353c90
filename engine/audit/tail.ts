// `warden audit tail`: follow new events live by polling for seq > the last one seen.
import { setTimeout as delay } from 'node:timers/promises';
import type { EventFilter } from './query.js';
import type { AuditReader, StoredEvent } from './store.js';

/** Options of a follow loop. */
export interface FollowOptions {
  /** Show this many of the newest matching events first (default 10, 0 = only new ones). */
  last?: number;
  /** How long to wait when nothing new arrived. */
  intervalMs: number;
  signal: AbortSignal;
}

/** Call `onEvents` with matching events in ingestion order until `signal` aborts. */
export async function follow(reader: AuditReader, filter: EventFilter, onEvents: (events: StoredEvent[]) => void, opts: FollowOptions): Promise<void> {
  const newest = await reader.query({ ...filter, sort: '-seq', limit: Math.max(1, opts.last ?? 10) });
  let after = newest[0]?.seq ?? 0;
  if ((opts.last ?? 10) > 0 && newest.length) onEvents(newest.reverse());
  const page = 1000;
  while (!opts.signal.aborted) {
    const batch = await reader.query({ ...filter, afterSeq: after, sort: 'seq', limit: page });
    if (batch.length) {
      onEvents(batch);
      after = batch[batch.length - 1]!.seq;
    }
    if (batch.length < page) {
      // Polling interval between reads of a live log (not a readiness wait); ends early on abort.
      await delay(opts.intervalMs, undefined, { signal: opts.signal }).catch(() => undefined);
    }
  }
}
