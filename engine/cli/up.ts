// `warden up`: the main job on embedded defaults — build policies/, then run a scripted scenario
// of real calls through the runtime and print the decision feed.
import type { Command } from 'commander';
import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { PolicyInput, Source } from '../../formats/input.js';
import { openBundle } from '../../runtime/bundle.js';
import { Policy } from '../../runtime/policy.js';
import { buildRepo } from '../compiler/build.js';
import { formatDiagnostic } from '../compiler/compile-error.js';

const spiffe = (ns: string, sa: string) => `spiffe://cluster.local/ns/${ns}/sa/${sa}`;
const mtls = (p: string): Source => ({ principal: p, authn: 'mtls', claims: {}, address: '10.0.0.7' });
const jwt = (sub: string, claims: Record<string, unknown>): Source => ({ principal: sub, authn: 'jwt', claims: { sub, ...claims }, address: '10.0.1.9' });

interface Step {
  say: string;
  workload: string;
  source: Source;
  method: string;
  path: string;
  mcp?: PolicyInput['mcp'];
}

const scenario: Step[] = [
  { say: 'storefront reads order 42', workload: 'orders', source: mtls(spiffe('shop', 'storefront')), method: 'GET', path: '/orders/42' },
  { say: 'storefront tries the accounting export', workload: 'orders', source: mtls(spiffe('shop', 'storefront')), method: 'GET', path: '/orders/export' },
  { say: 'billing invoicer runs the export', workload: 'orders', source: mtls(spiffe('billing', 'invoicer')), method: 'GET', path: '/orders/export' },
  { say: 'an admin without MFA deletes an order', workload: 'orders', source: jwt('bob', { role: 'admin', amr: ['pwd'] }), method: 'DELETE', path: '/orders/42' },
  { say: 'path trick: /orders/42/../export', workload: 'orders', source: mtls(spiffe('shop', 'storefront')), method: 'GET', path: '/orders/42/../export' },
  { say: 'anonymous visitor browses products', workload: 'storefront', source: { principal: 'anonymous', authn: 'none', claims: {}, address: '203.0.113.5' }, method: 'GET', path: '/products/sku-7' },
  { say: 'agent (tools:read) calls get_order', workload: 'ops-mcp', source: jwt('readonly-agent', { scope: 'tools:read' }), method: 'POST', path: '/mcp', mcp: { method: 'tools/call', tool: 'get_order', arguments: { id: '42' } } },
  { say: 'agent (tools:read tools:write) calls drop_table', workload: 'ops-mcp', source: jwt('support-agent', { scope: 'tools:read tools:write' }), method: 'POST', path: '/mcp', mcp: { method: 'tools/call', tool: 'drop_table', arguments: { table: 'orders' } } },
  { say: 'agent runs query "DELETE FROM orders"', workload: 'ops-mcp', source: jwt('readonly-agent', { scope: 'tools:read' }), method: 'POST', path: '/mcp', mcp: { method: 'tools/call', tool: 'query', arguments: { sql: 'DELETE FROM orders' } } },
];

export function registerUp(program: Command): void {
  program
    .command('up')
    .description('build policies/ and run the scripted scenario, printing the live decision feed (embedded defaults)')
    .option('--repo <dir>', 'policy repository', 'policies')
    .option('--out <dir>', 'bundle folder', 'bundles')
    .option('--scenario <name>', 'scenario to run: demo | none', 'demo')
    .action(async (flags: { repo: string; out: string; scenario: string }) => {
      process.stdout.write(`warden up: building ${flags.repo}/ …\n`);
      const result = await buildRepo({ repo: flags.repo, out: flags.out });
      for (const w of result.warnings) process.stderr.write(`${formatDiagnostic(w)}\n`);
      const trust = { keys: [{ id: result.keyId, algorithm: 'ES256' as const, key: createPublicKey(readFileSync(result.verificationKey)) }] };
      const policies = new Map<string, Policy>();
      for (const w of result.workloads) {
        policies.set(w.workload, await Policy.load(await openBundle(readFileSync(w.bundle), trust)));
        process.stdout.write(`  bundle ${w.workload.padEnd(12)} ${w.revision} (${w.status})\n`);
      }
      if (flags.scenario === 'none') return;
      process.stdout.write('\ndecision feed:\n');
      let allowed = 0;
      for (const s of scenario) {
        const policy = policies.get(s.workload)!;
        const segments = s.path.slice(1).split('/');
        const input: PolicyInput = {
          source: s.source,
          destination: { workload: s.workload, namespace: policy.bundle.manifest.metadata?.namespace ?? 'default', principal: String(policy.bundle.manifest.metadata?.principal ?? '') },
          request: { method: s.method, path: s.path, segments, query: {}, headers: {} },
          ...(s.mcp ? { mcp: s.mcp } : {}),
        };
        // Path normalization belongs to the proxy plugin: anything with dot segments is denied before policy.
        const ambiguous = segments.some((x) => x === '..' || x === '.');
        const d = ambiguous ? { allow: false, reasons: ['ambiguous path (dot segments) denied before policy'] } : policy.decide('warden/decision', input);
        if (d.allow) allowed++;
        process.stdout.write(`  ${d.allow ? 'ALLOW' : 'DENY '}  ${s.workload.padEnd(10)} ${s.say}\n         ${d.reasons.join('; ')}\n`);
      }
      process.stdout.write(`\nsummary: ${scenario.length} calls, ${allowed} allowed, ${scenario.length - allowed} denied\n`);
    });
}
