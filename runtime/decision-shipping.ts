// Shipping: one batch of decision events to the engine (`POST <engine>/logs`) as a gzip'd JSON array,
// over the pod's EngineConnection (mTLS: the engine stores events only for the identity that sends
// them). The queue (runtime/decision-log.ts) decides when to ship and what to keep; this module says
// what the engine's answer means for the batch.
import { promisify } from 'node:util';
import { constants as zlibConstants, gzip as gzipCallback } from 'node:zlib';
import { DROPPED_HEADER } from '../formats/decision-event.js';
import type { EngineConnection } from './engine-connection.js';

const gzip = promisify(gzipCallback);

/** What the engine did with a batch it took: refused all of it for good, or stored it but for `rejected` events. */
export interface BatchAnswer {
  refused: boolean;
  /** The engine's reasons for events it refused one by one (schema, foreign workload). */
  rejected: unknown[];
}

/**
 * POST one batch of serialized events (gzip'd on the thread pool, at level 1: a third of level 6's time
 * on these batches for 25 % more bytes). Throws when the batch should be kept and sent again: the
 * engine is away, busy, or does not know this pod's identity yet. `dropped` (the pod's drop counter)
 * rides along in a header, so the engine knows it (the console's workload page shows it).
 */
export async function shipBatch(engine: EngineConnection, events: string[], dropped: number): Promise<BatchAnswer> {
  const body = await gzip(`[${events.join(',')}]`, { level: zlibConstants.Z_BEST_SPEED });
  const res = await engine.request('logs', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'content-encoding': 'gzip', [DROPPED_HEADER]: String(dropped) },
    body,
    signal: AbortSignal.timeout(10_000),
  });
  // 401/403: this pod's identity is not (yet) a known writer, e.g. the engine has not seen its bundle;
  // keep the events (spill) rather than lose them over a deployment-order race.
  if (res.status === 401 || res.status === 403) throw new Error(`engine refused our identity (${res.status}): ${res.body.toString('utf8').slice(0, 200)}`);
  if (res.status >= 500 || res.status === 429 || res.status === 404) throw new Error(`engine answered ${res.status}`);
  // 4xx other than those: the engine refused these events for good; they are counted, not retried.
  if (res.status >= 400) return { refused: true, rejected: [] };
  // Accepted batch, but the engine may still have refused single events (schema, foreign workload).
  return { refused: false, rejected: rejectionsIn(res.body) };
}

// The `rejected` list of POST /logs's answer (engine/audit/ingest.ts IngestResponse); [] if absent.
function rejectionsIn(body: Buffer): unknown[] {
  try {
    const r = (JSON.parse(body.toString('utf8')) as { rejected?: unknown }).rejected;
    return Array.isArray(r) ? r : [];
  } catch {
    return [];
  }
}
