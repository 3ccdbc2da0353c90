// Regular expressions a caller chooses, through `warden proxy` started as a user starts it. OPA's WASM caches
// each compiled pattern on its heap, and Warden keeps that heap between evaluations (runtime/wasm-abi.ts);
// the cache corrupts the heap once it holds 100 patterns, so an evaluation that compiles that many is
// stopped and the call denied (fail closed), and evaluations that each compile fewer are decided as OPA
// decides them, whatever they compiled before. The upstream records what reached it.
import { describe, expect, it } from 'vitest';
import { servedWorkload, workloadYaml } from './support/rego-workload.js';

// A rule a platform team could write: a caller names the products it asks about by pattern.
const POLICY = `package warden.workload

import rego.v1

allow if input.request.method == "GET"

deny contains "a pattern names a blocked product" if {
	some p in input.request.query.match
	regex.match(p, "blocked-product")
}
`;

const served = servedWorkload('patterns', { 'workload.yaml': workloadYaml('patterns'), 'policy.rego': POLICY }, []);

// A GET naming `patterns` (one `match` value each); `tag` marks it for the upstream's record.
const ask = (patterns: string[], tag: string) =>
  fetch(`${served.proxyUrl}/products?${[...patterns.map((p) => `match=${encodeURIComponent(p)}`), `tag=${tag}`].join('&')}`);
const distinct = (from: number, n: number) => Array.from({ length: n }, (_, i) => `^product-${from + i}$`);
const reached = (tag: string) => served.upstream.seen.filter((r) => r.url.includes(`tag=${tag}`)).length;

describe('patterns a caller chooses, through warden proxy', () => {
  it('decides calls that each compile 60 new patterns as OPA does, call after call', async () => {
    for (let round = 0; round < 5; round++) {
      const r = await ask(distinct(round * 60, 60), `round-${round}`);
      expect({ round, status: r.status }).toEqual({ round, status: 200 });
    }
    const blocked = await ask([...distinct(1000, 59), 'blocked'], 'blocked');
    expect(blocked.status).toBe(403);
    expect(await blocked.text()).toContain('a pattern names a blocked product');
    expect([0, 1, 2, 3, 4].map((i) => reached(`round-${i}`))).toEqual([1, 1, 1, 1, 1]);
    expect(reached('blocked')).toBe(0);
  });

  it('denies a call that would compile 150 patterns in one evaluation (fail closed), never forwards it, and goes on serving', async () => {
    const many = await ask(distinct(2000, 150), 'many');
    expect(many.status).toBe(403);
    expect(await many.text()).toContain('the call could not be decided (fail closed)');
    expect(reached('many')).toBe(0);
    const after = await ask(distinct(3000, 10), 'after');
    expect(after.status).toBe(200);
    expect(reached('after')).toBe(1);
  });
});
