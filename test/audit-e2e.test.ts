// Issue 6, "Must show": proxy plugin (and an admission-webhook writer) → engine over mTLS → SQLite and
// PostgreSQL → the queries return exactly what was sent. Everything is real: bundles from the compiler,
// an upstream behind the sidecar, the engine service `warden serve` runs (HTTPS, client certificates
// from a test CA carrying SPIFFE IDs), the audit stores, and `warden audit verify` as a subprocess.
import Database from 'better-sqlite3';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpointSigner, publicKeyPath, type CheckpointSigner } from '../engine/audit/chain.js';
import { checkpointHead } from '../engine/audit/checkpoints.js';
import { HttpAuditReader } from '../engine/audit/http-reader.js';
import type { IngestResponse } from '../engine/audit/ingest.js';
import { parseFilter } from '../engine/audit/query.js';
import type { AuditReader, StoredEvent } from '../engine/audit/store.js';
import { startEngineService, type EngineService } from '../engine/service.js';
import { repoRoot } from '../engine/toolchain/paths.js';
import type { DecisionEvent } from '../formats/decision-event.js';
import { startPlugin, type Plugin } from '../proxy-plugin/plugin.js';
import { createSidecar, type SidecarServer } from '../proxy-plugin/sidecar.js';
import { DecisionLog } from '../runtime/decision-log.js';
import { EngineConnection, type EngineTls } from '../runtime/engine-connection.js';
import { makeEvent, makeEvents } from './support/decision-events.js';
import { startPostgres, type PostgresServer } from './support/postgres.js';
import { createCa, type Issued, type TestCa } from './support/tls.js';
import { closeServer, copyPolicies, listenLocal, startUpstream, type PolicyCopy, type Upstream } from './support/proxy-fixtures.js';
import { until } from './support/until.js';

const execFileP = promisify(execFile);
const silent = pino({ level: 'silent' });

const ID = {
  orders: 'spiffe://cluster.local/ns/shop/sa/orders',
  opsMcp: 'spiffe://cluster.local/ns/agents/sa/ops-mcp',
  storefront: 'spiffe://cluster.local/ns/shop/sa/storefront',
  admission: 'spiffe://cluster.local/ns/warden/sa/admission',
  auditor: 'spiffe://cluster.local/ns/warden/sa/auditor',
};

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

// One HTTPS request; `client` presents a certificate (the caller's SVID).
function request(port: number, ca: string, method: string, path: string, opts: { client?: Issued; body?: string | Buffer; headers?: Record<string, string> } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, method, path, ca, agent: false, headers: opts.headers ?? {}, ...(opts.client ? { cert: opts.client.cert, key: opts.client.key } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

const warden = async (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
  try {
    const r = await execFileP(process.execPath, [join(repoRoot, 'bin', 'warden.js'), ...args], { cwd: repoRoot });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
};

/** A call through a sidecar and what the audit log must then say about it. */
interface CallCase {
  name: string;
  sidecar: 'orders' | 'ops-mcp';
  caller?: keyof typeof ID;
  method: string;
  path: string;
  body?: string;
  status: number;
  outcome: 'allow' | 'deny';
  operation?: string;
}

const CALLS: CallCase[] = [
  { name: 'storefront lists orders', sidecar: 'orders', caller: 'storefront', method: 'GET', path: '/orders?limit=5', status: 200, outcome: 'allow', operation: 'listOrders' },
  { name: 'storefront creates an order', sidecar: 'orders', caller: 'storefront', method: 'POST', path: '/orders', body: '{"item":"book","payment":{"card_number":"4111111111111111"}}', status: 201, outcome: 'allow', operation: 'createOrder' },
  { name: 'ops-mcp reads one order', sidecar: 'orders', caller: 'opsMcp', method: 'GET', path: '/orders/7', status: 200, outcome: 'allow', operation: 'getOrder' },
  { name: 'anonymous reads one order', sidecar: 'orders', method: 'GET', path: '/orders/42', status: 403, outcome: 'deny', operation: 'getOrder' },
  { name: 'storefront deletes an order', sidecar: 'orders', caller: 'storefront', method: 'DELETE', path: '/orders/7', status: 403, outcome: 'deny', operation: 'deleteOrder' },
  { name: 'storefront exports orders', sidecar: 'orders', caller: 'storefront', method: 'GET', path: '/orders/export', status: 403, outcome: 'deny', operation: 'exportOrders' },
  // These sidecars run without the MCP handler (test/mcp-sidecar.test.ts covers that path): a JSON-RPC
  // POST to the MCP endpoint takes the plain HTTP path, which the core policy denies (fail closed).
  { name: 'storefront posts a tools/call to ops-mcp', sidecar: 'ops-mcp', caller: 'storefront', method: 'POST', path: '/mcp', body: '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"query","arguments":{"sql":"DROP TABLE orders"}}}', status: 403, outcome: 'deny' },
];

// Shared by both backends: one CA, one policy build, one upstream.
let ca: TestCa;
let certs: Record<keyof typeof ID, Issued>;
let serverCert: Issued;
let policies: PolicyCopy;
let upstream: Upstream;
let postgres: PostgresServer | undefined;
let work: string;
let signer: CheckpointSigner;
let keyFile: string;

beforeAll(async () => {
  ca = await createCa('Warden Cluster CA');
  serverCert = await ca.server('127.0.0.1');
  certs = Object.fromEntries(await Promise.all(Object.entries(ID).map(async ([k, id]) => [k, await ca.client(id)] as const))) as Record<keyof typeof ID, Issued>;
  policies = await copyPolicies(['orders', 'ops-mcp']);
  upstream = await startUpstream();
  postgres = await startPostgres({ settings: { fsync: 'off' } });
  work = mkdtempSync(join(tmpdir(), 'warden-audit-e2e-'));
  keyFile = join(work, 'audit-checkpoint.jwk');
  signer = (await loadCheckpointSigner(keyFile, { create: true })).signer;
}, 240_000);

afterAll(async () => {
  if (upstream) await closeServer(upstream.server);
  await postgres?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

const BACKENDS: Array<{ name: string; store: () => Promise<string> }> = [
  { name: 'SQLite', store: () => Promise.resolve(`sqlite:${join(work, 'audit.db')}`) },
  { name: 'PostgreSQL', store: () => postgres!.createDatabase('audit_e2e') },
];

describe.each(BACKENDS)('proxy plugin → engine (mTLS) → $name audit store', (backend) => {
  let storeUrl: string;
  let service: EngineService;
  let enginePort: number;
  const plugins: Record<string, Plugin> = {};
  const sidecars: Record<string, { server: SidecarServer; port: number }> = {};
  const sent: Array<CallCase & { decisionId: string }> = [];

  const engineTls = (who: keyof typeof ID): EngineTls => ({ ca: ca.cert, cert: certs[who].cert, key: certs[who].key });
  const startEngine = (port = 0) =>
    startEngineService({
      bundlesDir: policies.out,
      host: '127.0.0.1',
      port,
      rescanMs: 200,
      storeUrl,
      tls: { cert: serverCert.cert, key: serverCert.key, clientCa: ca.cert },
      readers: [ID.auditor],
      admissionPrincipals: [ID.admission],
      checkpoints: { signer, everyMs: 3_600_000 },
      logger: silent,
    });
  const count = async () => (await service.store!.bounds())?.count ?? 0;
  const allStored = async (reader: AuditReader): Promise<StoredEvent[]> => reader.query(parseFilter({ sort: 'seq', limit: '10000' }, Date.now()));
  const waitForCount = (n: number) => until(`${n} stored events`, async () => ((await count()) >= n ? true : undefined));
  const auditor = () => new HttpAuditReader(new URL(service.url), engineTls('auditor'));

  beforeAll(async () => {
    storeUrl = await backend.store();
    service = await startEngine();
    enginePort = Number(new URL(service.url).port);
    for (const [workload, who] of [['orders', 'orders'], ['ops-mcp', 'opsMcp']] as const) {
      const plugin = await startPlugin({
        workload,
        engine: service.url,
        engineTls: engineTls(who),
        verificationKey: readFileSync(join(policies.out, 'verification-key.pem'), 'utf8'),
        identity: {},
        logger: silent,
        spillFile: join(work, `${backend.name}-${workload}.spill.ndjson`),
        longPollSeconds: 2,
        pollIntervalMs: 100,
        logFlushIntervalMs: 50,
      });
      plugins[workload] = plugin;
      const server = createSidecar({
        upstream: new URL(`http://127.0.0.1:${upstream.port}`),
        gate: plugin.gate,
        logger: silent,
        tls: { cert: serverCert.cert, key: serverCert.key, ca: ca.cert },
        jsonBodyBytes: 64 * 1024,
      });
      sidecars[workload] = { server, port: await listenLocal(server) };
    }
  }, 120_000);

  afterAll(async () => {
    for (const p of Object.values(plugins)) await p.close();
    for (const s of Object.values(sidecars)) await closeServer(s.server);
    await service?.close();
  });

  it('derives the writers from the served bundles plus the admission identity', () => {
    expect(service.writers()).toEqual({ [ID.orders]: ['orders'], [ID.opsMcp]: ['ops-mcp'], [ID.admission]: ['admission'] });
  });

  it('pulls each bundle over HTTPS while presenting the workload identity', () => {
    expect(plugins.orders!.ready()).toBe(true);
    expect(plugins['ops-mcp']!.ready()).toBe(true);
  });

  it('stores exactly the decisions made for a table of allowed and denied calls', async () => {
    for (const c of CALLS) {
      const r = await request(sidecars[c.sidecar]!.port, ca.cert, c.method, c.path, {
        ...(c.caller ? { client: certs[c.caller] } : {}),
        ...(c.body ? { body: c.body, headers: { 'content-type': 'application/json' } } : {}),
      });
      expect(r.status, c.name).toBe(c.status);
      const decisionId = r.headers['x-warden-decision-id'];
      expect(typeof decisionId, c.name).toBe('string');
      sent.push({ ...c, decisionId: decisionId as string });
    }
    await waitForCount(CALLS.length);

    const viaStore = await allStored(service.store!);
    const viaHttp = await allStored(auditor());
    for (const stored of [viaStore, viaHttp]) {
      expect(stored.map((s) => s.event.decision_id).sort()).toEqual(sent.map((s) => s.decisionId).sort());
      for (const c of sent) {
        const e = stored.find((s) => s.event.decision_id === c.decisionId)!.event;
        const input = e.input as { source: { principal: string }; request: { method: string; path: string } };
        expect({ name: c.name, workload: e.labels.workload, outcome: e.outcome, principal: input.source.principal, method: input.request.method, operation: (e.result as { operation?: string } | undefined)?.operation }).toEqual({
          name: c.name,
          workload: c.sidecar,
          outcome: c.outcome,
          principal: c.caller ? ID[c.caller] : 'anonymous',
          method: c.method,
          operation: c.operation,
        });
      }
    }
    // Secrets never reach the store: the sensitive card number of createOrder is masked.
    const created = viaStore.find((s) => s.event.decision_id === sent[1]!.decisionId)!.event;
    expect(JSON.stringify(created)).not.toContain('4111111111111111');
  });

  it('answers the same filters over HTTP as the store does', async () => {
    const now = Date.now();
    for (const raw of [{ decision: 'deny' }, { workload: 'ops-mcp' }, { principal: ID.storefront, decision: 'allow' }, { operation: 'getOrder' }, { 'decision-id': sent[3]!.decisionId }]) {
      const f = parseFilter(raw, now);
      const local = (await service.store!.query(f)).map((s) => s.event.decision_id);
      const remote = (await auditor().query(f)).map((s) => s.event.decision_id);
      expect(remote, JSON.stringify(raw)).toEqual(local);
      expect(local.length, JSON.stringify(raw)).toBeGreaterThan(0);
    }
    const denied = (await auditor().query(parseFilter({ decision: 'deny' }, now))).map((s) => s.event.decision_id).sort();
    expect(denied).toEqual(sent.filter((c) => c.outcome === 'deny').map((c) => c.decisionId).sort());
  });

  it('stores a batch sent twice once, acknowledging the retry as duplicates', async () => {
    const before = await count();
    const batch = makeEvents(5, () => ({ workload: 'orders', namespace: 'shop' }));
    const conn = new EngineConnection(service.url, engineTls('orders'));
    try {
      const post = async () => {
        const r = await conn.request('logs', { method: 'POST', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, body: gzipSync(JSON.stringify(batch)) });
        expect(r.status).toBe(200);
        return JSON.parse(r.body.toString('utf8')) as IngestResponse;
      };
      expect(await post()).toEqual({ received: 5, stored: 5, duplicates: [], rejected: [] });
      const again = await post();
      expect(again.stored).toBe(0);
      expect(again.duplicates.sort()).toEqual(batch.map((e) => e.decision_id).sort());
    } finally {
      conn.close();
    }
    expect(await count()).toBe(before + 5);
  });

  it('rejects events a workload posts for another workload, and callers that are not writers', async () => {
    const before = await count();
    const own = makeEvent({ workload: 'orders', namespace: 'shop' });
    const foreign = makeEvent({ workload: 'ops-mcp', namespace: 'agents' });
    const body = JSON.stringify([own, foreign]);
    const asOrders = await request(enginePort, ca.cert, 'POST', '/logs', { client: certs.orders, body, headers: { 'content-type': 'application/json' } });
    const answer = JSON.parse(asOrders.body) as IngestResponse;
    expect(answer.stored).toBe(1);
    expect(answer.rejected).toEqual([expect.objectContaining({ index: 1, decision_id: foreign.decision_id, reason: expect.stringContaining('may only log events of "orders"') as unknown })]);
    expect((await service.store!.query(parseFilter({ 'decision-id': foreign.decision_id }, Date.now()))).length).toBe(0);
    // A reader is no writer; no certificate is nobody; both are refused before the body is read.
    expect((await request(enginePort, ca.cert, 'POST', '/logs', { client: certs.auditor, body, headers: { 'content-type': 'application/json' } })).status).toBe(403);
    expect((await request(enginePort, ca.cert, 'POST', '/logs', { body, headers: { 'content-type': 'application/json' } })).status).toBe(401);
    expect((await request(enginePort, ca.cert, 'GET', '/audit/events', { client: certs.orders })).status).toBe(403);
    // Bundles stay public: a pod without a certificate may still fetch its (signed) bundle.
    expect((await request(enginePort, ca.cert, 'GET', '/bundles/orders')).status).toBe(200);
    expect(await count()).toBe(before + 1);
  });

  it('accepts events from the admission webhook identity through the shared DecisionLog', async () => {
    const conn = new EngineConnection(service.url, engineTls('admission'));
    const log = new DecisionLog({ engine: conn, logger: silent, flushIntervalMs: 50 });
    const event: DecisionEvent = {
      ...makeEvent({ workload: 'admission', namespace: 'shop', outcome: 'deny', reasons: ['no signed bundle for workload payments'] }),
      kind: 'admission',
      labels: { workload: 'admission', namespace: 'shop', source: 'admission' },
      path: 'warden/admission/decision',
    };
    log.record(event);
    try {
      const stored = await until('the admission event', async () => (await service.store!.query(parseFilter({ 'decision-id': event.decision_id }, Date.now())))[0]);
      expect(stored.event.labels).toEqual(event.labels);
      expect(log.dropped).toBe(0);
    } finally {
      await log.close();
      conn.close();
    }
  });

  it('loses nothing acknowledged across an engine restart; plugins keep deciding and their logs wait', async () => {
    const acknowledged = (await allStored(service.store!)).map((s) => s.event.decision_id).sort();
    await service.close();
    // Engine down: the sidecar still decides on the last good bundle; the event stays in the pod.
    const r = await request(sidecars.orders!.port, ca.cert, 'GET', '/orders/1', { client: certs.storefront });
    expect(r.status).toBe(200);
    const whileDown = r.headers['x-warden-decision-id'] as string;
    await plugins.orders!.log.flush();

    service = await startEngine(enginePort);
    const after = await until('the event made while the engine was down', async () => {
      const all = await allStored(service.store!);
      return all.some((s) => s.event.decision_id === whileDown) ? all : undefined;
    });
    const ids = after.map((s) => s.event.decision_id);
    expect(ids.filter((id) => acknowledged.includes(id)).sort()).toEqual(acknowledged);
    expect(new Set(ids).size).toBe(ids.length);
    expect(plugins.orders!.log.dropped).toBe(0);
  });

  it('has warden audit verify detect an edited event', async () => {
    await checkpointHead(service.store!, signer, Date.now);
    const clean = await warden(['audit', 'verify', '--store', storeUrl, '--public-key', publicKeyPath(keyFile), '-o', 'json']);
    expect(clean.code, clean.stderr).toBe(0);
    await service.close();
    const victim = sent[3]!.decisionId; // the anonymous denial: someone wants it gone or softened
    if (storeUrl.startsWith('sqlite:')) {
      const db = new Database(storeUrl.slice('sqlite:'.length));
      db.prepare(`UPDATE events SET event = replace(event, '"outcome":"deny"', '"outcome":"allow"') WHERE decision_id = ?`).run(victim);
      db.close();
    } else {
      const client = new pg.Client({ connectionString: storeUrl });
      await client.connect();
      await client.query(`UPDATE events SET event = replace(event, '"outcome":"deny"', '"outcome":"allow"') WHERE decision_id = $1`, [victim]);
      await client.end();
    }
    const tampered = await warden(['audit', 'verify', '--store', storeUrl, '--public-key', publicKeyPath(keyFile), '-o', 'json']);
    expect(tampered.code).toBe(1);
    const report = JSON.parse(tampered.stdout) as { ok: boolean; problems: Array<{ kind: string; decision_id?: string }> };
    expect(report.ok).toBe(false);
    expect(report.problems).toContainEqual(expect.objectContaining({ kind: 'edited', decision_id: victim }));
    service = await startEngine(enginePort); // afterAll closes it
  });
});
