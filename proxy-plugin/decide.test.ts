import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PolicyInput } from '../formats/input.js';
import { copyPolicies } from '../test/support/proxy-fixtures.js';
import { startPlugin, type Plugin } from './plugin.js';

let plugin: Plugin;

beforeAll(async () => {
  const policies = await copyPolicies(['storefront'], (repo) => {
    const manifest = join(repo, 'workloads/storefront/workload.yaml');
    writeFileSync(manifest, readFileSync(manifest, 'utf8').replace('mode: enforce', 'mode: dry-run'));
  });
  plugin = await startPlugin({
    workload: 'storefront',
    bundleFile: join(policies.out, 'storefront.tar.gz'),
    verificationKey: readFileSync(join(policies.out, 'verification-key.pem'), 'utf8'),
    identity: {},
    logger: pino({ level: 'silent' }),
  });
});

afterAll(() => plugin?.close());

const anonymous = (method: string, path: string): PolicyInput => ({
  source: { principal: 'anonymous', authn: 'none', claims: {}, address: '127.0.0.1' },
  destination: plugin.gate.pipeline.destination,
  request: { method, path, segments: path.split('/').filter(Boolean), query: {}, headers: {} },
});

describe('dry-run mode from the bundle manifest', () => {
  it('lets a call the policy denies through and records it as dry-run-deny', () => {
    expect(plugin.source.current?.mode).toBe('dry-run');
    const v = plugin.gate.pipeline.decide(anonymous('POST', '/checkout'), { kind: 'http', via: 'proxy' });
    expect(v).toMatchObject({ allow: true, outcome: 'dry-run-deny' });
    expect(v.decision?.allow).toBe(false);
  });

  it('still allows what the policy allows', () => {
    expect(plugin.gate.pipeline.decide(anonymous('GET', '/products'), { kind: 'http', via: 'proxy' })).toMatchObject({ allow: true, outcome: 'allow' });
  });

  it('still refuses what never reached the policy', () => {
    const v = plugin.gate.pipeline.refuse(anonymous('GET', '/'), { kind: 'http', via: 'proxy' }, 'request refused: test', 400);
    expect(v).toMatchObject({ allow: false, outcome: 'deny', status: 400 });
  });
});
