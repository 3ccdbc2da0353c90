// Periodic signed checkpoints of the audit chain: every interval, if events arrived since the last
// one, sign {store, seq, hash, time} of the head and store it next to the events.
import { signCheckpoint, type Checkpoint, type CheckpointSigner } from './chain.js';
import type { AuditStore } from './store.js';
import { runEvery } from './periodic.js';

/** Sign and store a checkpoint at the current head, unless the head is already checkpointed. */
export async function checkpointHead(store: AuditStore, signer: CheckpointSigner, now: () => number): Promise<Checkpoint | undefined> {
  const head = await store.head();
  if (!head) return undefined;
  const last = (await store.checkpoints()).at(-1);
  if (last && last.seq >= head.seq) return undefined;
  const cp = await signCheckpoint(signer, { store: store.id, seq: head.seq, hash: head.hash, time: new Date(now()).toISOString(), reason: 'periodic' });
  await store.addCheckpoint(cp);
  return cp;
}

/** Checkpoint every `everyMs`; returns a function that stops the timer. Errors go to `onError`. */
export function startCheckpoints(
  store: AuditStore,
  signer: CheckpointSigner,
  opts: { everyMs: number; now?: () => number; onError?: (err: unknown) => void },
): () => void {
  const now = opts.now ?? Date.now;
  return runEvery(opts.everyMs, () => checkpointHead(store, signer, now), opts.onError);
}
