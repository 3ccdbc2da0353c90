// A real `warden proxy` in front of a workload whose Rego reads one field of the JSON body: the pod
// hands the policy that field only (from the body's text, runtime/input-selection.ts), and every
// decision is the one the whole body gave (a key the policy reads given twice is refused): escaped keys, large bodies whose other fields
// are never read, malformed, too deep and too large bodies refused as before, the exact bytes forwarded.
// These calls take the sidecar's fast path (its raw sockets), as every call not on an MCP path does.
import { describe, expect, it } from 'vitest';
import { exchange, statuses } from './support/raw-http.js';
import { servedWorkload, workloadYaml } from './support/rego-workload.js';

const POLICY = `# Small payments only: the field of the body this workload's policy reads (through a function), and its lines.
package warden.workload

import rego.v1

small(payment) if payment.amount <= 100

allow if {
	input.request.method == "POST"
	small(input.request.body)
}

# Each line of an order is read whole (an array's elements: the selection keeps them as they are).
deny contains "a line is too large" if {
	some line in input.request.body.lines
	line.amount > 100
}
`;

const served = servedWorkload('ledger', { 'workload.yaml': workloadYaml('ledger'), 'policy.rego': POLICY }, ['--json-body', String(256 * 1024)]);

const post = (body: string) => fetch(`${served.proxyUrl}/pay`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });

describe('a policy that reads one field of the body, through warden proxy', () => {
  const filler = JSON.stringify(Array.from({ length: 3000 }, (_, i) => ({ id: i, note: 'never read by the policy' })));
  const cases: Array<[string, string, number]> = [
    ['a small amount', '{"amount": 5}', 201],
    ['a large amount', '{"amount": 500}', 403],
    // OPA keeps the last of a repeated key, gjson and simdjson's on-demand API the first: refused (400).
    ['the key read given twice, the large one last', '{"amount": 5, "amount": 500}', 400],
    ['the key read given twice, the small one last (an app keeping the first reads 500)', '{"amount": 500, "amount": 5}', 400],
    ['the key read given twice, once escaped', '{"amount": 500, "am\\u006funt": 5}', 400],
    ['a key no rule reads given twice', '{"amount": 5, "note": "a", "note": "b"}', 201],
    ['an escaped key', '{"am\\u006funt": 5}', 201],
    ['the field nested one level down is another field', '{"payment": {"amount": 5}}', 403],
    ['a key that differs only by case from the one the policy reads (a Go app would read it)', '{"Amount": 500}', 400],
    ['that key beside the one read', '{"amount": 5, "AMOUNT": 500}', 400],
    ['a line above the limit', '{"amount": 5, "lines": [{"amount": 500}]}', 403],
    ['a line within it', '{"amount": 5, "lines": [{"amount": 50, "Note": "x"}]}', 201],
    ['a line whose key differs only by case from one the Rego names (kept whole, so checked against the names)', '{"amount": 5, "lines": [{"Amount": 500}]}', 400],
    ['a line giving a key the Rego names twice (kept whole, so checked against the names)', '{"amount": 5, "lines": [{"amount": 500, "amount": 50}]}', 400],
    ['a line giving a key nobody names twice', '{"amount": 5, "lines": [{"amount": 50, "note": "a", "note": "b"}]}', 201],
    ['a large body whose other fields are never read', `{"items": ${filler}, "amount": 5}`, 201],
    ['a large body, the key read given twice', `{"amount": 5, "items": ${filler}, "amount": 500}`, 400],
    ['a body that is an array', '[{"amount": 5}]', 403],
    ['a lone surrogate escaped in a field nobody reads', '{"note": "\\ud800", "amount": 5}', 201],
    ['malformed JSON', '{"amount": 5,}', 400],
    ['JSON nested deeper than 64 levels', `{"amount": 5, "x": ${'['.repeat(65)}${']'.repeat(65)}}`, 400],
    ['a body above --json-body', `{"amount": 5, "pad": "${'p'.repeat(300 * 1024)}"}`, 413],
  ];
  for (const [name, body, status] of cases) {
    it(`${name}: ${status === 201 ? 'forwarded' : status}`, async () => {
      const before = served.upstream.seen.length;
      const res = await post(body);
      await res.arrayBuffer();
      expect(res.status).toBe(status);
      if (status === 201) expect(served.upstream.seen[before]!.body.toString('utf8')).toBe(body);
      else expect(served.upstream.seen.length).toBe(before);
    });
  }
});

describe('JSON bodies on the fast path of warden proxy', () => {
  const port = () => Number(new URL(served.proxyUrl).port);
  // Calls forwarded on the fast path so far (warden_proxy_held_seconds counts only those).
  const fastCalls = async () => Number(/^warden_proxy_held_seconds_count (\S+)$/m.exec(await (await fetch(`${served.adminUrl}/metrics`)).text())?.[1]);
  const post = (body: string, ...extra: string[]) => `POST /pay HTTP/1.1\r\nHost: ledger\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra.map((h) => `${h}\r\n`).join('')}\r\n${body}`;
  // A request line inside a body: it must never be read as a request of its own.
  const smuggled = 'GET /smuggled HTTP/1.1\r\nHost: ledger\r\n\r\n';

  it('reads, decides and forwards pipelined JSON calls on one connection, each body exactly, arriving in pieces or not', async () => {
    const before = { fast: await fastCalls(), seen: served.upstream.seen.length };
    const bodies = ['{"amount": 1}', `{"note": ${JSON.stringify(smuggled)}, "amount": 2}`, '{"amount": 3}'];
    const all = post(bodies[0]!) + post(bodies[1]!) + post('{"amount": 500}') + post(bodies[2]!, 'Connection: close');
    const cut = all.indexOf('"amount": 2');
    const out = await exchange(port(), all.slice(0, cut), all.slice(cut, cut + 5), all.slice(cut + 5));
    expect(statuses(out)).toEqual([201, 201, 403, 201]);
    const seen = served.upstream.seen.slice(before.seen);
    expect(seen.map((r) => [r.url, r.body.toString('utf8')])).toEqual(bodies.map((b) => ['/pay', b]));
    expect(await fastCalls()).toBe(before.fast + 3);
  });

  it('refuses a malformed or too deep body once read (400), and keeps the connection for the next call', async () => {
    const before = served.upstream.seen.length;
    const out = await exchange(port(), post('{"amount": 5,}') + post(`{"x": ${'['.repeat(65)}${']'.repeat(65)}}`) + post('{"amount": 4}', 'Connection: close'));
    expect(statuses(out)).toEqual([400, 400, 201]);
    expect(out).toContain('the body is not valid JSON');
    expect(out).toContain('nests deeper than 64 levels');
    expect(served.upstream.seen.slice(before).map((r) => r.body.toString('utf8'))).toEqual(['{"amount": 4}']);
  });

  it('refuses a body over --json-body before reading it (413) and closes: what follows is never a request', async () => {
    const before = served.upstream.seen.length;
    const big = `{"amount": 5, "pad": "${'p'.repeat(300 * 1024)}", "then": ${JSON.stringify(smuggled)}}`;
    const out = await exchange(port(), post(big) + smuggled);
    expect(statuses(out)).toEqual([413]);
    expect(out).toMatch(/^connection: close\r$/im);
    expect(served.upstream.seen.length).toBe(before);
  });
});
