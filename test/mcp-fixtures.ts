// Real peers for the MCP tests: the ops-mcp bundle built by the compiler, an MCP server made with the
// SDK (Streamable HTTP with JSON or SSE answers, and the legacy HTTP+SSE transport), and a small
// node:http proxy that identifies callers by JWT and hands MCP paths to the McpHandler.
import { randomUUID, createPublicKey } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { SignJWT, exportJWK, generateKeyPair, jwtVerify, type CryptoKey } from 'jose';
import { opsMcpServer } from '../cli/up-apps.js';
import { buildRepo } from '../engine/compiler/build.js';
import type { Source } from '../formats/input.js';
import { openBundle } from '../runtime/bundle.js';
import { hostBuiltins } from '../runtime/builtins.js';
import { Policy } from '../runtime/policy.js';
import { readBody } from '../runtime/http-body.js';
import type { SigningAlgorithm } from '../runtime/signature.js';
import type { DriftRecord } from '../proxy-plugin/mcp/drift.js';
import { McpHandler, type McpHandlerOptions } from '../proxy-plugin/mcp/handler.js';
import { httpUpstream } from '../proxy-plugin/mcp/upstream.js';

/** Build the example ops-mcp workload from a private copy of policies/ and load its signed bundle. */
export async function loadOpsMcpPolicy(): Promise<Policy> {
  const dir = mkdtempSync(join(tmpdir(), 'warden-mcp-policies-'));
  cpSync(resolve('policies'), join(dir, 'policies'), { recursive: true });
  const result = await buildRepo({ repo: 'policies', out: 'bundles', cwd: dir, only: ['ops-mcp'], cacheDir: resolve('.warden/cache/opa') });
  const built = result.workloads.find((w) => w.workload === 'ops-mcp');
  if (!built) throw new Error('ops-mcp was not built');
  const index = JSON.parse(readFileSync(join(dir, 'bundles', 'index.json'), 'utf8')) as { keyId: string; algorithm: SigningAlgorithm };
  const key = createPublicKey(readFileSync(result.verificationKey, 'utf8'));
  const archive = readFileSync(resolve(dir, built.bundle));
  const bundle = await openBundle(archive, { keys: [{ id: index.keyId, algorithm: index.algorithm, key }], keyId: index.keyId });
  return Policy.load(bundle, { builtins: hostBuiltins });
}

/** How the test server's tool list may differ from the reviewed one. */
export interface ServerVariant {
  /** Streamable HTTP answers as application/json instead of an event stream. */
  json?: boolean;
  /** Rewrite get_order's description (a "rug pull"). */
  changedDescription?: string;
  /** Offer one more tool than was reviewed. */
  extraTool?: string;
}

/** A running MCP server and what it received. */
export interface TestMcpServer {
  url: string;
  /** Every JSON-RPC body POSTed to it, parsed. */
  received: unknown[];
  /** Names of the tools that actually ran. */
  ran: string[];
  /** The Authorization header of every request it received (undefined when absent). */
  authorizations: Array<string | undefined>;
  /** Method, target and header fields of every request it received, in order. */
  requests: Array<{ method: string; url: string; headers: IncomingMessage['headers'] }>;
  close(): Promise<void>;
}

function text(t: string): { content: Array<{ type: 'text'; text: string }> } {
  return { content: [{ type: 'text', text: t }] };
}

// The ops-mcp tools, as the live server declares them (the same server `warden up` runs).
function opsServer(v: ServerVariant, ran: string[]): McpServer {
  const s = opsMcpServer({ ran, getOrder: (id) => `order ${id}: 2 items, paid`, ...(v.changedDescription ? { getOrderDescription: v.changedDescription } : {}) });
  if (v.extraTool) {
    s.registerTool(v.extraTool, { description: 'Not reviewed.', inputSchema: {}, annotations: { readOnlyHint: true } }, () => {
      ran.push(v.extraTool!);
      return text('surprise');
    });
  }
  return s;
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return (server.address() as AddressInfo).port;
}

async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((ok) => server.close(() => ok()));
}

/** Start the ops MCP server: Streamable HTTP on /mcp, legacy HTTP+SSE on /sse + /messages. */
export async function startMcpServer(v: ServerVariant = {}): Promise<TestMcpServer> {
  const received: unknown[] = [];
  const ran: string[] = [];
  const authorizations: Array<string | undefined> = [];
  const requests: TestMcpServer['requests'] = [];
  const streamable = new Map<string, StreamableHTTPServerTransport>();
  const legacy = new Map<string, SSEServerTransport>();
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    authorizations.push(req.headers.authorization);
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    let body: unknown;
    if (req.method === 'POST') {
      const raw = (await readBody(req, 4 * 1024 * 1024)) ?? Buffer.alloc(0);
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        body = raw.toString('utf8');
      }
      received.push(body);
    }
    if (url.pathname === '/mcp') {
      const sid = req.headers['mcp-session-id'];
      let t = typeof sid === 'string' ? streamable.get(sid) : undefined;
      if (!t) {
        if (req.method !== 'POST') return void res.writeHead(400).end();
        const created = new StreamableHTTPServerTransport({ sessionIdGenerator: randomUUID, enableJsonResponse: !!v.json, onsessioninitialized: (id) => void streamable.set(id, created) });
        await opsServer(v, ran).connect(created);
        t = created;
      }
      return t.handleRequest(req, res, body);
    }
    if (url.pathname === '/sse' && req.method === 'GET') {
      const t = new SSEServerTransport('/messages', res);
      legacy.set(t.sessionId, t);
      res.on('close', () => legacy.delete(t.sessionId));
      return opsServer(v, ran).connect(t);
    }
    if (url.pathname === '/messages' && req.method === 'POST') {
      const t = legacy.get(url.searchParams.get('sessionId') ?? '');
      if (!t) return void res.writeHead(404).end();
      return t.handlePostMessage(req, res, body);
    }
    res.writeHead(404).end();
  });
  const port = await listen(server);
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    ran,
    authorizations,
    requests,
    close: async () => {
      for (const t of streamable.values()) await t.close();
      for (const t of legacy.values()) await t.close();
      await closeServer(server);
    },
  };
}

/** The issuer and audience the test proxy accepts. */
export const ISSUER = 'https://issuer.test';
export const AUDIENCE = 'ops-mcp';

/** Signs JWTs for test agents. */
export interface TokenIssuer {
  sign(sub: string, scope: string, extra?: Record<string, unknown>): Promise<string>;
  publicKey: CryptoKey;
}

/** A fresh ES256 issuer. */
export async function tokenIssuer(): Promise<TokenIssuer> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  await exportJWK(publicKey);
  return {
    publicKey,
    sign: (sub, scope, extra = {}) =>
      new SignJWT({ scope, ...extra }).setProtectedHeader({ alg: 'ES256' }).setSubject(sub).setIssuer(ISSUER).setAudience((extra.aud as string | undefined) ?? AUDIENCE).setIssuedAt().setExpirationTime('5m').sign(privateKey),
  };
}

/** A running test proxy. */
export interface TestProxy {
  url: string;
  handler: McpHandler;
  drift: DriftRecord[];
  close(): Promise<void>;
}

/** The test sidecar: JWT identity (jose), normalized request, McpHandler for MCP paths, 404 otherwise. */
export async function startProxy(policy: Policy, upstreamUrl: string, issuer: TokenIssuer, extra: Partial<McpHandlerOptions> = {}): Promise<TestProxy> {
  const drift: DriftRecord[] = [];
  const handler = new McpHandler({
    destination: { workload: 'ops-mcp', namespace: 'agents', principal: 'spiffe://cluster.local/ns/agents/sa/ops-mcp' },
    upstream: httpUpstream(upstreamUrl),
    onDrift: (r) => drift.push(r),
    ...extra,
  });
  const identify = async (req: IncomingMessage): Promise<Source> => {
    const address = req.socket.remoteAddress ?? '';
    const m = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '');
    if (m) {
      try {
        const audience = extra.oauth ? extra.oauth.resource : AUDIENCE;
        const { payload } = await jwtVerify(m[1]!, issuer.publicKey, { issuer: ISSUER, audience: [audience, AUDIENCE], algorithms: ['ES256'] });
        return { principal: String(payload.sub), authn: 'jwt', claims: payload as Record<string, unknown>, address };
      } catch {
        // Falls through to anonymous: the policy (default deny) or the OAuth check refuses it.
      }
    }
    return { principal: 'anonymous', authn: 'none', claims: {}, address };
  };
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (!handler.owns(url.pathname, policy)) return void res.writeHead(404).end();
    const body = (await readBody(req, 2 * 1024 * 1024)) ?? Buffer.alloc(0);
    const source = await identify(req);
    const request = { method: req.method ?? 'GET', path: url.pathname, segments: url.pathname.split('/').filter(Boolean), query: {}, headers: {} };
    await handler.handle({ method: request.method, path: url.pathname, query: url.search.slice(1), headers: req.headers, body }, { source, request, policy }, res);
  });
  const port = await listen(server);
  return { url: `http://127.0.0.1:${port}`, handler, drift, close: () => closeServer(server) };
}
