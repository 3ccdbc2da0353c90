import { describe, expect, it } from 'vitest';
import type { DriftRecord } from './drift.js';
import { idSpan, knownListAnswer, rewrittenAnswer } from './list-answers.js';
import type { McpSpec } from './spec.js';
import { filterToolsJson, type ToolsView } from './tools-filter.js';

const schema = (p: string) => ({ type: 'object', properties: { [p]: { type: 'string' } }, required: [p] });

function specOf(): McpSpec {
  return {
    endpoint: '/mcp',
    transport_paths: ['/mcp'],
    drift: 'block',
    tools: {
      get_order: { description: 'Fetch one order.', input_schema: schema('id'), annotations: { readOnlyHint: true } },
      refund_order: { description: 'Refund an order.', input_schema: schema('id'), annotations: { destructiveHint: true } },
      query: { description: 'Run a read-only query.', input_schema: schema('sql') },
    },
  };
}

// What the server lists: two tools as reviewed, one whose description changed, one never reviewed.
const live = [
  { name: 'get_order', description: 'Fetch one order.', inputSchema: schema('id'), annotations: { readOnlyHint: true } },
  { name: 'refund_order', description: 'Refund an order.', inputSchema: { $schema: 'http://json-schema.org/draft-07/schema#', ...schema('id') }, annotations: { destructiveHint: true } },
  { name: 'query', description: 'Run any query.', inputSchema: schema('sql') },
  { name: 'export_customers', description: 'Export every customer.', inputSchema: {} },
];
const answer = (id: string) => `{"result":{"tools":${JSON.stringify(live)}},"jsonrpc":"2.0","id":${id}}`;
const ids = new Set([1]);

function viewOf(spec: McpSpec, visible: string[], drifts: DriftRecord[]): ToolsView {
  return { spec, visible: new Set(visible), onDrift: (r) => drifts.push(r) };
}

// What the filter writes for `text`, worked out from scratch: the oracle.
const filtered = (text: string, view: ToolsView) => JSON.stringify(filterToolsJson(JSON.parse(text), ids, { ...view, onDrift: undefined, onList: undefined }));

// An answer filtered once through the handler's path, which remembers it.
function remembered(text: string, view: ToolsView): string {
  return rewrittenAnswer(text, JSON.parse(text), ids, () => view);
}

describe('tools/list answers known by their text', () => {
  it('answers an answer that differs only in its id from memory, exactly as the filter would, and reports its drift again', () => {
    const drifts: DriftRecord[] = [];
    const view = viewOf(specOf(), ['get_order', 'query', 'refund_order', 'export_customers'], drifts);
    const first = remembered(answer('1'), view);
    expect(JSON.parse(first).result.tools.map((t: { name: string }) => t.name)).toEqual(['get_order', 'refund_order']);
    expect(drifts).toHaveLength(1);
    for (const id of ['1', '2', '0', '-7', '123456789012345', '"abc"', '"req-1:2.x~y_z"', '""']) {
      const text = answer(id);
      expect(knownListAnswer(text, view), id).toBe(filtered(text, view));
    }
    expect(drifts).toHaveLength(9);
    expect(new Set(drifts.map((d) => JSON.stringify(d)))).toEqual(new Set([JSON.stringify({ added: ['export_customers'], removed: [], changed: [{ tool: 'query', fields: ['description'] }] })]));
  });

  it('reports the list again on every answer from memory, as a whole list or as a page', () => {
    const lists: Array<[DriftRecord, boolean]> = [];
    const view: ToolsView = { spec: specOf(), visible: new Set(['get_order', 'refund_order']), onList: (r, full) => lists.push([r, full]) };
    remembered(answer('1'), view);
    expect(knownListAnswer(answer('2'), view)).toBe(filtered(answer('2'), view));
    const record = { added: ['export_customers'], removed: [], changed: [{ tool: 'query', fields: ['description'] }] };
    expect(lists).toEqual([[record, true], [record, true]]);
    // A page of a paginated list: removals are not known there, and it is not a whole list.
    const page = (id: string) => answer(id).replace('"result":{"tools":', '"result":{"nextCursor":"p2","tools":').replace(JSON.stringify(live), JSON.stringify(live.slice(0, 2)));
    remembered(page('1'), view);
    expect(knownListAnswer(page('3'), view)).toBe(filtered(page('3'), view));
    expect(lists.slice(2)).toEqual([[{ added: [], removed: [], changed: [] }, false], [{ added: [], removed: [], changed: [] }, false]]);
  });

  it('hands each receiver a drift record of its own', () => {
    const drifts: DriftRecord[] = [];
    const view = viewOf(specOf(), ['refund_order'], drifts);
    remembered(answer('1'), view);
    drifts[0]!.added.push('changed by a receiver');
    knownListAnswer(answer('2'), view);
    knownListAnswer(answer('3'), view);
    drifts[1]!.changed.length = 0;
    knownListAnswer(answer('4'), view);
    expect(drifts[2]).toEqual(drifts[3]);
    expect(drifts[3]).toEqual({ added: ['export_customers'], removed: [], changed: [{ tool: 'query', fields: ['description'] }] });
  });

  it('filters again any answer that differs anywhere but in its id: every character replaced, removed or added', () => {
    const view = viewOf(specOf(), ['get_order', 'query', 'refund_order'], []);
    const text = answer('5');
    remembered(text, view);
    const [start, end] = idSpan(text)!;
    let known = 0;
    for (let i = 0; i <= text.length; i++) {
      const variants = [text.slice(0, i) + 'x' + text.slice(i), text.slice(0, i) + '7' + text.slice(i)];
      if (i < text.length) variants.push(text.slice(0, i) + text.slice(i + 1), text.slice(0, i) + (text[i] === '"' ? "'" : '"') + text.slice(i + 1));
      for (const v of variants) {
        const got = knownListAnswer(v, view);
        if (got === undefined) continue;
        // Only a change inside the id's own characters may be answered from memory, and then as filtered.
        expect(i >= start && i <= end, `${i}: ${v.slice(Math.max(0, i - 20), i + 20)}`).toBe(true);
        expect(got).toBe(filtered(v, view));
        known++;
      }
    }
    // Only `75` and `57` (a 7 added before or after the 5) leave a plain id.
    expect(known).toBe(2);
  });

  it('filters again an id that JSON writes otherwise, an escape, or text that is not one id', () => {
    const view = viewOf(specOf(), ['get_order', 'query', 'refund_order'], []);
    remembered(answer('1'), view);
    for (const id of ['-0', '1.0', '1e2', '01', '1234567890123456', '"a\\u0062"', '"a b"', '"é"', 'null', 'true', '{}', '[1]', '1,"result":{"tools":[]}', '1,"id":2', '"1","id":"2"']) {
      expect(knownListAnswer(answer(id), view), id).toBeUndefined();
    }
  });

  it('remembers no answer whose id is not one place to swap: named twice, through an escape, or only nested', () => {
    const view = viewOf(specOf(), ['get_order', 'query', 'refund_order'], []);
    const tools = JSON.stringify(live);
    // Each answer is remembered as sent with `1`, and asked for with `2` in the place that would be swapped.
    const cases = [
      (id: string) => `{"jsonrpc":"2.0","id":1,"id":${id},"result":{"tools":${tools}}}`,
      // JSON.parse reads the id through the escape (1), not the plain one the text shows first.
      (id: string) => `{"jsonrpc":"2.0","id":${id},"i\\u0064":1,"result":{"tools":${tools}}}`,
      (id: string) => `{"jsonrpc":"2.0","result":{"id":${id},"tools":${tools}}}`,
    ];
    for (const c of cases) {
      remembered(c('1'), view);
      expect(knownListAnswer(c('1'), view), c('1').slice(0, 40)).toBeUndefined();
      expect(knownListAnswer(c('2'), view), c('2').slice(0, 40)).toBeUndefined();
    }
    // A tool list that holds the marker's text: the id's place in the filtered text is not one place.
    const marked = `{"jsonrpc":"2.0","id":1,"result":{"tools":${JSON.stringify([{ ...live[2], description: 'Run a read-only query.', title: '\u0001warden-id\u0001' }])}}}`;
    remembered(marked, view);
    expect(knownListAnswer(marked.replace('"id":1', '"id":2'), view)).toBeUndefined();
  });

  it('keeps what an answer became per caller\'s view and per spec', () => {
    const spec = specOf();
    const reader = viewOf(spec, ['get_order', 'query'], []);
    const writer = viewOf(spec, ['get_order', 'query', 'refund_order'], []);
    remembered(answer('1'), reader);
    expect(knownListAnswer(answer('2'), writer)).toBeUndefined();
    // A tool name may hold any character: two views whose names join alike are still two views.
    expect(knownListAnswer(answer('2'), viewOf(spec, ['get_order","query'], []))).toBeUndefined();
    remembered(answer('1'), writer);
    expect(knownListAnswer(answer('2'), reader)).toBe(filtered(answer('2'), reader));
    expect(knownListAnswer(answer('2'), writer)).toBe(filtered(answer('2'), writer));
    expect(filtered(answer('2'), reader)).not.toBe(filtered(answer('2'), writer));
    // Another bundle's spec (a swap), even an equal one, starts with nothing remembered.
    expect(knownListAnswer(answer('2'), viewOf(specOf(), ['get_order', 'query'], []))).toBeUndefined();
  });

  it('remembers only a single answer with a tool list, to a body that asked for one', () => {
    const view = viewOf(specOf(), ['get_order', 'query', 'refund_order'], []);
    const error = (id: string) => `{"jsonrpc":"2.0","id":${id},"error":{"code":-32601,"message":"no tools here"}}`;
    expect(remembered(error('1'), view)).toBe(error('1'));
    expect(knownListAnswer(error('2'), view)).toBeUndefined();
    const batch = (id: string) => `[${answer(id)}]`;
    remembered(batch('1'), view);
    expect(knownListAnswer(batch('2'), view)).toBeUndefined();
    // Unasked for (no tools/list in the body): filtered, not remembered.
    const text = answer('1');
    expect(rewrittenAnswer(text, JSON.parse(text), new Set(), () => view)).toBe(filtered(text, view));
    expect(knownListAnswer(answer('2'), view)).toBeUndefined();
    expect(rewrittenAnswer('null', null, ids, () => view)).toBe('null');
  });

  it('forgets the oldest answers, and the oldest views of a large one, beyond its bounds', () => {
    const spec = specOf();
    const view = viewOf(spec, ['get_order', 'query', 'refund_order'], []);
    // Nine different lists (the unreviewed tool's description changes): the first is forgotten.
    const listed = (v: number) => (id: string) => answer(id).replace('Export every customer.', `Export every customer, take ${v}.`);
    for (let v = 0; v < 9; v++) remembered(listed(v)('1'), view);
    expect(knownListAnswer(listed(0)('2'), view)).toBeUndefined();
    for (let v = 1; v < 9; v++) expect(knownListAnswer(listed(v)('2'), view), `list ${v}`).toBe(filtered(listed(v)('2'), view));
    // A list with a large member the drift check does not compare, offered to 16 callers who see it.
    const big = `{"jsonrpc":"2.0","id":1,"result":{"tools":${JSON.stringify([{ ...live[0], _meta: { notes: 'n'.repeat(200_000) } }, live[1]])}}}`;
    const views = Array.from({ length: 16 }, (_, i) => viewOf(spec, ['get_order', `other_${i}`], []));
    for (const v of views) remembered(big, v);
    const known = views.map((v) => knownListAnswer(big.replace('"id":1', '"id":2'), v) !== undefined);
    // 2 Mi characters hold the list and 9 of its filtered texts: the newest are kept.
    expect(known).toEqual([...Array(7).fill(false), ...Array(9).fill(true)]);
    expect(knownListAnswer(big.replace('"id":1', '"id":2'), views[15]!)).toBe(filtered(big.replace('"id":1', '"id":2'), views[15]!));
    // The first answers are forgotten too: the large one took their room.
    expect(knownListAnswer(listed(8)('2'), view)).toBeUndefined();
  });

  it('finds the top-level id of a JSON object, wherever it is and however it is spaced', () => {
    const at = (t: string) => {
      const s = idSpan(t);
      return s && t.slice(s[0], s[1]);
    };
    expect(at('{"id":1}')).toBe('1');
    expect(at(' {\n "a" : {"id": 9, "b": ["}", "\\"id\\":3"]},\t"id" :\r"x\\"y" } ')).toBe('"x\\"y"');
    expect(at('{"result":{"id":1},"error":[{"id":2}],"id":-3}')).toBe('-3');
    expect(at('{"result":{"id":1}}')).toBeUndefined();
    expect(at('{}')).toBeUndefined();
    expect(at('[{"id":1}]')).toBeUndefined();
    expect(at('{"id":1,"id":2}')).toBeUndefined();
    expect(at('{"i\\u0064":1}')).toBeUndefined();
    expect(at('{"id":1} x')).toBeUndefined();
  });
});
