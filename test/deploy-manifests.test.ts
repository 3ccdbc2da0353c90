// deploy/ as a cluster sees it: every YAML parses, the committed files are what deploy/manifests.ts
// generates, the kustomizations resolve, and a real kube-apiserver accepts every object in a
// server-side dry run (schema, defaulting and validation of the API server itself, no mocks).
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { dirname, join, relative } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CoreV1Api, type KubernetesObject } from '@kubernetes/client-node';
import { parse, parseAllDocuments } from 'yaml';
import { renderFiles } from '../deploy/render.js';
import { dryRunCreate } from './support/kube-apiserver.js';
import { kubeApiServerForSuite } from './support/kube-suite.js';

const execFileP = promisify(execFile);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const deployDir = join(root, 'deploy');
const KUBECTL = '/usr/bin/kubectl';

// Plain YAML files (the Helm chart's templates are Go templates: test/helm.test.ts renders them).
function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return name === 'helm' ? [] : yamlFiles(p);
    return /\.ya?ml$/.test(name) ? [p] : [];
  });
}

function parseFile(path: string): KubernetesObject[] {
  const docs = parseAllDocuments(readFileSync(path, 'utf8'));
  for (const d of docs) if (d.errors.length) throw new Error(`${relative(root, path)}: ${d.errors.map((e) => e.message).join('; ')}`);
  return docs.map((d) => d.toJS() as KubernetesObject).filter((o) => o !== null);
}

/**
 * The part of `kustomize build` these kustomizations use: `resources` (files or folders with their
 * own kustomization.yaml), in order, plus an optional `namespace`. Anything else is refused so that
 * a new transformer cannot be silently skipped here.
 */
function kustomizeResources(dir: string): KubernetesObject[] {
  const k = parse(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as Record<string, unknown>;
  const unsupported = Object.keys(k).filter((key) => !['apiVersion', 'kind', 'resources', 'namespace'].includes(key));
  if (unsupported.length) throw new Error(`${relative(root, dir)}/kustomization.yaml uses ${unsupported.join(', ')}: compare with kubectl kustomize instead`);
  const out: KubernetesObject[] = [];
  for (const r of (k['resources'] as string[] | undefined) ?? []) {
    const p = join(dir, r);
    out.push(...(statSync(p).isDirectory() ? kustomizeResources(p) : parseFile(p)));
  }
  const ns = k['namespace'] as string | undefined;
  return ns ? out.map((o) => (o.kind === 'Namespace' || !o.metadata ? o : { ...o, metadata: { ...o.metadata, namespace: ns } })) : out;
}

const key = (o: KubernetesObject) => `${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
const kustomizations = ['base', 'examples/sidecar'];

describe('deploy/ manifests', () => {
  it('every YAML file parses, and each object has apiVersion, kind and a name', () => {
    const files = yamlFiles(deployDir);
    expect(files.length).toBeGreaterThanOrEqual(7);
    for (const f of files) {
      const objs = parseFile(f);
      expect(objs.length, relative(root, f)).toBeGreaterThan(0);
      for (const o of objs) {
        expect(o.apiVersion, relative(root, f)).toBeTruthy();
        expect(o.kind, relative(root, f)).toBeTruthy();
        if (o.kind !== 'Kustomization') expect(o.metadata?.name, relative(root, f)).toBeTruthy();
      }
    }
  });

  it('the committed YAML is what deploy/manifests.ts generates (run `npx tsx deploy/generate.ts`)', () => {
    for (const [path, text] of Object.entries(renderFiles())) expect(readFileSync(join(deployDir, path), 'utf8'), path).toBe(text);
  });

  it('the base has what the cluster needs, wired as documented', () => {
    const objs = kustomizeResources(join(deployDir, 'base'));
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- walking parsed YAML by known paths
    const byKey = new Map(objs.map((o) => [key(o), o as KubernetesObject & Record<string, any>]));
    expect([...byKey.keys()].sort()).toEqual([
      'ClusterRole//warden-admission', 'ClusterRoleBinding//warden-admission', 'ConfigMap/warden-system/warden-admission-config', 'Deployment/warden-system/warden-admission',
      'Deployment/warden-system/warden-engine', 'MutatingWebhookConfiguration//warden-admission', 'Namespace//warden-system', 'PodDisruptionBudget/warden-system/warden-admission',
      'PodDisruptionBudget/warden-system/warden-engine', 'Service/warden-system/warden-admission', 'Service/warden-system/warden-engine',
      'ServiceAccount/warden-system/warden-admission', 'ServiceAccount/warden-system/warden-engine', 'ValidatingWebhookConfiguration//warden-admission',
    ]);
    const vwc = byKey.get('ValidatingWebhookConfiguration//warden-admission')!;
    expect(vwc.webhooks[0].failurePolicy).toBe('Fail');
    expect(vwc.webhooks[0].namespaceSelector.matchExpressions[0].values).toEqual(['kube-system', 'warden-system']);
    expect(vwc.metadata?.annotations?.['cert-manager.io/inject-ca-from']).toBe('warden-system/warden-admission-tls');
    expect(vwc.webhooks[0].rules[0].resources).toEqual(['pods/ephemeralcontainers', 'pods']);
    // The injector: labelled namespaces to /mutate, annotated pods elsewhere to /mutate/annotated; reinvoked if needed, failing closed.
    const mwc = byKey.get('MutatingWebhookConfiguration//warden-admission')!;
    expect(mwc.webhooks.map((w: { clientConfig: { service: { path: string } } }) => w.clientConfig.service.path)).toEqual(['/mutate', '/mutate/annotated']);
    for (const w of mwc.webhooks) expect([w.failurePolicy, w.reinvocationPolicy, w.rules[0].operations]).toEqual(['Fail', 'IfNeeded', ['CREATE']]);
    expect(mwc.webhooks[0].namespaceSelector.matchLabels).toEqual({ 'warden.dev/inject': 'enabled' });
    const engine = byKey.get('Deployment/warden-system/warden-engine')!;
    expect(engine.spec.replicas).toBe(2);
    expect(engine.spec.template.spec.automountServiceAccountToken).toBe(false);
    const webhook = byKey.get('Deployment/warden-system/warden-admission')!;
    for (const d of [engine, webhook]) {
      expect(d.spec.template.spec.securityContext.runAsNonRoot).toBe(true);
      for (const c of [...d.spec.template.spec.containers, ...(d.spec.template.spec.initContainers ?? [])]) {
        expect(c.securityContext.readOnlyRootFilesystem, c.name).toBe(true);
        expect(c.resources.requests, c.name).toBeTruthy();
      }
    }
    // No pod holds the signing key: CI builds, signs and pushes; engine replicas mirror what it pushed
    // (they never build), and everything in the cluster checks bundles with the public key.
    const holdsSigningKey = (d: typeof engine) => (d.spec.template.spec.volumes as Array<{ secret?: { secretName?: string } }>).some((v) => v.secret?.secretName === 'warden-signing-key');
    expect([holdsSigningKey(engine), holdsSigningKey(webhook)]).toEqual([false, false]);
    expect(engine.spec.template.spec.initContainers).toBeUndefined();
    const engineArgs = engine.spec.template.spec.containers[0].args as string[];
    expect(engineArgs.slice(engineArgs.indexOf('--bundles-from'), engineArgs.indexOf('--bundles-from') + 2)).toEqual(['--bundles-from', 'oci://registry.example.com/platform/warden-bundles:main']);
    const args = webhook.spec.template.spec.containers[0].args as string[];
    expect(args).not.toContain('--admission-bundle');
    expect(args.slice(args.indexOf('--engine'), args.indexOf('--engine') + 2)).toEqual(['--engine', 'https://warden-engine.warden-system.svc:8443']);
    expect(webhook.spec.template.spec.volumes).toContainEqual({ name: 'verification-key', configMap: { name: 'warden-verification-key' } });
    // No cluster-wide rights for the engine: the only binding is the webhook's.
    expect(objs.filter((o) => o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding').map(key)).toEqual(['ClusterRoleBinding//warden-admission']);
  });

  it('the Dockerfile builds the OPA version pinned in tools.json', () => {
    const pinned = (JSON.parse(readFileSync(join(root, 'tools.json'), 'utf8')) as { opa: { version: string } }).opa.version;
    expect(readFileSync(join(root, 'Dockerfile'), 'utf8')).toMatch(new RegExp(`^ARG OPA_VERSION=${pinned.replace(/\./g, '\\.')}$`, 'm'));
    expect(existsSync(join(root, '.dockerignore'))).toBe(true);
  });

  it('kubectl kustomize builds the same objects', async () => {
    // `node bin/setup.js --test` installs kubectl; without it this fails rather than skipping.
    expect(existsSync(KUBECTL), `${KUBECTL} is missing: run node bin/setup.js --test`).toBe(true);
    for (const k of kustomizations) {
      const { stdout } = await execFileP(KUBECTL, ['kustomize', join(deployDir, k)]);
      const built = parseAllDocuments(stdout).map((d) => d.toJS() as KubernetesObject);
      expect(built.map(key).sort(), k).toEqual(kustomizeResources(join(deployDir, k)).map(key).sort());
    }
  });

  describe('against a real kube-apiserver', () => {
    const kube = kubeApiServerForSuite();

    it('accepts every object in a server-side dry run (namespaces created for real first)', async () => {
      const objects = kustomizations.flatMap((k) => kustomizeResources(join(deployDir, k)));
      const { accepted, refused } = await dryRunCreate(kube().kubeConfig, objects);
      expect(refused).toEqual([]);
      expect(accepted).toHaveLength(objects.length - 2);
      // Dry run means nothing was stored.
      const { items } = await kube().kubeConfig.makeApiClient(CoreV1Api).listNamespacedServiceAccount({ namespace: 'warden-system' });
      expect(items.map((s) => s.metadata?.name)).not.toContain('warden-engine');
    });
  });
});
