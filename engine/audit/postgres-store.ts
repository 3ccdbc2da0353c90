// The cluster-scale audit store: PostgreSQL, same table and queries as SQLite. Several engine replicas
// may append at once; a transaction-scoped advisory lock serialises appends so the chain stays one line.
import pg from 'pg';
import { randomUUID } from 'node:crypto';
import type { DecisionEvent } from '../../formats/decision-event.js';
import { chainDigest, GENESIS_HASH, type Checkpoint } from './chain.js';
import type { EventFilter } from './query.js';
import type { AppendResult, AuditStore, ChainHead, ChainRow, Edge, StoreBounds, StoredEvent, TopDimension, TopRow } from './store.js';
import { COLUMN_NAMES, prepareEvent, schemaStatements, selectEdges, selectEvents, selectTop, type EventColumns } from './table.js';

/** Advisory lock key that serialises chain appends ("WARDAUDT"). */
const APPEND_LOCK = '6296645208963040340';
/** Postgres types of COLUMN_NAMES, for the unnest() bulk insert. */
const COLUMN_TYPES = ['bigint', 'text', 'bigint', 'bigint', 'text', 'text', 'text', 'text', 'text', 'text', 'text', 'text', 'text', 'text', 'text', 'text', 'text'];
/** Rows per INSERT statement (arrays are sent as one parameter each). */
const INSERT_CHUNK = 5000;

// bigint (int8) columns fit in a JS number for every seq and millisecond timestamp we store.
pg.types.setTypeParser(20, (v) => Number(v));

type FullRow = EventColumns & { seq: number; received_at: number; event: string; prev_hash: string; hash: string };

/** AuditStore on a PostgreSQL database. */
export class PostgresStore implements AuditStore {
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
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        await client.query(`SELECT pg_advisory_xact_lock(${APPEND_LOCK})`);
        for (const s of schemaStatements('postgres')) await client.query(s);
        await client.query('INSERT INTO audit_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING', ['store_id', randomUUID()]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
      const { rows } = await pool.query<{ value: string }>('SELECT value FROM audit_meta WHERE key = $1', ['store_id']);
      const u = new URL(url);
      return new PostgresStore(pool, rows[0]!.value, `postgres://${u.host}${u.pathname}`);
    } catch (err) {
      await pool.end();
      throw err;
    }
  }

  async append(events: readonly DecisionEvent[], receivedAt: number): Promise<AppendResult> {
    // Dedupe within the batch first; the first occurrence of a decision id wins, as in SQLite.
    const seen = new Set<string>();
    const duplicates: string[] = [];
    const prepared = events.map(prepareEvent).filter((p) => {
      if (seen.has(p.columns.decision_id)) {
        duplicates.push(p.columns.decision_id);
        return false;
      }
      seen.add(p.columns.decision_id);
      return true;
    });
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(`SELECT pg_advisory_xact_lock(${APPEND_LOCK})`);
      const existing = new Set(
        (await client.query<{ decision_id: string }>('SELECT decision_id FROM events WHERE decision_id = ANY($1::text[])', [[...seen]])).rows.map((r) => r.decision_id),
      );
      const headRow = (await client.query<ChainHead>('SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1')).rows[0];
      let prev = headRow?.hash ?? GENESIS_HASH;
      let prevDigest: Buffer = Buffer.from(prev, 'hex');
      let seq = headRow?.seq ?? 0;
      const cols: unknown[][] = COLUMN_NAMES.map(() => []);
      for (const { columns: c, text } of prepared) {
        if (existing.has(c.decision_id)) {
          duplicates.push(c.decision_id);
          continue;
        }
        const digest = chainDigest(prevDigest, text);
        const hash = digest.toString('hex');
        seq += 1;
        const row = [seq, c.decision_id, c.ts, receivedAt, c.workload, c.namespace, c.outcome, c.kind, c.principal, c.method, c.path, c.operation, c.tool, c.revision, text, prev, hash];
        row.forEach((v, i) => cols[i]!.push(v));
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
      await client.query('COMMIT');
      return { stored, duplicates, head: stored ? { seq, hash: prev } : headRow };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  async query(filter: EventFilter): Promise<StoredEvent[]> {
    const { sql, values } = selectEvents('postgres', filter);
    const { rows } = await this.pool.query<{ seq: number; received_at: number; event: string }>(sql, values);
    return rows.map((r) => ({ seq: r.seq, received_at: new Date(r.received_at).toISOString(), event: JSON.parse(r.event) as DecisionEvent }));
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

  async head(): Promise<ChainHead | undefined> {
    return (await this.pool.query<ChainHead>('SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1')).rows[0];
  }

  async bounds(): Promise<StoreBounds | undefined> {
    const r = (await this.pool.query<{ first: number | null; last: number | null; count: number }>('SELECT MIN(seq) AS first, MAX(seq) AS last, COUNT(*) AS count FROM events')).rows[0];
    return !r || r.first === null || r.last === null ? undefined : { first: r.first, last: r.last, count: Number(r.count) };
  }

  async scan(afterSeq: number, limit: number): Promise<ChainRow[]> {
    const { rows } = await this.pool.query<FullRow>('SELECT * FROM events WHERE seq > $1 ORDER BY seq LIMIT $2', [afterSeq, limit]);
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
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('INSERT INTO checkpoints (seq, hash, time, reason, jws) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING', [anchor.seq, anchor.hash, anchor.time, anchor.reason, anchor.jws]);
      const deleted = (await client.query('DELETE FROM events WHERE seq <= $1', [anchor.seq])).rowCount ?? 0;
      await client.query('DELETE FROM checkpoints WHERE seq < $1', [anchor.seq]);
      await client.query('COMMIT');
      return deleted;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  /** Direct access for tests and the benchmark (tampering, ANALYZE); not part of AuditStore. */
  get sql(): pg.Pool {
    return this.pool;
  }

  async close(): Promise<void> {
    if (!this.pool.ended) await this.pool.end();
  }
}
