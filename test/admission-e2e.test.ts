// End to end against a real kube-apiserver (with etcd) on 127.0.0.1: the webhook built from the
// example policy repository is registered with a ValidatingWebhookConfiguration, and Deployments are
// created with @kubernetes/client-node exactly as a team would. What the API server answers — admitted,
// refused with which message, warned — is what a person sees. With kubectl installed, the refusal is
// also captured as `kubectl apply` prints it.
import { execFile } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { AdmissionregistrationV1Api, ApiException, AppsV1Api, CoreV1Api, type V1Deployment } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditCluster, formatAudit } from '../admission/audit.js';
import { generateCertificates } from '../admission/certs.js';
import { webhookConfiguration } from '../admission/manifests.js';
import { KubeNamespaces } from '../admission/namespaces.js';
import { InventoryGatekeeper, KubeInventory } from '../admission/inventory.js';
import { startWebhookServer, type WebhookServer } from '../admission/server.js';
import { buildExamplePolicies, deployment, webhookFor, type BuiltPolicies } from './support/admission-fixture.js';
import { startKubeApiServer, type KubeApiServer } from './support/kube-apiserver.js';

const execFileP = promisify(execFile);

// A Constraint that selects namespaces by label: production namespaces also need an owner label.
// A template that reads data.inventory: two Deployments of a namespace may not share an app label.
const UNIQUE_APP = `apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: wardenuniqueapp
spec:
  crd:
    spec:
      names:
        kind: WardenUniqueApp
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package wardenuniqueapp

        violation[{"msg": msg}] {
          app := input.review.object.metadata.labels.app
          other := data.inventory.namespace[input.review.namespace]["apps/v1"]["Deployment"][name]
          name != input.review.object.metadata.name
          other.metadata.labels.app == app
          msg := sprintf("app label %v is already used by Deployment %v", [app, name])
        }
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: WardenUniqueApp
metadata:
  name: unique-app-label
spec:
  match:
    kinds: [{ apiGroups: ["apps"], kinds: ["Deployment"] }]
`;

const PROD_OWNER = `apiVersion: constraints.gatekeeper.sh/v1beta1
kind: WardenRequiredLabels
metadata:
  name: prod-workloads-have-an-owner
spec:
  match:
    kinds: [{ apiGroups: ["apps"], kinds: ["Deployment"] }]
    namespaceSelector: { matchLabels: { env: prod } }
  parameters:
    labels: ["owner"]
`;

let kube: KubeApiServer;
let built: BuiltPolicies;
let server: WebhookServer;
let apps: AppsV1Api;
let webhookDeps: Awaited<ReturnType<typeof webhookFor>>['deps'];

/** The Status message of a refused API call. */
function refusal(err: unknown): string {
  if (!(err instanceof ApiException)) throw err;
  const body: unknown = typeof err.body === 'string' ? JSON.parse(err.body) : err.body;
  return (body as { message?: string }).message ?? '';
}

async function create(d: V1Deployment): Promise<{ allowed: true; warnings: string[] } | { allowed: false; message: string }> {
  try {
    const res = await apps.createNamespacedDeploymentWithHttpInfo({ namespace: 'shop', body: d });
    const warning = res.headers.warning ?? res.headers.Warning ?? '';
    return { allowed: true, warnings: warning ? warning.split(/,(?=\s*299 )/).map((w) => w.trim()) : [] };
  } catch (err) {
    return { allowed: false, message: refusal(err) };
  }
}

beforeAll(async () => {
  // --allow-privileged as in real clusters (kubeadm sets it), so privileged pods reach the webhook.
  [kube, built] = await Promise.all([startKubeApiServer({ extraArgs: ['--allow-privileged=true'] }), buildExamplePolicies({ 'admission/gatekeeper/prod-owner.yaml': PROD_OWNER, 'admission/gatekeeper/unique-app.yaml': UNIQUE_APP })]);
  const certs = await generateCertificates({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  // Deployments replicated into data.inventory with no caching, so each test sees the objects before it.
  const inventory = new InventoryGatekeeper(new KubeInventory(kube.kubeConfig, [{ apiVersion: 'apps/v1', kind: 'Deployment' }], 0));
  const webhook = await webhookFor(built, { namespaces: new KubeNamespaces(kube.kubeConfig), inventory });
  server = await startWebhookServer(webhook.deps, { certPem: certs.certPem, keyPem: certs.keyPem, host: '127.0.0.1', port: 0 });
  apps = kube.kubeConfig.makeApiClient(AppsV1Api);
  await kube.kubeConfig.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: 'shop' } } });
  await kube.kubeConfig.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: 'agents', labels: { env: 'prod' } } } });
  // A Deployment that predates the webhook: only the audit can find it.
  await apps.createNamespacedDeployment({ namespace: 'shop', body: deployment({ name: 'legacy', inject: false, app: { securityContext: { privileged: true } } }) });
  webhookDeps = webhook.deps;
  await kube.kubeConfig.makeApiClient(AdmissionregistrationV1Api).createValidatingWebhookConfiguration({
    body: webhookConfiguration({ namespace: 'warden-system', caPem: certs.caPem, url: `${server.url}/validate` }) as never,
  });
  // The API server picks up webhook configurations asynchronously: wait until a server-side dry run of a
  // refusable Deployment is refused by Warden (readiness by observation, with a deadline).
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await apps.createNamespacedDeployment({ namespace: 'shop', body: deployment({ name: 'probe', inject: false }), dryRun: 'All' });
    } catch (err) {
      if (refusal(err).includes('Warden refused')) break;
    }
    if (Date.now() > deadline) throw new Error('the API server did not start calling the Warden webhook within 30 s');
    await new Promise((r) => setTimeout(r, 100));
  }
}, 300_000);

afterAll(async () => {
  await server?.close();
  await kube?.stop();
  built?.cleanup();
});

describe('admission webhook registered with a real kube-apiserver', () => {
  it('admits a compliant Deployment of a workload with a signed bundle', async () => {
    const r = await create(deployment({ name: 'orders' }));
    expect(r).toEqual({ allowed: true, warnings: [] });
    const stored = await apps.readNamespacedDeployment({ name: 'orders', namespace: 'shop' });
    expect(stored.metadata?.uid).toBeTruthy();
  });

  it('refuses a Deployment whose pods would not be injected and tells the user to label the namespace', async () => {
    const r = await create(deployment({ name: 'no-plugin', inject: false }));
    expect(r.allowed).toBe(false);
    expect(r.allowed === false && r.message).toContain('admission webhook "validate.warden.dev" denied the request: Warden refused Deployment shop/no-plugin');
    expect(r.allowed === false && r.message).toContain('[coverage/injection]');
    expect(r.allowed === false && r.message).toContain('kubectl label namespace shop warden.dev/inject=enabled');
  });

  it('refuses a Deployment whose service account has no signed bundle', async () => {
    const r = await create(deployment({ name: 'payments', serviceAccount: 'payments' }));
    expect(r.allowed === false && r.message).toContain('[coverage/workload-bundle]');
    expect(r.allowed === false && r.message).toContain('service account payments in namespace shop is not a workload of the policy repository');
  });

  it('refuses a privileged container naming the container and field', async () => {
    const r = await create(deployment({ name: 'privileged', app: { securityContext: { privileged: true } } }));
    expect(r.allowed === false && r.message).toContain('[guardrails/no-privileged] (container app, spec.template.spec.containers[0].securityContext.privileged)');
  });

  it('refuses a Deployment violating the Gatekeeper constraint of the policy repository', async () => {
    const r = await create(deployment({ name: 'unlabelled', labels: { app: 'unlabelled' } }));
    expect(r.allowed === false && r.message).toContain('[gatekeeper/WardenRequiredLabels/workloads-have-a-team]');
    expect(r.allowed === false && r.message).toContain('Deployment unlabelled is missing required label(s) {"team"}');
  });

  it('applies a namespaceSelector constraint only in namespaces whose labels match', async () => {
    try {
      await apps.createNamespacedDeployment({ namespace: 'agents', body: deployment({ name: 'ops-mcp', serviceAccount: 'ops-mcp' }) });
      expect.unreachable('a Deployment without owner label in a prod namespace must be refused');
    } catch (err) {
      expect(refusal(err)).toContain('[gatekeeper/WardenRequiredLabels/prod-workloads-have-an-owner]');
    }
    const withOwner = deployment({ name: 'ops-mcp', serviceAccount: 'ops-mcp', labels: { app: 'ops-mcp', team: 'platform', owner: 'alice' } });
    await expect(apps.createNamespacedDeployment({ namespace: 'agents', body: withOwner })).resolves.toBeTruthy();
  });

  it('refuses with a Gatekeeper template that reads the replicated inventory', async () => {
    const r = await create(deployment({ name: 'orders-copy', labels: { app: 'orders', team: 'shop' } }));
    expect(r.allowed === false && r.message).toContain('[gatekeeper/WardenUniqueApp/unique-app-label] app label orders is already used by Deployment orders');
  });

  it('admits a warn-mode violation and the API server returns the warning to the client', async () => {
    const r = await create(deployment({ name: 'storefront', serviceAccount: 'storefront', app: { image: 'registry.example.com/shop/storefront:2.3.0' } }));
    expect(r.allowed).toBe(true);
    expect(r.allowed && r.warnings.join('\n')).toContain('[guardrails/image-digest]');
  });

  it('audits objects admitted before the webhook existed, like Gatekeeper audit', async () => {
    const entries = await auditCluster(kube.kubeConfig, webhookDeps);
    const legacy = entries.find((e) => e.name === 'legacy');
    expect(legacy?.findings.map((f) => `${f.set}/${f.rule}`)).toEqual(expect.arrayContaining(['coverage/injection', 'guardrails/no-privileged']));
    expect(entries.find((e) => e.name === 'orders')?.findings).toEqual([]);
    expect(formatAudit(entries)).toMatch(/object\(s\) audited, \d+ with findings, \d+ would be refused/);
  });

  it('shows the refusal to a kubectl user', async () => {
    expect(existsSync('/usr/bin/kubectl'), '/usr/bin/kubectl is missing: run node bin/setup.js --test').toBe(true);
    const kubeconfig = join(built.dir, 'kubeconfig');
    writeFileSync(kubeconfig, kube.kubeConfig.exportConfig());
    const file = join(built.dir, 'deployment.yaml');
    writeFileSync(file, stringify({ ...deployment({ name: 'web', serviceAccount: 'storefront', hostNetwork: true, app: { image: 'registry.example.com/shop/web:latest', securityContext: { privileged: true } } }), metadata: { name: 'web', namespace: 'shop', labels: { app: 'web' } } }));
    const out = await execFileP('/usr/bin/kubectl', ['--kubeconfig', kubeconfig, 'apply', '-f', file]).then(
      (r) => ({ code: 0, text: r.stdout + r.stderr }),
      (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? 1, text: `${e.stdout ?? ''}${e.stderr ?? ''}` }),
    );
    process.stdout.write(`\n$ kubectl apply -f deployment.yaml\n${out.text.replaceAll(file, 'deployment.yaml')}\n`);
    expect(out.code).not.toBe(0);
    expect(out.text).toContain('denied the request: Warden refused Deployment shop/web');
  });
});
