// Console benchmark: the latency of each console page's server work (the HTTP request the browser
// makes, HTML rendered from the store's queries) over a SQLite store of 1,000,000 events filled as
// bench/audit.bench.ts fills it (plus 10,000 admission refusals of the last day, interleaved with the
// calls). Baseline in the same run: the audit API's GET /audit/events?limit=50, measured the same way.
// Prints figures, never pass/fail.
// Run: node --import tsx bench/console.bench.ts   (AUDIT_BENCH_EVENTS=200000 for a quick run)
import express from 'express';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import type { DecisionEvent } from '../formats/decision-event.js';
import { newDecisionId } from '../formats/decision-id.js';
import { auditRouter } from '../engine/audit/ingest.js';
import { parseFilter } from '../engine/audit/query.js';
import { SqliteStore } from '../engine/audit/sqlite-store.js';
import { selectEdges } from '../engine/audit/table.js';
import { consoleRouter } from '../engine/console/router.js';
import { explainDecision } from '../engine/explain/explanation.js';
import { fill, NOW } from './audit.bench.js';
import { median, printTable, quantile, type Figure } from './figure.js';

const SUITE = 'console';
const RUNS = Number(process.env.CONSOLE_BENCH_RUNS ?? 25);
const TOTAL = Number(process.env.AUDIT_BENCH_EVENTS ?? 1_000_000);

// Admission refusals of the last day, spread over 6 rules and 8 namespaces.
function refusals(n: number): DecisionEvent[] {
  const rules = ['no-latest-tag', 'image-digest', 'allowed-registry', 'no-privileged', 'resources', 'run-as-non-root'];
  return Array.from({ length: n }, (_, i) => {
    const t = NOW - 86_400_000 + Math.floor((i / n) * 86_400_000);
    return {
      decision_id: newDecisionId(t),
      timestamp: new Date(t).toISOString(),
      kind: 'admission',
      outcome: 'deny',
      mode: 'enforce',
      labels: { workload: 'admission', namespace: `ns-${i % 8}`, source: 'admission' },
      bundles: { admission: { revision: 'git-1-sha256:adm' } },
      path: 'warden/admission',
      input: { operation: 'CREATE', kind: { group: 'apps', version: 'v1', kind: 'Deployment' }, namespace: `ns-${i % 8}`, name: `app-${i}`, user: 'ci@example.com', request: { userInfo: { username: 'ci@example.com' } } },
      result: { allowed: false, findings: [{ set: 'guardrails', rule: rules[i % rules.length], msg: 'refused', mode: 'enforce', field: 'spec.template.spec.containers[0].image' }] },
    } as DecisionEvent;
  });
}

async function time(url: string): Promise<number> {
  const t0 = performance.now();
  const res = await fetch(url);
  await res.text();
  if (res.status !== 200) throw new Error(`${url} answered ${res.status}`);
  return performance.now() - t0;
}

/** Ask until the page answers 200 (a wide graph window answers 202 until its first snapshot exists); how long that took. */
async function firstAnswer(url: string): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < 600; i++) {
    const res = await fetch(url);
    const body = await res.text();
    if (res.status === 200 && !body.includes('data-pending="true"')) return performance.now() - t0;
    if (res.status !== 200 && res.status !== 202) throw new Error(`${url} answered ${res.status}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} never answered 200`);
}

/**
 * The graph's aggregate with and without the hourly rollup, on the same store in the same run (the
 * store call alone, no HTTP): "events only" is how every window was aggregated before edge_hours.
 */
function graphAggregates(store: SqliteStore, mix: string, log: (s: string) => void): Figure[] {
  const figures: Figure[] = [];
  for (const since of ['1h', '24h', '7d']) {
    for (const rollup of [false, true]) {
      const { sql, values } = selectEdges('sqlite', parseFilter({ since }, NOW, { limit: 200 }), { rollup });
      const stmt = store.database.prepare(sql);
      const once = () => {
        const t0 = performance.now();
        stmt.all(...values);
        return performance.now() - t0;
      };
      once();
      const xs = Array.from({ length: since === '7d' && !rollup ? Math.min(RUNS, 5) : RUNS }, once);
      const name = `graph aggregate (${mix}) ${since}, ${rollup ? 'rollup' : 'events only (before)'}`;
      log(`  ${name}: p50 ${median(xs).toFixed(1)} ms, p99 ${quantile(xs, 0.99).toFixed(1)} ms`);
      figures.push({ suite: SUITE, name: `${name} p50`, value: median(xs), unit: 'ms', detail: `${xs.length} runs, store call only` });
      figures.push({ suite: SUITE, name: `${name} p99`, value: quantile(xs, 0.99), unit: 'ms', detail: `worst of ${xs.length} runs; load average ${loadavg()[0]!.toFixed(1)}` });
    }
  }
  return figures;
}

/**
 * The admission page's grouping alone (store calls, no HTTP), on the same store in the same run: before,
 * the page read the day's refusals (up to 5,000) through the events' time index and grouped them in JS;
 * now it groups the window's hourly counts (refusal_hours; partial hours from admission_refusals).
 */
async function admissionGrouping(store: SqliteStore, log: (s: string) => void): Promise<Figure[]> {
  const figures: Figure[] = [];
  const ways: Array<[string, () => Promise<unknown>]> = [
    ['events through the time index (before)', () => store.query(parseFilter({ since: '24h', workload: 'admission', decision: 'deny' }, NOW, { sort: '-time', limit: 5000 }))],
    ['refusal_hours and admission_refusals', () => store.refusalGroups({ from: NOW - 86_400_000 }, 500)],
  ];
  for (const [way, call] of ways) {
    await call();
    const xs: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const t0 = performance.now();
      await call();
      xs.push(performance.now() - t0);
    }
    log(`  admission grouping, 24 h, ${way}: p50 ${median(xs).toFixed(1)} ms, p99 ${quantile(xs, 0.99).toFixed(1)} ms`);
    figures.push({ suite: SUITE, name: `admission grouping 24 h, ${way} p50`, value: median(xs), unit: 'ms', detail: `${RUNS} runs, store call only` });
    figures.push({ suite: SUITE, name: `admission grouping 24 h, ${way} p99`, value: quantile(xs, 0.99), unit: 'ms', detail: `worst of ${RUNS} runs; load average ${loadavg()[0]!.toFixed(1)}` });
  }
  return figures;
}

/** Fill the store, serve the console, and time each page RUNS times. */
export async function run(log: (s: string) => void = (s) => process.stderr.write(`${s}\n`)): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), 'warden-console-bench-'));
  const store = await SqliteStore.open(join(dir, 'audit.db'));
  try {
    log(`console bench: filling SQLite with ${TOTAL.toLocaleString('en')} events + 10,000 admission refusals …`);
    // The refusals are interleaved with the calls of their time, as they arrive in a cluster.
    const { middleId } = await fill(store, 5000, log, 'any', refusals(10_000));
    const index = { keyId: 'k', algorithm: 'ES256', bundles: Object.fromEntries(Array.from({ length: 40 }, (_, w) => [`svc-${w}`, { revision: `git-1-sha256:${w}`, sha256: '0'.repeat(64) }])) };
    const app = express();
    const now = () => NOW;
    app.use('/', auditRouter({ store, identify: async () => ({ principal: 'bench' }), writers: {}, readers: ['bench'], now }));
    // Access is one function call per request: the bench measures what comes after it.
    // graphMaxAgeMs 0: every request of a wide window starts a recomputation of its snapshot (on the
    // store's reader thread) while it is answered from the previous one, the worst case for those requests.
    app.use('/ui', consoleRouter({ access: async () => ({ ok: true, who: 'bench', via: 'certificate' }), reader: store, graphMaxAgeMs: 0, explain: (id) => explainDecision(id, { event: async (d) => (await store.query({ decisionId: [d], sort: 'seq', limit: 1 }))[0] }), index: () => index, bundle: async () => undefined, now }));
    const server = createServer(app);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const pages: Array<[string, string]> = [
      ['baseline: GET /audit/events?limit=50', '/audit/events?limit=50'],
      ['feed (newest 50)', '/ui/feed'],
      ['feed, one workload', '/ui/feed?workload=svc-7'],
      ['feed, denials of the last hour', '/ui/feed?decision=deny&since=1h'],
      ['feed, older page (time cursor)', `/ui/feed?to=${new Date(NOW - 3 * 86_400_000).toISOString()}`],
      ['live feed poll (after the head)', `/audit/events?after-seq=${TOTAL + 10_000}&sort=seq&limit=100`],
      ['decision page (event lookup + page; no kept bundle)', `/ui/decisions/${middleId}`],
      ['graph page (default: last hour)', '/ui/graph'],
      ['graph data /ui/api/graph (last hour)', '/ui/api/graph'],
      ['graph data, 24 h', '/ui/api/graph?since=24h'],
      ['graph data, 7 days (whole store)', '/ui/api/graph?since=7d'],
      ['workload page (24 h counts)', '/ui/workloads/svc-7'],
      ['graph page, 7 days', '/ui/graph?since=7d'],
      ['admission page (24 h, grouped)', '/ui/admission'],
      ['admission group page (newest 50 of one group)', '/ui/admission/refusals?rule=guardrails%2Fno-latest-tag&namespace=ns-0'],
      ['admission group page, an older page (cursor)', `/ui/admission/refusals?rule=guardrails%2Fno-latest-tag&namespace=ns-0&before=${NOW - 12 * 3_600_000}.${TOTAL + 5000}`],
    ];
    const figures: Figure[] = [];
    for (const [name, path] of pages) {
      const first = await firstAnswer(`${base}${path}`); // warms the page's query plan and caches, and a wide graph window's first snapshot
      if (first > 300) log(`  ${name}: first answer after ${first.toFixed(0)} ms (a wide window's first snapshot)`);
      const xs: number[] = [];
      for (let i = 0; i < RUNS; i++) xs.push(await time(`${base}${path}`));
      log(`  ${name}: p50 ${median(xs).toFixed(1)} ms, p99 ${quantile(xs, 0.99).toFixed(1)} ms`);
      figures.push({ suite: SUITE, name: `${name} p50`, value: median(xs), unit: 'ms', detail: `${RUNS} runs, ${TOTAL.toLocaleString('en')} events` });
      figures.push({ suite: SUITE, name: `${name} p99`, value: quantile(xs, 0.99), unit: 'ms', detail: `worst of ${RUNS} runs; target ≤ 300 ms; load average ${loadavg()[0]!.toFixed(1)}` });
    }
    await new Promise<void>((r) => server.close(() => r()));
    figures.push(...(await admissionGrouping(store, log)));
    figures.push(...graphAggregates(store, 'any caller', log));
    // The same number of events from a mesh of 160 edges, where the rollup compresses (CONSOLE_BENCH_MESH=0 skips it).
    if (process.env.CONSOLE_BENCH_MESH !== '0') {
      const mesh = await SqliteStore.open(join(dir, 'mesh.db'));
      try {
        log(`console bench: filling a second store with ${TOTAL.toLocaleString('en')} events of a 160-edge mesh …`);
        await fill(mesh, 5000, log, 'mesh');
        figures.push(...graphAggregates(mesh, 'mesh', log));
      } finally {
        await mesh.close();
      }
    }
    return figures;
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) printTable(await run());
