// Generated policy inputs for a workload bundle: every operation and MCP entry of its spec, crossed
// with callers of every kind, plus paths and methods no spec mentions. Deterministic for a seed.
import type { PolicyInput, Source } from '../../formats/input.js';
import { compiledSpecOf, type VerifiedBundle } from '../../runtime/bundle.js';

/** A small deterministic PRNG (mulberry32), so failures reproduce. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const spiffe = (ns: string, sa: string) => `spiffe://cluster.local/ns/${ns}/sa/${sa}`;

/** Callers of every kind the example policies distinguish. */
export function callers(): Source[] {
  const mtls = (p: string): Source => ({ principal: p, authn: 'mtls', claims: {}, address: '10.0.0.7' });
  const jwt = (sub: string, claims: Record<string, unknown>): Source => ({ principal: sub, authn: 'jwt', claims: { sub, ...claims }, address: '10.0.1.9' });
  return [
    mtls(spiffe('shop', 'storefront')),
    mtls(spiffe('shop', 'orders')),
    mtls(spiffe('billing', 'invoicer')),
    mtls(spiffe('billing', 'reports')),
    mtls(spiffe('agents', 'ops-mcp')),
    mtls(spiffe('platform', 'dba-bot')),
    mtls(spiffe('evil', 'mallory')),
    { principal: 'anonymous', authn: 'none', claims: {}, address: '203.0.113.5' },
    jwt('customer-1', { scope: 'cart:write checkout', email_verified: true }),
    jwt('customer-2', { scope: 'cart:write checkout', email_verified: false }),
    jwt('alice', { role: 'admin', amr: ['pwd', 'mfa'] }),
    jwt('bob', { role: 'admin', amr: ['pwd'] }),
    jwt('carol', { role: 'support', scope: 'orders:refund', amr: ['mfa'] }),
    jwt('support-agent', { scope: 'tools:read tools:write' }),
    jwt('readonly-agent', { scope: 'tools:read' }),
    jwt('scp-agent', { scp: ['tools:read'] }),
  ];
}

function concretePath(template: string, rnd: () => number): string {
  return template.replace(/\{[^}]+\}/g, () => String(Math.floor(rnd() * 1000)));
}

function request(method: string, path: string) {
  return { method, path, segments: path === '/' ? [] : path.slice(1).split('/'), query: {}, headers: {} };
}

/** At least `min` inputs for the bundle's workload. */
export function generateInputs(bundle: VerifiedBundle, min: number, seed: number): PolicyInput[] {
  const rnd = prng(seed);
  const spec = compiledSpecOf(bundle);
  const destination = { workload: spec.workload.name, namespace: spec.workload.namespace, principal: spiffe(spec.workload.namespace, spec.workload.name) };
  const out: PolicyInput[] = [];
  const who = callers();
  const http = Object.values(spec.http.operations);
  const extraPaths = ['/', '/admin', '/healthz', '/orders/', '/products/x/y', '/orders/1/refund/2', '/mcp'];
  const methods = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'];
  const mcpCalls: Array<Record<string, unknown>> = [];
  if (spec.mcp.endpoint) {
    for (const tool of Object.keys(spec.mcp.tools)) mcpCalls.push({ method: 'tools/call', tool, arguments: {} });
    mcpCalls.push(
      { method: 'tools/call', tool: 'query', arguments: { sql: 'SELECT * FROM orders' } },
      { method: 'tools/call', tool: 'query', arguments: { sql: 'DELETE FROM orders' } },
      { method: 'tools/call', tool: 'refund_order', arguments: { id: '1', amount: 20 } },
      { method: 'tools/call', tool: 'refund_order', arguments: { id: '1', amount: 9000 } },
      { method: 'tools/call', tool: 'not_a_tool', arguments: {} },
      { method: 'tools/call' },
      { method: 'initialize' },
      { method: 'tools/list' },
      { method: 'ping' },
      { method: 'resources/read', uri: Object.keys(spec.mcp.resources)[0] ?? 'x://y' },
      { method: 'prompts/get', name: Object.keys(spec.mcp.prompts)[0] ?? 'p' },
      { method: 'sampling/createMessage' },
    );
  }
  while (out.length < min) {
    for (const source of who) {
      for (const op of http) out.push({ source, destination, request: request(op.method, concretePath(op.template, rnd)) });
      const m = methods[Math.floor(rnd() * methods.length)]!;
      out.push({ source, destination, request: request(m, extraPaths[Math.floor(rnd() * extraPaths.length)]!) });
      for (const call of mcpCalls) {
        out.push({ source, destination, request: request('POST', spec.mcp.endpoint!), mcp: call as PolicyInput['mcp'] & object });
      }
      if (spec.mcp.endpoint) out.push({ source, destination, request: request(rnd() < 0.5 ? 'GET' : 'DELETE', spec.mcp.endpoint) });
    }
  }
  return out;
}
