// Audit store benchmark: ingestion rate and the latency of the main filtered queries and the
// who-talks-to-whom aggregate over 1,000,000 stored events, on SQLite and PostgreSQL. Prints figures,
// never pass/fail. Run: node --import tsx bench/audit.bench.ts   (AUDIT_BENCH_EVENTS=200000 for a quick run)
// `npm run bench` imports this module and calls run(); run directly, it also prints the table and writes
// bench/results/audit.json with the machine's load average, since other work inflates every figure.
import express from 'express';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { decisionEvent, type DecisionEvent } from '../formats/decision-event.js';
import { newDecisionId } from '../formats/decision-id.js';
import { PostgresStore } from '../engine/audit/postgres-store.js';
import { auditRouter } from '../engine/audit/ingest.js';
import { deniedByDefault, parseFilter, type RawFilter } from '../engine/audit/query.js';
import { SqliteStore } from '../engine/audit/sqlite-store.js';
import type { AuditStore } from '../engine/audit/store.js';
import { eventColumns, eventText } from '../engine/audit/table.js';
import { startPostgres } from '../test/support/postgres.js';
import { median, printTable, quantile, type Figure } from './figure.js';

const SUITE = 'audit';

const TOTAL = Number(process.env.AUDIT_BENCH_EVENTS ?? 1_000_000);
const QUERY_RUNS = 7;
export const NOW = Date.UTC(2026, 10, 25, 12, 0, 0);
const SPAN_MS = 7 * 86_400_000; // events spread over the last 7 days

// A deterministic mix: 40 workloads, 400 principals, ~10% denials, a third MCP calls.
// mulberry32: a small deterministic PRNG, so every run stores the same events.
let rng = 42;
function rand(n: number): number {
  rng = (rng + 0x6d2b79f5) | 0;
  let t = Math.imul(rng ^ (rng >>> 15), 1 | rng);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return (((t ^ (t >>> 14)) >>> 0) % n);
}

/** Event i's time: the events are spread evenly over the SPAN_MS before NOW. */
function timeOf(i: number): number {
  return NOW - SPAN_MS + Math.floor((i / TOTAL) * SPAN_MS);
}

/**
 * Decision ids as plugins make them: UUIDv7 at the event's time (time first, so the decision_id index
 * grows at its end). AUDIT_BENCH_IDS=v4 gives random version 4 ids instead, as older plugins sent.
 */
const IDS = process.env.AUDIT_BENCH_IDS ?? 'v7';
const ids = IDS === 'v4' ? ', v4 ids' : '';

/**
 * Who calls whom: `any` = each of 3,200 principals calls any workload (128,000 possible edges, the
 * worst case for an edge aggregate); `mesh` = each workload is called by 4 other workloads (160 edges,
 * like a service mesh).
 */
export type Callers = 'any' | 'mesh';

function eventAt(i: number, callers: Callers): DecisionEvent {
  const w = rand(40);
  const workload = `svc-${w}`;
  const namespace = `ns-${w % 8}`;
  // (`any` draws exactly the numbers it drew before `mesh` existed, so its events stay the same.)
  const caller = callers === 'mesh' ? (w + 1 + rand(4)) % 40 : 0;
  const principal = callers === 'mesh' ? `spiffe://cluster.local/ns/ns-${caller % 8}/sa/svc-${caller}` : `spiffe://cluster.local/ns/ns-${rand(8)}/sa/caller-${rand(400)}`;
  const r = rand(100);
  const outcome = r < 8 ? 'deny' : r < 10 ? 'dry-run-deny' : 'allow';
  const mcp = rand(3) === 0;
  const tool = mcp ? `tool_${rand(20)}` : undefined;
  const op = mcp ? undefined : `op${rand(30)}`;
  const path = mcp ? '/mcp' : `/api/v1/${op}/${rand(10_000)}`;
  return {
    decision_id: IDS === 'v4' ? randomUUID() : newDecisionId(timeOf(i)),
    timestamp: new Date(timeOf(i)).toISOString(),
    kind: mcp ? 'mcp' : 'http',
    outcome,
    mode: outcome === 'dry-run-deny' ? 'dry-run' : 'enforce',
    labels: { workload, namespace, source: 'proxy', instance: `${workload}-5c7d9-${rand(5)}` },
    bundles: { [workload]: { revision: `git-${rand(5)}-sha256:${w}` } },
    path: 'warden/decision',
    input: {
      source: { principal, authn: 'mtls', claims: {}, address: `10.0.${rand(255)}.${rand(255)}` },
      destination: { workload, namespace, principal: `spiffe://cluster.local/ns/${namespace}/sa/${workload}` },
      request: { method: mcp ? 'POST' : ['GET', 'POST', 'DELETE'][rand(3)]!, path, segments: path.split('/').filter(Boolean), query: {}, headers: { 'user-agent': 'bench/1.0', authorization: '***' } },
      ...(tool ? { mcp: { method: 'tools/call', tool, arguments: { table: 'orders' } } } : {}),
    },
    result: { allow: outcome === 'allow', reasons: outcome === 'allow' ? [] : ['caller lacks scope'], ...(op ? { operation: op } : {}) },
    masked: ['/request/headers/authorization'],
    metrics: { timer_rego_query_eval_ns: 9000 + rand(5000) },
  };
}

/** Median CPU per event over a fill's chunks, for an ingest figure's `detail`. */
function cpuDetail(cpu: number[]): string {
  return `${median(cpu).toFixed(1)} µs CPU per event (all threads, median)`;
}

/** Spread and target of a figure, for its `detail`; targets are for the reader, never checked here. */
function detail(xs: number[], unit: string, target?: string): string {
  const spread = xs.length > 1 ? `p25–p75 ${fmt(quantile(xs, 0.25))}–${fmt(quantile(xs, 0.75))} ${unit} over ${xs.length} runs` : '1 run';
  return target ? `${spread}; target ${target}` : spread;
}

function fmt(v: number): string {
  return v >= 100 ? Math.round(v).toLocaleString('en') : v.toFixed(2);
}

/** Appends in flight at once during the fill: the engine receives batches from many plugins at a time. */
const IN_FLIGHT = Number(process.env.AUDIT_BENCH_IN_FLIGHT ?? 2);

/** Run `send` on every item, IN_FLIGHT at a time, in order; resolves when all have finished. */
async function inFlight<T>(items: readonly T[], send: (item: T) => Promise<unknown>): Promise<void> {
  const running = new Set<Promise<unknown>>();
  for (const item of items) {
    const p: Promise<unknown> = send(item).finally(() => running.delete(p));
    running.add(p);
    if (running.size >= IN_FLIGHT) await Promise.race(running);
  }
  await Promise.all(running);
}

/** Events from..to-1 in batches of `size`. */
function batchesOf(from: number, to: number, size: number, callers: Callers = 'any'): DecisionEvent[][] {
  const out: DecisionEvent[][] = [];
  for (let i = from; i < to; i += size) out.push(Array.from({ length: Math.min(size, to - i) }, (_, k) => eventAt(i + k, callers)));
  return out;
}

/**
 * Fill `store` with TOTAL events in batches; returns, per 100k chunk (its "runs"), the events/s and the
 * CPU time per event of the whole process (every thread: ingesting, writer, checkpointer, GC), which
 * the machine's noise moves less than the rate. Each chunk's events are generated first, then appended
 * with IN_FLIGHT appends outstanding, and the clock covers the appends only: exactly what POST /logs
 * calls once it has parsed and validated batches.
 */
export async function fill(store: AuditStore, batch: number, log: (s: string) => void, callers: Callers = 'any', mixIn: readonly DecisionEvent[] = []): Promise<{ rates: number[]; cpu: number[]; middleId: string }> {
  const chunk = Math.min(100_000, TOTAL);
  const middle = Math.floor(TOTAL / 2);
  const rates: number[] = [];
  const cpu: number[] = [];
  let middleId = '';
  for (let start = 0; start < TOTAL; start += chunk) {
    const end = Math.min(start + chunk, TOTAL);
    const batches = batchesOf(start, end, batch, callers);
    // `mixIn` events go into the batches holding the calls of their time, so they are interleaved with them by seq and by time.
    const [first, until] = [timeOf(start), end === TOTAL ? NOW : timeOf(end)];
    for (const e of mixIn) {
      const t = Date.parse(e.timestamp);
      if (t >= first && (t < until || end === TOTAL)) batches[Math.min(batches.length - 1, Math.floor(((t - first) / (until - first)) * batches.length))]!.push(e);
    }
    if (middle >= start && middle < start + chunk) middleId = batches[Math.floor((middle - start) / batch)]![(middle - start) % batch]!.decision_id;
    // The store's first append starts its writer thread (a one-off ~0.5 s): stored, but not timed.
    if (start === 0) await store.append(batches.shift()!, NOW);
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    await inFlight(batches, (events) => store.append(events, NOW));
    const used = process.cpuUsage(cpu0);
    const stored = batches.reduce((n, b) => n + b.length, 0);
    rates.push(stored / ((performance.now() - t0) / 1000));
    cpu.push((used.user + used.system) / stored);
    log(`  ${Math.min(start + chunk, TOTAL).toLocaleString('en')} stored, last chunk ${Math.round(rates.at(-1)!).toLocaleString('en')} events/s, ${cpu.at(-1)!.toFixed(1)} µs CPU/event`);
  }
  return { rates, cpu, middleId };
}

/** Events sent over HTTP for the end-to-end figure (fewer than TOTAL: it is a cross-check, not the fill). */
const HTTP_EVENTS = Math.min(TOTAL, 100_000);

/**
 * POST /logs end to end on a fresh SQLite store: body parsing, schema validation, the writer check
 * and the append, over plain HTTP on loopback (mTLS is left out: it is per connection, not per event,
 * and the identity check is a function of the request). Returns events/s per 20k-event chunk.
 */
async function httpIngest(dir: string, log: (s: string) => void): Promise<number[]> {
  const store = SqliteStore.open(join(dir, 'http.db'));
  const app = express();
  const workloads = Array.from({ length: 40 }, (_, w) => `svc-${w}`);
  app.use(auditRouter({ store, identify: () => Promise.resolve({ principal: 'bench' }), writers: { bench: workloads }, readers: [] }));
  const server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/logs`;
  const rates: number[] = [];
  try {
    const batch = 1000;
    const chunk = Math.min(20_000, HTTP_EVENTS);
    const post = async (body: string): Promise<number> => {
      const res = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
      const answer = (await res.json()) as { stored?: number; rejected?: unknown[] };
      if (res.status !== 200 || answer.rejected?.length) throw new Error(`POST /logs answered ${res.status}: ${JSON.stringify(answer).slice(0, 300)}`);
      return answer.stored ?? 0;
    };
    for (let start = 0; start < HTTP_EVENTS; start += chunk) {
      // The senders' serialisation is not the engine's work: done before the clock starts.
      const bodies = batchesOf(start, Math.min(start + chunk, HTTP_EVENTS), batch).map((b) => JSON.stringify(b));
      const t0 = performance.now();
      let stored = 0;
      await inFlight(bodies, async (body) => {
        const n = await post(body); // read `stored` only after the await: `stored += await …` would lose counts
        stored += n;
      });
      rates.push(stored / ((performance.now() - t0) / 1000));
    }
    log(`  ${HTTP_EVENTS.toLocaleString('en')} events over HTTP, median ${Math.round(median(rates)).toLocaleString('en')} events/s`);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await store.close();
  }
  return rates;
}

/** The queries the audit CLI and API run most, with the filters users give them; `decisionId` is one stored. */
const queries = (decisionId: string): Array<{ name: string; kind: 'events' | 'top' | 'edges'; raw: RawFilter }> => [
  { name: 'newest 100 events', kind: 'events', raw: {} },
  { name: 'workload, last 1h', kind: 'events', raw: { workload: 'svc-7', since: '1h' } },
  { name: 'principal + deny', kind: 'events', raw: { principal: 'spiffe://cluster.local/ns/ns-3/sa/caller-42', decision: 'deny' } },
  { name: 'MCP tool, last 24h', kind: 'events', raw: { tool: 'tool_13', since: '24h' } },
  { name: 'operation + workload', kind: 'events', raw: { operation: 'op4', workload: 'svc-11' } },
  { name: 'revision', kind: 'events', raw: { revision: 'git-3-sha256:9' } },
  { name: 'workload + path prefix', kind: 'events', raw: { workload: 'svc-2', 'path-prefix': '/api/v1/op17/' } },
  { name: 'decision id', kind: 'events', raw: { 'decision-id': decisionId } },
  { name: 'top denied principals, 24h', kind: 'top', raw: { since: '24h' } },
  { name: 'top denied principals, all', kind: 'top', raw: {} },
  { name: 'who-talks-to-whom, 1h', kind: 'edges', raw: { since: '1h', limit: '1000' } },
  { name: 'who-talks-to-whom, 24h', kind: 'edges', raw: { since: '24h', limit: '1000' } },
  { name: 'who-talks-to-whom, all', kind: 'edges', raw: { limit: '1000' } },
];

async function measureQueries(store: AuditStore, backend: string, decisionId: string, out: Figure[], log: (s: string) => void): Promise<void> {
  for (const q of queries(decisionId)) {
    const f = parseFilter(q.raw, NOW, q.kind === 'top' ? { limit: 10 } : {});
    const once = () => (q.kind === 'events' ? store.query(f) : q.kind === 'top' ? store.top('principal', deniedByDefault(f)) : store.edges(f));
    await once(); // warm the cache, as a repeated CLI query would find it
    const times: number[] = [];
    let rows = 0;
    for (let r = 0; r < QUERY_RUNS; r++) {
      const t0 = performance.now();
      rows = (await once()).length;
      times.push(performance.now() - t0);
    }
    const ms = median(times);
    out.push({ suite: SUITE, name: `${backend} query: ${q.name}`, value: Number(ms.toFixed(2)), unit: 'ms', detail: `${rows} rows; ${detail(times, 'ms', q.kind === 'events' ? '≤ 200 ms' : undefined)}` });
    log(`  ${q.name.padEnd(28)} ${ms.toFixed(2).padStart(9)} ms  (${rows} rows)`);
  }
}

/** Run the whole benchmark; `log` receives progress lines. */
export async function run(log: (s: string) => void = (s) => process.stderr.write(`${s}\n`)): Promise<Figure[]> {
  const out: Figure[] = [];
  const load = `load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} at start`;
  const dir = mkdtempSync(join(tmpdir(), 'warden-audit-bench-'));
  try {
    // Validation cost per event (what POST /logs adds on top of the store).
    const sample = Array.from({ length: 20_000 }, (_, i) => eventAt(i, 'any'));
    const v0 = performance.now();
    for (const e of sample) decisionEvent.check(e);
    out.push({ suite: SUITE, name: 'schema validation (ajv)', value: Math.round(sample.length / ((performance.now() - v0) / 1000)), unit: 'events/s', detail: `${sample.length.toLocaleString('en')} events, 1 run` });
    // Column extraction + event text: the per-event CPU every append pays before the database.
    const p0 = performance.now();
    for (const e of sample) {
      eventColumns(e);
      eventText(e);
    }
    out.push({ suite: SUITE, name: 'prepare (columns + event text)', value: Number((((performance.now() - p0) * 1000) / sample.length).toFixed(2)), unit: 'µs/event', detail: `${sample.length.toLocaleString('en')} events, 1 run` });

    log(`SQLite: ingesting ${TOTAL.toLocaleString('en')} events in batches of 1,000…`);
    const sqlite = SqliteStore.open(join(dir, 'audit.db'));
    const sqliteFill = await fill(sqlite, 1000, log);
    out.push({ suite: SUITE, name: `sqlite ingest (append, batches of 1,000, ${IN_FLIGHT} in flight${ids})`, value: Math.round(median(sqliteFill.rates)), unit: 'events/s', detail: `${detail(sqliteFill.rates, 'events/s', '≥ 50,000 events/s')}; ${cpuDetail(sqliteFill.cpu)}; ${load}` });
    sqlite.database.exec('ANALYZE');
    log('SQLite queries (median of 7):');
    await measureQueries(sqlite, 'sqlite', sqliteFill.middleId, out, log);
    await sqlite.close();

    log(`SQLite over HTTP: POST /logs, ${HTTP_EVENTS.toLocaleString('en')} events in batches of 1,000…`);
    const httpRates = await httpIngest(dir, log);
    out.push({ suite: SUITE, name: `sqlite ingest end to end (POST /logs, batches of 1,000, ${IN_FLIGHT} in flight)`, value: Math.round(median(httpRates)), unit: 'events/s', detail: `${detail(httpRates, 'events/s')}; plain HTTP on loopback, parse + validate + append; ${load}` });

    if (process.env.AUDIT_BENCH_BACKENDS === 'sqlite') return out;
    log('PostgreSQL: starting a server…');
    const server = await startPostgres({ settings: { max_wal_size: '2GB', shared_buffers: '256MB' }, readyTimeoutMs: 60_000 });
    try {
      const pg = await PostgresStore.open(await server.createDatabase('bench'));
      log(`PostgreSQL: ingesting ${TOTAL.toLocaleString('en')} events in batches of 5,000…`);
      const pgFill = await fill(pg, 5000, log);
      out.push({ suite: SUITE, name: `postgres ingest (append, batches of 5,000, ${IN_FLIGHT} in flight${ids})`, value: Math.round(median(pgFill.rates)), unit: 'events/s', detail: `${detail(pgFill.rates, 'events/s')}; ${cpuDetail(pgFill.cpu)} (Warden's process only); ${load}` });
      await pg.sql.query('VACUUM ANALYZE events');
      log('PostgreSQL queries (median of 7):');
      await measureQueries(pg, 'postgres', pgFill.middleId, out, log);
      await pg.close();
    } finally {
      await server.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const started = performance.now();
  const results = await run();
  // Other work on the machine slows every figure down; say how busy it was.
  process.stdout.write(`\nAudit store, ${TOTAL.toLocaleString('en')} events (Node ${process.version}, load average now ${loadavg().map((l) => l.toFixed(1)).join(' ')}, ${Math.round((performance.now() - started) / 1000)} s)\n`);
  printTable(results);
  const file = join(dirname(fileURLToPath(import.meta.url)), 'results', 'audit.json');
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify({ events: TOTAL, node: process.version, loadavg: loadavg(), results }, null, 2)}\n`);
  process.stdout.write(`\nfigures written to ${file}\n`);
}
