// The scripted scenario of `warden up`: real calls through the running sidecars, the MCP client of the
// official SDK, and an AdmissionReview POSTed to the webhook; after each step its decisions are read
// back from the engine's audit store and printed (the live feed), and at the end a summary from the
// same store (who talked to whom, what was denied).
import { randomUUID } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { isAbsolute, relative } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { GRAPH_DEFAULTS, parseFilter, TOP_DEFAULTS, type EventFilter } from '../engine/audit/query.js';
import { renderGraph, renderTop } from '../engine/audit/render.js';
import type { AuditStore, StoredEvent } from '../engine/audit/store.js';
import { applyJsonPatch } from '../admission/json-patch.js';
import { callAs } from './up-apps.js';
import { ID, waitFor, type Stack } from './up-stack.js';

type Out = (line: string) => void;

function obj(v: unknown): Record<string, unknown> {
  return v !== null && typeof v === 'object' ? (v as Record<string, unknown>) : {};
}

/** One feed line for a stored decision. */
export function feedLine(s: StoredEvent): string {
  const e = s.event;
  const input = obj(e.input);
  const result = obj(e.result);
  const outcome = e.outcome === 'allow' ? 'ALLOW' : e.outcome === 'deny' ? 'DENY ' : 'DRYRUN';
  if (e.kind === 'admission') {
    const findings = Array.isArray(result.findings) ? (result.findings as Array<Record<string, unknown>>) : [];
    const kind = typeof input.kind === 'object' ? String(obj(input.kind).kind ?? '') : String(input.kind ?? '');
    const why = findings.filter((f) => f.mode === 'enforce').map((f) => `[${String(f.set)}/${String(f.rule)}] ${String(f.msg)}`);
    return `  ${outcome} admission        ${String(input.operation ?? '')} ${kind} ${String(input.namespace ?? '')}/${String(input.name ?? '')}  (by ${String(obj(input.user).username ?? input.user ?? '?')})${why.length ? `\n${why.map((w) => `           ${w}`).join('\n')}` : ''}`;
  }
  const req = obj(input.request);
  const mcp = obj(input.mcp);
  const principal = String(obj(input.source).principal ?? '-');
  const what = typeof mcp.method === 'string' ? `${mcp.method}${typeof mcp.tool === 'string' ? ` ${mcp.tool}` : ''}` : `${String(req.method ?? '')} ${String(req.path ?? '')}`;
  const op = typeof result.operation === 'string' ? ` (${result.operation})` : '';
  const reasons = Array.isArray(result.reasons) ? (result.reasons as unknown[]).map(String) : e.error ? [String(e.error)] : [];
  return `  ${outcome} ${`${e.labels.namespace}/${e.labels.workload}`.padEnd(16)} ← ${principal}  ${what}${op}${e.outcome !== 'allow' && reasons.length ? `\n           ${reasons.join('; ')}` : ''}`;
}

/** Reads what the engine stored since the last read. */
class Feed {
  private after = 0;
  // Every decision printed so far: an answer's id can reach the client after the step it belongs to
  // was shown (the MCP client's GET stream answers while its POSTs go on), and is not waited for again.
  private readonly shown = new Set<string>();
  constructor(
    private readonly stack: Stack,
    private readonly out: Out,
  ) {}

  async start(): Promise<void> {
    this.after = (await this.stack.engine.store!.head())?.seq ?? 0;
  }

  private newEvents(): Promise<StoredEvent[]> {
    return this.stack.engine.store!.query({ afterSeq: this.after, sort: 'seq', limit: 1000 });
  }

  /** Wait until `ids` and at least `count` new decisions are stored, then print them. */
  async show(ids: string[], count: number): Promise<void> {
    let events: StoredEvent[] = [];
    await waitFor(`${count} decision(s) in the audit store`, async () => {
      await this.stack.flush();
      events = await this.newEvents();
      const have = new Set(events.map((e) => e.event.decision_id));
      return events.length >= count && ids.every((id) => have.has(id) || this.shown.has(id));
    });
    for (const e of events) {
      this.shown.add(e.event.decision_id);
      this.out(feedLine(e));
    }
    if (events.length) this.after = events[events.length - 1]!.seq;
  }
}

function postJson(url: string, ca: string, body: unknown): Promise<{ status: number; body: unknown }> {
  const u = new URL(url);
  const text = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', ca, agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }, signal: AbortSignal.timeout(10_000) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(text);
  });
}

const GOOD_IMAGE = 'registry.example.com/shop/orders:1.4.2@sha256:4f5e6d7c8b9a0f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0';

/** A Deployment as a team writes it; `payments` is one nobody wrote a policy for. */
function deployment(name: string, serviceAccount: string, image: string, inject: boolean): Record<string, unknown> {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, labels: { app: name, team: 'shop' } },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name }, annotations: inject ? { 'warden.dev/inject': 'true' } : {} },
        spec: {
          serviceAccountName: serviceAccount,
          securityContext: { runAsNonRoot: true },
          containers: [{ name: 'app', image, ports: [{ containerPort: 8080 }], resources: { limits: { cpu: '500m', memory: '256Mi' }, requests: { cpu: '100m', memory: '128Mi' } } }],
        },
      },
    },
  };
}

function review(object: Record<string, unknown>, namespace: string): Record<string, unknown> {
  const meta = obj(object.metadata);
  const gvk = object.kind === 'Pod' ? { group: '', version: 'v1', kind: 'Pod' } : { group: 'apps', version: 'v1', kind: 'Deployment' };
  const gvr = { group: gvk.group, version: 'v1', resource: object.kind === 'Pod' ? 'pods' : 'deployments' };
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: randomUUID(),
      kind: gvk,
      resource: gvr,
      requestKind: gvk,
      requestResource: gvr,
      name: meta.name,
      namespace,
      operation: 'CREATE',
      userInfo: { username: 'alice@example.com', groups: ['system:authenticated'] },
      object,
      oldObject: null,
      dryRun: false,
      options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
    },
  };
}

/**
 * What the cluster does next: the ReplicaSet creates the Pod, the API server sends it to the injector
 * (POST /mutate, as for a namespace labelled warden.dev/inject=enabled), applies the JSON Patch, and
 * the validating webhook checks the injected Pod. Prints its containers; returns their names.
 */
async function showInjection(stack: Stack, d: Record<string, unknown>, out: Out): Promise<string[]> {
  const template = obj(obj(d.spec).template);
  const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { ...obj(template.metadata), name: `${String(obj(d.metadata).name)}-7d9f5c-x2k4q` }, spec: template.spec };
  out(`\n▸ its ReplicaSet creates Pod shop/${pod.metadata.name}: the injector adds the sidecar (AdmissionReview → /mutate)`);
  const mutated = obj(obj((await postJson(`${stack.webhook.url}/mutate`, stack.webhookCa, review(pod, 'shop'))).body).response);
  if (typeof mutated.patch !== 'string') {
    out(`  → not injected: ${String(obj(mutated.status).message ?? obj(mutated.auditAnnotations).injection ?? 'no patch')}`);
    return [];
  }
  const injected = applyJsonPatch(pod, JSON.parse(Buffer.from(mutated.patch, 'base64').toString('utf8')) as never) as { spec: { initContainers?: Array<Record<string, unknown>>; containers: Array<Record<string, unknown>> } };
  const rows = [...(injected.spec.initContainers ?? []).map((c) => ({ c, role: c.restartPolicy === 'Always' ? 'sidecar' : 'init' })), ...injected.spec.containers.map((c) => ({ c, role: 'app' }))];
  for (const { c, role } of rows) {
    const args = Array.isArray(c.args) ? (c.args as string[]).join(' ') : '';
    out(`  ${role.padEnd(8)}${String(c.name).padEnd(14)}${args.length > 150 ? `${args.slice(0, 150)} …` : args}`);
  }
  const validated = obj(obj((await postJson(`${stack.webhook.url}/validate`, stack.webhookCa, review(injected, 'shop'))).body).response);
  out(`  → the injected Pod, checked by the validating webhook: allowed: ${String(validated.allowed)}${validated.allowed ? '' : ` (${String(obj(validated.status).message)})`}`);
  return rows.map((r) => String(r.c.name));
}

/** What the scenario established, for the summary and the test. */
export interface ScenarioResult {
  toolsSeen: Record<string, string[]>;
  destructiveRefused: boolean;
  admissionRefused: string | undefined;
  /** Containers of the injected Pod, in order (init, sidecar, app). */
  injectedContainers?: string[];
}

/** Run the demo scenario, printing each step and its decisions as they are stored. */
export async function runScenario(stack: Stack, out: Out): Promise<ScenarioResult> {
  const feed = new Feed(stack, out);
  await feed.start();
  const { orders, storefront } = stack.workloads;
  const ops = stack.workloads['ops-mcp'];
  const ca = stack.ca.cert;
  const svid = (who: keyof typeof ID) => ({ svid: stack.certs[who], ca });
  const result: ScenarioResult = { toolsSeen: {}, destructiveRefused: false, admissionRefused: undefined };

  const http = async (say: string, call: () => Promise<{ status: number; decisionId?: string }>, nested = 0) => {
    out(`\n▸ ${say}`);
    const r = await call();
    out(`  → HTTP ${r.status}`);
    await feed.show(r.decisionId ? [r.decisionId] : [], 1 + nested);
  };

  await http('a visitor browses the catalogue (anonymous → storefront)', () => callAs(undefined, ca, storefront.url, 'GET', '/products/sku-7'));
  const ana = await stack.token('customer-ana', 'storefront', { scope: 'checkout cart:write', email_verified: true });
  await http('a signed-in customer checks out; storefront places the order with orders over mTLS as itself', () => callAs(undefined, ca, storefront.url, 'POST', '/checkout', { body: '{"sku":"sku-7"}', headers: { authorization: `Bearer ${ana}` } }), 1);
  const bob = await stack.token('customer-bob', 'storefront', { scope: 'checkout', email_verified: false });
  await http('a customer without a verified email checks out', () => callAs(undefined, ca, storefront.url, 'POST', '/checkout', { body: '{"sku":"sku-9"}', headers: { authorization: `Bearer ${bob}` } }));
  await http('storefront (its SPIFFE certificate) asks orders for the accounting export', () => callAs(svid('storefront'), ca, orders.url, 'GET', '/orders/export'));
  await http("billing's invoicer runs the export", () => callAs(svid('invoicer'), ca, orders.url, 'GET', '/orders/export'));
  const admin = await stack.token('admin-carol', 'orders', { role: 'admin', amr: ['pwd'] });
  await http('an admin deletes an order without MFA', () => callAs(undefined, ca, orders.url, 'DELETE', '/orders/43', { headers: { authorization: `Bearer ${admin}` } }));
  await http('path trick as storefront: GET /orders/42/../export', () => callAs(svid('storefront'), ca, orders.url, 'GET', '/orders/42/../export'));

  // An agent with the official MCP client; each HTTP answer of the sidecar names its decision.
  const agent = async (sub: string, scope: string) => {
    const ids: string[] = [];
    const token = await stack.token(sub, 'ops-mcp', { scope });
    const client = new Client({ name: sub, version: '1.0.0' });
    const fetchRecording = async (input: string | URL | Request, init?: RequestInit) => {
      const res = await fetch(input, init);
      const id = res.headers.get('x-warden-decision-id');
      if (id) ids.push(...id.split(',').map((s) => s.trim()));
      return res;
    };
    await client.connect(new StreamableHTTPClientTransport(new URL(`${ops.url}/mcp`), { requestInit: { headers: { authorization: `Bearer ${token}` } }, fetch: fetchRecording }));
    return { client, ids };
  };

  out(`\n▸ an agent (scope tools:read) connects to ops-mcp with the MCP client and lists the tools`);
  const reader = await agent('readonly-agent', 'tools:read');
  const tools = (await reader.client.listTools()).tools.map((t) => t.name).sort();
  result.toolsSeen['readonly-agent'] = tools;
  out(`  → tools offered: ${tools.join(', ')}`);
  await feed.show(reader.ids.splice(0), 0);
  out(`\n▸ the agent calls the read-only tool get_order (ops-mcp then calls orders over mTLS as itself)`);
  const got = await reader.client.callTool({ name: 'get_order', arguments: { id: '42' } });
  const content = Array.isArray(got.content) ? (got.content as Array<{ text?: string }>) : [];
  out(`  → ${got.isError ? 'error' : 'result'}: ${content.map((c) => c.text ?? '').join(' ').slice(0, 100)}`);
  await feed.show(reader.ids.splice(0), 2);
  out(`\n▸ the agent runs the read-only tool query with "DELETE FROM orders"`);
  try {
    await reader.client.callTool({ name: 'query', arguments: { sql: 'DELETE FROM orders' } });
    out('  → the statement ran (this must not happen)');
  } catch (err) {
    out(`  → refused: ${(err as Error).message.slice(0, 120)}`);
  }
  await feed.show(reader.ids.splice(0), 1);
  await reader.client.close();

  out(`\n▸ an agent with write scope (tools:read tools:write) tries the destructive tool drop_table`);
  const writer = await agent('support-agent', 'tools:read tools:write');
  const writerTools = (await writer.client.listTools()).tools.map((t) => t.name).sort();
  result.toolsSeen['support-agent'] = writerTools;
  out(`  → tools offered: ${writerTools.join(', ')} (drop_table is not among them)`);
  try {
    await writer.client.callTool({ name: 'drop_table', arguments: { table: 'orders' } });
    out('  → drop_table ran (this must not happen)');
  } catch (err) {
    result.destructiveRefused = !stack.mcpRan.includes('drop_table');
    out(`  → refused: ${(err as Error).message.slice(0, 120)}`);
  }
  await feed.show(writer.ids.splice(0), 1);
  await writer.client.close();

  out(`\n▸ kubectl apply: a Deployment "orders" with the Warden sidecar and a pinned image (AdmissionReview → webhook)`);
  const good = await postJson(`${stack.webhook.url}/validate`, stack.webhookCa, review(deployment('orders', 'orders', GOOD_IMAGE, true), 'shop'));
  out(`  → allowed: ${String(obj(obj(good.body).response).allowed)}`);
  await feed.show([], 1);
  result.injectedContainers = await showInjection(stack, deployment('orders', 'orders', GOOD_IMAGE, true), out);
  await feed.show([], 1);
  out(`\n▸ kubectl apply: a Deployment "payments" — no policy, no sidecar, image nginx:latest`);
  const bad = await postJson(`${stack.webhook.url}/validate`, stack.webhookCa, review(deployment('payments', 'payments', 'nginx:latest', false), 'shop'));
  const response = obj(obj(bad.body).response);
  if (response.allowed === false) result.admissionRefused = String(obj(response.status).message ?? 'refused');
  out(`  → allowed: ${String(response.allowed)}; the API server would print:\n${String(obj(response.status).message ?? '').split('\n').map((l) => `      ${l}`).join('\n')}`);
  await feed.show([], 1);
  return result;
}

/** The summary from the audit store for events since `from`. */
export async function printSummary(store: AuditStore, from: number, result: ScenarioResult, out: Out): Promise<void> {
  const now = Date.now();
  const since: EventFilter = parseFilter({ from: new Date(from).toISOString() }, now, GRAPH_DEFAULTS);
  const all = await store.query({ ...since, sort: 'seq', limit: 10_000 });
  const count = (o: string) => all.filter((s) => s.event.outcome === o).length;
  out(`\nsummary (from the audit store ${store.location}, this run):`);
  out(`  ${all.length} decisions: ${count('allow')} allowed, ${count('deny')} denied`);
  out(`  destructive MCP tool drop_table: ${result.destructiveRefused ? 'refused (the server never ran it)' : 'NOT refused'}`);
  out(`  Deployment shop/payments: ${result.admissionRefused ? 'refused by the admission webhook' : 'NOT refused'}`);
  out('\nwho talked to whom:');
  out(renderGraph(await store.edges(since), 'table').trimEnd().replace(/^/gm, '  '));
  const denied: EventFilter = { ...parseFilter({ from: new Date(from).toISOString(), decision: 'deny' }, now, TOP_DEFAULTS) };
  out('\nwhat was denied, by caller:');
  out(renderTop(await store.top('principal', denied), 'principal', 'table').trimEnd().replace(/^/gm, '  '));
  out('\nwhat was denied, by operation and by MCP tool:');
  out(renderTop(await store.top('operation', denied), 'operation', 'table').trimEnd().replace(/^/gm, '  '));
  out(renderTop(await store.top('tool', denied), 'tool', 'table').trimEnd().replace(/^/gm, '  '));
}

/** Where everything runs and what to type next. */
export function explore(stack: Stack, out: Out): void {
  // Paths as the user would type them from here: relative inside the working directory, else absolute.
  const rel = (p: string) => {
    const r = relative(process.cwd(), p);
    return r && !r.startsWith('..') && !isAbsolute(r) ? r : p;
  };
  const { orders, storefront } = stack.workloads;
  const ops = stack.workloads['ops-mcp'];
  const auth = `--engine-ca ${rel(stack.files.ca)} --engine-cert ${rel(stack.files.auditorCert)} --engine-key ${rel(stack.files.auditorKey)}`;
  out('\nrunning on 127.0.0.1:');
  out(`  engine       ${stack.engine.url}   (GET /bundles; POST /logs and GET /audit/* need a client certificate)`);
  out(`  console      ${stack.engine.url}/ui   (web console: the auditor client certificate ${rel(stack.files.auditorCert)} + ${rel(stack.files.auditorKey)}, CA ${rel(stack.files.ca)}; for a browser: openssl pkcs12 -export -in ${rel(stack.files.auditorCert)} -inkey ${rel(stack.files.auditorKey)} -out auditor.p12, then import auditor.p12)`);
  out(`  admission    ${stack.webhook.url}/validate`);
  out(`  orders       ${orders.url}   (sidecar; mTLS or a Bearer token)`);
  out(`  storefront   ${storefront.url}   (sidecar)`);
  out(`  ops-mcp      ${ops.url}/mcp   (MCP over Streamable HTTP; Bearer token from the local issuer)`);
  out('\nexplore:');
  out(`  npx warden audit query --engine ${stack.engine.url} ${auth} --since 15m`);
  out(`  npx warden audit graph --store sqlite:${rel(stack.files.store.slice('sqlite:'.length))}`);
  out(`  npx warden audit tail --engine ${stack.engine.url} ${auth}`);
  out(`  curl --cacert ${rel(stack.files.ca)} ${storefront.url}/products`);
  out(`  npx warden explain <decision-id> --engine ${stack.engine.url} ${auth}`);
  out(`  curl --cacert ${rel(stack.files.ca)} --cert ${rel(stack.files.auditorCert)} --key ${rel(stack.files.auditorKey)} ${stack.engine.url}/ui/feed`);
  out('  npx warden diff --base HEAD~1');
}
