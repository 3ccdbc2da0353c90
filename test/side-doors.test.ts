// No side doors: `warden proxy` run as a real process, in front of a recording upstream and a real MCP
// server from the SDK. One behaviour suite (headers removed and added, identity, decision id, framing)
// runs against every forwarding path of the sidecar — the fast path, node's path, an upgrade, the MCP
// relay — and each attack asserts that the upstream never received the forbidden request and the caller
// got a clear status or JSON-RPC error with the decision id.
import type { ChildProcess } from 'node:child_process';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngineApp } from '../engine/bundle-server.js';
import type { DecisionEvent } from '../formats/decision-event.js';
import { ANONYMOUS, policyInput } from '../formats/input.js';
import { ChunkedEnd } from '../proxy-plugin/http1.js';
import { exchange as rawExchange } from './support/raw-http.js';
import { AUDIENCE, ISSUER, startMcpServer, tokenIssuer, type TestMcpServer, type TokenIssuer } from './support/mcp-fixtures.js';
import { closeServer, copyPolicies, listenLocal, logCollector, startIssuer, startUpstream, type Issuer, type Upstream } from './support/proxy-fixtures.js';
import { until } from './support/until.js';
import { startWarden } from './support/warden-process.js';

const STOREFRONT = 'spiffe://cluster.local/ns/shop/sa/storefront';
const ADMIN = 'spiffe://cluster.local/ns/ops/sa/admin';
const children: ChildProcess[] = [];
const received: DecisionEvent[] = [];
let engineServer: http.Server;
let upstream: Upstream;
let mcpServer: TestMcpServer;
let issuer: Issuer;
let agents: TokenIssuer;
let ordersPort: number;
let mcpPort: number;
let ordersOut = '';
/** How the suite starts warden proxy for ops-mcp and for orders, but for --upstream and --spill. */
let mcpFlags: string[] = [];
let ordersFlags: string[] = [];
let spillDir = '';

/** A response read off a raw socket. */
interface Raw {
  status: number;
  headers: Record<string, string>;
  body: string;
}

// One exchange on a fresh connection, written in one piece; read to the close (or, for a 101, to the end of the head).
function exchange(port: number, text: string | Buffer): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let got = Buffer.alloc(0);
    const done = () => {
      s.destroy();
      const str = got.toString('latin1');
      const end = str.indexOf('\r\n\r\n');
      const lines = str.slice(0, end < 0 ? str.length : end).split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        if (i > 0) headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
      }
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0), headers, body: end < 0 ? '' : got.subarray(end + 4).toString('utf8') });
    };
    s.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (/^HTTP\/1\.1 101 /.test(got.toString('latin1')) && got.includes('\r\n\r\n')) done();
    });
    s.on('end', done);
    s.on('error', reject);
    s.write(text);
  });
}

const head = (lines: string[]) => `${lines.join('\r\n')}\r\n\r\n`;

// What a caller sends to speak for Warden, for a mesh or an auth proxy, or to re-route the app: in
// several spellings (case, `_` for `-`), with a field named in Connection and one the app may keep.
const HOSTILE = [
  `X-Forwarded-Client-Cert-Extra: kept-by-name-only`,
  `X_Forwarded_Client_Cert: URI=${ADMIN}`,
  'L5d-Client-Id: admin.ops.serviceaccount.identity.linkerd.cluster.local',
  'X-Forwarded-User: admin',
  'x_forwarded_user: admin',
  'X-Auth-Request-Email: admin@example.com',
  'X-Original-URL: /admin/drop',
  'X-Rewrite-URL: /admin/drop',
  'x_original_url: /admin/drop',
  'X-HTTP-Method-Override: DELETE',
  'X-Method-Override: DELETE',
  'X-Warden-Decision-Id: forged-decision',
  `X-Warden-Principal: ${ADMIN}`,
  'X-Warden-Authn: mtls',
  'x_warden_principal: forged',
  'X-Warden-Anything: forged',
  'X-Hop-Secret: only-for-this-hop',
  'X-Benign: kept',
  'x_tenant: other-tenant',
];

const FORBIDDEN = new Set(['x-forwarded-client-cert', 'l5d-client-id', 'x-forwarded-user', 'x-auth-request-email', 'x-original-url', 'x-rewrite-url', 'x-http-method-override', 'x-method-override', 'x-hop-secret', 'x-tenant']);

// What every forwarding path must have done to the caller's fields.
function expectCleanHead(seen: Record<string, string | string[] | undefined>, caller: Raw, principal: string, authn: string): void {
  const names = Object.keys(seen).map((n) => n.replace(/_/g, '-'));
  expect(names.filter((n) => FORBIDDEN.has(n))).toEqual([]);
  expect(names.filter((n) => n.startsWith('x-warden-')).sort()).toEqual(['x-warden-authn', 'x-warden-decision-id', 'x-warden-principal']);
  expect(Object.keys(seen).filter((n) => n.includes('_'))).toEqual([]);
  expect(seen['x-warden-principal']).toBe(principal);
  expect(seen['x-warden-authn']).toBe(authn);
  expect(seen['x-warden-decision-id']).toBe(caller.headers['x-warden-decision-id']);
  expect(seen['x-benign']).toBe('kept');
  expect(seen['x-forwarded-client-cert-extra']).toBe('kept-by-name-only');
}

const seenBy = (marker: string) => upstream.seen.find((r) => r.headers['x-case'] === marker);

beforeAll(async () => {
  const policies = await copyPolicies(['orders', 'ops-mcp'], (repo) => {
    // Test-only: a WebSocket route anyone may open, and a plain GET route where a tunnel is not allowed.
    appendFileSync(join(repo, 'workloads/orders/policy.rego'), `
allow if input.request.path == "/ws"

deny contains "no tunnel on /orders" if {
	input.request.upgrade
	input.request.path == "/orders"
}

# Test-only: a query key and a header the policy reads, so other spellings of them are refused.
deny contains "tenant b is closed" if {
	some t in input.request.query.tenant
	t == "b"
}

deny contains "region eu is closed" if input.request.headers["x-region"] == "eu"

# Test-only: a query key read by position, so a repeated one is decided again on its first and last value.
deny contains "zone b is closed" if input.request.query.zone[0] == "b"
`);
    appendFileSync(join(repo, 'workloads/ops-mcp/policy.rego'), `
# Test-only: as on orders, a query key and a header the policy reads.
deny contains "tenant b is closed" if {
	some t in input.request.query.tenant
	t == "b"
}

deny contains "region eu is closed" if input.request.headers["x-region"] == "eu"

deny contains "zone b is closed" if input.request.query.zone[0] == "b"
`);
    // Test-only: a prompt whose argument is sensitive.
    const tools = join(repo, 'workloads/ops-mcp/mcp-tools.json');
    const doc = JSON.parse(readFileSync(tools, 'utf8')) as { prompts: Array<Record<string, unknown>> };
    doc.prompts[0]!['x-warden-authz'] = { allow: [{ scopes: ['tools:read'] }], sensitive: ['customer_note'] };
    writeFileSync(tools, JSON.stringify(doc));
  });
  const engine = createEngineApp({ bundlesDir: policies.out, rescanMs: 60_000, mounts: [{ path: '/logs', router: logCollector(received).router }] });
  engineServer = http.createServer(engine.app);
  const engineUrl = `http://127.0.0.1:${await listenLocal(engineServer)}`;
  upstream = await startUpstream();
  issuer = await startIssuer();
  mcpServer = await startMcpServer({ json: true });
  agents = await tokenIssuer();
  const jwks = join(policies.dir, 'agents-jwks.json');
  writeFileSync(jwks, JSON.stringify({ keys: [{ ...(await exportJWK(agents.publicKey)), alg: 'ES256', use: 'sig', kid: 'test' }] }));
  // x-tenant: an operator's own addition to the removed fields (--remove-header), on both proxies.
  const common = ['--remove-header', 'X-Tenant', '--listen', '127.0.0.1:0', '--engine', engineUrl, '--verification-key', join(policies.out, 'verification-key.pem')];
  ordersFlags = ['--workload', 'orders', ...common, '--trust-header', 'x-forwarded-client-cert', '--trust-peer', '127.0.0.1', '--jwks', issuer.jwksUrl, '--issuer', issuer.issuer, '--audience', issuer.audience, '--max-header-bytes', '4096'];
  const orders = await startWarden(
    ['proxy', '--upstream', `http://127.0.0.1:${upstream.port}`, '--spill', join(policies.dir, 'orders.spill'), ...ordersFlags],
    /on [\d.]+:(\d+) .*\(bundle [^n]/,
    children,
  );
  children.at(-1)!.stdout!.on('data', (d: Buffer) => (ordersOut += d.toString()));
  ordersPort = Number(orders[1]);
  mcpFlags = ['--workload', 'ops-mcp', ...common, '--jwks', jwks, '--issuer', ISSUER, '--audience', AUDIENCE, '--headers-timeout', '1500', '--request-timeout', '1500'];
  spillDir = policies.dir;
  const mcp = await startWarden(
    ['proxy', '--upstream', new URL(mcpServer.url).origin, '--spill', join(policies.dir, 'mcp.spill'), ...mcpFlags],
    /on [\d.]+:(\d+) .*\(bundle [^n]/,
    children,
  );
  mcpPort = Number(mcp[1]);
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  await Promise.all(children.map((c) => (c.exitCode !== null ? undefined : new Promise((r) => c.once('exit', r)))));
  if (upstream) await closeServer(upstream.server);
  if (engineServer) await closeServer(engineServer);
  await mcpServer?.close();
  issuer?.server.close();
});

const xfcc = (id: string) => `X-Forwarded-Client-Cert: By=spiffe://cluster.local/ns/shop/sa/orders;URI=${id}`;

// An MCP JSON-RPC POST as raw bytes (the caller's own spelling of every field).
function mcpPost(token: string, body: unknown, extra: string[] = []): string {
  const text = JSON.stringify(body);
  return head(['POST /mcp HTTP/1.1', 'Host: localhost', `Authorization: Bearer ${token}`, 'Content-Type: application/json', 'Accept: application/json, text/event-stream', 'Connection: close', `Content-Length: ${Buffer.byteLength(text)}`, ...extra]) + text;
}

const initialize = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'side-doors', version: '1' } } };

describe('one behaviour on every forwarding path', () => {
  it('the fast path forwards Warden\'s verified caller and none of the caller\'s identity, override or x-warden-* fields', async () => {
    const r = await exchange(ordersPort, head(['GET /orders HTTP/1.1', 'Host: localhost', 'X-Case: fast', xfcc(STOREFRONT), 'Connection: close, X-Hop-Secret', ...HOSTILE]));
    expect(r.status).toBe(200);
    expectCleanHead(seenBy('fast')!.headers, r, STOREFRONT, 'header');
  });

  it('node\'s path (a JSON body the policy reads) does the same, and the body arrives byte for byte', async () => {
    const body = '{"items":[{"sku":"a-1","qty":2}]}';
    const r = await exchange(ordersPort, head(['POST /orders HTTP/1.1', 'Host: localhost', 'X-Case: node', xfcc(STOREFRONT), 'Content-Type: application/json', `Content-Length: ${body.length}`, 'Connection: close, X-Hop-Secret', ...HOSTILE]) + body);
    expect(r.status).toBe(201);
    const seen = seenBy('node')!;
    expectCleanHead(seen.headers, r, STOREFRONT, 'header');
    expect(seen.body.toString()).toBe(body);
  });

  it('a chunked body (node\'s path, streamed) does the same', async () => {
    const r = await exchange(ordersPort, head(['POST /orders HTTP/1.1', 'Host: localhost', 'X-Case: chunked', xfcc(STOREFRONT), 'Content-Type: text/plain', 'Transfer-Encoding: chunked', 'Connection: close, X-Hop-Secret', ...HOSTILE]) + '5\r\nhello\r\n0\r\n\r\n');
    expect(r.status).toBe(201);
    const seen = seenBy('chunked')!;
    expectCleanHead(seen.headers, r, STOREFRONT, 'header');
    expect(seen.body.toString()).toBe('hello');
  });

  it('a chunked body\'s trailer fields never reach the app: an identity or x-warden-* field there is no side door', async () => {
    const trailers = [`X-Forwarded-Client-Cert: URI=${ADMIN}`, `X-Warden-Principal: ${ADMIN}`, 'X-Warden-Authn: mtls', 'X-HTTP-Method-Override: DELETE', 'X-Trailer-Benign: 1'];
    const r = await exchange(ordersPort, head(['POST /orders HTTP/1.1', 'Host: localhost', 'X-Case: trailers', xfcc(STOREFRONT), 'Content-Type: text/plain', 'Transfer-Encoding: chunked', `Trailer: ${trailers.map((t) => t.split(':')[0]).join(', ')}`, 'Connection: close']) + `5\r\nhello\r\n0\r\n${trailers.join('\r\n')}\r\n\r\n`);
    expect(r.status).toBe(201);
    const seen = seenBy('trailers')!;
    expect([seen.body.toString(), seen.trailers, seen.headers['x-warden-principal'], seen.headers.trailer]).toEqual(['hello', [], STOREFRONT, undefined]);
  });

  it('an upgrade does the same, keeping only Upgrade and Connection: upgrade', async () => {
    const r = await exchange(ordersPort, head(['GET /ws HTTP/1.1', 'Host: localhost', 'X-Case: upgrade', xfcc(STOREFRONT), 'Connection: Upgrade, X-Hop-Secret', 'Upgrade: websocket', ...HOSTILE]));
    expect(r.status).toBe(101);
    const seen = seenBy('upgrade')!;
    expectCleanHead(seen.headers, r, STOREFRONT, 'header');
    expect([seen.headers.upgrade, seen.headers.connection]).toEqual(['websocket', 'upgrade']);
  });

  it('the MCP relay does the same', async () => {
    const token = await agents.sign('agent-reader', 'tools:read');
    const before = mcpServer.requests.length;
    const r = await exchange(mcpPort, mcpPost(token, initialize, ['X-Case: mcp', 'Connection: close, X-Hop-Secret', xfcc(STOREFRONT), ...HOSTILE]));
    expect(r.status).toBe(200);
    const seen = mcpServer.requests.slice(before).find((x) => x.headers['x-case'] === 'mcp')!;
    expectCleanHead(seen.headers, r, 'agent-reader', 'jwt');
  });
});

// What the request's Connection names, and how its body is encoded, on every path that forwards it: the
// fast path's own tests (test/fast-path.test.ts) are the pattern; these are the other doors to the same
// place — node's path (a chunked body), an upgrade, and the MCP handler on both of its paths.
describe('what Connection names and how a body is encoded, on every forwarding path', () => {
  const chunkedJson = (marker: string, fields: string[], json = '{"items":[{"sku":"a-1","qty":2}]}') =>
    head(['POST /orders HTTP/1.1', 'Host: localhost', `X-Case: ${marker}`, 'Transfer-Encoding: chunked', ...fields]) + `${json.length.toString(16)}\r\n${json}\r\n0\r\n\r\n`;
  const upgrade = (marker: string, fields: string[]) => head(['GET /ws HTTP/1.1', 'Host: localhost', `X-Case: ${marker}`, 'Upgrade: websocket', ...fields]);
  const decisionOf = async (id: string | undefined) => {
    expect(id).toBeTruthy();
    return until(`the decision event ${id}`, () => received.find((e) => e.decision_id === id));
  };

  it("refuses a Connection naming the framing or Host on node's path and on an upgrade (400), and the upstream never sees the request", async () => {
    const json = '{"items":[{"sku":"a-1","qty":2}]}';
    // HTTP/1.0 takes node's path with its Content-Length; a chunked body takes it too; a GET with Upgrade is an upgrade.
    const sent: Array<[string, string]> = [
      ['HTTP/1.0, Content-Length', head(['POST /orders HTTP/1.0', 'Host: localhost', 'X-Case: named-1', xfcc(STOREFRONT), 'Content-Type: application/json', `Content-Length: ${json.length}`, 'Connection: close, Content-Length']) + json],
      ['HTTP/1.0, CONTENT-LENGTH in a second field', head(['POST /orders HTTP/1.0', 'Host: localhost', 'X-Case: named-2', xfcc(STOREFRONT), 'Content-Type: application/json', `Content-Length: ${json.length}`, 'Connection: close', 'Connection: CONTENT-LENGTH']) + json],
      ['chunked, Host', chunkedJson('named-3', [xfcc(STOREFRONT), 'Content-Type: application/json', 'Connection: close, Host'])],
      ['upgrade, Host', upgrade('named-4', [xfcc(STOREFRONT), 'Connection: Upgrade, host'])],
      ['upgrade, Content-Length', upgrade('named-5', [xfcc(STOREFRONT), 'Content-Length: 0', 'Connection: Upgrade, Content-Length'])],
    ];
    for (const [what, text] of sent) {
      const r = await exchange(ordersPort, text);
      expect({ what, status: r.status }).toEqual({ what, status: 400 });
      expect(r.body).toMatch(/Connection names (content-length|host): the request's (framing|Host) cannot be dropped at the hop/);
    }
    expect(upstream.seen.filter((r) => String(r.headers['x-case']).startsWith('named-'))).toEqual([]);
    // Naming a field the request does not carry drops nothing: a chunked body has no Content-Length.
    const plain = await exchange(ordersPort, chunkedJson('named-absent', [xfcc(STOREFRONT), 'Content-Type: application/json', 'Connection: close, Content-Length']));
    expect(plain.status).toBe(201);
  });

  it("decides without the identity a Connection names, on node's path and on an upgrade: the caller is anonymous", async () => {
    const principalOf = async (id: string | undefined) => ((await decisionOf(id)).input as { source?: { principal?: string } }).source?.principal;
    // POST /orders is the storefront's: without its certificate the caller is denied.
    const node = await exchange(ordersPort, chunkedJson('dropped-node', [xfcc(STOREFRONT), 'Content-Type: application/json', 'Connection: close, X-Forwarded-Client-Cert']));
    expect(node.status).toBe(403);
    expect(seenBy('dropped-node')).toBeUndefined();
    expect(await principalOf(node.headers['x-warden-decision-id'])).toBe(ANONYMOUS);
    // /ws is open to anyone: the upgrade goes on, as the anonymous caller it was decided for.
    const up = await exchange(ordersPort, upgrade('dropped-upgrade', [xfcc(STOREFRONT), 'Connection: Upgrade, X-Forwarded-Client-Cert']));
    expect(up.status).toBe(101);
    const seen = seenBy('dropped-upgrade')!;
    expect(seen.headers['x-forwarded-client-cert']).toBeUndefined();
    expect([seen.headers['x-warden-principal'], seen.headers['x-warden-authn']]).toEqual([ANONYMOUS, 'none']);
    expect(await principalOf(up.headers['x-warden-decision-id'])).toBe(ANONYMOUS);
  });

  it("refuses a chunked JSON body the app would decode otherwise (415) on node's path", async () => {
    for (const fields of [['Content-Type: application/json; charset=utf-7'], ['Content-Type: application/json; charset="UTF-16"'], ['Content-Type: application/json', 'Content-Encoding: gzip'], ['Content-Type: application/json', 'Content-Encoding: identity, deflate']]) {
      const r = await exchange(ordersPort, chunkedJson('foreign-body', [xfcc(STOREFRONT), 'Connection: close', ...fields]));
      expect({ fields, status: r.status }).toEqual({ fields, status: 415 });
    }
    expect(seenBy('foreign-body')).toBeUndefined();
    const plain = await exchange(ordersPort, chunkedJson('utf8-body', [xfcc(STOREFRONT), 'Connection: close', 'Content-Type: application/json; charset=UTF-8']));
    expect(plain.status).toBe(201);
  });

  it('refuses an MCP call whose Connection names its framing or Host (400), and decides one that names Authorization as anonymous (denied), alone (the fast path) or in a batch (node\'s path)', async () => {
    const token = await agents.sign('agent-connection', 'tools:read tools:write');
    const call = { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'get_order', arguments: { id: '1' } } };
    const before = mcpServer.requests.length;
    for (const body of [call, [call]]) {
      for (const connection of ['Connection: close, Content-Length', 'Connection: close\r\nConnection: Host']) {
        const r = await exchange(mcpPort, mcpPost(token, body, ['X-Case: mcp-named']).replace('Connection: close', connection));
        expect({ connection, batch: Array.isArray(body), status: r.status }).toEqual({ connection, batch: Array.isArray(body), status: 400 });
      }
      // Denied as an MCP call is: a JSON-RPC error for its id, in a 200.
      const r = await exchange(mcpPort, mcpPost(token, body, ['X-Case: mcp-dropped']).replace('Connection: close', 'Connection: close, Authorization'));
      const answer = JSON.parse(r.body) as { id: number; error: { code: number; data: { reasons: string[] } } } | Array<{ id: number; error: { code: number; data: { reasons: string[] } } }>;
      const [one] = Array.isArray(answer) ? answer : [answer];
      expect({ batch: Array.isArray(body), status: r.status, id: one!.id, code: one!.error.code, reasons: one!.error.data.reasons }).toEqual({ batch: Array.isArray(body), status: 200, id: 7, code: -32003, reasons: ['no rule grants anonymous MCP tools/call get_order'] });
    }
    expect(mcpServer.requests.slice(before)).toEqual([]);
  });

  it("refuses an MCP body the server would decode otherwise (415): a charset other than UTF-8 or a Content-Encoding, alone or in a batch", async () => {
    const token = await agents.sign('agent-encoding', 'tools:read tools:write');
    const call = { jsonrpc: '2.0', id: 8, method: 'tools/call', params: { name: 'get_order', arguments: { id: '1' } } };
    const before = mcpServer.requests.length;
    for (const body of [call, [call]]) {
      for (const field of ['Content-Type: application/json; charset=utf-7', 'Content-Type: application/json; charset="UTF-16LE"', 'Content-Encoding: gzip', 'Content-Encoding: identity, br']) {
        const r = await exchange(mcpPort, mcpPost(token, body, []).replace(field.startsWith('Content-Type') ? 'Content-Type: application/json' : 'Connection: close', field.startsWith('Content-Type') ? field : `Connection: close\r\n${field}`));
        expect({ field, batch: Array.isArray(body), status: r.status }).toEqual({ field, batch: Array.isArray(body), status: 415 });
        expect((JSON.parse(r.body) as { error: { code: number } }).error.code).toBe(-32600);
      }
    }
    expect(mcpServer.requests.slice(before)).toEqual([]);
    // UTF-8 declared is read: the server answers the initialize.
    const ok = await exchange(mcpPort, mcpPost(token, initialize, ['Content-Encoding: identity']).replace('Content-Type: application/json', 'Content-Type: application/json; charset=UTF-8'));
    expect([ok.status, (JSON.parse(ok.body) as { result?: { serverInfo?: unknown } }).result?.serverInfo]).toEqual([200, expect.anything()]);
  });
});

describe('query strings read two ways', () => {
  it('refuses a raw ";" in the query (400) on the fast path, node\'s path, an upgrade and the MCP handler: Rack 2 and old Pythons split on it', async () => {
    const sent: Array<[string, number, string]> = [
      ['fast path', ordersPort, head(['GET /orders?status=open;status=all HTTP/1.1', 'Host: localhost', 'X-Case: semicolon-1', xfcc(STOREFRONT), 'Connection: close'])],
      ["node's path (HTTP/1.0)", ordersPort, head(['GET /orders?status=open;status=all HTTP/1.0', 'Host: localhost', 'X-Case: semicolon-2', xfcc(STOREFRONT)])],
      ['upgrade', ordersPort, head(['GET /ws?room=a;room=b HTTP/1.1', 'Host: localhost', 'X-Case: semicolon-3', xfcc(STOREFRONT), 'Connection: Upgrade', 'Upgrade: websocket'])],
      ['MCP', mcpPort, mcpPost(await agents.sign('agent-semicolon', 'tools:read'), initialize, ['X-Case: semicolon-4']).replace('POST /mcp ', 'POST /mcp?a=1;b=2 ')],
    ];
    const before = mcpServer.requests.length;
    for (const [what, port, text] of sent) {
      const r = await exchange(port, text);
      expect({ what, status: r.status }).toEqual({ what, status: 400 });
      // In a JSON answer, its quotes escaped.
      expect(r.body).toMatch(/a raw \\";\\" in the query string/);
    }
    expect(upstream.seen.filter((r) => String(r.headers['x-case']).startsWith('semicolon-'))).toEqual([]);
    expect(mcpServer.requests.slice(before)).toEqual([]);
    // Escaped, it is data: one value, decided and forwarded as sent.
    const r = await exchange(ordersPort, head(['GET /orders?status=open%3Bstatus=all HTTP/1.1', 'Host: localhost', 'X-Case: semicolon-escaped', xfcc(STOREFRONT), 'Connection: close']));
    expect(r.status).toBe(200);
    expect(seenBy('semicolon-escaped')!.url).toBe('/orders?status=open%3Bstatus=all');
  });
});

// What an app reads otherwise than Warden decided it, refused on every forwarding path: a method override
// in the query, a field Warden reads spelled with "_", a query key or header the policy reads spelled as
// PHP, Rack or a CGI server reads it. One case per path, so a path that skips the shared checks shows.
describe('other spellings of what the policy reads, on every forwarding path', () => {
  const paths = async (marker: string, target: string, fields: string[]): Promise<Array<[string, number, string]>> => [
    ['fast path', ordersPort, head([`GET /orders${target} HTTP/1.1`, 'Host: localhost', `X-Case: ${marker}-1`, xfcc(STOREFRONT), 'Connection: close', ...fields])],
    ["node's path (chunked)", ordersPort, head([`POST /orders${target} HTTP/1.1`, 'Host: localhost', `X-Case: ${marker}-2`, xfcc(STOREFRONT), 'Content-Type: text/plain', 'Transfer-Encoding: chunked', 'Connection: close', ...fields]) + '5\r\nhello\r\n0\r\n\r\n'],
    ['upgrade', ordersPort, head([`GET /ws${target} HTTP/1.1`, 'Host: localhost', `X-Case: ${marker}-3`, xfcc(STOREFRONT), 'Connection: Upgrade', 'Upgrade: websocket', ...fields])],
    ['MCP', mcpPort, mcpPost(await agents.sign(`agent-${marker}`, 'tools:read'), initialize, [`X-Case: ${marker}-4`, ...fields]).replace('POST /mcp ', `POST /mcp${target} `)],
  ];

  // Normalization refuses the first kinds before any decision (400 on every path); the decision refuses a
  // spelling of what the policy reads, so on the MCP path that is the call's JSON-RPC error.
  it.each([
    ['a method override in the query', 'method-query', '?_method=DELETE', [], /method override/, 400],
    ['an escaped method override in the query', 'method-escaped', '?x=1&%5Fmethod=DELETE', [], /method override/, 400],
    ['a framing field spelled with "_"', 'underscore-framing', '', ['Transfer_Encoding: chunked'], /CGI variables/, 400],
    ['the body\'s type spelled with "_"', 'underscore-type', '', ['Content_Type: application/json'], /CGI variables/, 400],
    ['a query key the policy reads, spelled as PHP reads it', 'query-php', '?tenant[]=b', [], /"tenant\[\]\\" is \\"tenant\\" to PHP or Rack/, 'rpc'],
    ['a query key the policy reads, indexed', 'query-indexed', '?tenant[0]=b', [], /"tenant\[0\]\\" is \\"tenant\\" to PHP or Rack/, 'rpc'],
    // Spring and ASP.NET Core bind `order[tenant]` to a model's `tenant`.
    ['a query key the policy reads, as a model member', 'query-model', '?order[tenant]=b', [], /"order\[tenant\]\\" is \\"tenant\\" to PHP or Rack/, 'rpc'],
    ['a cookie named as a query key the policy reads', 'cookie-query', '?tenant=a', ['Cookie: session=1; tenant=b'], /the cookie \\"tenant\\" is the query key \\"tenant\\" the policy reads/, 'rpc'],
    // Go's Header.Get reads the first line, the policy the lines joined ("eu, us"): refused before the decision.
    ['a header the policy reads, sent twice', 'header-twice', '', ['X-Region: eu', 'X-Region: us'], /the header \\"x-region\\" is sent more than once and the policy reads \\"x-region\\"/, 400],
    ['a header the policy reads, sent twice in two spellings', 'header-twice-cgi', '', ['X-Region: us', 'x-region: eu'], /is sent more than once/, 400],
    ['a header the policy reads, spelled as a CGI server reads it', 'header-cgi', '', ['X_Region: eu'], /"x_region\\" is \\"x-region\\" to apps that read headers as CGI variables/, 'rpc'],
    // Allowed as sent (`zone[0]` is "a"), not on its last value alone: PHP would read zone "b".
    ['a query key the policy reads by position, given twice', 'query-twice', '?zone=a&zone=b', [], /the query key \\"zone\\" is given 2 times and the policy does not allow the call on its last value alone/, 'rpc'],
  ] as const)('refuses %s on the fast path, node\'s path and an upgrade (400) and on the MCP handler; neither app sees it', async (_what, marker, target, fields, reason, onMcp) => {
    const before = mcpServer.requests.length;
    for (const [what, port, text] of await paths(marker, target, [...fields])) {
      const r = await exchange(port, text);
      if (what === 'MCP' && onMcp === 'rpc') {
        expect({ what, status: r.status }).toEqual({ what, status: 200 });
        expect((JSON.parse(r.body) as { error: { code: number } }).error.code).toBe(-32003);
      } else expect({ what, status: r.status }).toEqual({ what, status: 400 });
      expect({ what, body: r.body }).toEqual({ what, body: expect.stringMatching(reason) });
    }
    expect(upstream.seen.filter((r) => String(r.headers['x-case']).startsWith(`${marker}-`))).toEqual([]);
    expect(mcpServer.requests.slice(before)).toEqual([]);
  });

  it('forwards the same requests spelled as the policy reads them: the refusals are not of every query or header', async () => {
    // A header the policy does not read may be sent twice.
    for (const [what, port, text] of await paths('spelled-right', '?tenant=a', ['X-Region: us', 'X-Trace: 1', 'X-Trace: 2'])) {
      const r = await exchange(port, text);
      expect({ what, status: r.status }).toEqual({ what, status: what === 'upgrade' ? 101 : what === 'MCP' ? 200 : what === 'fast path' ? 200 : 201 });
    }
  });
});

describe('paths spelled otherwise', () => {
  it('denies a path that differs only by case from a route of the spec (express routes /orders/EXPORT to /orders/export), or that is one with a format suffix (Rails), on every path, and the upstream never sees it', async () => {
    const sent: Array<[string, string]> = [
      ['fast path', head(['GET /orders/EXPORT HTTP/1.1', 'Host: localhost', 'X-Case: route-case-1', xfcc(STOREFRONT), 'Connection: close'])],
      ["node's path (HTTP/1.0)", head(['GET /orders/Export HTTP/1.0', 'Host: localhost', 'X-Case: route-case-2', xfcc(STOREFRONT)])],
      ['a HEAD', head(['HEAD /orders/EXPORT HTTP/1.1', 'Host: localhost', 'X-Case: route-case-3', xfcc(STOREFRONT), 'Connection: close'])],
      ['an upgrade', head(['GET /Orders/export HTTP/1.1', 'Host: localhost', 'X-Case: route-case-4', xfcc(STOREFRONT), 'Connection: Upgrade', 'Upgrade: websocket'])],
      ['a format suffix (Rails)', head(['GET /orders/export.json HTTP/1.1', 'Host: localhost', 'X-Case: route-case-5', xfcc(STOREFRONT), 'Connection: close'])],
    ];
    for (const [what, text] of sent) {
      const r = await exchange(ordersPort, text);
      expect({ what, status: r.status }).toEqual({ what, status: 403 });
      if (!what.includes('HEAD')) expect(r.body).toMatch(/the path segment \\"(EXPORT|Export|Orders|export\.json)\\" (differs only by case from|is) \\"(export|orders)\\", which the spec routes/);
    }
    expect(upstream.seen.filter((r) => String(r.headers['x-case']).startsWith('route-case-'))).toEqual([]);
    // The storefront's own order, spelled as the spec routes it, is read as before.
    expect((await exchange(ordersPort, head(['GET /orders/EXPORT-42 HTTP/1.1', 'Host: localhost', xfcc(STOREFRONT), 'Connection: close']))).status).toBe(200);
  });
});

describe('upgrades', () => {
  it('never carries an upgrade into an MCP transport path: GET and DELETE with Upgrade are refused with a decision id', async () => {
    const owner = await agents.sign('agent-owner', 'tools:read');
    const init = await exchange(mcpPort, mcpPost(owner, initialize));
    const session = init.headers['mcp-session-id']!;
    expect(session).toBeTruthy();
    const thief = await agents.sign('agent-thief', 'tools:read');
    const before = mcpServer.requests.length;
    for (const method of ['GET', 'DELETE']) {
      for (const upgrade of ['websocket', 'h2c', 'foo']) {
        const r = await exchange(mcpPort, head([`${method} /mcp HTTP/1.1`, 'Host: localhost', `Authorization: Bearer ${thief}`, `Mcp-Session-Id: ${session}`, 'Last-Event-ID: 0', 'Accept: text/event-stream', 'Connection: Upgrade', `Upgrade: ${upgrade}`]));
        expect([method, upgrade, r.status]).toEqual([method, upgrade, 400]);
        expect(r.headers['x-warden-decision-id']).toMatch(/^[0-9a-f-]{36}$/);
        expect(JSON.parse(r.body).decision_id).toBe(r.headers['x-warden-decision-id']);
      }
    }
    // Without the Upgrade header the MCP checks apply as to any request on the path: another caller's session is refused.
    const plain = await exchange(mcpPort, head(['GET /mcp HTTP/1.1', 'Host: localhost', `Authorization: Bearer ${thief}`, `Mcp-Session-Id: ${session}`, 'Accept: text/event-stream', 'Connection: close']));
    expect(plain.status).toBe(403);
    expect(mcpServer.requests.slice(before)).toEqual([]);
  });

  it('never forwards another protocol spoken without an upgrade: the HTTP/2 preface, CONNECT, an asterisk-form target', async () => {
    // The HTTP/2 connection preface and an empty SETTINGS frame: a client with prior knowledge of h2c.
    const preface = Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]);
    const before = upstream.seen.length;
    for (const [what, text] of [
      ['the HTTP/2 preface', preface],
      ['CONNECT', head(['CONNECT 127.0.0.1:22 HTTP/1.1', 'Host: 127.0.0.1:22', xfcc(STOREFRONT)])],
      ['OPTIONS *', head(['OPTIONS * HTTP/1.1', 'Host: localhost', xfcc(STOREFRONT), 'Connection: close'])],
    ] as const) {
      const r = await exchange(ordersPort, text);
      expect({ what, status: r.status }).toEqual({ what, status: 400 });
      if (what !== 'the HTTP/2 preface') expect(JSON.parse(r.body).reasons[0]).toMatch(/origin-form/);
    }
    expect(upstream.seen.length).toBe(before);
  });

  it('never forwards Upgrade: h2c, not even on a route the policy allows', async () => {
    const before = upstream.seen.length;
    const r = await exchange(ordersPort, head(['GET /orders HTTP/1.1', 'Host: localhost', xfcc(STOREFRONT), 'Connection: Upgrade, HTTP2-Settings', 'Upgrade: h2c', 'HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA']));
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body).reasons[0]).toMatch(/h2c is never forwarded/);
    expect(r.headers['x-warden-decision-id']).toBeTruthy();
    expect(upstream.seen.length).toBe(before);
  });

  it('shows the policy the upgrade, so a rule can allow plain GETs on a route without allowing a tunnel there', async () => {
    const before = upstream.seen.length;
    const tunnel = await exchange(ordersPort, head(['GET /orders HTTP/1.1', 'Host: localhost', xfcc(STOREFRONT), 'Connection: Upgrade', 'Upgrade: websocket']));
    expect(tunnel.status).toBe(403);
    expect(JSON.parse(tunnel.body).reasons).toEqual(['no tunnel on /orders']);
    expect(upstream.seen.length).toBe(before);
    const plain = await exchange(ordersPort, head(['GET /orders HTTP/1.1', 'Host: localhost', xfcc(STOREFRONT), 'Connection: close']));
    expect(plain.status).toBe(200);
    const logged = await until('the upgrade decision event', () => received.find((e) => e.decision_id === tunnel.headers['x-warden-decision-id']));
    expect((logged.input as { request: { upgrade?: string } }).request.upgrade).toBe('websocket');
    expect(policyInput.check(logged.input)).toEqual([]);
  });
});

describe('an upgrade the upstream declines', () => {
  it('relays the answer and closes: a request pipelined behind the upgrade never reaches the app undecided', async () => {
    // An app that answers the upgrade request with a plain 200 and keeps its connection open.
    const bytes: string[] = [];
    const sockets = new Set<net.Socket>();
    const declining = net.createServer((s) => {
      sockets.add(s);
      s.on('data', (d: Buffer) => {
        bytes.push(d.toString('latin1'));
        if (bytes.length === 1) s.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok');
      });
    });
    const port = await listenLocal(declining);
    try {
      const m = await startWarden(['proxy', '--upstream', `http://127.0.0.1:${port}`, '--spill', join(spillDir, 'declined.spill'), ...ordersFlags], /on [\d.]+:(\d+) .*\(bundle [^n]/, children);
      // /ws is open to anyone; /orders/export is billing's, sent as the storefront right behind the upgrade.
      const smuggled = head(['GET /orders/export HTTP/1.1', 'Host: localhost', xfcc(STOREFRONT)]);
      const r = await exchange(Number(m[1]), head(['GET /ws HTTP/1.1', 'Host: localhost', xfcc(STOREFRONT), 'Connection: Upgrade', 'Upgrade: websocket']) + smuggled);
      expect([r.status, r.headers.connection, r.body]).toEqual([200, 'close', 'ok']);
      const sent = bytes.join('');
      expect(sent.match(/^GET /gm)).toEqual(['GET ']);
      expect(sent).not.toContain('/orders/export');
    } finally {
      children.at(-1)!.kill('SIGTERM');
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => declining.close(resolve));
    }
  });
});

describe('MCP transport paths', () => {
  it('takes another spelling of the endpoint (case, trailing slash) as the MCP handler\'s, and refuses it', async () => {
    const token = await agents.sign('agent-spelling', 'tools:read tools:write');
    const before = mcpServer.requests.length;
    const call = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'drop_table', arguments: { table: 'orders' } } });
    for (const path of ['/MCP', '/mcp/', '/Mcp//']) {
      const r = await exchange(mcpPort, head([`POST ${path} HTTP/1.1`, 'Host: localhost', `Authorization: Bearer ${token}`, 'Content-Type: application/json', `Content-Length: ${call.length}`, 'Connection: close']) + call);
      if (path === '/Mcp//') {
        expect(r.status).toBe(400); // refused by normalization (an empty segment) before anything else
        continue;
      }
      expect([path, r.status]).toEqual([path, 400]);
      const answer = JSON.parse(r.body) as { error: { message: string; data: { decision_id: string } } };
      expect(answer.error.message).toMatch(/another spelling of an MCP transport path/);
      expect(answer.error.data.decision_id).toBe(r.headers['x-warden-decision-id']);
    }
    expect(mcpServer.requests.slice(before)).toEqual([]);
  });
});

describe('the fast path in the shipped configuration (warden proxy with the MCP handler)', () => {
  // Write `parts` one after the other on one connection; read every answer until the sidecar closes it.
  const answers = async (port: number, ...parts: string[]) => (await rawExchange(port, ...parts)).split(/(?=HTTP\/1\.1 \d{3} )/);
  // An MCP POST kept alive (mcpPost closes), its head and body apart.
  const keptAlive = (token: string, body: unknown, extra: string[] = []) => {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    return [head(['POST /mcp HTTP/1.1', 'Host: localhost', `Authorization: Bearer ${token}`, 'Content-Type: application/json', 'Accept: application/json, text/event-stream', `Content-Length: ${Buffer.byteLength(text)}`, ...extra]), text] as const;
  };
  const plainGet = (token: string, path: string) => head([`GET ${path} HTTP/1.1`, 'Host: localhost', `Authorization: Bearer ${token}`, 'Connection: close']);
  const bodyOf = (answer: string) => answer.slice(answer.indexOf('\r\n\r\n') + 4);

  it('serves a single MCP call on the fast path, its body arriving in pieces, and keeps the connection there for the next call', async () => {
    const token = await agents.sign('agent-fast-mcp', 'tools:read');
    const before = mcpServer.requests.length;
    const [postHead, body] = keptAlive(token, { ...initialize, id: 'fast-1' });
    const out = await answers(mcpPort, postHead + body.slice(0, 10), body.slice(10, 40), body.slice(40), plainGet(token, '/not-mcp'));
    expect(out).toHaveLength(2);
    expect(out[0]).toMatch(/^HTTP\/1\.1 200 /);
    expect(JSON.parse(bodyOf(out[0]!))).toMatchObject({ jsonrpc: '2.0', id: 'fast-1', result: { protocolVersion: expect.any(String) } });
    // Answered on the fast path, and the plain call after it too (node's path keeps a connection it was
    // given, and writes `Connection: close` where the fast path writes its own lowercase line).
    expect(onFastPath(out[0]!)).toBe(true);
    expect(out[1]).toMatch(/\r\nconnection: close\r\n/);
    expect(out[0]).toMatch(/\r\nx-warden-decision-id: [0-9a-f-]{36}\r\n/);
    expect(out[0]).toMatch(/\r\nmcp-session-id: \S+\r\n/i);
    // The server read the call as decided: re-encoded, with Warden's caller fields.
    const seen = mcpServer.requests.slice(before);
    expect(seen.map((r) => `${r.method} ${r.url}`)).toEqual(['POST /mcp']);
    expect(seen[0]!.headers['x-warden-principal']).toBe('agent-fast-mcp');
    expect(mcpServer.received.at(-1)).toEqual({ ...initialize, id: 'fast-1' });
  });

  it('on the fast path, a denied call is answered here and never reaches the server; a session of another caller is refused', async () => {
    const owner = await agents.sign('agent-fast-owner', 'tools:read');
    const [initHead, initBody] = keptAlive(owner, initialize, ['Connection: close']);
    const [init] = await answers(mcpPort, initHead + initBody);
    const session = /\r\nmcp-session-id: (\S+)\r\n/i.exec(init!)![1]!;
    const before = mcpServer.requests.length;
    const refund = { jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'refund_order', arguments: { id: '42', amount: 10 } } };
    const [denyHead, denyBody] = keptAlive(owner, refund, [`Mcp-Session-Id: ${session}`]);
    const thief = await agents.sign('agent-fast-thief', 'tools:read');
    const [stealHead, stealBody] = keptAlive(thief, { ...refund, params: { name: 'get_order', arguments: { id: '42' } } }, [`Mcp-Session-Id: ${session}`, 'Connection: close']);
    const out = await answers(mcpPort, denyHead + denyBody + stealHead + stealBody);
    expect(out).toHaveLength(2);
    expect(onFastPath(out[0]!)).toBe(true);
    const denied = JSON.parse(bodyOf(out[0]!)) as { id: number; error: { code: number; data: { decision_id: string } } };
    expect([denied.id, denied.error.code]).toEqual([9, -32003]);
    expect(out[0]).toContain(`x-warden-decision-id: ${denied.error.data.decision_id}`);
    expect(out[1]).toMatch(/^HTTP\/1\.1 403 /);
    expect(out[1]).toMatch(/this session belongs to another caller/);
    expect(mcpServer.requests.slice(before)).toEqual([]);
  });

  it('decides on the argument its rule reads whatever else the arguments carry (no rule reads them, so they are left out of the decision): a refund above the limit never reaches the server', async () => {
    const writer = await agents.sign('agent-big-arguments', 'tools:read tools:write');
    const [initHead, initBody] = keptAlive(writer, initialize, ['Connection: close']);
    const [init] = await answers(mcpPort, initHead + initBody);
    const session = /\r\nmcp-session-id: (\S+)\r\n/i.exec(init!)![1]!;
    const note = 'n'.repeat(50 * 1024);
    const refund = (id: number, args: Record<string, unknown>) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'refund_order', arguments: { id: '42', note, ...args } } });
    // Above the limit, and under an escaped key (as JSON.parse and the server read it): denied here, never
    // forwarded. Beside a key that differs only by case: refused before any decision (see below).
    const escaped = JSON.stringify(refund(23, { amount: 5 })).replace('"amount":5', '"am\\u006funt":900');
    const before = mcpServer.requests.length;
    for (const [id, call] of [[21, refund(21, { amount: 900 })], [22, refund(22, { Amount: 5, amount: 900 })], [23, escaped]] as const) {
      const [h, b] = keptAlive(writer, call, [`Mcp-Session-Id: ${session}`, 'Connection: close']);
      const [out] = await answers(mcpPort, h + b);
      expect(JSON.parse(bodyOf(out!))).toMatchObject(id === 22 ? { id, error: { data: { reasons: [expect.stringMatching(/the key "Amount" differs only by case from "amount"/)] } } } : { id, error: { code: -32003 } });
    }
    expect(mcpServer.requests.slice(before)).toEqual([]);
    // Within it: forwarded, arguments whole.
    const allowed = refund(24, { amount: 10 });
    const [h, b] = keptAlive(writer, allowed, [`Mcp-Session-Id: ${session}`, 'Connection: close']);
    const [out] = await answers(mcpPort, h + b);
    expect(out).toMatch(/^HTTP\/1\.1 200 /);
    expect(mcpServer.received.at(-1)).toEqual(allowed);
  });

  it('refuses a member Warden reads spelled otherwise (before any decision, alone or in a batch) and an argument the policy reads spelled otherwise (in the decision): a server matching keys regardless of case (mcp-go) would run another call', async () => {
    const writer = await agents.sign('agent-case-variants', 'tools:read tools:write');
    const [initHead, initBody] = keptAlive(writer, initialize, ['Connection: close']);
    const [init] = await answers(mcpPort, initHead + initBody);
    const session = /\r\nmcp-session-id: (\S+)\r\n/i.exec(init!)![1]!;
    const call = (params: Record<string, unknown>) => ({ jsonrpc: '2.0', id: 31, method: 'tools/call', params });
    const hostile: Array<[string, unknown, RegExp]> = [
      ['a second tool name', call({ name: 'get_order', Name: 'drop_table', arguments: { id: '1', table: 'orders' } }), /"Name" for "name"/],
      ['a second method', { jsonrpc: '2.0', id: 32, method: 'tools/list', Method: 'tools/call', params: {} }, /"Method" for "method"/],
      ['a call inside an answer', { jsonrpc: '2.0', id: 33, result: null, Method: 'tools/call', Params: { name: 'drop_table', arguments: { table: 'orders' } } }, /"Method" for "method"/],
      ['Arguments alone', call({ name: 'refund_order', Arguments: { id: '42', amount: 100_000 } }), /"Arguments" for "arguments"/],
      ['Params alone', { jsonrpc: '2.0', id: 34, method: 'tools/call', Params: { name: 'drop_table', arguments: { table: 'orders' } } }, /"Params" for "params"/],
      // Laravel reads a POST's JSON as its form: `_method` would be the HTTP method to such a server.
      ['a method override', { ...call({ name: 'get_order', arguments: { id: '1' } }), _method: 'DELETE' }, /holds "_method"/],
      ['a method override in another case', { ...call({ name: 'get_order', arguments: { id: '1' } }), _METHOD: 'DELETE' }, /holds "_method"/],
    ];
    const before = mcpServer.requests.length;
    for (const [what, message, reason] of hostile) {
      // Alone (the fast path), and in a batch beside an allowed call (node's path).
      for (const body of [message, [{ jsonrpc: '2.0', id: 99, method: 'tools/call', params: { name: 'get_order', arguments: { id: '1' } } }, message]]) {
        const [h, b] = keptAlive(writer, body, [`Mcp-Session-Id: ${session}`, 'Connection: close']);
        const [out] = await answers(mcpPort, h + b);
        expect({ what, batch: Array.isArray(body), status: out!.slice(9, 12) }).toEqual({ what, batch: Array.isArray(body), status: '400' });
        expect(JSON.parse(bodyOf(out!))).toMatchObject({ id: null, error: { code: -32600, message: expect.stringMatching(reason) } });
      }
    }
    // An argument the policy reads (`amount`), spelled otherwise alone or beside it: a case-insensitive
    // server would read this one. Refused where the input is built.
    for (const args of [{ id: '42', Amount: 100_000 }, { id: '42', amount: 5, Amount: 100_000 }, { id: '42', amount: 5, AMOUNT: 1 }]) {
      const [lh, lb] = keptAlive(writer, call({ name: 'refund_order', arguments: args }), [`Mcp-Session-Id: ${session}`, 'Connection: close']);
      const [lone] = await answers(mcpPort, lh + lb);
      expect(JSON.parse(bodyOf(lone!))).toMatchObject({ id: 31, error: { data: { reasons: [expect.stringMatching(/the key "(Amount|AMOUNT)" differs only by case from "amount", which the policy reads/)] } } });
    }
    expect(mcpServer.requests.slice(before)).toEqual([]);
    // Keys no rule reads pass in any case (free-form maps hold such pairs).
    const [fh, fb] = keptAlive(writer, call({ name: 'refund_order', arguments: { id: '42', amount: 5, meta: { Path: 'a', PATH: 'b' } } }), [`Mcp-Session-Id: ${session}`, 'Connection: close']);
    expect((await answers(mcpPort, fh + fb))[0]).toMatch(/^HTTP\/1\.1 200 /);
    // The same keys in different objects are no variants: the call goes on.
    const [h, b] = keptAlive(writer, call({ name: 'get_order', arguments: { id: '1', Name: 'x' } }), [`Mcp-Session-Id: ${session}`, 'Connection: close']);
    expect((await answers(mcpPort, h + b))[0]).toMatch(/^HTTP\/1\.1 200 /);
  });

  it('a repeated Mcp-Session-Id or Content-Type is never read one way by the fast path and another by the server: the call is refused or decided as written, and a forbidden one never reaches the server', async () => {
    const owner = await agents.sign('agent-dup-owner', 'tools:read');
    const [initHead, initBody] = keptAlive(owner, initialize, ['Connection: close']);
    const [init] = await answers(mcpPort, initHead + initBody);
    const session = /\r\nmcp-session-id: (\S+)\r\n/i.exec(init!)![1]!;
    const thief = await agents.sign('agent-dup-thief', 'tools:read');
    const getOrder = { jsonrpc: '2.0', id: 11, method: 'tools/call', params: { name: 'get_order', arguments: { id: '42' } } };
    const refund = { jsonrpc: '2.0', id: 12, method: 'tools/call', params: { name: 'refund_order', arguments: { id: '42', amount: 10 } } };
    const before = mcpServer.requests.length;
    // Another caller's session, spelt twice (and once beside a made-up one): never bound to the thief.
    for (const sessions of [[session, session], ['made-up', session]]) {
      const [h, b] = keptAlive(thief, getOrder, [...sessions.map((sid) => `Mcp-Session-Id: ${sid}`), 'Connection: close']);
      const [out] = await answers(mcpPort, h + b);
      expect(out).toMatch(/^HTTP\/1\.1 4\d\d /);
    }
    // A call the policy denies, under two Content-Types: still denied, never forwarded.
    const [h, b] = keptAlive(owner, refund, ['Content-Type: text/plain', `Mcp-Session-Id: ${session}`, 'Connection: close']);
    const [out] = await answers(mcpPort, h + b);
    expect(out).not.toMatch(/^HTTP\/1\.1 2\d\d [\s\S]*"result"/);
    expect(mcpServer.requests.slice(before)).toEqual([]);
  });

  it('ends an MCP body where its Content-Length says: what follows is the next request, decided on its own', async () => {
    const token = await agents.sign('agent-fast-cl', 'tools:read');
    const before = mcpServer.requests.length;
    const [postHead, body] = keptAlive(token, initialize);
    // The "body" goes on past its length with a request for a path the server would answer.
    const out = await answers(mcpPort, postHead + body + head(['POST /mcp?smuggled=1 HTTP/1.1', 'Host: localhost', 'Content-Type: application/json', 'Content-Length: 2', 'Connection: close']) + '{}');
    expect(out).toHaveLength(2);
    expect(out[0]).toMatch(/^HTTP\/1\.1 200 /);
    // The second request is anonymous: refused with its own decision, and never forwarded.
    expect(out[1]).toMatch(/^HTTP\/1\.1 4\d\d /);
    expect(out[1]).toMatch(/x-warden-decision-id: [0-9a-f-]{36}/i);
    expect(mcpServer.requests.slice(before).map((r) => r.url)).toEqual(['/mcp']);
  });

  it('filters a tools/list answer on the fast path exactly as node\'s path does', async () => {
    const token = await agents.sign('agent-fast-list', 'tools:read');
    const [initHead, initBody] = keptAlive(token, initialize, ['Connection: close']);
    const [init] = await answers(mcpPort, initHead + initBody);
    const session = [`Mcp-Session-Id: ${/\r\nmcp-session-id: (\S+)\r\n/i.exec(init!)![1]!}`, 'Mcp-Protocol-Version: 2025-06-18'];
    const list = { jsonrpc: '2.0', id: 'list', method: 'tools/list', params: {} };
    const [fastHead, fastBody] = keptAlive(token, list, [...session, 'Connection: close']);
    const [batchHead, batchBody] = keptAlive(token, [list], [...session, 'Connection: close']);
    const [fast] = await answers(mcpPort, fastHead + fastBody);
    const [node] = await answers(mcpPort, batchHead + batchBody);
    // The fast path writes its own lowercase `connection: close`; node's server writes `Connection: close`.
    expect(fast).toMatch(/\r\nconnection: close\r\n/);
    expect(node).toMatch(/\r\nConnection: close\r\n/);
    // The fast path re-frames the rewritten answer; undo the chunking to read it.
    const unchunked = bodyOf(fast!).replace(/^[0-9a-f]+\r\n/, '').replace(/\r\n0\r\n\r\n$/, '');
    const filtered = JSON.parse(unchunked) as { result: { tools: Array<{ name: string; annotations?: unknown }> } };
    const fromNode = (JSON.parse(bodyOf(node!)) as Array<typeof filtered>)[0]!;
    expect(filtered.result.tools).toEqual(fromNode.result.tools);
    // A reader is not offered the refund tool the policy keeps for writers.
    expect(filtered.result.tools.map((t) => t.name)).not.toContain('refund_order');
    expect(filtered.result.tools.length).toBeGreaterThan(0);
  });

  it('answers 408 and closes when an MCP body announced on the fast path never arrives', async () => {
    const token = await agents.sign('agent-fast-slow', 'tools:read');
    const before = mcpServer.requests.length;
    const [postHead] = keptAlive(token, initialize);
    const started = Date.now();
    const out = await answers(mcpPort, postHead.replace(/Content-Length: \d+/, 'Content-Length: 500') + '{"jsonrpc":"2.0",');
    expect(out).toHaveLength(1);
    expect(out[0]).toMatch(/^HTTP\/1\.1 408 /);
    expect(out[0]).toMatch(/\r\nconnection: close\r\n/i);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
    expect(mcpServer.requests.slice(before)).toEqual([]);
  });

  it('hands a batch over to node\'s path after reading its body, and decides each call of it once', async () => {
    const token = await agents.sign('agent-fast-batch', 'tools:read');
    const batch = [
      { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'refund_order', arguments: { id: '1', amount: 10 } } },
      { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'drop_table', arguments: { table: 'orders' } } },
    ];
    const [postHead, body] = keptAlive(token, batch, ['Connection: close']);
    const out = await answers(mcpPort, postHead + body);
    expect(out).toHaveLength(1);
    expect(onFastPath(out[0]!)).toBe(false);
    const answered = JSON.parse(bodyOf(out[0]!)) as Array<{ id: number; error: { code: number } }>;
    expect(answered.map((a) => [a.id, a.error.code])).toEqual([[1, -32003], [2, -32003]]);
    const ids = /\r\nx-warden-decision-id: ([^\r]+)\r\n/i.exec(out[0]!)![1]!.split(', ');
    expect(ids).toHaveLength(2);
    await until('both decision events', () => ids.every((id) => received.some((e) => e.decision_id === id)) || undefined);
    // Had the fast path decided before handing over, each call would have been logged twice.
    const mine = received.filter((e) => (e.input as { source?: { principal?: string } } | undefined)?.source?.principal === 'agent-fast-batch');
    expect(mine.map((e) => e.decision_id).sort()).toEqual([...ids].sort());
  });
  // The fast path says how long an idle connection lasts in its own lowercase line; node's server
  // writes `Connection: keep-alive` and `Keep-Alive:` instead.
  const onFastPath = (answer: string) => /\r\nkeep-alive: timeout=\d+\r\n/.test(answer) && !/\r\nConnection: keep-alive\r\n/.test(answer);

  it('serves a plain call on the fast path, then gives a call on an MCP transport path (any spelling, no body) to the MCP handler', async () => {
    const token = await agents.sign('agent-fast', 'tools:read');
    const before = mcpServer.requests.length;
    const out = await answers(
      mcpPort,
      head(['GET /not-mcp HTTP/1.1', 'Host: localhost', `Authorization: Bearer ${token}`]) +
        head(['DELETE /MCP/ HTTP/1.1', 'Host: localhost', `Authorization: Bearer ${token}`]) +
        mcpPost(token, initialize),
    );
    expect(out).toHaveLength(3);
    expect(onFastPath(out[0]!)).toBe(true);
    // The bodiless call on a spelling of /mcp would pass the fast path's checks: it is the handler's.
    expect(out[1]).toMatch(/^HTTP\/1\.1 400 /);
    expect(out[1]).toMatch(/another spelling of an MCP transport path/);
    expect(onFastPath(out[1]!)).toBe(false);
    expect(out[2]).toMatch(/^HTTP\/1\.1 200 /);
    expect(out[2]).toMatch(/"protocolVersion"/);
    expect(mcpServer.requests.slice(before).map((r) => r.method)).toEqual(['POST']);
  });
  it('hands over a call with a body on an MCP path with the body intact, and parses the next request after it', async () => {
    const token = await agents.sign('agent-fast-body', 'tools:read');
    const before = mcpServer.requests.length;
    // Not JSON, so the fast path admits the head; the body holds what would be a request if misread.
    const body = `GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n`;
    const out = await answers(
      mcpPort,
      head(['GET /not-mcp HTTP/1.1', 'Host: localhost', `Authorization: Bearer ${token}`]) +
        head(['POST /mcp HTTP/1.1', 'Host: localhost', `Authorization: Bearer ${token}`, 'Content-Type: text/plain', `Content-Length: ${body.length}`]) + body +
        mcpPost(token, initialize),
    );
    expect(out).toHaveLength(3);
    expect(onFastPath(out[0]!)).toBe(true);
    // The MCP handler refuses a body that is not JSON-RPC; nothing of it reaches the server.
    expect(out[1]).toMatch(/^HTTP\/1\.1 4\d\d /);
    expect(out[1]).toMatch(/"jsonrpc":"2\.0"/);
    expect(out[2]).toMatch(/^HTTP\/1\.1 200 /);
    expect(out[2]).toMatch(/"protocolVersion"/);
    expect(mcpServer.requests.slice(before).map((r) => `${r.method} ${r.url}`)).toEqual(['POST /mcp']);
  });
});

// warden proxy for ops-mcp (as the suite starts it) in front of a hostile MCP server that answers every
// request, once its body is in, as `answer` writes; `use` gets warden proxy's port. Both stop after.
async function behindWarden(spill: string, answer: (res: http.ServerResponse) => void, use: (port: number) => Promise<void>): Promise<void> {
  const hostile = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => answer(res));
  });
  const hostilePort = await listenLocal(hostile);
  try {
    const m = await startWarden(['proxy', '--upstream', `http://127.0.0.1:${hostilePort}`, '--spill', join(spillDir, spill), ...mcpFlags], /on [\d.]+:(\d+) .*\(bundle [^n]/, children);
    await use(Number(m[1]));
  } finally {
    children.at(-1)!.kill('SIGTERM');
    await closeServer(hostile);
  }
}

describe('MCP answer heads, through warden proxy', () => {
  it("takes a 20 KiB head and refuses a 70 KiB one alike on the fast path and on node's path", async () => {
    for (const [kib, status] of [[20, 200], [70, 502]] as const) {
      const answer = (res: http.ServerResponse) => res.writeHead(200, { 'content-type': 'application/json', 'x-big': 'b'.repeat(kib * 1024) }).end(JSON.stringify({ jsonrpc: '2.0', id: 1, result: {} }));
      await behindWarden(`head-${kib}.spill`, answer, async (port) => {
        const token = await agents.sign('agent-head', 'tools:read');
        // A single call takes the fast path; the same call as a batch is handed to node's path.
        for (const body of [initialize, [initialize]]) {
          const r = await exchange(port, mcpPost(token, body));
          expect({ kib, batch: Array.isArray(body), status: r.status }).toEqual({ kib, batch: Array.isArray(body), status });
          if (status === 502) expect(r.headers['x-big']).toBeUndefined();
        }
      });
    }
  });
});

describe('MCP answers with an error status, through warden proxy', () => {
  it("never shows the caller a tool it may not use in a 500 answer's tool list, on the fast path or on node's path", async () => {
    // A hostile MCP server: every POST is answered 500 with a JSON body listing tools the reader may not
    // use (drop_table is destructive, refund_order needs tools:write). A lenient client reads error bodies.
    const listed = { jsonrpc: '2.0', id: 1, result: { tools: ['get_order', 'refund_order', 'drop_table'].map((name) => ({ name, inputSchema: { type: 'object' } })) } };
    await behindWarden('hostile.spill', (res) => res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify(listed)), async (port) => {
      const token = await agents.sign('agent-hostile-500', 'tools:read');
      // A single call takes the fast path; the same call as a batch is handed to node's path.
      for (const body of [initialize, [initialize]]) {
        const r = await exchange(port, mcpPost(token, body));
        expect(r.status).toBe(500);
        // Filtered where it stands (get_order goes too: the server describes it otherwise than reviewed,
        // and ops-mcp blocks drifted tools); the forbidden tools appear nowhere in the answer.
        expect((JSON.parse(r.body) as typeof listed).result.tools).toEqual([]);
        expect(r.body).not.toContain('refund_order');
        expect(r.body).not.toContain('drop_table');
      }
    });
  });
});

describe('MCP answers the filter cannot read, through warden proxy', () => {
  it("refuses an answer typed twice (either order), encoded or in a charset the filter cannot read (502), on the fast path and on node's path", async () => {
    // A hostile MCP server: every POST is answered 200 with a tool list the filter cannot vouch for. Two
    // Content-Type fields: node reads the first, the fast path's head the last and fetch joins them, so
    // whichever the filter read, a client could read the other (an event stream filtered as JSON, or JSON
    // passed as a stream). Gzip: fetch decodes it unasked. UTF-16: a client that decodes by the charset
    // (httpx does) reads a list the bytes do not spell.
    const listed = { jsonrpc: '2.0', id: 1, result: { tools: ['get_order', 'refund_order', 'drop_table'].map((name) => ({ name, inputSchema: { type: 'object' } })) } };
    const text = JSON.stringify(listed);
    let answer: { headers: http.OutgoingHttpHeaders; body: Buffer } = { headers: {}, body: Buffer.alloc(0) };
    await behindWarden('unreadable.spill', (res) => res.writeHead(200, answer.headers).end(answer.body), async (port) => {
      const token = await agents.sign('agent-unreadable', 'tools:read');
      const cases: Array<[string, http.OutgoingHttpHeaders, Buffer]> = [
        ...[['application/json', 'text/event-stream'], ['text/event-stream', 'application/json'], ['text/plain', 'application/json'], ['application/json', 'application/json']].map(
          (twice): [string, http.OutgoingHttpHeaders, Buffer] => [`typed ${twice.join(' and ')}`, { 'content-type': twice }, Buffer.from(text)],
        ),
        ['gzip-encoded', { 'content-type': 'application/json', 'content-encoding': 'gzip' }, gzipSync(text)],
        ['UTF-16 by its charset', { 'content-type': 'application/json; charset=utf-16' }, Buffer.from(`\ufeff${text}`, 'utf16le')],
      ];
      for (const [what, headers, sent] of cases) {
        answer = { headers, body: sent };
        // A single call takes the fast path; the same call as a batch is handed to node's path.
        for (const body of [initialize, [initialize]]) {
          const r = await exchange(port, mcpPost(token, body));
          expect({ what, batch: Array.isArray(body), status: r.status }).toEqual({ what, batch: Array.isArray(body), status: 502 });
          expect((JSON.parse(r.body) as { error: { code: number } }).error.code).toBe(-32000);
          expect(r.body).not.toContain('refund_order');
          expect(r.body).not.toContain('drop_table');
        }
      }
      // The same server with one plain Content-Type is read and filtered, not refused: the 502s above are the answers'.
      answer = { headers: { 'content-type': 'application/json' }, body: Buffer.from(text) };
      const r = await exchange(port, mcpPost(token, initialize));
      expect(r.status).toBe(200);
      expect(r.body).not.toContain('drop_table');
    });
  });
});

describe('MCP tool lists spelled for case-insensitive clients, through warden proxy', () => {
  it("refuses a tool list the filter reads one way and mcp-go's client another (502, or the event dropped), on the fast path and on node's path", async () => {
    // A hostile MCP server: every POST is answered with the current message, as JSON or as one event.
    const tool = (name: string) => ({ name, inputSchema: { type: 'object' } });
    const message = (result: Record<string, unknown>, key = 'result') => ({ jsonrpc: '2.0', id: 7, [key]: result });
    let answer: { type: string; body: string } = { type: 'application/json', body: '' };
    await behindWarden('spelled.spill', (res) => res.writeHead(200, { 'content-type': answer.type }).end(answer.body), async (port) => {
      const token = await agents.sign('agent-spelled', 'tools:read');
      const list = { jsonrpc: '2.0', id: 7, method: 'tools/list', params: {} };
      const spelled: Array<[string, unknown]> = [
        ['Tools beside tools', message({ tools: [tool('get_order')], Tools: [tool('get_order'), tool('drop_table')] })],
        ['Name beside name', message({ tools: [{ ...tool('get_order'), Name: 'drop_table' }] })],
        ['the long s', message({ ['tool\u017f']: [tool('drop_table')] })],
        ['Result for result', message({ tools: [tool('drop_table')] }, 'Result')],
      ];
      for (const [what, sent] of spelled) {
        for (const body of [list, [list]]) {
          const batch = Array.isArray(body);
          answer = { type: 'application/json', body: JSON.stringify(batch ? [sent] : sent) };
          const json = await exchange(port, mcpPost(token, body));
          expect({ what, batch, status: json.status }).toEqual({ what, batch, status: 502 });
          expect(json.body).not.toContain('drop_table');
          answer = { type: 'text/event-stream', body: `event: message\ndata: ${JSON.stringify(sent)}\n\n` };
          const stream = await exchange(port, mcpPost(token, body));
          expect({ what, batch, status: stream.status }).toEqual({ what, batch, status: 200 });
          expect(stream.body).not.toContain('drop_table');
          expect(stream.body).not.toContain('get_order');
        }
      }
      // Spelled as the filter reads it: filtered, not refused.
      answer = { type: 'application/json', body: JSON.stringify(message({ tools: [tool('get_order'), tool('drop_table')] })) };
      const plain = await exchange(port, mcpPost(token, list));
      expect(plain.status).toBe(200);
      expect(JSON.parse(plain.body)).toMatchObject({ id: 7, result: { tools: expect.any(Array) } });
      expect(plain.body).not.toContain('drop_table');
    });
  });
});

describe('MCP event-stream answers to a tools/call, through warden proxy', () => {
  it('passes a tool result that cannot spell a tool list as the server sent it, and never shows a list spelled or framed any other way, on the fast path and on node\'s path, sent whole or in pieces', async () => {
    // A hostile MCP server: every POST is answered 200 with the current event stream. A tool result with
    // escaped quotes (JSON text inside it) passes unread; a list slipped in under an escaped key, or in a
    // comment beside a result, is read and filtered (the reader may use neither drop_table nor refund_order).
    // Each stream goes out whole, then in 3-byte pieces, each in its own turn (the parser's pieces path).
    let stream = '';
    let piece = 0;
    const send = (res: http.ServerResponse) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      if (piece === 0) return void res.end(stream);
      const text = stream;
      void (async () => {
        for (let i = 0; i < text.length; i += piece) {
          res.write(text.slice(i, i + piece));
          await new Promise((r) => setImmediate(r));
        }
        res.end();
      })();
    };
    // The body the client reads: the answer's chunks put together.
    const bodyOf = (r: Raw) => {
      if (r.headers['transfer-encoding'] !== 'chunked') return r.body;
      const parts: Buffer[] = [];
      new ChunkedEnd((d) => parts.push(Buffer.from(d))).feed(Buffer.from(r.body, 'utf8'));
      return Buffer.concat(parts).toString('utf8');
    };
    const result = (text: string) => `{"jsonrpc":"2.0","id":7,"result" : {"content":[{"type":"text","text":${JSON.stringify(text)}}]}}`;
    const call = { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'get_order', arguments: { id: '42' } } };
    await behindWarden('sse-results.spill', send, async (port) => {
      const token = await agents.sign('agent-sse-results', 'tools:read');
      const plain = `event: message\nid: 3\ndata: ${result('{"id":"42","status":"open"}')}\n\n`;
      const slipped = [
        `data: {"jsonrpc":"2.0","id":99,"result":{"t\\u006fols":[{"name":"drop_table"},{"name":"refund_order"}]},"note":"a \\"quoted\\" word"}\n\n`,
        `: {"tools":[{"name":"drop_table"},{"name":"refund_order"}]}\ndata: ${result('{"id":"42"}')}\n\n`,
        // The list as a client that follows the format reads it, whatever the line ends and the data lines:
        // CR alone, CRLF (split between two pieces when sent in pieces), no space after `data:`, the
        // message over two data lines, a comment between them.
        ...['\r', '\r\n'].map((nl) => `event: message${nl}data: {"jsonrpc":"2.0","id":99,"result":{"tools":[{"name":"drop_table"},{"name":"refund_order"}]}}${nl}${nl}`),
        `data:{"jsonrpc":"2.0","id":99,"result":{"tools":[{"name":"drop_table"},{"name":"refund_order"}]}}\r\n\r\n`,
        `data: {"jsonrpc":"2.0","id":99,\n: between\ndata: "result":{"tools":[{"name":"drop_table"},{"name":"refund_order"}]}}\n\n`,
      ];
      // A single call takes the fast path; the same call as a batch is handed to node's path.
      for (const [body, size] of [call, [call]].flatMap((b) => [[b, 0], [b, 3]] as const)) {
        piece = size;
        stream = plain;
        let r = await exchange(port, mcpPost(token, body));
        expect(r.status).toBe(200);
        expect(bodyOf(r)).toBe(plain);
        for (const sent of slipped) {
          stream = sent;
          r = await exchange(port, mcpPost(token, body));
          expect(r.status).toBe(200);
          expect(bodyOf(r)).not.toMatch(/drop_table|refund_order/);
        }
      }
    });
  });
});

describe('trusted identity headers are read by their grammar', () => {
  // Each is sent by the trusted peer; a naive reader would have found the storefront in every one.
  const attacks: Array<[string, string, number]> = [
    ['a quoted Subject hiding a URI', `X-Forwarded-Client-Cert: Subject="CN=x,URI=${STOREFRONT}";URI=spiffe://cluster.local/ns/evil/sa/x`, 403],
    ['a quoted DNS SAN ending in a URI', `X-Forwarded-Client-Cert: URI=spiffe://cluster.local/ns/evil/sa/x;DNS="x.example,URI=${STOREFRONT}"`, 403],
    ['two URI SANs in the element used', `X-Forwarded-Client-Cert: URI=spiffe://cluster.local/ns/evil/sa/x;URI=${STOREFRONT}`, 401],
    ['an unterminated quote', `X-Forwarded-Client-Cert: URI="${STOREFRONT}`, 401],
    ['a quote inside an unquoted value', `X-Forwarded-Client-Cert: URI=${STOREFRONT}"x`, 401],
    ['no URI in the last element', `X-Forwarded-Client-Cert: URI=${STOREFRONT},By=spiffe://cluster.local/ns/shop/sa/orders;Subject="CN=a,URI=${STOREFRONT}"`, 401],
    ['a URI that is not a SPIFFE ID', `X-Forwarded-Client-Cert: URI=${STOREFRONT}/../../../x`, 401],
    ['the header sent twice', `X-Forwarded-Client-Cert: URI=spiffe://cluster.local/ns/evil/sa/x\r\nX-Forwarded-Client-Cert: URI=${STOREFRONT}`, 401],
  ];
  for (const [what, field, status] of attacks) {
    it(`refuses ${what} (${status}), and the upstream never sees the call`, async () => {
      const before = upstream.seen.length;
      const r = await exchange(ordersPort, head(['GET /orders HTTP/1.1', 'Host: localhost', field, 'Connection: close']));
      expect(r.status).toBe(status);
      expect(JSON.parse(r.body).decision_id).toBe(r.headers['x-warden-decision-id']);
      expect(upstream.seen.length).toBe(before);
    });
  }

  it('takes the element the trusted proxy appended (the last one)', async () => {
    const r = await exchange(ordersPort, head(['GET /orders HTTP/1.1', 'Host: localhost', 'X-Case: xfcc-last', `X-Forwarded-Client-Cert: URI=${ADMIN},By=spiffe://cluster.local/ns/shop/sa/orders;Hash=abc;Subject="CN=storefront, O=shop";URI=${STOREFRONT}`, 'Connection: close']));
    expect(r.status).toBe(200);
    expect(seenBy('xfcc-last')!.headers['x-warden-principal']).toBe(STOREFRONT);
  });
});

describe('tokens that bring their own key, through warden proxy', () => {
  // A token's header naming a key set (jku), a certificate (x5u), or carrying a key (jwk), or a kid: none of
  // it chooses the key; the JWKS given by --jwks does. The MCP server never sees such a call.
  it('refuses each with 401, and a token from the configured issuer is served', async () => {
    const attacker = await generateKeyPair('ES256', { extractable: true });
    const jwk = await exportJWK(attacker.publicKey);
    const sign = (header: Record<string, unknown>) => new SignJWT({ scope: 'tools:read tools:write' }).setProtectedHeader({ alg: 'ES256', ...header }).setSubject('mallory').setIssuer(ISSUER).setAudience(AUDIENCE).setExpirationTime('5m').sign(attacker.privateKey);
    const before = mcpServer.requests.length;
    for (const header of [{ jwk }, { kid: 'test', jwk }, { kid: 'test', jku: 'http://127.0.0.1:1/jwks.json' }, { kid: 'test', x5u: 'http://127.0.0.1:1/cert.pem' }, { kid: 'attacker' }, { kid: 'test' }]) {
      const r = await exchange(mcpPort, mcpPost(await sign(header), initialize));
      expect({ header: Object.keys(header), status: r.status }).toEqual({ header: Object.keys(header), status: 401 });
      expect(JSON.parse(r.body).reasons[0]).toMatch(/^bearer token refused/);
    }
    expect(mcpServer.requests.slice(before)).toEqual([]);
    const served = await exchange(mcpPort, mcpPost(await agents.sign('agent-own-key', 'tools:read'), initialize));
    expect(served.status).toBe(200);
    expect(mcpServer.requests.length).toBe(before + 1);
  });
});

describe('principal kinds', () => {
  it('refuses a bearer token whose sub is a SPIFFE ID (401), whatever the spelling', async () => {
    const before = upstream.seen.length;
    for (const sub of [STOREFRONT, 'SPIFFE://cluster.local/ns/shop/sa/storefront', ' spiffe://cluster.local/ns/shop/sa/storefront']) {
      const token = await issuer.sign({ sub });
      const r = await exchange(ordersPort, head(['GET /orders HTTP/1.1', 'Host: localhost', `Authorization: Bearer ${token}`, 'Connection: close']));
      expect(r.status).toBe(401);
      expect(JSON.parse(r.body).reasons[0]).toMatch(/its sub is a SPIFFE ID/);
      expect(r.headers['x-warden-decision-id']).toBeTruthy();
    }
    expect(upstream.seen.length).toBe(before);
  });
});

describe('hostile JSON and odd requests', () => {
  it('answers arguments nested 100,000 levels deep with a JSON-RPC error and a logged denial', async () => {
    const token = await agents.sign('agent-deep', 'tools:read');
    const before = mcpServer.requests.length;
    const deep = `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_order","arguments":{"id":${'['.repeat(100_000)}${']'.repeat(100_000)}}}}`;
    const r = await exchange(mcpPort, head(['POST /mcp HTTP/1.1', 'Host: localhost', `Authorization: Bearer ${token}`, 'Content-Type: application/json', 'Accept: application/json, text/event-stream', `Content-Length: ${deep.length}`, 'Connection: close']) + deep);
    expect(r.status).toBe(400);
    const answer = JSON.parse(r.body) as { error: { code: number; message: string; data: { decision_id: string } } };
    expect(answer.error.code).toBe(-32600);
    expect(answer.error.message).toMatch(/nests deeper than 64 levels/);
    expect(answer.error.data.decision_id).toBe(r.headers['x-warden-decision-id']);
    expect(mcpServer.requests.slice(before)).toEqual([]);
    const logged = await until('the denial event', () => received.find((e) => e.decision_id === answer.error.data.decision_id));
    expect([logged.outcome, logged.kind]).toEqual(['deny', 'mcp']);
  });

  it('masks the sensitive arguments of a prompt in the decision log', async () => {
    const token = await agents.sign('agent-prompt', 'tools:read');
    const r = await exchange(mcpPort, mcpPost(token, { jsonrpc: '2.0', id: 3, method: 'prompts/get', params: { name: 'triage_order', arguments: { order: '42', customer_note: 'card 4111 1111 1111 1111' } } }));
    const id = r.headers['x-warden-decision-id']!;
    const logged = await until('the prompts/get event', () => received.find((e) => e.decision_id === id));
    const args = (logged.input as { mcp: { arguments: Record<string, unknown> } }).mcp.arguments;
    expect(args).toEqual({ order: '42', customer_note: '**masked**' });
    expect(logged.masked).toContain('/input/mcp/arguments/customer_note');
  });

  it('logs a refused absolute-form target as it was received, escaped, without its query (a credential may ride there)', async () => {
    const before = upstream.seen.length;
    const r = await exchange(ordersPort, head(['GET http://evil.example/"admin"?access_token=tok-0ut HTTP/1.1', 'Host: evil.example', 'Connection: close']));
    expect(r.status).toBe(400);
    const id = r.headers['x-warden-decision-id']!;
    const logged = await until('the refusal event', () => received.find((e) => e.decision_id === id));
    expect(logged.error).toContain('received "http://evil.example/\\"admin\\"?…"');
    expect(JSON.stringify(logged)).not.toContain('tok-0ut');
    expect(upstream.seen.length).toBe(before);
  });

  it('logs a request head too large (431) once', async () => {
    const r = await exchange(ordersPort, head(['GET /orders HTTP/1.1', 'Host: localhost', `X-Big: ${'a'.repeat(8000)}`]));
    expect(r.status).toBe(431);
    const child = children[0]!;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
    const refusals = ordersOut.split('\n').filter((l) => l.includes('"status":431'));
    expect(refusals).toHaveLength(1);
  });
});
