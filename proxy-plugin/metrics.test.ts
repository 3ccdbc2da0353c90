import { describe, expect, it } from 'vitest';
import { PluginMetrics } from './metrics.js';

describe('PluginMetrics', () => {
  it('shows every decision and evaluation the hot path recorded once scraped, and counts none twice', async () => {
    const m = new PluginMetrics();
    // 5,000 evaluations: more than one batch is moved into the histogram before the scrape.
    for (let i = 0; i < 5000; i++) {
      m.evaluated(i % 10 === 0 ? 0.003 : 0.000015);
      m.decided(i % 4 === 0 ? 'deny' : 'allow', 'proxy');
    }
    m.decided('dry-run-deny', 'ext_authz');
    m.logQueue.set(17);
    const text = await m.registry.metrics();
    expect(text).toContain('warden_decision_log_queue_depth 17');
    expect(text).toContain('warden_policy_eval_seconds_count 5000');
    expect(text).toContain('warden_policy_eval_seconds_bucket{le="0.00002"} 4500');
    expect(text).toContain('warden_policy_eval_seconds_bucket{le="0.005"} 5000');
    expect(text).toContain('warden_decisions_total{outcome="allow",source="proxy"} 3750');
    expect(text).toContain('warden_decisions_total{outcome="deny",source="proxy"} 1250');
    expect(text).toContain('warden_decisions_total{outcome="dry-run-deny",source="ext_authz"} 1');
    m.decided('allow', 'proxy');
    const again = await m.registry.metrics();
    expect(again).toContain('warden_policy_eval_seconds_count 5000');
    expect(again).toContain('warden_decisions_total{outcome="allow",source="proxy"} 3751');
  });
});
