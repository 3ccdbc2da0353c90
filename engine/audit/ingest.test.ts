// The audit HTTP API over real HTTPS with client certificates from a CA made here, on a real SQLite file.
import Database from 'better-sqlite3';
import express from 'express';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DecisionEvent } from '../../formats/decision-event.js';
import { makeEvent, makeEvents } from '../../test/support/decision-events.js';
import { createCa, type Issued, type TestCa } from '../../test/support/tls.js';
import { auditRouter, type IngestResponse } from './ingest.js';
import { spiffePeer } from './peer-identity.js';
import { openStore } from './open-store.js';
import type { AuditStore, StoredEvent } from './store.js';
import { verifyStore } from './verify.js';

const ORDERS = 'spiffe://cluster.local/ns/shop/sa/orders';
const ADMISSION = 'spiffe://cluster.local/ns/warden/sa/admission';
const AUDITOR = 'spiffe://cluster.local/ns/warden/sa/auditor';
const STRANGER = 'spiffe://cluster.local/ns/shop/sa/stranger';

interface Reply {
  status: number;
  type: string;
  text: string;
  json: <T>() => T;
}

let ca: TestCa;
let serverCert: Issued;
const clients: Record<string, Issued> = {};
let foreign: Issued;
const tmp = mkdtempSync(join(tmpdir(), 'warden-audit-ingest-'));
const dbPath = join(tmp, 'audit.db');
let store: AuditStore;
let server: Server;
let base: { host: string; port: number };

async function startEngine(): Promise<void> {
  store = await openStore(`sqlite:${dbPath}`);
  const app = express();
  app.use(auditRouter({ store, identify: spiffePeer, writers: { [ORDERS]: ['orders'], [ADMISSION]: ['admission'] }, readers: [AUDITOR], maxBodyBytes: 256 * 1024 }));
  // rejectUnauthorized: false so an anonymous caller reaches the router and is answered 401, not a TLS alert.
  server = createServer({ key: serverCert.key, cert: serverCert.cert, ca: ca.cert, requestCert: true, rejectUnauthorized: false }, app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = { host: '127.0.0.1', port: (server.address() as AddressInfo).port };
}

async function stopEngine(): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await store.close();
}

function call(method: string, path: string, opts: { as?: Issued; body?: Buffer; headers?: Record<string, string> } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      { ...base, method, path, ca: ca.cert, ...(opts.as ? { key: opts.as.key, cert: opts.as.cert } : {}), headers: opts.headers ?? {}, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), text, json: <T,>() => JSON.parse(text) as T });
        });
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

function postLogs(events: unknown, opts: { as?: Issued; gzip?: boolean } = {}): Promise<Reply> {
  const json = Buffer.from(JSON.stringify(events));
  return call('POST', '/logs', {
    as: opts.as ?? clients[ORDERS]!,
    body: opts.gzip ? gzipSync(json) : json,
    headers: { 'content-type': 'application/json', ...(opts.gzip ? { 'content-encoding': 'gzip' } : {}) },
  });
}

async function events(query: string): Promise<DecisionEvent[]> {
  const r = await call('GET', `/audit/events?${query}`, { as: clients[AUDITOR]! });
  expect(r.status).toBe(200);
  return r.json<{ events: StoredEvent[] }>().events.map((s) => s.event);
}

beforeAll(async () => {
  ca = await createCa();
  serverCert = await ca.server('127.0.0.1');
  for (const id of [ORDERS, ADMISSION, AUDITOR, STRANGER]) clients[id] = await ca.client(id);
  foreign = await (await createCa('Someone Else CA')).client(ORDERS);
  await startEngine();
});

afterAll(async () => {
  await stopEngine();
  rmSync(tmp, { recursive: true, force: true });
});

function admissionEvent(): DecisionEvent {
  const e = makeEvent({ workload: 'admission', namespace: 'warden' });
  return { ...e, kind: 'admission', labels: { ...e.labels, source: 'admission' }, input: { request: { operation: 'CREATE', userInfo: { username: 'system:serviceaccount:ci:deployer' } } } };
}

describe('POST /logs', () => {
  it('stores a gzip batch from the workload identified by its client certificate, and the query API returns exactly it', async () => {
    const batch = makeEvents(5, (i) => ({ workload: 'orders', revision: 'rev-gzip', outcome: i % 2 ? 'deny' : 'allow' }));
    const r = await postLogs(batch, { gzip: true });
    expect(r.status).toBe(200);
    expect(r.json<IngestResponse>()).toEqual({ received: 5, stored: 5, duplicates: [], rejected: [] });
    expect(await events('revision=rev-gzip&sort=seq')).toEqual(batch);
  });

  it('accepts a gzip body sent without a Content-Encoding header', async () => {
    const batch = makeEvents(2, () => ({ revision: 'rev-bare-gzip' }));
    const r = await call('POST', '/logs', { as: clients[ORDERS]!, body: gzipSync(JSON.stringify(batch)) });
    expect(r.json<IngestResponse>().stored).toBe(2);
  });

  it('stores the same batch sent twice once and acknowledges the repeat as duplicates', async () => {
    const batch = makeEvents(3, () => ({ revision: 'rev-twice' }));
    expect((await postLogs(batch)).json<IngestResponse>().stored).toBe(3);
    const again = (await postLogs(batch, { gzip: true })).json<IngestResponse>();
    expect(again).toEqual({ received: 3, stored: 0, duplicates: batch.map((e) => e.decision_id), rejected: [] });
    expect(await events('revision=rev-twice')).toHaveLength(3);
  });

  it('rejects a malformed event alone, reporting its index and the field, and stores the rest', async () => {
    const [a, b, c] = makeEvents(3, () => ({ revision: 'rev-malformed' }));
    const broken = { ...b!, outcome: 'maybe', labels: { ...b!.labels, extra: 1 } };
    const r = (await postLogs([a, broken, c, 'not an event'])).json<IngestResponse>();
    expect(r.stored).toBe(2);
    expect(r.rejected).toEqual([
      { index: 1, decision_id: b!.decision_id, reason: expect.stringMatching(/outcome: must be one of "allow", "deny", "dry-run-deny".*labels: unknown field "extra"/) },
      { index: 3, reason: expect.stringContaining('(root): must be object') },
    ]);
    expect((await events('revision=rev-malformed&sort=seq')).map((e) => e.decision_id)).toEqual([a!.decision_id, c!.decision_id]);
  });

  it('stores each event as the bytes its sender wrote (spacing, escapes), and the chain verifies over them', async () => {
    const batch = makeEvents(2, (i) => ({ revision: 'rev-as-sent', reasons: [`é ${i}`] }));
    const body = JSON.stringify(batch, null, 2).replace(/é/g, '\\u00e9');
    const r = await call('POST', '/logs', { as: clients[ORDERS]!, body: Buffer.from(body), headers: { 'content-type': 'application/json' } });
    expect(r.json<IngestResponse>()).toMatchObject({ stored: 2, rejected: [] });
    const rows = (await store.scan(0, 100_000)).filter((row) => batch.some((e) => e.decision_id === row.columns.decision_id));
    const asSent = (i: number) => JSON.stringify(batch[i], null, 2).replace(/é/g, '\\u00e9').replace(/\n/g, '\n  ');
    expect(rows.map((row) => row.event)).toEqual([asSent(0), asSent(1)]);
    expect(await events('revision=rev-as-sent&sort=seq')).toEqual(batch);
    expect(await verifyStore(store)).toMatchObject({ ok: true, problems: [] });
  });

  it('rejects an event that repeats a key in any of its objects, alone', async () => {
    const [a, b, c, d] = makeEvents(4, () => ({ revision: 'rev-dup-key' }));
    const top = JSON.stringify(b).replace('"outcome":"allow"', '"outcome":"deny","outcome":"allow"');
    const nested = JSON.stringify(c).replace('"authn":"mtls"', '"authn":"none","authn":"mtls"');
    expect(top).not.toBe(JSON.stringify(b));
    expect(nested).not.toBe(JSON.stringify(c));
    const body = Buffer.from(`[${JSON.stringify(a)},${top},${nested},${JSON.stringify(d)}]`);
    const r = (await call('POST', '/logs', { as: clients[ORDERS]!, body })).json<IngestResponse>();
    expect(r.stored).toBe(2);
    expect(r.rejected).toEqual([1, 2].map((index) => ({ index, decision_id: [b, c][index - 1]!.decision_id, reason: expect.stringContaining('repeats a key inside one JSON object') })));
    expect((await events('revision=rev-dup-key&sort=seq')).map((e) => e.decision_id)).toEqual([a!.decision_id, d!.decision_id]);
  });

  it('stores a body that is not valid UTF-8 as the events it parsed to (bad bytes replaced), and the chain verifies', async () => {
    const e = makeEvent({ revision: 'rev-bad-utf8', reasons: ['BAD'] });
    const [before, after] = JSON.stringify([e]).split('BAD') as [string, string];
    const body = Buffer.concat([Buffer.from(before), Buffer.from([0xff, 0xfe]), Buffer.from(after)]);
    expect((await call('POST', '/logs', { as: clients[ORDERS]!, body })).json<IngestResponse>()).toMatchObject({ stored: 1, rejected: [] });
    const [stored] = await events('revision=rev-bad-utf8');
    expect(stored?.result).toMatchObject({ reasons: ['\ufffd\ufffd'] });
    expect(await verifyStore(store)).toMatchObject({ ok: true, problems: [] });
  });

  it('rejects events a workload logs for another workload, and lets the admission webhook log as admission', async () => {
    const own = makeEvent({ workload: 'orders', revision: 'rev-spoof' });
    const spoofed = makeEvent({ workload: 'payments', revision: 'rev-spoof' });
    const r = (await postLogs([own, spoofed])).json<IngestResponse>();
    expect(r.stored).toBe(1);
    expect(r.rejected).toEqual([
      { index: 1, decision_id: spoofed.decision_id, reason: `labels.workload is "payments" but ${ORDERS} may only log events of "orders"` },
    ]);
    const adm = admissionEvent();
    expect((await postLogs([adm], { as: clients[ADMISSION]! })).json<IngestResponse>().stored).toBe(1);
    expect((await postLogs([admissionEvent()])).json<IngestResponse>().rejected).toHaveLength(1);
    expect(await events(`decision-id=${adm.decision_id}`)).toEqual([adm]);
    expect(await events('principal=system:serviceaccount:ci:deployer')).toEqual([adm]);
  });

  it("keeps the latest drop counter a pod reports with its batch, for its own workload only, and ignores a malformed one", async () => {
    const send = (evs: DecisionEvent[], dropped: string | string[], as = clients[ORDERS]!) =>
      new Promise<number>((resolve, reject) => {
        const req = request({ ...base, method: 'POST', path: '/logs', ca: ca.cert, key: as.key, cert: as.cert, agent: false, headers: { 'content-type': 'application/json', 'x-warden-log-dropped': dropped } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end(JSON.stringify(evs));
      });
    const pod = (spec: Parameters<typeof makeEvent>[0] = {}, instance = 'orders-5c7d9-a') => {
      const e = makeEvent({ workload: 'orders', ...spec });
      return { ...e, labels: { ...e.labels, instance } };
    };
    const senders = async () => (await store.logSenders('orders')).map((s) => [s.instance, s.dropped]);
    expect(await send([pod()], '7')).toBe(200);
    expect(await senders()).toEqual([['orders-5c7d9-a', 7]]);
    expect(await send([pod({}, 'orders-5c7d9-b')], '0')).toBe(200);
    expect(await send([pod()], '12')).toBe(200);
    expect(await senders()).toEqual([['orders-5c7d9-a', 12], ['orders-5c7d9-b', 0]]);
    // Malformed counters are ignored, and the batch is stored all the same.
    for (const bad of ['-1', '1e3', '0x10', '+5', '5.0', '5 6', '9'.repeat(16), ['3', '4']]) {
      const e = pod();
      expect(await send([e], bad), String(bad)).toBe(200);
      expect(await events(`decision-id=${e.decision_id}`)).toHaveLength(1);
    }
    // A batch of two pods, a pod name that is no DNS name, and events of another workload (rejected) report nothing.
    await send([pod(), pod({}, 'orders-5c7d9-b')], '99');
    await send([pod({}, 'x'.repeat(300))], '99');
    await send([makeEvent({ workload: 'payments' })], '99');
    expect(await senders()).toEqual([['orders-5c7d9-a', 12], ['orders-5c7d9-b', 0]]);
    expect(await store.logSenders('payments')).toEqual([]);
  });

  it('answers 401 to a caller without a client certificate or with one from another CA, 403 to an unknown workload', async () => {
    const anonymous = await call('POST', '/logs', { body: Buffer.from('[]') });
    expect(anonymous.status).toBe(401);
    expect(anonymous.json<{ error: string }>().error).toMatch(/unauthenticated/);
    expect((await postLogs(makeEvents(1), { as: foreign })).status).toBe(401);
    const stranger = await postLogs(makeEvents(1), { as: clients[STRANGER]! });
    expect(stranger.status).toBe(403);
    expect(stranger.json<{ error: string }>().error).toBe(`${STRANGER} may not log decisions (it is not a known workload identity)`);
  });

  it('refuses a body that is not a JSON array, and one larger than the limit once decompressed', async () => {
    const notArray = await postLogs({ events: [] });
    expect([notArray.status, notArray.json<{ error: string }>().error]).toEqual([400, 'body must be a JSON array of decision events']);
    const notJson = await call('POST', '/logs', { as: clients[ORDERS]!, body: Buffer.from('[{"decision_id":') });
    expect(notJson.status).toBe(400);
    // ~1 MiB of zeros gzips to ~1 KiB: refused by its decoded size.
    const bomb = gzipSync(Buffer.from(`[${'0,'.repeat(512 * 1024)}0]`));
    expect(bomb.length).toBeLessThan(16 * 1024);
    for (const headers of [{ 'content-encoding': 'gzip' }, {}] as Array<Record<string, string>>) {
      const r = await call('POST', '/logs', { as: clients[ORDERS]!, body: bomb, headers });
      expect(r.status).toBe(413);
    }
  });

  it('loses nothing it acknowledged when the engine restarts', async () => {
    const batch = makeEvents(50, () => ({ revision: 'rev-restart' }));
    expect((await postLogs(batch, { gzip: true })).json<IngestResponse>().stored).toBe(50);
    await stopEngine();
    await startEngine();
    expect(await events('revision=rev-restart&sort=seq&limit=100')).toEqual(batch);
  });
});

describe('GET /audit/*', () => {
  it('answers only principals allowed to read', async () => {
    expect((await call('GET', '/audit/events')).status).toBe(401);
    expect((await call('GET', '/audit/events', { as: clients[ORDERS]! })).status).toBe(403);
  });

  it('names the parameter of an unknown filter or a malformed time', async () => {
    const unknown = await call('GET', '/audit/events?colour=red', { as: clients[AUDITOR]! });
    expect(unknown.status).toBe(400);
    expect(unknown.json()).toEqual({ error: expect.stringContaining('unknown filter "colour"'), parameter: 'colour' });
    const badTime = await call('GET', '/audit/events?from=yesterday', { as: clients[AUDITOR]! });
    expect(badTime.json()).toEqual({ error: expect.stringContaining('from: "yesterday" is not an RFC 3339 time'), parameter: 'from' });
    const badSince = await call('GET', '/audit/top?by=principal&since=1x', { as: clients[AUDITOR]! });
    expect(badSince.json()).toEqual({ error: expect.stringContaining('since: "1x" is not a duration'), parameter: 'since' });
    const badBy = await call('GET', '/audit/top?by=colour', { as: clients[AUDITOR]! });
    expect(badBy.json()).toEqual({ error: expect.stringContaining('by: "colour"'), parameter: 'by' });
  });

  it('streams NDJSON, counts top denials and draws who talks to whom', async () => {
    const agent = 'spiffe://cluster.local/ns/shop/sa/agent';
    await postLogs([
      ...makeEvents(3, () => ({ principal: agent, outcome: 'deny', operation: 'deleteOrder', revision: 'rev-agg' })),
      ...makeEvents(2, () => ({ principal: agent, outcome: 'allow', operation: 'getOrder', revision: 'rev-agg' })),
    ]);
    const nd = await call('GET', '/audit/events?revision=rev-agg&decision=deny', { as: clients[AUDITOR]!, headers: { accept: 'application/x-ndjson' } });
    expect(nd.type).toMatch(/application\/x-ndjson/);
    expect(nd.text.trim().split('\n')).toHaveLength(3);
    const top = await call('GET', '/audit/top?by=operation&revision=rev-agg', { as: clients[AUDITOR]! });
    expect(top.json()).toEqual({ by: 'operation', rows: [{ key: 'deleteOrder', workload: 'orders', count: 3 }] });
    const graph = await call('GET', `/audit/graph?revision=rev-agg&format=dot`, { as: clients[AUDITOR]! });
    expect(graph.text).toContain(`"principal:${agent}" -> "workload:shop/orders" [label="allow 2 / deny 3", color=red];`);
    const json = await call('GET', `/audit/graph?revision=rev-agg`, { as: clients[AUDITOR]! });
    expect(json.json()).toEqual({ edges: [{ source: agent, destination: 'orders', namespace: 'shop', allow: 2, deny: 3, dry_run_deny: 0, total: 5 }] });
  });
});

describe('POST /logs while a newer Warden upgrades the store', () => {
  it('answers 503 with the reason and stores nothing, so the pod keeps the batch and sends it again', async () => {
    const tamper = (sql: string) => {
      const db = new Database(dbPath);
      db.exec(sql);
      db.close();
    };
    const batch = makeEvents(2);
    tamper(`UPDATE audit_meta SET value = '5' WHERE key = 'schema_version'`);
    try {
      const r = await postLogs(batch, { gzip: true });
      expect(r.status).toBe(503);
      expect(r.json<{ error: string }>().error).toMatch(/moved to table layout version 5 by another Warden/);
    } finally {
      tamper(`UPDATE audit_meta SET value = '4' WHERE key = 'schema_version'`);
    }
    expect(await events(`decision-id=${batch[0]!.decision_id}`)).toEqual([]);
    // Sent again once the store is one this engine can keep: stored.
    expect((await postLogs(batch, { gzip: true })).json<IngestResponse>()).toMatchObject({ stored: 2 });
  });
});
