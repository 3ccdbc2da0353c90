// `warden audit verify`: walk the chain in seq order and say exactly which event was edited, deleted
// or reordered, then check every signed checkpoint against what the store holds now.
import type { JWK } from 'jose';
import type { DecisionEvent } from '../../formats/decision-event.js';
import { chainHash, GENESIS_HASH, openCheckpoint, type Checkpoint } from './chain.js';
import type { AuditStore, ChainRow } from './store.js';
import { refusalRules, type RefusalRow } from './refusals.js';
import { HOUR_MS } from './sql-dialect.js';
import { eventColumns, type EventColumns } from './table.js';

/** What kind of damage a problem is. */
export type ProblemKind = 'edited' | 'deleted' | 'reordered' | 'rewritten' | 'bad-checkpoint' | 'rollup';

/** One finding, tied to the event (seq, decision id) it concerns; seq 0 for the edge rollup, which no event owns. */
export interface Problem {
  kind: ProblemKind;
  seq: number;
  decision_id?: string;
  message: string;
}

/** The verification report. `checkpoints_unchecked` when no public key was given. */
export interface VerifyReport {
  ok: boolean;
  store: string;
  events: number;
  first_seq?: number;
  last_seq?: number;
  checkpoints: number;
  checkpoints_unchecked: boolean;
  problems: Problem[];
}

/** Rows read per page while walking. */
const PAGE = 5000;
/** Stop classifying after this many problems (a wholesale rewrite would otherwise report every row). */
const MAX_PROBLEMS = 1000;

const COLUMN_KEYS: Array<keyof EventColumns> = ['decision_id', 'ts', 'workload', 'namespace', 'outcome', 'kind', 'principal', 'method', 'path', 'operation', 'tool', 'revision'];

function decisionIdOf(row: ChainRow): string {
  return row.columns.decision_id;
}

/** Walk the whole store; `publicJwk` checks checkpoint signatures (without it, only the chain is checked). */
export async function verifyStore(store: AuditStore, publicJwk?: JWK): Promise<VerifyReport> {
  const problems: Problem[] = [];
  const add = (p: Problem) => {
    if (problems.length < MAX_PROBLEMS) problems.push(p);
  };
  const checkpoints = await store.checkpoints();
  // Signatures first: a checkpoint we cannot trust must not anchor anything.
  const trusted = new Map<number, Checkpoint>();
  for (const cp of checkpoints) {
    if (!publicJwk) {
      trusted.set(cp.seq, cp);
      continue;
    }
    const opened = await openCheckpoint(cp.jws, publicJwk);
    if (!opened.ok) {
      add({ kind: 'bad-checkpoint', seq: cp.seq, message: `checkpoint at seq ${cp.seq}: ${opened.reason}` });
      continue;
    }
    const c = opened.claims;
    if (c.store !== store.id || c.seq !== cp.seq || c.hash !== cp.hash) {
      add({
        kind: 'bad-checkpoint',
        seq: cp.seq,
        message: `checkpoint at seq ${cp.seq}: its stored fields differ from what was signed (signed seq ${c.seq}, hash ${c.hash.slice(0, 12)}…, store ${c.store})`,
      });
      continue;
    }
    trusted.set(cp.seq, cp);
  }

  const bounds = await store.bounds();
  let prevHash = GENESIS_HASH;
  let prevSeq = 0;
  let prevRow: ChainRow | undefined;
  if (bounds && bounds.first > 1) {
    // Retention deleted a prefix; it signs a checkpoint at the last deleted seq first.
    const anchor = trusted.get(bounds.first - 1);
    if (anchor) {
      prevHash = anchor.hash;
      prevSeq = anchor.seq;
    } else {
      const retained = [...trusted.keys()].filter((s) => s < bounds.first).sort((a, b) => b - a)[0] ?? 0;
      add({
        kind: 'deleted',
        seq: retained + 1,
        message: `events seq ${retained + 1}..${bounds.first - 1} are missing and no ${publicJwk ? 'validly signed ' : ''}retention checkpoint covers them: deleted outside retention`,
      });
      prevSeq = bounds.first - 1;
      prevHash = '';
    }
  }

  const byHashCache = new Map<string, { seq: number; decision_id: string } | undefined>();
  const locate = async (hash: string) => {
    if (!byHashCache.has(hash)) byHashCache.set(hash, await store.findByHash(hash));
    return byHashCache.get(hash);
  };

  const hashAt = new Map<number, string>();
  const moved = new Set<number>();
  const wanted = new Set(trusted.keys());
  // The refusal rows are compared page by page with the events' own refusals; -1: rows below the first event are orphans too.
  let refusalsUpTo = -1;
  for (let after = bounds ? bounds.first - 1 : 0; ; ) {
    const rows = await store.scan(after, PAGE);
    if (!rows.length) break;
    const refusals = refusalsBySeq(await store.refusalRows(refusalsUpTo, rows[rows.length - 1]!.seq));
    refusalsUpTo = rows[rows.length - 1]!.seq;
    for (const row of rows) {
      const id = decisionIdOf(row);
      // 1. Content: do the stored bytes still hash to what was stored?
      const event = parsed(row);
      if (chainHash(row.prev_hash, row.event) !== row.hash) {
        add({ kind: 'edited', seq: row.seq, decision_id: id, message: `event seq ${row.seq} (decision ${id}) was edited: its content no longer matches its hash` });
      } else {
        const diff = columnDiff(row, event);
        if (diff) add({ kind: 'edited', seq: row.seq, decision_id: id, message: `event seq ${row.seq} (decision ${id}) was edited: query column ${diff}` });
      }
      const refusalDiff = event && refusalRowsDiff(row, event, refusals.get(row.seq) ?? []);
      refusals.delete(row.seq);
      if (refusalDiff) add({ kind: 'rollup', seq: row.seq, decision_id: id, message: `admission refusal index, event seq ${row.seq} (decision ${id}): ${refusalDiff} (admission_refusals was edited; the admission page shows it)` });
      // 2. Position: does it link to the row before it?
      if (row.seq !== prevSeq + 1) {
        const between = prevRow ? ` between decision ${decisionIdOf(prevRow)} (seq ${prevSeq}) and decision ${id} (seq ${row.seq})` : ` before decision ${id} (seq ${row.seq})`;
        add({
          kind: 'deleted',
          seq: prevSeq + 1,
          message: `${row.seq - prevSeq - 1 === 1 ? `event seq ${prevSeq + 1} was` : `events seq ${prevSeq + 1}..${row.seq - 1} were`} deleted${between}`,
        });
      } else if (prevHash !== '' && row.prev_hash !== prevHash) {
        const original = await locate(row.prev_hash);
        if (original && original.seq !== prevSeq) {
          // After a swap, the row following the moved pair links to a moved row: a consequence, not news.
          if (!(moved.has(prevSeq) && moved.has(original.seq))) {
            moved.add(row.seq);
            add({
              kind: 'reordered',
              seq: row.seq,
              decision_id: id,
              message: `event seq ${row.seq} (decision ${id}) was reordered: it was ingested right after decision ${original.decision_id}, which now sits at seq ${original.seq}`,
            });
          }
        } else {
          const before = prevRow ? `decision ${decisionIdOf(prevRow)} (seq ${prevSeq})` : `seq ${prevSeq}`;
          add({
            kind: 'deleted',
            seq: row.seq,
            decision_id: id,
            message: `chain broken before event seq ${row.seq} (decision ${id}): an event between it and ${before} was deleted and the rest renumbered, or ${before} was rewritten with a recomputed hash`,
          });
        }
      }
      if (wanted.has(row.seq)) hashAt.set(row.seq, row.hash);
      prevHash = row.hash;
      prevSeq = row.seq;
      prevRow = row;
      after = row.seq;
    }
    for (const [seq, orphans] of refusals) add(orphanRefusal(seq, orphans));
  }
  for (const [seq, orphans] of refusalsBySeq(await store.refusalRows(refusalsUpTo, Number.MAX_SAFE_INTEGER))) add(orphanRefusal(seq, orphans));

  // 3. Checkpoints against the store as it is now.
  for (const cp of trusted.values()) {
    if (bounds && cp.seq < bounds.first) continue; // history retention removed; the anchor was used above
    const now = hashAt.get(cp.seq);
    if (now === undefined) {
      const last = bounds?.last ?? 0;
      add(
        cp.seq > last
          ? { kind: 'deleted', seq: last + 1, message: `events seq ${last + 1}..${cp.seq} were deleted: a checkpoint signed at ${cp.time} covers seq ${cp.seq}, the store ends at seq ${last}` }
          : { kind: 'deleted', seq: cp.seq, message: `event seq ${cp.seq} was deleted: a checkpoint signed at ${cp.time} covers it` },
      );
    } else if (now !== cp.hash) {
      add({
        kind: 'rewritten',
        seq: cp.seq,
        message: `the chain up to seq ${cp.seq} was rewritten after the checkpoint signed at ${cp.time}: the hash there differs from the signed one (an event at or before seq ${cp.seq} was changed and the hashes recomputed)`,
      });
    }
  }

  // 4. The hourly edge rollup against the events it counts (the graph reads it).
  for (const d of await store.rollupDrift(100)) {
    add({
      kind: 'rollup',
      seq: 0,
      message: `edge rollup, hour from ${new Date(d.hour * HOUR_MS).toISOString()}: ${d.source} → ${d.namespace ?? '(unnamed)'}/${d.workload ?? '(unnamed)'} ${d.outcome ?? '(an outcome id no name holds)'} holds ${d.stored} but the events count ${d.counted} (edge_hours was edited, or events were deleted behind the store's back); the graph shows the rollup`,
    });
  }

  // 5. The hourly refusal counts against the refusal index they count (the admission page reads both).
  for (const d of await store.refusalHoursDrift(100)) {
    add({
      kind: 'rollup',
      seq: 0,
      message: `refusal rollup, hour from ${new Date(d.hour * HOUR_MS).toISOString()}: ${d.rule ?? '(a rule id no name holds)'} in ${d.namespace ?? '(a namespace id no name holds)'} holds ${d.stored} but the refusal index counts ${d.counted} (refusal_hours was edited; the admission page shows it)`,
    });
  }

  problems.sort((a, b) => a.seq - b.seq);
  return {
    ok: problems.length === 0,
    store: store.location,
    events: bounds?.count ?? 0,
    ...(bounds ? { first_seq: bounds.first, last_seq: bounds.last } : {}),
    checkpoints: checkpoints.length,
    checkpoints_unchecked: !publicJwk,
    problems,
  };
}

function parsed(row: ChainRow): DecisionEvent | undefined {
  try {
    return JSON.parse(row.event) as DecisionEvent;
  } catch {
    return undefined;
  }
}

// The indexed columns must say what the event says, or queries would lie about it.
function columnDiff(row: ChainRow, event: DecisionEvent | undefined): string | undefined {
  if (!event) return 'cannot be derived from the event: its stored JSON does not parse';
  let derived: EventColumns;
  try {
    derived = eventColumns(event);
  } catch {
    return 'cannot be derived from the event: it lacks a field every event has';
  }
  for (const k of COLUMN_KEYS) {
    if (derived[k] !== row.columns[k]) return `${k} holds ${JSON.stringify(row.columns[k])} but the event says ${JSON.stringify(derived[k])}`;
  }
  return undefined;
}

function refusalsBySeq(rows: RefusalRow[]): Map<number, RefusalRow[]> {
  const out = new Map<number, RefusalRow[]>();
  for (const r of rows) out.set(r.seq, [...(out.get(r.seq) ?? []), r]);
  return out;
}

// The refusal rows must be exactly the event's refusals, or the admission page would lie about it.
function refusalRowsDiff(row: ChainRow, event: DecisionEvent, stored: RefusalRow[]): string | undefined {
  let rules: string[];
  try {
    rules = refusalRules(event);
  } catch {
    rules = [];
  }
  const want = rules.map((rule) => `${rule} in ${row.columns.namespace} at ${row.columns.ts}`).sort();
  const have = stored.map((r) => `${r.rule ?? '(a rule id no name holds)'} in ${r.namespace ?? '(a namespace id no name holds)'} at ${r.ts}`).sort();
  if (JSON.stringify(want) === JSON.stringify(have)) return undefined;
  const show = (xs: string[]) => (xs.length ? xs.join(', ') : 'nothing');
  return `holds ${show(have)} but the event says ${show(want)}`;
}

function orphanRefusal(seq: number, rows: RefusalRow[]): Problem {
  return { kind: 'rollup', seq, message: `admission refusal index holds ${rows.map((r) => r.rule ?? '(unnamed rule)').join(', ')} for seq ${seq}, which is no stored event (admission_refusals was edited, or events were deleted behind the store's back)` };
}
