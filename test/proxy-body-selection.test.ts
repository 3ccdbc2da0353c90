// A real `warden proxy` in front of a workload whose Rego reads one field of the JSON body: the pod
// hands the policy that field only (from the body's text, runtime/input-selection.ts), and every
// decision is the one the whole body gave: repeated keys, escaped keys, large bodies whose other fields
// are never read, malformed, too deep and too large bodies refused as before, the exact bytes forwarded.
import { describe, expect, it } from 'vitest';
import { servedWorkload } from './support/rego-workload.js';

const WORKLOAD = `apiVersion: warden.dev/v1alpha1
kind: Workload
name: ledger
namespace: shop
serviceAccount: ledger
mode: enforce
`;

const POLICY = `# Small payments only: the one field of the body this workload's policy reads (through a function).
package warden.workload

import rego.v1

small(payment) if payment.amount <= 100

allow if {
	input.request.method == "POST"
	small(input.request.body)
}
`;

const served = servedWorkload('ledger', { 'workload.yaml': WORKLOAD, 'policy.rego': POLICY }, ['--json-body', String(256 * 1024)]);

const post = (body: string) => fetch(`${served.proxyUrl}/pay`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });

describe('a policy that reads one field of the body, through warden proxy', () => {
  const filler = JSON.stringify(Array.from({ length: 3000 }, (_, i) => ({ id: i, note: 'never read by the policy' })));
  const cases: Array<[string, string, number]> = [
    ['a small amount', '{"amount": 5}', 201],
    ['a large amount', '{"amount": 500}', 403],
    ['a repeated key: the last one counts, as JSON.parse reads it', '{"amount": 5, "amount": 500}', 403],
    ['a repeated key, the small one last', '{"amount": 500, "amount": 5}', 201],
    ['an escaped key', '{"am\\u006funt": 5}', 201],
    ['the field nested one level down is another field', '{"payment": {"amount": 5}}', 403],
    ['a large body whose other fields are never read', `{"items": ${filler}, "amount": 5}`, 201],
    ['a large body, large amount last', `{"amount": 5, "items": ${filler}, "amount": 500}`, 403],
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
