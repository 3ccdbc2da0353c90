// A webhook built from the example policy repository exactly as in production: `warden build` into a
// temp folder (signed bundles + admission.tar.gz), verification with the written public key, the
// bundles folder answering coverage. Plus Deployments shaped the way teams write them.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Deployment } from '@kubernetes/client-node';
import { buildRepo } from '../../engine/compiler/build.js';
import { repoRoot } from '../../engine/toolchain/paths.js';
import { resolveConfig, type AdmissionConfigFile } from '../../admission/config.js';
import { memorySink } from '../../admission/decision-sink.js';
import { createWebhook, trustFromPem, type Webhook } from '../../admission/webhook.js';
import type { WorkloadDirectory } from '../../admission/coverage.js';
import type { NamespaceDirectory } from '../../admission/namespaces.js';
import type { InventoryGatekeeper } from '../../admission/inventory.js';
import { EngineConnection } from '../../runtime/engine-connection.js';
import { copyOfExamplePolicies } from './example-policies.js';

/** A built policy repository in a temp dir. */
export interface BuiltPolicies {
  dir: string;
  bundles: string;
  verificationKeyPem: string;
  cleanup(): void;
}

/**
 * The example policies built: a copy of the run's shared build as they are, or, when `extra` adds files to a copy
 * of the repository (path relative to policies/ → content), a build of that copy in a fresh temp folder.
 */
export async function buildExamplePolicies(extra: Record<string, string> = {}): Promise<BuiltPolicies> {
  if (Object.keys(extra).length === 0) {
    // The repository as it is: a private copy of the run's shared build (tests write certificates beside it).
    const copy = await copyOfExamplePolicies(undefined, 'warden-admission-test-');
    return { dir: copy.dir, bundles: copy.out, verificationKeyPem: readFileSync(copy.verificationKey, 'utf8'), cleanup: () => rmSync(copy.dir, { recursive: true, force: true }) };
  }
  const dir = mkdtempSync(join(tmpdir(), 'warden-admission-test-'));
  const bundles = join(dir, 'bundles');
  let repo = join(repoRoot, 'policies');
  if (Object.keys(extra).length > 0) {
    cpSync(repo, join(dir, 'policies'), { recursive: true });
    repo = join(dir, 'policies');
    for (const [path, content] of Object.entries(extra)) writeFileSync(join(repo, path), content);
  }
  await buildRepo({ repo, out: bundles, cwd: dir });
  return { dir, bundles, verificationKeyPem: readFileSync(join(bundles, 'verification-key.pem'), 'utf8'), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A webhook over built policies, its decisions kept in memory. */
export async function webhookFor(built: BuiltPolicies, opts: { config?: AdmissionConfigFile; directory?: WorkloadDirectory; engine?: string; namespaces?: NamespaceDirectory; inventory?: InventoryGatekeeper } = {}): Promise<Webhook & { sink: ReturnType<typeof memorySink> }> {
  const sink = memorySink();
  const webhook = await createWebhook({
    config: resolveConfig(opts.config),
    sink,
    ...(opts.namespaces ? { namespaces: opts.namespaces } : {}),
    ...(opts.inventory ? { inventory: opts.inventory } : {}),
    ...(opts.directory ? { directory: opts.directory } : {}),
    sources: {
      admissionBundle: join(built.bundles, 'admission.tar.gz'),
      workloads: opts.engine ? { engine: new EngineConnection(opts.engine) } : { folder: built.bundles },
      trust: trustFromPem(built.verificationKeyPem),
    },
  });
  return { ...webhook, sink };
}

/** An image that passes every guardrail (allowed registry, fixed tag, digest). */
export const GOOD_IMAGE = 'registry.example.com/shop/orders:1.4.2@sha256:4f5e6d7c8b9a0f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0';
export const PROXY_IMAGE = 'ghcr.io/warden-dev/warden-proxy:0.1.0@sha256:0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9';

type Container = NonNullable<NonNullable<V1Deployment['spec']>['template']['spec']>['containers'][number];

/** What to vary from the compliant Deployment. */
export interface DeploymentShape {
  name: string;
  serviceAccount?: string;
  inject?: boolean;
  labels?: Record<string, string>;
  app?: Partial<Container>;
  hostNetwork?: boolean;
}

/** A Deployment that Warden admits, unless the shape says otherwise. */
export function deployment(shape: DeploymentShape): V1Deployment {
  const labels = { app: shape.name };
  const app: Container = {
    name: 'app',
    image: GOOD_IMAGE,
    resources: { limits: { cpu: '500m', memory: '256Mi' }, requests: { cpu: '100m', memory: '128Mi' } },
    ...shape.app,
  };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: shape.name, labels: shape.labels ?? { app: shape.name, team: 'shop' } },
    spec: {
      replicas: 1,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels, annotations: shape.inject === false ? {} : { 'warden.dev/inject': 'true' } },
        spec: {
          serviceAccountName: shape.serviceAccount ?? 'orders',
          securityContext: { runAsNonRoot: true },
          ...(shape.hostNetwork ? { hostNetwork: true } : {}),
          containers: [app],
        },
      },
    },
  };
}

/** Wrap an object in an AdmissionReview v1 request, as the API server sends it. */
export function admissionReview(object: { apiVersion?: string; kind?: string; metadata?: { name?: string; generateName?: string; labels?: Record<string, string> }; spec?: unknown }, namespace: string, operation: 'CREATE' | 'UPDATE' = 'CREATE', uid = '705ab4f5-6393-11e8-b7cc-42010a800002'): Record<string, unknown> {
  const [group, version] = (object.apiVersion ?? 'v1').includes('/') ? (object.apiVersion as string).split('/') : ['', object.apiVersion ?? 'v1'];
  const plural = `${(object.kind ?? '').toLowerCase()}s`;
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group, version, kind: object.kind },
      resource: { group, version, resource: plural },
      requestKind: { group, version, kind: object.kind },
      requestResource: { group, version, resource: plural },
      name: object.metadata?.name,
      namespace,
      operation,
      userInfo: { username: 'alice@example.com', groups: ['system:authenticated'] },
      object,
      oldObject: operation === 'UPDATE' ? object : null,
      dryRun: false,
      options: { apiVersion: 'meta.k8s.io/v1', kind: operation === 'CREATE' ? 'CreateOptions' : 'UpdateOptions' },
    },
  };
}

/** The Pod a controller would create from a Deployment's template (a bare Pod, as the webhook sees it). */
export function podOf(d: V1Deployment): { apiVersion: string; kind: string; metadata: Record<string, unknown>; spec: Record<string, unknown> } {
  const t = d.spec!.template;
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name: `${d.metadata?.name ?? 'pod'}-abcde`, ...(t.metadata as Record<string, unknown>) }, spec: t.spec as unknown as Record<string, unknown> };
}
