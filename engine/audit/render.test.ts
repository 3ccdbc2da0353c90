import { describe, expect, it } from 'vitest';
import type { DecisionEvent } from '../../formats/decision-event.js';
import { renderEvents } from './render.js';

const base = { timestamp: '2026-12-05T10:00:00.000Z', outcome: 'allow', mode: 'enforce', bundles: {}, path: 'warden/decision' } as const;
const stored = (e: Partial<DecisionEvent> & Pick<DecisionEvent, 'decision_id' | 'kind' | 'labels'>) => ({ seq: 1, received_at: base.timestamp, event: { ...base, ...e } as DecisionEvent });
const mcp = (id: string, mcpInput: Record<string, unknown>) =>
  stored({ decision_id: id, kind: 'mcp', labels: { workload: 'ops-mcp', namespace: 'agents', source: 'proxy' }, input: { source: { principal: 'support-agent' }, request: { method: 'POST', path: '/mcp' }, mcp: mcpInput } });

describe('audit tables say what happened', () => {
  it('show the JSON-RPC method of MCP calls, not POST /mcp', () => {
    const out = renderEvents([mcp('d-initialize', { method: 'initialize' }), mcp('d-tools-list', { method: 'tools/list' }), mcp('d-drop', { method: 'tools/call', tool: 'drop_table' }), mcp('d-prompt', { method: 'prompts/get', name: 'triage_order' })], 'table');
    const lines = out.trim().split('\n');
    expect(lines[1]).toMatch(/support-agent\s+initialize\s+-\s+d-initialize$/);
    expect(lines[2]).toMatch(/support-agent\s+tools\/list\s+-\s+d-tools-list$/);
    expect(lines[3]).toMatch(/support-agent\s+tools\/call drop_table\s+-\s+d-drop$/);
    expect(lines[4]).toMatch(/support-agent\s+prompts\/get triage_order\s+-\s+d-prompt$/);
    expect(out).not.toContain('POST /mcp');
  });

  it('show the requesting user and the reviewed object of admission decisions', () => {
    const e = stored({
      decision_id: 'd-admission',
      kind: 'admission',
      labels: { workload: 'admission', namespace: 'shop', source: 'admission' },
      input: { operation: 'CREATE', kind: { group: 'apps', version: 'v1', kind: 'Deployment' }, namespace: 'shop', name: 'payments', user: 'alice@example.com', request: { userInfo: { username: 'alice@example.com' } } },
    });
    expect(renderEvents([e], 'table').split('\n')[1]).toMatch(/shop\/admission\s+alice@example\.com\s+CREATE Deployment shop\/payments\s+-\s+d-admission$/);
  });

  it('keep METHOD /path for plain HTTP calls', () => {
    const e = stored({ decision_id: 'd-http-1', kind: 'http', labels: { workload: 'orders', namespace: 'shop', source: 'proxy' }, input: { source: { principal: 'spiffe://cluster.local/ns/shop/sa/storefront' }, request: { method: 'GET', path: '/orders/42' } } });
    expect(renderEvents([e], 'table')).toContain('GET /orders/42');
  });
});
