// The admission target of `warden build`: policies/admission/ → one signed bundle with the guardrails
// and every Gatekeeper template as WASM modules, gated like workloads (opa check --strict, opa test),
// with errors that name the file to fix.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadAdmissionBundle } from '../admission/bundle.js';
import { resolveConfig } from '../admission/config.js';
import { memorySink } from '../admission/decision-sink.js';
import { createWebhook, trustFromPem } from '../admission/webhook.js';
import { buildAdmission } from '../engine/compiler/admission.js';
import { generateDevelopmentKey, loadSigningKey, type SigningKey } from '../engine/compiler/signing-key.js';
import { repoRoot } from '../engine/toolchain/paths.js';
import { EngineConnection } from '../runtime/engine-connection.js';

let dir: string;
let key: SigningKey;
const build = () => buildAdmission({ root: join(dir, 'policies'), out: join(dir, 'bundles'), key, commit: 'test', generation: 1, warden: '0.0.0', now: () => new Date('2026-11-25T12:00:00Z') });

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'warden-admission-build-'));
  cpSync(join(repoRoot, 'policies', 'admission'), join(dir, 'policies', 'admission'), { recursive: true });
  generateDevelopmentKey(join(dir, 'key.pem'));
  key = await loadSigningKey(join(dir, 'key.pem'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('warden build: admission target', () => {
  it('builds a signed bundle whose guardrails and Gatekeeper modules load with the verification key', async () => {
    const result = await build();
    expect(result).toMatchObject({ status: 'built', rules: { guardrails: true, templates: 1, constraints: 1 } });
    const policies = await loadAdmissionBundle(readFileSync(result!.bundle), trustFromPem(readFileSync(join(dir, 'key.pem.pub'), 'utf8')));
    expect(policies.revision).toBe(result!.revision);
    expect(policies.guardrails?.entrypoints).toContain('warden/admission/violations');
    expect(policies.gatekeeper.kinds).toEqual(['WardenRequiredLabels']);
    expect(policies.gatekeeper.constraints.map((c) => c.metadata.name)).toEqual(['workloads-have-a-team']);
  });

  it('does nothing the second time when nothing changed', async () => {
    await build();
    expect((await build())?.status).toBe('unchanged');
  });

  it('refuses a bundle whose signature does not verify with another key', async () => {
    const result = await build();
    generateDevelopmentKey(join(dir, 'other.pem'));
    await expect(loadAdmissionBundle(readFileSync(result!.bundle), trustFromPem(readFileSync(join(dir, 'other.pem.pub'), 'utf8')))).rejects.toThrow(/signature/);
  });

  it('names the file of a Constraint whose kind no template defines', async () => {
    writeFileSync(join(dir, 'policies', 'admission', 'gatekeeper', 'extra.yaml'), 'apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sNoSuchThing\nmetadata:\n  name: x\n');
    await expect(build()).rejects.toThrow(/gatekeeper\/extra\.yaml: Constraint x is of kind K8sNoSuchThing, which no ConstraintTemplate/);
  });

  it('fails when a guardrail Rego test fails, showing OPA’s report', async () => {
    writeFileSync(join(dir, 'policies', 'admission', 'broken_test.rego'), 'package warden.admission_test\n\nimport rego.v1\n\ntest_always_fails if false\n');
    await expect(build()).rejects.toThrow(/admission Rego tests fail[\s\S]*test_always_fails/);
  });

  it('refuses guardrail Rego outside package warden.admission', async () => {
    writeFileSync(join(dir, 'policies', 'admission', 'other.rego'), 'package platform.rules\n\nimport rego.v1\n\nx := 1\n');
    await expect(build()).rejects.toThrow(/other\.rego:1: package platform\.rules is not allowed here/);
  });

  it('a webhook keeps its admission bundle when offered one of an older generation, even built later and signed with the right key', async () => {
    const at = (iso: string, commit: string, generation: number) => buildAdmission({ root: join(dir, 'policies'), out: join(dir, `bundles-${commit}`), key, commit, generation, warden: '0.0.0', now: () => new Date(iso) });
    const newer = await at('2026-11-20T12:00:00Z', 'newer', 8);
    // An old engine pod re-created today rebuilds the earlier commit: a later build time, a lower generation.
    const older = await at('2026-11-25T12:00:00Z', 'older', 7);
    const served = join(dir, 'served.tar.gz');
    const serve = (b: typeof older) => writeFileSync(served, readFileSync(b!.bundle));
    serve(newer);
    const webhook = await createWebhook({ config: resolveConfig(), sink: memorySink(), sources: { admissionBundle: served, workloads: { folder: join(dir, 'bundles') }, trust: trustFromPem(readFileSync(join(dir, 'key.pem.pub'), 'utf8')) } });
    expect(webhook.deps.policies()?.revision).toBe(newer!.revision);
    serve(older);
    const r = await webhook.reload();
    expect(r.changed).toBe(false);
    expect(r.error).toMatch(new RegExp(`bundle ${older!.revision} is of generation 7, older than the loaded ${newer!.revision} \\(generation 8\\); keeping ${newer!.revision}`));
    expect(webhook.deps.policies()?.revision).toBe(newer!.revision);
  });

  it('a webhook pulling from the engine keeps its bundle when another replica serves its own build of the same revision', async () => {
    const at = (iso: string, out: string) => buildAdmission({ root: join(dir, 'policies'), out: join(dir, out), key, commit: 'same', generation: 3, warden: '0.0.0', now: () => new Date(iso) });
    const a = await at('2026-11-25T12:00:00Z', 'replica-a');
    const b = await at('2026-11-25T11:00:00Z', 'replica-b'); // same rules, built earlier: as a bundle, "older"
    expect(b!.revision).toBe(a!.revision);
    let serving = a!;
    let downloads = 0;
    const server = http.createServer((req, res) => {
      const etag = serving === a ? '"a"' : '"b"';
      if (req.headers['if-none-match'] === etag) return void res.writeHead(304).end();
      downloads++;
      res.writeHead(200, { etag, 'x-warden-revision': serving.revision }).end(readFileSync(serving.bundle));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const engine = new EngineConnection(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    try {
      const webhook = await createWebhook({ config: resolveConfig(), sink: memorySink(), sources: { admissionBundle: { engine }, workloads: { folder: join(dir, 'bundles') }, trust: trustFromPem(readFileSync(join(dir, 'key.pem.pub'), 'utf8')) } });
      const loaded = webhook.deps.policies();
      expect(loaded?.revision).toBe(a!.revision);
      serving = b!;
      expect(await webhook.reload()).toEqual({ changed: false });
      expect(await webhook.reload()).toEqual({ changed: false }); // and now If-None-Match "b": a 304
      expect(webhook.deps.policies()).toBe(loaded);
      expect(downloads).toBe(2);
    } finally {
      engine.close();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
