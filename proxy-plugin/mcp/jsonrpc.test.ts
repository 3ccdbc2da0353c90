import { describe, expect, it } from 'vitest';
import { asciiCharset } from '../json-body.js';
import { parseBody } from './jsonrpc.js';

const JSON_CT = 'application/json; charset=utf-8';
const parse = (v: unknown, ct = JSON_CT, encoding?: string) => parseBody(Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)), { 'content-type': ct, 'content-encoding': encoding });

describe('parseBody', () => {
  it('classifies requests, notifications and client responses of a batch in order', () => {
    const r = parse([
      { jsonrpc: '2.0', id: 1, method: 'tools/list' },
      { jsonrpc: '2.0', method: 'notifications/initialized' },
      { jsonrpc: '2.0', id: 'srv-1', result: { roots: [] } },
    ]);
    expect(r.ok && r.batch && r.messages.map((m) => m.kind)).toEqual(['request', 'notification', 'response']);
  });

  it('keeps a single message single', () => {
    const r = parse({ jsonrpc: '2.0', id: 1, method: 'ping' });
    expect(r.ok && r.batch).toBe(false);
  });

  it('treats the number 1 and the string "1" as different ids', () => {
    const r = parse([{ jsonrpc: '2.0', id: 1, method: 'ping' }, { jsonrpc: '2.0', id: '1', method: 'ping' }]);
    expect(r.ok).toBe(true);
  });

  it('refuses a message with both a method and a result', () => {
    const r = parse({ jsonrpc: '2.0', id: 1, method: 'ping', result: {} });
    expect(!r.ok && r.error.error?.code).toBe(-32600);
  });

  it('refuses positional params, which MCP never uses', () => {
    const r = parse({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: ['drop_table'] });
    expect(!r.ok && r.error.error?.code).toBe(-32600);
  });

  it('refuses a body without a JSON content type even when it holds valid JSON-RPC', () => {
    const r = parse({ jsonrpc: '2.0', id: 1, method: 'ping' }, 'application/x-www-form-urlencoded');
    expect(!r.ok && r.status).toBe(415);
  });

  it('refuses a body the server could decode otherwise: a charset other than UTF-8, a Content-Encoding', () => {
    const ping = { jsonrpc: '2.0', id: 1, method: 'ping' };
    for (const [ct, encoding] of [['application/json; charset=utf-7', undefined], ['application/json;charset="UTF-16"', undefined], ['application/json; charset=utf-8; charset=utf-7', undefined], ['application/json', 'gzip'], ['application/json', 'identity, br']] as const) {
      const r = parse(ping, ct, encoding);
      expect({ ct, encoding, refused: !r.ok && [r.status, r.error.error?.code] }).toEqual({ ct, encoding, refused: [415, -32600] });
    }
    for (const [ct, encoding] of [['application/json; charset=UTF-8', undefined], ['application/json; charset="utf8"', 'identity'], ['application/json', ' Identity ']] as const) expect(parse(ping, ct, encoding).ok).toBe(true);
  });

  it('refuses a message holding "_method", which Laravel reads as the request\'s method', () => {
    const r = parse({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'x', arguments: {} }, _method: 'DELETE' });
    expect(!r.ok && [r.status, r.error.error?.code, r.error.error?.message]).toEqual([400, -32600, expect.stringContaining('"_method"')]);
  });

  it('answers tools/call with non-object arguments with invalid params for its id', () => {
    const r = parse({ jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'query', arguments: 'DROP TABLE x' } });
    expect(r.ok && r.messages[0]).toMatchObject({ kind: 'invalid', error: { id: 4, error: { code: -32602 } } });
  });

  it('refuses a batch larger than the limit', () => {
    const r = parseBody(Buffer.from(JSON.stringify([1, 2, 3].map((id) => ({ jsonrpc: '2.0', id, method: 'ping' })))), { 'content-type': JSON_CT }, { maxBodyBytes: 1e6, maxBatch: 2, maxArgumentsBytes: 1e3 });
    expect(!r.ok && r.error.error?.message).toMatch(/more than 2/);
  });
});

describe('asciiCharset', () => {
  it('accepts no charset and those that read ASCII as UTF-8 does, in any spelling, and refuses the others', () => {
    const ok = [undefined, '', 'application/json', 'application/json; charset=utf-8', 'text/html; Charset="ISO-8859-1"', 'text/plain;charset=us-ascii', 'text/html; charset=windows-1252', 'text/event-stream; foo=bar'];
    const refused = ['application/json; charset=utf-16', 'text/event-stream; charset=UTF-16LE', 'text/event-stream; charset="utf-7"', 'text/html; charset=cp500', 'application/json; charset=utf-32be', 'application/json; charset=utf-8; charset=utf-16'];
    expect(ok.map(asciiCharset)).toEqual(ok.map(() => true));
    expect(refused.map(asciiCharset)).toEqual(refused.map(() => false));
  });
});
