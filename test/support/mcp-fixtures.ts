// Real peers for the MCP tests: the ops-mcp bundle of the run's shared build, an MCP server made with
// the SDK (Streamable HTTP with JSON or SSE answers, and the legacy HTTP+SSE transport), and the
// sidecar composed as production composes it, identifying callers by JWT.
import { randomUUID, createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey } from 'jose';
import { pino } from 'pino';
import { opsMcpServer } from '../../cli/up-apps.js';
import type { DecisionEvent } from '../../formats/decision-event.js';
import { openBundle } from '../../runtime/bundle.js';
import { hostBuiltins } from '../../runtime/builtins.js';
import { Policy } from '../../runtime/policy.js';
import { readBody } from '../../runtime/http-body.js';
import type { SigningAlgorithm } from '../../runtime/signature.js';
import type { ActiveBundle } from '../../proxy-plugin/bundle-source.js';
import { mcpCallHandler } from '../../proxy-plugin/mcp/call-adapter.js';
import type { DriftRecord } from '../../proxy-plugin/mcp/drift.js';
import type { OAuthConfig } from '../../proxy-plugin/mcp/oauth.js';
import { httpUpstream } from '../../proxy-plugin/mcp/upstream.js';
import { startPlugin } from '../../proxy-plugin/plugin.js';
import { createSidecar } from '../../proxy-plugin/sidecar.js';
import { closeServer, listenLocal } from './proxy-fixtures.js';
import { examplePolicies } from './example-policies.js';

/**
 * The example ops-mcp workload's signed archive, from the run's shared build, and the key to verify it by:
 * plain data, so a bench can open it with the build's runtime (bench/shipped.ts) as the tests do with the sources.
 */
export async function opsMcpArchive(): Promise<{ archive: Buffer; verify: { keys: Array<{ id: string; algorithm: SigningAlgorithm; key: KeyObject }>; keyId: string } }> {
  const built = await examplePolicies();
  const index = JSON.parse(readFileSync(join(built.out, 'index.json'), 'utf8')) as { keyId: string; algorithm: SigningAlgorithm };
  const key = createPublicKey(readFileSync(built.verificationKey, 'utf8'));
  return { archive: readFileSync(built.bundles['ops-mcp']!), verify: { keys: [{ id: index.keyId, algorithm: index.algorithm, key }], keyId: index.keyId } };
}

/** The example ops-mcp workload's signed bundle, from the run's shared build, loaded and verified. */
export async function loadOpsMcpPolicy(): Promise<Policy> {
  const { archive, verify } = await opsMcpArchive();
  return Policy.load(await openBundle(archive, verify), { builtins: hostBuiltins });
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
  const port = await listenLocal(server);
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
  /** The tools/list differences the sidecar logged as drift events, in order. */
  drift: DriftRecord[];
  /** Every decision event the sidecar logged, read as the log's readers read it (pending ones built first). */
  readonly events: DecisionEvent[];
  close(): Promise<void>;
}

/**
 * The sidecar as production composes it (startPlugin's gate with JWT identity, the MCP CallHandler,
 * createSidecar), over the ops-mcp bundle of the run's shared build; `oauth` makes the MCP endpoint an
 * OAuth protected resource. Decision events are kept in `events` (and drift records in `drift`).
 */
export async function startProxy(upstreamUrl: string, issuer: TokenIssuer, opts: { oauth?: OAuthConfig } = {}): Promise<TestProxy> {
  const built = await examplePolicies();
  const logger = pino({ level: 'silent' });
  const plugin = await startPlugin({
    workload: 'ops-mcp',
    namespace: 'agents',
    bundleFile: built.bundles['ops-mcp']!,
    verificationKey: readFileSync(built.verificationKey, 'utf8'),
    identity: { jwt: { keys: async () => issuer.publicKey, issuer: ISSUER, audience: opts.oauth ? [opts.oauth.resource, AUDIENCE] : AUDIENCE, algorithms: ['ES256'], clockToleranceSec: 5 } },
    logger,
  });
  const events: DecisionEvent[] = [];
  const drift: DriftRecord[] = [];
  const record = plugin.log.record.bind(plugin.log);
  plugin.log.record = (e) => {
    events.push(e);
    if (e.kind === 'drift') drift.push((e.result as { drift: DriftRecord }).drift);
    record(e);
  };
  const mcp = mcpCallHandler<ActiveBundle>({ upstream: httpUpstream(upstreamUrl), recordDrift: (e) => plugin.log.record(e), ...(opts.oauth ? { oauth: opts.oauth } : {}) });
  const sidecar = createSidecar({ upstream: new URL(upstreamUrl), gate: plugin.gate, handlers: [mcp], logger });
  const port = await listenLocal(sidecar);
  return {
    url: `http://127.0.0.1:${port}`,
    drift,
    // Events are built in batches after their calls (DecisionLog.recordLater); the queue's depth, as
    // flush and close do, builds what is pending first.
    get events() {
      void plugin.log.depth;
      return events;
    },
    close: async () => {
      await closeServer(sidecar);
      await plugin.close();
    },
  };
}
