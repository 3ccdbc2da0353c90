// `warden diff` over 100,000 recorded decisions: build both revisions (warm compiler cache), replay
// spec-derived and recorded calls against both, for the example workload set. Figures only.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { SqliteStore } from '../engine/audit/sqlite-store.js';
import { buildRepo } from '../engine/compiler/build.js';
import { recordedCalls } from '../engine/diff/recorded.js';
import { review } from '../engine/diff/review.js';
import type { DecisionEvent } from '../formats/decision-event.js';
import { openBundle } from '../runtime/bundle.js';
import { generateInputs } from '../test/support/inputs.js';
import { policyWorkspace } from '../test/support/policy-repo.js';
import { median, type Figure } from './figure.js';

const RECORDED = Number(process.env.DIFF_BENCH_RECORDED ?? 100_000);

export async function run(): Promise<Figure[]> {
  const ws = policyWorkspace('warden-bench-diff-');
  const dir = mkdtempSync(join(tmpdir(), 'warden-bench-diff-store-'));
  try {
    // Recorded decisions: generated calls to every example workload, stored in a real SQLite audit store.
    const built = await buildRepo({ repo: ws.repo, out: ws.out, cwd: ws.dir });
    const store = SqliteStore.open(join(dir, 'audit.db'));
    const now = Date.now();
    let n = 0;
    const perWorkload = Math.ceil(RECORDED / built.workloads.length);
    for (const w of built.workloads) {
      const inputs = generateInputs(await openBundle(readFileSync(w.bundle), 'unsigned-ok'), perWorkload, 5).slice(0, perWorkload);
      for (let i = 0; i < inputs.length; i += 5000) {
        const batch: DecisionEvent[] = inputs.slice(i, i + 5000).map((input, k) => ({
          decision_id: `bench-diff-${w.workload}-${i + k}`,
          timestamp: new Date(now - (n++ % 86_400_000)).toISOString(),
          kind: input.mcp ? 'mcp' : 'http',
          outcome: 'allow',
          mode: 'enforce',
          labels: { workload: w.workload, namespace: w.namespace, source: 'proxy' },
          bundles: { [w.workload]: { revision: w.revision } },
          path: 'warden/decision',
          input: input as unknown as Record<string, unknown>,
          result: { allow: true, reasons: [] },
        }));
        await store.append(batch, now);
      }
    }
    // The change under review: storefront loses getOrder on orders (a narrowing).
    ws.edit('workloads/orders/openapi.yaml', '          - principal: spiffe://cluster.local/ns/shop/sa/storefront\n          - principal: spiffe://cluster.local/ns/agents/sa/ops-mcp', '          - principal: spiffe://cluster.local/ns/agents/sa/ops-mcp');
    ws.edit('workloads/orders/policy_test.rego', 'test_storefront_reads_an_order if', 'storefront_read_an_order if');
    const head = ws.commit('narrow getOrder');
    const times: number[] = [];
    let flips = 0;
    let replayed = 0;
    for (let r = 0; r < 3; r++) {
      const t0 = performance.now();
      const recorded = await recordedCalls(store, '2d', RECORDED, now);
      const result = await review({ repo: ws.repo, base: 'HEAD~1', head, cwd: ws.dir, recorded: (w) => recorded.get(w) ?? [] });
      times.push(performance.now() - t0);
      flips = result.totals['allow-to-deny'] + result.totals['deny-to-allow'];
      replayed = result.recordedCalls;
    }
    await store.close();
    return [
      { suite: 'diff', name: 'warden diff wall time', value: median(times) / 1000, unit: 's', detail: `${replayed} recorded calls replayed (of ${RECORDED} stored), ${flips} flips; median of 3` },
    ];
  } finally {
    ws.remove();
    rmSync(dir, { recursive: true, force: true });
  }
}
