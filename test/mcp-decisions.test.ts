// JSON-RPC calls mapped by mcp-input.ts and decided by the compiled ops-mcp bundle: the methods
// besides tools/call (resources/read by URI, prompts/get by name, unknown methods) reach the policy intact.
import { beforeAll, describe, expect, it } from 'vitest';
import { DECISION_ENTRYPOINT } from '../formats/decision.js';
import type { PolicyInput } from '../formats/input.js';
import { parseBody } from '../proxy-plugin/mcp/jsonrpc.js';
import { mcpInput } from '../proxy-plugin/mcp/mcp-input.js';
import type { Policy } from '../runtime/policy.js';
import { loadOpsMcpPolicy } from './support/mcp-fixtures.js';

let policy: Policy;
beforeAll(async () => {
  policy = await loadOpsMcpPolicy();
});

function decide(message: unknown, scope = 'tools:read'): boolean {
  const parsed = parseBody(Buffer.from(JSON.stringify(message)), { 'content-type': 'application/json' });
  if (!parsed.ok || parsed.messages[0]?.kind === 'response' || parsed.messages[0]?.kind === 'invalid') throw new Error('test message must be a valid call');
  const input: PolicyInput = {
    source: { principal: 'support-agent', authn: 'jwt', claims: { sub: 'support-agent', scope }, address: '127.0.0.1' },
    destination: { workload: 'ops-mcp', namespace: 'agents', principal: 'spiffe://cluster.local/ns/agents/sa/ops-mcp' },
    request: { method: 'POST', path: '/mcp', segments: ['mcp'], query: {}, headers: {} },
    mcp: mcpInput(parsed.messages[0]!.message),
  };
  return policy.decide(DECISION_ENTRYPOINT, input).allow;
}

describe('MCP methods decided by the ops-mcp bundle', () => {
  it('allows reading the reviewed resource by URI and refuses any other URI', () => {
    expect(decide({ jsonrpc: '2.0', id: 1, method: 'resources/read', params: { uri: 'orders://schema' } })).toBe(true);
    expect(decide({ jsonrpc: '2.0', id: 2, method: 'resources/read', params: { uri: 'file:///etc/passwd' } })).toBe(false);
  });

  it('allows the reviewed prompt by name and refuses another', () => {
    expect(decide({ jsonrpc: '2.0', id: 1, method: 'prompts/get', params: { name: 'triage_order', arguments: {} } })).toBe(true);
    expect(decide({ jsonrpc: '2.0', id: 2, method: 'prompts/get', params: { name: 'jailbreak' } })).toBe(false);
  });

  it('refuses a method nobody granted', () => {
    expect(decide({ jsonrpc: '2.0', id: 1, method: 'tasks/cancel', params: {} }, 'tools:read tools:write')).toBe(false);
  });

  it('decides session notifications like any method', () => {
    expect(decide({ jsonrpc: '2.0', method: 'notifications/initialized' })).toBe(true);
    expect(decide({ jsonrpc: '2.0', method: 'notifications/initialized' }, '')).toBe(false);
  });
});
