// The cluster-scale audit store: PostgreSQL, same table and queries as SQLite. Several engine replicas
// may append at once; a transaction-scoped advisory lock serialises appends so the chain stays one line.
// A batch goes in as one INSERT … SELECT FROM unnest() of one array per column.
import pg from 'pg';
import { randomUUID } from 'node:crypto';
import type { DecisionEvent } from '../../formats/decision-event.js';
import { chainDigest, GENESIS_HASH, type Checkpoint } from './chain.js';
import { NameIds } from './names.js';
import type { EventFilter } from './query.js';
import { insertRefusalsSql, OBJECTS, pruneRefusalsSql, refusalHoursAddSql, refusalHoursFillStatements, refusalHoursPruneStatements, RefusalRows, refusalRules, selectRefusalHoursDrift, type RefusalHourDrift, selectAdmissionDenials, selectRefusalGroups, selectRefusalPage, selectRefusalRows, selectRefusedObjects, type RefusalGroup, type RefusalPage, type RefusalRow, type RefusalWindow } from './refusals.js';
import type { AppendResult, AuditStore, ChainHead, ChainRow, Edge, EdgeSummary, KeptRevision, LogSender, RollupDrift, StoreBounds, StoredEvent, TopDimension, TopRow } from './store.js';
import { edgeHour } from './sql-dialect.js';
import {
  edgeSummaryOf, fillsRollup, COLUMN_NAMES, BucketCounts, rollupAddSql, rollupFillStatements, rollupPruneStatements, selectRollupDrift, SENDER_KEEP_MS, UNNAMED_BLOBS, upsertSender, eventColumns, eventText, migrationStatements, NAMED_COLUMNS, schemaAction, schemaStatements, SCHEMA_VERSION, SELECT_HEAD, SELECT_LAYOUT, checkLayoutUnchanged, selectChainRows, selectEdges, selectEvents, selectTop,
  type EventColumns,
} from './table.js';

/** Advisory lock key that serialises chain appends ("WARDAUDT"). */
const APPEND_LOCK = '6296645208963040340';
/** Advisory lock key that serialises revision archive writes ("WARDREVS"). */
const REVISION_LOCK = '6287397008177452627';
/** Postgres types of COLUMN_NAMES, for the unnest() bulk insert. */
const COLUMN_TYPES = ['bigint', 'text', 'bigint', 'bigint', 'int', 'int', 'int', 'int', 'int', 'int', 'text', 'int', 'int', 'int', 'text', 'text', 'text'];
/** Rows per INSERT statement (arrays are sent as one parameter each). */
const INSERT_CHUNK = 5000;

// bigint (int8) columns fit in a JS number for every seq and millisecond timestamp we store.
pg.types.setTypeParser(20, (v) => Number(v));

/** Run `body` in one transaction on a client of its own: committed when it resolves, rolled back when it throws. */
async function transaction<T>(pool: pg.Pool, body: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await body(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

type RowOut = { seq: number; received_at: number; event: string };

function toStored(r: RowOut): StoredEvent {
  return { seq: r.seq, received_at: new Date(r.received_at).toISOString(), event: JSON.parse(r.event) as DecisionEvent };
}

/**
 * Build admission_refusals from the stored admission refusals (opening a store of an older layout), in
 * the caller's transaction. An event whose text no longer parses gets no row; verify reports it.
 */
async function fillRefusals(client: pg.PoolClient): Promise<void> {
  await client.query('DELETE FROM admission_refusals');
  for (let after = 0; ; ) {
    const { rows } = await client.query<{ seq: number; namespace: number; ts: number; event: string }>(selectAdmissionDenials('postgres'), [after, 1000]);
    if (!rows.length) return;
    const refusals: Array<[number, string, number, number]> = [];
    for (const r of rows) {
      after = Number(r.seq);
      try {
        for (const rule of refusalRules(JSON.parse(r.event) as DecisionEvent)) refusals.push([Number(r.seq), rule, r.namespace, Number(r.ts)]);
      } catch {
        continue;
      }
    }
    if (!refusals.length) continue;
    await client.query('INSERT INTO audit_names (value) SELECT unnest($1::text[]) ON CONFLICT (value) DO NOTHING', [[...new Set(refusals.map((r) => r[1]))]]);
    await client.query(
      'INSERT INTO admission_refusals (seq, rule, namespace, ts) SELECT r.seq, n.id, r.namespace, r.ts FROM unnest($1::bigint[], $2::text[], $3::int[], $4::bigint[]) AS r (seq, rule, namespace, ts) JOIN audit_names AS n ON n.value = r.rule',
      [refusals.map((r) => r[0]), refusals.map((r) => r[1]), refusals.map((r) => r[2]), refusals.map((r) => r[3])],
    );
  }
}

type FullRow = EventColumns & { seq: number; received_at: number; event: string; prev_hash: string; hash: string };

/** AuditStore on a PostgreSQL database. */
export class PostgresStore implements AuditStore {
  private readonly names = new NameIds();

  private constructor(
    private readonly pool: pg.Pool,
    readonly id: string,
    readonly location: string,
  ) {}

  /** Connect and create the schema if it is missing. */
  static async open(url: string, poolSize = 4): Promise<PostgresStore> {
    const pool = new pg.Pool({ connectionString: url, max: poolSize });
    // An idle client's socket error must not crash the process; the next query reports it.
    pool.on('error', () => undefined);
    try {
      await transaction(pool, async (client) => {
        await client.query(`SELECT pg_advisory_xact_lock(${APPEND_LOCK})`);
        const tables = await client.query<{ events: string | null; meta: string | null }>("SELECT to_regclass('events')::text AS events, to_regclass('audit_meta')::text AS meta");
        const version = tables.rows[0]?.meta
          ? (await client.query<{ value: string }>('SELECT value FROM audit_meta WHERE key = $1', ['schema_version'])).rows[0]?.value
          : undefined;
        const u = new URL(url);
        const action = schemaAction(tables.rows[0]?.events != null, version, `postgres://${u.host}${u.pathname}`);
        if (action === 'migrate-v1') for (const s of migrationStatements('postgres')) await client.query(s);
        for (const s of schemaStatements('postgres')) await client.query(s);
        if (fillsRollup(action)) for (const s of rollupFillStatements()) await client.query(s);
        if (action !== 'create-or-current') {
          await fillRefusals(client);
          for (const s of refusalHoursFillStatements()) await client.query(s);
        }
        await client.query('INSERT INTO audit_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING', ['store_id', randomUUID()]);
        await client.query('INSERT INTO audit_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value', ['schema_version', SCHEMA_VERSION]);
      });
      const { rows } = await pool.query<{ value: string }>('SELECT value FROM audit_meta WHERE key = $1', ['store_id']);
      const u = new URL(url);
      return new PostgresStore(pool, rows[0]!.value, `postgres://${u.host}${u.pathname}`);
    } catch (err) {
      await pool.end();
      throw err;
    }
  }

  async append(events: readonly DecisionEvent[], receivedAt: number, sent?: readonly Uint8Array[]): Promise<AppendResult> {
    // Dedupe within the batch first; the first occurrence of a decision id wins, as in SQLite.
    const seen = new Set<string>();
    const duplicates: string[] = [];
    const columns: EventColumns[] = [];
    const texts: string[] = [];
    const rules: string[][] = [];
    events.forEach((e, i) => {
      if (seen.has(e.decision_id)) {
        duplicates.push(e.decision_id);
        return;
      }
      seen.add(e.decision_id);
      columns.push(eventColumns(e));
      rules.push(refusalRules(e));
      const bytes = sent?.[i];
      texts.push(bytes ? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8') : eventText(e));
    });
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(`SELECT pg_advisory_xact_lock(${APPEND_LOCK})`);
      // A newer engine may have upgraded the store since this one opened it (a rolling update).
      checkLayoutUnchanged((await client.query<{ value: string }>(SELECT_LAYOUT)).rows[0]?.value);
      const existing = new Set(
        (await client.query<{ decision_id: string }>('SELECT decision_id FROM events WHERE decision_id = ANY($1::text[])', [[...seen]])).rows.map((r) => r.decision_id),
      );
      const ids = await this.resolveNames(client, columns, rules.flat());
      const headRow = (await client.query<ChainHead>(SELECT_HEAD)).rows[0];
      let prev = headRow?.hash ?? GENESIS_HASH;
      let prevDigest: Buffer = Buffer.from(prev, 'hex');
      let seq = headRow?.seq ?? 0;
      const cols: unknown[][] = COLUMN_NAMES.map(() => []);
      const rollup = new BucketCounts(5);
      const refusals = new RefusalRows();
      const refusalCounts = new BucketCounts(3);
      const id = (v: string | null) => (v === null ? null : ids.get(v)!);
      for (let i = 0; i < columns.length; i++) {
        const c = columns[i]!;
        if (existing.has(c.decision_id)) {
          duplicates.push(c.decision_id);
          continue;
        }
        const text = texts[i]!;
        const digest = chainDigest(prevDigest, text);
        const hash = digest.toString('hex');
        seq += 1;
        const row = [seq, c.decision_id, c.ts, receivedAt, id(c.workload), id(c.namespace), id(c.outcome), id(c.kind), id(c.principal), id(c.method), c.path, id(c.operation), id(c.tool), id(c.revision), text, prev, hash];
        for (let k = 0; k < row.length; k++) cols[k]!.push(row[k]);
        rollup.add(edgeHour(c.ts), id(c.principal) ?? 0, id(c.workload)!, id(c.namespace)!, id(c.outcome)!);
        if (rules[i]!.length) refusalCounts.add(edgeHour(c.ts), OBJECTS, id(c.namespace)!);
        for (const rule of rules[i]!) {
          refusals.add(seq, id(rule)!, id(c.namespace)!, c.ts);
          refusalCounts.add(edgeHour(c.ts), id(rule)!, id(c.namespace)!);
        }
        prev = hash;
        prevDigest = digest;
      }
      const stored = cols[0]!.length;
      for (let at = 0; at < stored; at += INSERT_CHUNK) {
        const slice = cols.map((c) => c.slice(at, at + INSERT_CHUNK));
        await client.query(
          `INSERT INTO events (${COLUMN_NAMES.join(', ')}) SELECT * FROM unnest(${COLUMN_TYPES.map((t, i) => `$${i + 1}::${t}[]`).join(', ')})`,
          slice,
        );
      }
      // The hourly edge rollup, in this transaction and under the append lock (no two upserts interleave).
      if (stored) await client.query(rollupAddSql('postgres', 0), rollup.columns());
      if (refusals.length) {
        await client.query(insertRefusalsSql('postgres', 0), refusals.columns());
        await client.query(refusalHoursAddSql('postgres', 0), refusalCounts.columns());
      }
      await client.query('COMMIT');
      return { stored, duplicates, head: stored ? { seq, hash: prev } : headRow };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      this.names.forget(); // names this transaction created were rolled back with it
      throw err;
    } finally {
      client.release();
    }
  }

  /** The id of every name the batch uses; new names are added to audit_names (under the append lock). */
  private async resolveNames(client: pg.PoolClient, columns: EventColumns[], more: readonly string[]): Promise<Map<string, number>> {
    const ids = new Map<string, number>();
    const missing = new Set<string>();
    const want = (v: string | null) => {
      if (v === null || ids.has(v) || missing.has(v)) return;
      const id = this.names.get(v);
      if (id === undefined) missing.add(v);
      else ids.set(v, id);
    };
    for (const c of columns) for (const k of NAMED_COLUMNS) want(c[k]);
    more.forEach(want);
    if (!missing.size) return ids;
    const values = [...missing];
    await client.query('INSERT INTO audit_names (value) SELECT unnest($1::text[]) ON CONFLICT (value) DO NOTHING', [values]);
    const { rows } = await client.query<{ id: number; value: string }>('SELECT id, value FROM audit_names WHERE value = ANY($1::text[])', [values]);
    for (const r of rows) {
      ids.set(r.value, r.id);
      this.names.set(r.value, r.id);
    }
    return ids;
  }

  async query(filter: EventFilter): Promise<StoredEvent[]> {
    const { sql, values } = selectEvents('postgres', filter);
    return (await this.pool.query<RowOut>(sql, values)).rows.map(toStored);
  }

  async refusalGroups(window: RefusalWindow, limit: number): Promise<{ groups: RefusalGroup[]; objects: number }> {
    const g = selectRefusalGroups('postgres', window, limit);
    const o = selectRefusedObjects('postgres', window);
    const [groups, objects] = await Promise.all([this.pool.query<RefusalGroup>(g.sql, g.values), this.pool.query<{ n: number }>(o.sql, o.values)]);
    return { groups: groups.rows.map((r) => ({ ...r, count: Number(r.count), latest: Number(r.latest) })), objects: Number(objects.rows[0]?.n ?? 0) };
  }

  async refusals(page: RefusalPage): Promise<StoredEvent[]> {
    const { sql, values } = selectRefusalPage('postgres', page);
    return (await this.pool.query<RowOut>(sql, values)).rows.map(toStored);
  }

  async refusalRows(afterSeq: number, upToSeq: number): Promise<RefusalRow[]> {
    const { rows } = await this.pool.query<RefusalRow>(selectRefusalRows('postgres'), [afterSeq, upToSeq]);
    return rows.map((r) => ({ ...r, seq: Number(r.seq), ts: Number(r.ts) }));
  }

  async top(by: TopDimension, filter: EventFilter): Promise<TopRow[]> {
    const { sql, values } = selectTop('postgres', by, filter);
    const { rows } = await this.pool.query<{ key: string; workload?: string; n: number }>(sql, values);
    return rows.map((r) => ({ key: r.key, ...(r.workload !== undefined ? { workload: r.workload } : {}), count: Number(r.n) }));
  }

  async edges(filter: EventFilter): Promise<Edge[]> {
    const { sql, values } = selectEdges('postgres', filter);
    const { rows } = await this.pool.query<Record<keyof Edge, string | number>>(sql, values);
    return rows.map((r) => ({
      source: String(r.source),
      destination: String(r.destination),
      namespace: String(r.namespace),
      allow: Number(r.allow),
      deny: Number(r.deny),
      dry_run_deny: Number(r.dry_run_deny),
      total: Number(r.total),
    }));
  }

  async edgeSummary(filter: EventFilter): Promise<EdgeSummary> {
    const { sql, values } = selectEdges('postgres', filter, { totals: true });
    return edgeSummaryOf((await this.pool.query<Record<string, unknown>>(sql, values)).rows);
  }

  async head(): Promise<ChainHead | undefined> {
    return (await this.pool.query<ChainHead>(SELECT_HEAD)).rows[0];
  }

  async bounds(): Promise<StoreBounds | undefined> {
    const r = (await this.pool.query<{ first: number | null; last: number | null; count: number }>('SELECT MIN(seq) AS first, MAX(seq) AS last, COUNT(*) AS count FROM events')).rows[0];
    return !r || r.first === null || r.last === null ? undefined : { first: r.first, last: r.last, count: Number(r.count) };
  }

  async scan(afterSeq: number, limit: number): Promise<ChainRow[]> {
    const { rows } = await this.pool.query<FullRow>(selectChainRows('postgres'), [afterSeq, limit]);
    return rows.map(({ seq, received_at, event, prev_hash, hash, ...columns }) => ({ seq, received_at, event, prev_hash, hash, columns }));
  }

  async oldest(limit: number): Promise<Array<{ seq: number; hash: string; received_at: number }>> {
    return (await this.pool.query<{ seq: number; hash: string; received_at: number }>('SELECT seq, hash, received_at FROM events ORDER BY seq LIMIT $1', [limit])).rows;
  }

  async findByHash(hash: string): Promise<{ seq: number; decision_id: string } | undefined> {
    return (await this.pool.query<{ seq: number; decision_id: string }>('SELECT seq, decision_id FROM events WHERE hash = $1 LIMIT 1', [hash])).rows[0];
  }

  async addCheckpoint(cp: Checkpoint): Promise<void> {
    await this.pool.query('INSERT INTO checkpoints (seq, hash, time, reason, jws) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING', [cp.seq, cp.hash, cp.time, cp.reason, cp.jws]);
  }

  async checkpoints(): Promise<Checkpoint[]> {
    return (await this.pool.query<Checkpoint>('SELECT seq, hash, time, reason, jws FROM checkpoints ORDER BY seq')).rows;
  }

  async prune(anchor: Checkpoint): Promise<number> {
    return transaction(this.pool, async (client) => {
      // Appends update the same rollup rows: one lock for both keeps them from deadlocking on them.
      await client.query(`SELECT pg_advisory_xact_lock(${APPEND_LOCK})`);
      await client.query('INSERT INTO checkpoints (seq, hash, time, reason, jws) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING', [anchor.seq, anchor.hash, anchor.time, anchor.reason, anchor.jws]);
      for (const [i, sql] of rollupPruneStatements('postgres').entries()) await client.query(sql, i === 0 ? [anchor.seq] : []);
      for (const [i, sql] of refusalHoursPruneStatements('postgres').entries()) await client.query(sql, i < 2 ? [anchor.seq] : []);
      await client.query(pruneRefusalsSql('postgres'), [anchor.seq]);
      const deleted = (await client.query('DELETE FROM events WHERE seq <= $1', [anchor.seq])).rowCount ?? 0;
      await client.query('DELETE FROM checkpoints WHERE seq < $1', [anchor.seq]);
      return deleted;
    });
  }

  async rollupDrift(limit: number): Promise<RollupDrift[]> {
    const { rows } = await this.pool.query<RollupDrift>(selectRollupDrift('postgres'), [limit]);
    return rows.map((r) => ({ ...r, hour: Number(r.hour), stored: Number(r.stored), counted: Number(r.counted) }));
  }

  async refusalHoursDrift(limit: number): Promise<RefusalHourDrift[]> {
    const { rows } = await this.pool.query<RefusalHourDrift>(selectRefusalHoursDrift('postgres'), [limit]);
    return rows.map((r) => ({ ...r, hour: Number(r.hour), stored: Number(r.stored), counted: Number(r.counted) }));
  }

  async keepRevision(k: KeptRevision, bytes: Uint8Array): Promise<void> {
    await transaction(this.pool, async (client) => {
      await client.query(`SELECT pg_advisory_xact_lock(${REVISION_LOCK})`);
      const added = await client.query('INSERT INTO bundle_revisions (bundle, revision, sha256, kept_at) VALUES ($1, $2, $3, $4) ON CONFLICT (bundle, revision) DO NOTHING', [k.bundle, k.revision, k.sha256, k.keptAt]);
      if (added.rowCount) await client.query('INSERT INTO bundle_blobs (sha256, bytes) VALUES ($1, $2) ON CONFLICT (sha256) DO NOTHING', [k.sha256, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)]);
    });
  }

  async findRevision(bundle: string, revision: string): Promise<{ kept: KeptRevision; bytes: Buffer } | undefined> {
    const { rows } = await this.pool.query<KeptRevision & { bytes: Buffer }>(
      'SELECT r.bundle, r.revision, r.sha256, r.kept_at AS "keptAt", b.bytes FROM bundle_revisions AS r JOIN bundle_blobs AS b ON b.sha256 = r.sha256 WHERE r.bundle = $1 AND r.revision = $2',
      [bundle, revision],
    );
    const r = rows[0];
    return r && { kept: { bundle: r.bundle, revision: r.revision, sha256: r.sha256, keptAt: Number(r.keptAt) }, bytes: r.bytes };
  }

  async listRevisions(): Promise<KeptRevision[]> {
    const { rows } = await this.pool.query<KeptRevision>('SELECT bundle, revision, sha256, kept_at AS "keptAt" FROM bundle_revisions ORDER BY bundle, kept_at');
    return rows.map((r) => ({ ...r, keptAt: Number(r.keptAt) }));
  }

  async dropRevisions(which: ReadonlyArray<{ bundle: string; revision: string }>): Promise<void> {
    await transaction(this.pool, async (client) => {
      // Serialised with keepRevision: a blob a concurrent keep is about to name is not deleted under it.
      await client.query(`SELECT pg_advisory_xact_lock(${REVISION_LOCK})`);
      for (const w of which) await client.query('DELETE FROM bundle_revisions WHERE bundle = $1 AND revision = $2', [w.bundle, w.revision]);
      await client.query(UNNAMED_BLOBS);
    });
  }

  async reportDrops(r: LogSender): Promise<void> {
    await transaction(this.pool, async (client) => {
      await client.query(upsertSender('postgres'), [r.workload, r.namespace, r.instance, r.dropped, r.reportedAt]);
      await client.query('DELETE FROM log_senders WHERE workload = $1 AND reported_at < $2', [r.workload, r.reportedAt - SENDER_KEEP_MS]);
    });
  }

  async logSenders(workload?: string): Promise<LogSender[]> {
    const sql = `SELECT workload, namespace, instance, dropped, reported_at AS "reportedAt" FROM log_senders ${workload === undefined ? '' : 'WHERE workload = $1'} ORDER BY workload, namespace, instance`;
    const { rows } = await this.pool.query<LogSender>(sql, workload === undefined ? [] : [workload]);
    return rows.map((r) => ({ ...r, dropped: Number(r.dropped), reportedAt: Number(r.reportedAt) }));
  }

  /** Direct access for tests and the benchmark (tampering, ANALYZE); not part of AuditStore. */
  get sql(): pg.Pool {
    return this.pool;
  }

  async close(): Promise<void> {
    if (!this.pool.ended) await this.pool.end();
  }
}
