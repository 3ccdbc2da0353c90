// The audit store: what both backends (SQLite embedded, PostgreSQL at cluster scale) offer. The
// backends implement it and open-store.ts picks one from a URL; this interface imports neither.
// Readers (CLI, HTTP query API) see AuditReader; ingestion, retention and verification use the full
// AuditStore.
import type { DecisionEvent } from '../../formats/decision-event.js';
import type { Checkpoint } from './chain.js';
import type { EventFilter } from './query.js';
import type { RefusalGroup, RefusalHourDrift, RefusalPage, RefusalRow, RefusalWindow } from './refusals.js';
import type { EventColumns } from './table.js';

/** One stored event with its place in the chain. */
export interface StoredEvent {
  seq: number;
  /** When the engine stored it, RFC 3339. */
  received_at: string;
  event: DecisionEvent;
}

/** The dimensions "top denied" counts by. */
export type TopDimension = 'principal' | 'operation' | 'tool';

/** One line of a "top" aggregate; `workload` is set for operations and tools (they are per workload). */
export interface TopRow {
  key: string;
  workload?: string;
  count: number;
}

/** Who talks to whom: source principal → destination workload, with counts per outcome. */
export interface Edge {
  source: string;
  destination: string;
  namespace: string;
  allow: number;
  deny: number;
  dry_run_deny: number;
  total: number;
}

/** The busiest edges of a window, and how many edges and events the whole window holds. */
export interface EdgeSummary {
  edges: Edge[];
  /** Every edge of the window, the ones not listed included. */
  edgeCount: number;
  /** Every event of the window. */
  eventCount: number;
}

/** The graph as the console reads it: an edge summary, computed where it does not hold up other requests. */
export interface GraphReader {
  edgeSummary(filter: EventFilter): Promise<EdgeSummary>;
}

/** One bundle revision kept in the revision archive (engine/bundle-revisions.ts). */
export interface KeptRevision {
  bundle: string;
  revision: string;
  /** The archive bytes' sha256 (hex): the blob's address. */
  sha256: string;
  /** When an engine first kept it, ms since the epoch. */
  keptAt: number;
}

/** The latest decision-log drop counter one pod reported with its events (POST /logs). */
export interface LogSender {
  workload: string;
  namespace: string;
  /** The pod (labels.instance of its events). */
  instance: string;
  /** Events the pod lost for good since it started (its warden_decision_log_dropped_total). */
  dropped: number;
  /** When the engine received the report, ms since the epoch. */
  reportedAt: number;
}

/** An edge_hours bucket whose count differs from the events it covers. */
export interface RollupDrift {
  /** Hours since the epoch (event time). */
  hour: number;
  source: string;
  /** Null when the bucket's id names nothing (an id edited in the store). */
  workload: string | null;
  namespace: string | null;
  outcome: string | null;
  stored: number;
  counted: number;
}

/** The read side, shared by a local store and an engine reached over HTTP. */
export interface AuditReader {
  query(filter: EventFilter): Promise<StoredEvent[]>;
  top(by: TopDimension, filter: EventFilter): Promise<TopRow[]>;
  edges(filter: EventFilter): Promise<Edge[]>;
  close(): Promise<void>;
}

/** Admission refusals by rule and namespace (refusals.ts): what the console's admission page reads. */
export interface RefusalReader {
  /** The window's groups, largest first, up to `limit`, and how many objects it refused. */
  refusalGroups(window: RefusalWindow, limit: number): Promise<{ groups: RefusalGroup[]; objects: number }>;
  /** One page of a group's refusals, newest first. */
  refusals(page: RefusalPage): Promise<StoredEvent[]>;
}

/** The chain position after the last stored event. */
export interface ChainHead {
  seq: number;
  hash: string;
}

/** What one append did: how many events were new, which decision ids were already stored. */
export interface AppendResult {
  stored: number;
  duplicates: string[];
  head: ChainHead | undefined;
}

/** A stored row as verification reads it: chain fields, stored columns, the event text. */
export interface ChainRow {
  seq: number;
  received_at: number;
  prev_hash: string;
  hash: string;
  event: string;
  columns: EventColumns;
}

/** Row count and seq range of what the store holds. */
export interface StoreBounds {
  first: number;
  last: number;
  count: number;
}

/** A backend. All methods are safe to call while another append or prune is in flight. */
export interface AuditStore extends AuditReader, RefusalReader, GraphReader {
  /** Random id created with the store; checkpoints name it. */
  readonly id: string;
  /** Human-readable location (file path or host/db), no credentials. */
  readonly location: string;
  /**
   * Store events not yet stored (by decision_id), chained in the given order, in one transaction.
   * `sent[i]`, when given, is event i's JSON exactly as its sender wrote it (valid UTF-8 that parses to
   * events[i], no key repeated in any object: see json-elements.ts); it is stored and hashed instead of
   * a re-serialisation of the event.
   */
  append(events: readonly DecisionEvent[], receivedAt: number, sent?: readonly Uint8Array[]): Promise<AppendResult>;
  head(): Promise<ChainHead | undefined>;
  bounds(): Promise<StoreBounds | undefined>;
  /** Rows with seq > afterSeq in seq order (verification walks the store with it). */
  scan(afterSeq: number, limit: number): Promise<ChainRow[]>;
  /** The oldest rows' seq, hash and received_at (retention picks its boundary from them). */
  oldest(limit: number): Promise<Array<{ seq: number; hash: string; received_at: number }>>;
  /** Where a row with this hash sits, if any (tells a reorder from a deletion). */
  findByHash(hash: string): Promise<{ seq: number; decision_id: string } | undefined>;
  addCheckpoint(cp: Checkpoint): Promise<void>;
  checkpoints(): Promise<Checkpoint[]>;
  /** In one transaction: record `anchor` (a signed checkpoint at seq N) and delete events with seq ≤ N (and their counts in the edge rollup). */
  prune(anchor: Checkpoint): Promise<number>;
  /** The admission_refusals rows with afterSeq < seq ≤ upToSeq (verification compares them with the events). */
  refusalRows(afterSeq: number, upToSeq: number): Promise<RefusalRow[]>;
  /** The refusal_hours buckets that disagree with admission_refusals (verification), oldest first. */
  refusalHoursDrift(limit: number): Promise<RefusalHourDrift[]>;
  /** The rollup buckets that disagree with the events (verification), oldest first. */
  rollupDrift(limit: number): Promise<RollupDrift[]>;
  /** Store a revision and its blob (addressed by k.sha256) unless already kept; the first keep wins. */
  keepRevision(k: KeptRevision, bytes: Uint8Array): Promise<void>;
  /** A kept revision and its blob's bytes (unchecked: the archive checks them against the address). */
  findRevision(bundle: string, revision: string): Promise<{ kept: KeptRevision; bytes: Buffer } | undefined>;
  listRevisions(): Promise<KeptRevision[]>;
  /** Forget these revisions, then every blob no revision names, in one transaction. */
  dropRevisions(which: ReadonlyArray<{ bundle: string; revision: string }>): Promise<void>;
  /** Record a pod's latest drop counter. */
  reportDrops(r: LogSender): Promise<void>;
  /** The latest drop counter of each pod of a workload (every pod when none is named). */
  logSenders(workload?: string): Promise<LogSender[]>;
}
