// Retention: delete the oldest events by age (received_at) and by row count, a small batch per
// transaction with a yield between batches, so ingestion keeps running. Only a prefix of the chain is
// ever deleted, and each batch first signs a checkpoint at its last seq: verification then starts from
// that signed hash instead of genesis.
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { signCheckpoint, type CheckpointSigner } from './chain.js';
import type { AuditStore } from './store.js';
import { runEvery } from './periodic.js';

/** How much to keep. Either bound alone is fine; the newest event is always kept (it anchors the chain head). */
export interface RetentionPolicy {
  /** Delete events received longer ago than this. */
  maxAgeMs?: number;
  /** Keep at most this many events. */
  maxRows?: number;
}

/** What one retention pass removed. */
export interface RetentionResult {
  deleted: number;
  batches: number;
  /** The new first seq, when something was deleted. */
  firstSeq?: number;
}

/** Apply the policy once, in batches of `batchSize` rows. */
export async function applyRetention(
  store: AuditStore,
  signer: CheckpointSigner,
  policy: RetentionPolicy,
  opts: { now?: () => number; batchSize?: number } = {},
): Promise<RetentionResult> {
  const now = opts.now ?? Date.now;
  const batchSize = opts.batchSize ?? 1000;
  const cutoff = policy.maxAgeMs !== undefined ? now() - policy.maxAgeMs : undefined;
  const bounds = await store.bounds();
  if (!bounds) return { deleted: 0, batches: 0 };
  let excess = policy.maxRows !== undefined ? Math.max(0, bounds.count - Math.max(1, policy.maxRows)) : 0;
  let deleted = 0;
  let batches = 0;
  for (;;) {
    const rows = await store.oldest(batchSize + 1);
    // Never delete the newest row: the chain head must stay in the table.
    const candidates = rows.slice(0, Math.max(0, rows.length - 1)).slice(0, batchSize);
    let take = 0;
    for (const r of candidates) {
      const old = cutoff !== undefined && r.received_at < cutoff;
      if (!(old || take < excess)) break;
      take += 1;
    }
    if (take === 0) break;
    const boundary = candidates[take - 1]!;
    const anchor = await signCheckpoint(signer, { store: store.id, seq: boundary.seq, hash: boundary.hash, time: new Date(now()).toISOString(), reason: 'retention' });
    const n = await store.prune(anchor);
    deleted += n;
    excess = Math.max(0, excess - n);
    batches += 1;
    await yieldToLoop();
  }
  const after = deleted ? await store.bounds() : undefined;
  return { deleted, batches, ...(after ? { firstSeq: after.first } : {}) };
}

/** Run retention every `everyMs`; returns a function that stops it. */
export function startRetention(
  store: AuditStore,
  signer: CheckpointSigner,
  policy: RetentionPolicy,
  opts: { everyMs: number; now?: () => number; onError?: (err: unknown) => void; onPass?: (r: RetentionResult) => void },
): () => void {
  return runEvery(
    opts.everyMs,
    () => applyRetention(store, signer, policy, opts.now ? { now: opts.now } : {}).then((r) => opts.onPass?.(r)),
    opts.onError,
  );
}
