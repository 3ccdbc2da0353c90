// Injection end to end, through a real kube-apiserver (with etcd) and a real kube-controller-manager:
// `kubectl apply` of a Deployment into a namespace labelled warden.dev/inject=enabled makes a
// ReplicaSet that makes Pods, and the Pods the API server stores carry the injected sidecar and
// interception init. Pods stay Pending (no scheduler); test/interception.test.ts runs what they say.
// Fakes of the sidecar are refused by the validating webhook with messages that say how to get
// injected; `kubectl debug`'s ephemeral containers reach the webhook too. In an unlabelled namespace
// (agents) only pods annotated for it are injected.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { AdmissionregistrationV1Api, ApiException, CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateCertificates } from '../admission/certs.js';
import { mutatingWebhookConfiguration, webhookConfiguration } from '../admission/manifests.js';
import { KubeNamespaces } from '../admission/namespaces.js';
import { startWebhookServer, type WebhookServer } from '../admission/server.js';
import { buildExamplePolicies, deployment, podOf, PROXY_IMAGE, webhookFor, type BuiltPolicies } from './support/admission-fixture.js';
import { startKubeApiServer, type KubeApiServer } from './support/kube-apiserver.js';
import { until } from './support/until.js';

const execFileP = promisify(execFile);

let kube: KubeApiServer;
let built: BuiltPolicies;
let server: WebhookServer;
let core: CoreV1Api;
let stored: V1Pod[];

function refusal(err: unknown): string {
  if (!(err instanceof ApiException)) throw err;
  const body: unknown = typeof err.body === 'string' ? JSON.parse(err.body) : err.body;
  return (body as { message?: string }).message ?? '';
}

async function createPod(namespace: string, pod: V1Pod): Promise<{ allowed: true; pod: V1Pod } | { allowed: false; message: string }> {
  try {
    return { allowed: true, pod: await core.createNamespacedPod({ namespace, body: pod }) };
  } catch (err) {
    return { allowed: false, message: refusal(err) };
  }
}

// A stored, injected Pod as a new object (what an attacker would copy and alter).
function copyOf(p: V1Pod, name: string): V1Pod {
  const spec = structuredClone(p.spec!);
  delete spec.nodeName;
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, labels: { app: 'fake' }, annotations: p.metadata?.annotations ?? {} }, spec };
}

const proxyOf = (p: V1Pod) => p.spec!.initContainers!.find((c) => c.name === 'warden-proxy')!;

beforeAll(async () => {
  [kube, built] = await Promise.all([startKubeApiServer({ controllers: ['deployment', 'replicaset'], extraArgs: ['--allow-privileged=true'] }), buildExamplePolicies()]);
  const certs = await generateCertificates({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const webhook = await webhookFor(built, { config: { injection: { proxyImage: PROXY_IMAGE } }, namespaces: new KubeNamespaces(kube.kubeConfig, 0) });
  server = await startWebhookServer(webhook.deps, { certPem: certs.certPem, keyPem: certs.keyPem, host: '127.0.0.1', port: 0 });
  core = kube.kubeConfig.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: 'shop', labels: { 'warden.dev/inject': 'enabled' } } } });
  await core.createNamespace({ body: { metadata: { name: 'agents' } } });
  for (const sa of ['orders', 'storefront']) await core.createNamespacedServiceAccount({ namespace: 'shop', body: { metadata: { name: sa } } });
  await core.createNamespacedServiceAccount({ namespace: 'agents', body: { metadata: { name: 'ops-mcp' } } });
  const admission = kube.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
  const opts = { namespace: 'warden-system', caPem: certs.caPem, url: `${server.url}/validate` };
  await admission.createMutatingWebhookConfiguration({ body: mutatingWebhookConfiguration(opts) as never });
  await admission.createValidatingWebhookConfiguration({ body: webhookConfiguration(opts) as never });
  // The API server picks up webhook configurations asynchronously: wait until a dry run comes back injected.
  const probe = podOf(deployment({ name: 'probe', inject: false })) as unknown as V1Pod;
  await until('the API server to call the Warden injector', async () => {
    const p = await core.createNamespacedPod({ namespace: 'shop', body: probe, dryRun: 'All' }).catch(() => undefined);
    return p?.spec?.initContainers?.some((c) => c.name === 'warden-proxy') ? true : undefined;
  }, 30_000);
}, 300_000);

afterAll(async () => {
  await server?.close();
  await kube?.stop();
  built?.cleanup();
});

describe('injection through a real API server and controller manager', () => {
  it('kubectl apply of a Deployment into a labelled namespace gives stored, injected Pods', async () => {
    const kubeconfig = join(built.dir, 'kubeconfig');
    writeFileSync(kubeconfig, kube.kubeConfig.exportConfig());
    const d = deployment({ name: 'orders', inject: false, app: { ports: [{ containerPort: 8080 }], readinessProbe: { httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 3 } } });
    d.spec!.replicas = 2;
    const file = join(built.dir, 'deployment.yaml');
    writeFileSync(file, stringify({ ...d, metadata: { ...d.metadata, namespace: 'shop' } }));
    const out = await execFileP('kubectl', ['--kubeconfig', kubeconfig, 'apply', '-f', file]);
    expect(out.stdout).toContain('deployment.apps/orders created');
    stored = await until('two Pods from the ReplicaSet', async () => {
      const list = await core.listNamespacedPod({ namespace: 'shop', labelSelector: 'app=orders' });
      return list.items.length === 2 ? list.items : undefined;
    }, 60_000);
    const pod = stored[0]!;
    process.stdout.write(`\n$ kubectl get pod ${pod.metadata?.name} -n shop  (containers)\n${[...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].map((c) => `  ${c.name}  ${c.image}  ${(c.args ?? []).join(' ')}`).join('\n')}\n`);
    for (const p of stored) {
      expect(p.metadata?.ownerReferences?.[0]?.kind).toBe('ReplicaSet');
      expect(p.spec?.initContainers?.map((c) => c.name)).toEqual(['warden-init', 'warden-proxy']);
      expect(p.spec?.containers?.map((c) => c.name)).toEqual(['app']);
      expect(proxyOf(p)).toMatchObject({ image: PROXY_IMAGE, restartPolicy: 'Always' });
      expect(proxyOf(p).args).toEqual(expect.arrayContaining(['--workload', 'orders', '--inbound', '[::]:15101=http://127.0.0.1:8080']));
      expect(p.spec?.initContainers?.[0]?.args).toEqual(['init-net', '--redirect', '8080=15101', '--admin-port', '15020']);
      // The kubelet's probe goes to the sidecar, which makes the original one on loopback.
      expect(p.spec?.containers?.[0]?.readinessProbe).toMatchObject({ httpGet: { path: '/app-health/app/readyz', port: 15020, scheme: 'HTTP' }, periodSeconds: 3 });
      expect(proxyOf(p).args).toEqual(expect.arrayContaining(['--app-probes', '{"/app-health/app/readyz":{"kind":"http","port":8080,"path":"/healthz","scheme":"HTTP","headers":[],"timeoutSeconds":1}}']));
      expect(p.metadata?.annotations?.['warden.dev/injected']).toMatch(/^orders@/);
    }
  });

  it('injects a pod annotated for it in an unlabelled namespace (the annotation leads to the real sidecar, never stands for it)', async () => {
    const r = await createPod('agents', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'asked', annotations: { 'warden.dev/inject': 'true' } }, spec: { serviceAccountName: 'ops-mcp', securityContext: { runAsNonRoot: true }, containers: [{ name: 'app', image: deployment({ name: 'x' }).spec!.template.spec!.containers[0]!.image!, resources: { limits: { cpu: '1', memory: '1Gi' } } }] } });
    expect(r.allowed ? r.pod.spec?.initContainers?.map((c) => c.name) : r.message).toEqual(['warden-init', 'warden-proxy']);
  });

  const fakes: Array<[string, (p: V1Pod) => void, string]> = [
    ['a fake warden-proxy image', (p) => void (proxyOf(p).image = 'registry.example.com/evil/proxy:1.0@sha256:' + 'e'.repeat(64)), '[coverage/proxy-image]'],
    // Warden's volumes stay, so the injector leaves the pod alone: the annotations are all it has.
    ['the annotations alone (inject, injected) with no sidecar', (p) => {
      p.metadata!.annotations = { ...p.metadata!.annotations, 'warden.dev/inject': 'true' };
      p.spec!.initContainers = p.spec!.initContainers!.filter((c) => !c.name.startsWith('warden-'));
    }, '[coverage/proxy-plugin] (metadata.annotations) the pod does not run the Warden proxy: label the namespace (kubectl label namespace shop warden.dev/inject=enabled)'],
    ['a one-shot init container named warden-proxy', (p) => {
      // The API server allows probes only on native sidecars: a one-shot copy has none.
      for (const k of ['restartPolicy', 'startupProbe', 'readinessProbe', 'livenessProbe'] as const) delete proxyOf(p)[k];
    }, 'warden-proxy is a one-shot init container'],
    ['a proxy for the wrong workload', (p) => void (proxyOf(p).args![2] = 'storefront'), 'runs --workload "storefront", but service account orders is the workload "orders"'],
    ['hostNetwork', (p) => void (p.spec!.hostNetwork = true), '[coverage/host-network] (spec.hostNetwork)'],
  ];
  for (const [what, change, expected] of fakes) {
    it(`refuses ${what}, saying how to get injected`, async () => {
      const fake = copyOf(stored[0]!, `fake-${what.replace(/[^a-z]+/g, '-')}`.slice(0, 60).replace(/-$/, ''));
      change(fake);
      // In the labelled namespace: the injector leaves a pod that carries the contract to the validating check.
      const r = await createPod('shop', fake);
      expect(r.allowed === false && r.message).toContain('admission webhook "validate.warden.dev" denied the request: Warden refused Pod shop/');
      expect(r.allowed === false && r.message).toContain(expected);
    });
  }

  it('refuses to inject a hostNetwork pod in a labelled namespace', async () => {
    const r = await createPod('shop', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'host' }, spec: { serviceAccountName: 'orders', hostNetwork: true, containers: [{ name: 'app', image: 'x' }] } });
    expect(r.allowed === false && r.message).toContain('admission webhook "inject.warden.dev" denied the request: Warden could not inject Pod shop/host: the pod uses hostNetwork');
  });

  it('sees the ephemeral containers kubectl debug adds, and refuses one running as root', async () => {
    const pod = stored[0]!;
    const withDebug = structuredClone(pod);
    withDebug.spec!.ephemeralContainers = [{ name: 'debugger', image: 'registry.example.com/debug/busybox:1.36@sha256:' + 'd'.repeat(64), targetContainerName: 'app', securityContext: { runAsUser: 0 } }];
    try {
      await core.replaceNamespacedPodEphemeralcontainers({ name: pod.metadata!.name!, namespace: 'shop', body: withDebug });
      expect.unreachable('a root debug container must be refused');
    } catch (err) {
      expect(refusal(err)).toContain('[guardrails/ephemeral-non-root] (container debugger, spec.ephemeralContainers[0].securityContext.runAsNonRoot)');
    }
  });
});
