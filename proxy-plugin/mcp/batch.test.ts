import { describe, expect, it } from 'vitest';
import { forwardBody, mergeAnswers, planBatch, type CallVerdict } from './batch.js';
import { parseBody } from './jsonrpc.js';

function plan(body: unknown, forbidden: string[]) {
  const parsed = parseBody(Buffer.from(JSON.stringify(body)), { 'content-type': 'application/json' });
  if (!parsed.ok) throw new Error('test body must parse');
  let n = 0;
  return planBatch(parsed.batch, parsed.messages, (m): CallVerdict => {
    const allow = !forbidden.includes(m.tool ?? m.method);
    return { allow, decisionId: `d-${++n}`, reasons: allow ? [] : ['no'], ...(allow ? {} : { decision: { allow, reasons: ['no'], rpc_error: { code: -32001, message: 'nope' } } }) };
  });
}

const call = (id: number, name: string) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: {} } });

describe('planBatch and mergeAnswers', () => {
  it('uses the policy-shaped rpc_error for a denied call', () => {
    const p = plan([call(1, 'a'), call(2, 'b')], ['b']);
    expect(p.local).toEqual([{ jsonrpc: '2.0', id: 2, error: { code: -32001, message: 'nope', data: { decision_id: 'd-2', reasons: ['no'] } } }]);
    expect(JSON.parse(forwardBody(p)!.toString())).toEqual([call(1, 'a')]);
  });

  it('drops a denied notification silently and forwards client responses without deciding them', () => {
    const p = plan([{ jsonrpc: '2.0', method: 'notifications/cancelled' }, { jsonrpc: '2.0', id: 's1', result: {} }], ['notifications/cancelled']);
    expect(p.local).toEqual([]);
    expect(p.verdicts.map((v) => v.method)).toEqual(['notifications/cancelled']);
    expect(p.forward.map((c) => c.kind)).toEqual(['response']);
  });

  it('merges upstream and local answers in the order of the requests', () => {
    const p = plan([call(1, 'a'), call(2, 'b'), call(3, 'c')], ['b']);
    const merged = mergeAnswers(p, [{ jsonrpc: '2.0', id: 3, result: 'c' }, { jsonrpc: '2.0', id: 1, result: 'a' }]);
    expect((merged as Array<{ id: number }>).map((m) => m.id)).toEqual([1, 2, 3]);
  });

  it('returns nothing to forward when every call is denied', () => {
    const p = plan(call(1, 'b'), ['b']);
    expect(forwardBody(p)).toBeUndefined();
    expect(mergeAnswers(p, [])).toMatchObject({ id: 1, error: { code: -32001 } });
  });
});
