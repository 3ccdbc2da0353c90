// The example workloads `warden up` runs, as small real services on 127.0.0.1: `orders` (an HTTP API),
// `storefront` (an HTTP API that calls orders through orders' sidecar with its own SPIFFE certificate)
// and `ops-mcp` (an MCP server made with the official SDK, whose get_order tool calls orders the same
// way). Each listens on loopback only; callers reach it through its Warden sidecar.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';
import type { Issued } from '../engine/local-ca.js';
import { readBody, sendJson } from '../runtime/http-body.js';

/** A running service. */
export interface App {
  url: string;
  close(): Promise<void>;
}

/** How a service calls another workload through that workload's sidecar: its SVID and the CA. */
export interface OutboundIdentity {
  svid: Issued;
  ca: string;
}

/** The answer of one outbound call. */
export interface Reply {
  status: number;
  body: string;
}

/**
 * One HTTPS call presenting `who`'s certificate (never a header: identity comes from the TLS handshake).
 * `path` is sent exactly as given (no client-side dot-segment cleanup), so the sidecar sees what a caller wrote.
 */
export function callAs(who: OutboundIdentity | undefined, ca: string, base: string, method: string, path: string, opts: { body?: string; headers?: Record<string, string> } = {}): Promise<Reply & { decisionId?: string }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: url.hostname, port: url.port, path, method, ca, agent: false, headers: { ...(opts.body ? { 'content-type': 'application/json' } : {}), ...opts.headers }, ...(who ? { cert: who.svid.cert, key: who.svid.key } : {}), signal: AbortSignal.timeout(10_000) },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        const id = res.headers['x-warden-decision-id'];
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), ...(typeof id === 'string' ? { decisionId: id } : {}) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

async function readJson(req: IncomingMessage, limit = 1024 * 1024): Promise<unknown> {
  const body = await readBody(req, limit);
  if (!body) throw new Error('body too large');
  return body.length === 0 ? undefined : (JSON.parse(body.toString('utf8')) as unknown);
}

async function listen(server: Server): Promise<App> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function serve(route: (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<void> | void): Server {
  return createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    Promise.resolve(route(req, res, url)).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: (err as Error).message });
      else res.destroy();
    });
  });
}

/** The order service: an in-memory order book. */
export function startOrdersApp(): Promise<App> {
  const orders = new Map<string, { id: string; item: string; status: string }>([
    ['42', { id: '42', item: 'The Rust Book', status: 'paid' }],
    ['43', { id: '43', item: 'Kubernetes Up & Running', status: 'shipped' }],
  ]);
  let next = 44;
  return listen(
    serve(async (req, res, url) => {
      const seg = url.pathname.split('/').filter(Boolean);
      if (seg[0] === 'healthz') return sendJson(res, 200, { status: 'ok' });
      if (seg[0] !== 'orders') return sendJson(res, 404, { error: 'not found' });
      if (seg.length === 1 && req.method === 'GET') return sendJson(res, 200, [...orders.values()]);
      if (seg.length === 1 && req.method === 'POST') {
        const body = (await readJson(req)) as { item?: string } | undefined;
        const order = { id: String(next++), item: body?.item ?? 'unknown', status: 'created' };
        orders.set(order.id, order);
        return sendJson(res, 201, order);
      }
      if (seg[1] === 'export' && seg.length === 2) return sendJson(res, 200, { rows: orders.size, format: 'csv' });
      const order = orders.get(seg[1] ?? '');
      if (!order) return sendJson(res, 404, { error: `no order ${seg[1]}` });
      if (seg.length === 2 && req.method === 'GET') return sendJson(res, 200, order);
      if (seg.length === 2 && req.method === 'DELETE') {
        orders.delete(order.id);
        return sendJson(res, 200, { deleted: order.id });
      }
      if (seg[2] === 'refund' && req.method === 'POST') return sendJson(res, 200, { refunded: order.id });
      sendJson(res, 405, { error: 'method not allowed' });
    }),
  );
}

/** The shop frontend's API: public catalogue; checkout places the order with the orders service. */
export function startStorefrontApp(orders: { url: string; as: OutboundIdentity }): Promise<App> {
  const products: Record<string, { sku: string; name: string; price: number }> = {
    'sku-7': { sku: 'sku-7', name: 'The Rust Book', price: 39 },
    'sku-9': { sku: 'sku-9', name: 'Kubernetes Up & Running', price: 45 },
  };
  return listen(
    serve(async (req, res, url) => {
      const seg = url.pathname.split('/').filter(Boolean);
      if (seg[0] === 'healthz') return sendJson(res, 200, { status: 'ok' });
      if (seg[0] === 'products' && req.method === 'GET') {
        if (seg.length === 1) return sendJson(res, 200, Object.values(products));
        const p = products[seg[1] ?? ''];
        return p ? sendJson(res, 200, p) : sendJson(res, 404, { error: 'no such product' });
      }
      if (seg[0] === 'cart' && req.method === 'POST') return sendJson(res, 201, { added: true });
      if (seg[0] === 'checkout' && req.method === 'POST') {
        const body = (await readJson(req)) as { sku?: string } | undefined;
        // A real service-to-service call: storefront → orders' sidecar, identified by storefront's SVID.
        const placed = await callAs(orders.as, orders.as.ca, orders.url, 'POST', '/orders', { body: JSON.stringify({ item: products[body?.sku ?? '']?.name ?? 'unknown' }) });
        return sendJson(res, placed.status === 201 ? 201 : 502, placed.status === 201 ? { order: JSON.parse(placed.body) as unknown } : { error: `orders answered ${placed.status}` });
      }
      sendJson(res, 404, { error: 'not found' });
    }),
  );
}

const text = (t: string) => ({ content: [{ type: 'text' as const, text: t }] });

/** How the example ops MCP server answers get_order, and what it records. */
export interface OpsServerOptions {
  /** Tool names in the order they actually ran. */
  ran: string[];
  getOrder(id: string): Promise<string> | string;
  /** Override get_order's description (tests use it to play a "rug pull"). */
  getOrderDescription?: string;
}

/** The ops tools, declared as policies/workloads/ops-mcp/mcp-tools.json reviews them (used by `warden up` and the tests). */
export function opsMcpServer(o: OpsServerOptions): McpServer {
  const s = new McpServer({ name: 'ops-mcp', version: '1.0.0' });
  const ran = o.ran;
  s.registerTool('get_order', { description: o.getOrderDescription ?? 'Fetch one order by id.', inputSchema: { id: z.string() }, annotations: { title: 'Get order', readOnlyHint: true, openWorldHint: false } }, async ({ id }) => {
    ran.push('get_order');
    return text(await o.getOrder(id));
  });
  s.registerTool('search_orders', { description: 'Search orders by customer or status.', inputSchema: { customer: z.string().optional(), status: z.string().optional() }, annotations: { title: 'Search orders', readOnlyHint: true, openWorldHint: false } }, () => {
    ran.push('search_orders');
    return text('[]');
  });
  s.registerTool('query', { description: 'Run a read-only SQL query against the orders replica.', inputSchema: { sql: z.string() }, annotations: { title: 'SQL query', readOnlyHint: true, openWorldHint: false } }, ({ sql }) => {
    ran.push('query');
    return text(`ran: ${sql}`);
  });
  s.registerTool('refund_order', { description: "Refund (part of) an order to the customer's card.", inputSchema: { id: z.string(), amount: z.number(), card_token: z.string().optional() }, annotations: { title: 'Refund order', readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true } }, ({ id, amount }) => {
    ran.push('refund_order');
    return text(`refunded ${amount} on ${id}`);
  });
  // A lying server could claim drop_table is harmless; the proxy shows the reviewed annotations instead.
  s.registerTool('drop_table', { description: 'Drop a table of the orders database.', inputSchema: { table: z.string() }, annotations: { title: 'Drop table', readOnlyHint: false, destructiveHint: true } }, ({ table }) => {
    ran.push('drop_table');
    return text(`dropped ${table}`);
  });
  return s;
}

// The ops server of `warden up`: get_order calls orders as itself (spiffe://…/ns/agents/sa/ops-mcp), through orders' sidecar.
function opsServer(orders: { url: string; as: OutboundIdentity }, ran: string[]): McpServer {
  return opsMcpServer({
    ran,
    getOrder: async (id) => {
      const r = await callAs(orders.as, orders.as.ca, orders.url, 'GET', `/orders/${encodeURIComponent(id)}`);
      return r.status === 200 ? r.body : `orders answered ${r.status}`;
    },
  });
}

/** The ops MCP server (Streamable HTTP on /mcp); `ran` lists the tools that actually executed. */
export async function startOpsMcpApp(orders: { url: string; as: OutboundIdentity }): Promise<App & { ran: string[] }> {
  const ran: string[] = [];
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  const app = await listen(
    serve(async (req, res, url) => {
      if (url.pathname === '/healthz') return sendJson(res, 200, { status: 'ok' });
      if (url.pathname !== '/mcp') return sendJson(res, 404, { error: 'not found' });
      const sid = req.headers['mcp-session-id'];
      let t = typeof sid === 'string' ? sessions.get(sid) : undefined;
      if (!t) {
        if (req.method !== 'POST') return sendJson(res, 400, { error: 'no session' });
        const created = new StreamableHTTPServerTransport({ sessionIdGenerator: randomUUID, enableJsonResponse: true, onsessioninitialized: (id) => void sessions.set(id, created) });
        created.onclose = () => {
          if (created.sessionId) sessions.delete(created.sessionId);
        };
        await opsServer(orders, ran).connect(created);
        t = created;
      }
      await t.handleRequest(req, res);
    }),
  );
  return {
    ...app,
    ran,
    close: async () => {
      for (const t of sessions.values()) await t.close();
      await app.close();
    },
  };
}
