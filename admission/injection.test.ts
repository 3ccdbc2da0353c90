// The injector and the coverage that checks its work, over HTTPS with the example policy repository
// built for real: an injected Pod passes validation; injection is idempotent; and every fake of the
// sidecar an attacker could try (a name, an annotation, an image, arguments, a position, a capability,
// hostNetwork, a debug container) is refused with a message that says how to get injected.
import { request } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admissionReviewResponse, type AdmissionResponse } from '../formats/admission-review.js';
import { decisionEvent } from '../formats/decision-event.js';
import { parseInterceptionArgs } from '../formats/interception.js';
import { parseAppProbes } from '../formats/app-probes.js';
import { admissionReview, buildExamplePolicies, GOOD_IMAGE, PROXY_IMAGE, webhookFor, type BuiltPolicies } from '../test/support/admission-fixture.js';
import { generateCertificates, type WebhookCertificates } from './certs.js';
import { startWebhookServer, type WebhookServer } from './server.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultConfig, loadConfig } from './config.js';
import { injectedVolumes, INIT_CONTAINER, PROXY_CONTAINER } from './injection.js';
import { applyJsonPatch } from './json-patch.js';

let built: BuiltPolicies;
let certs: WebhookCertificates;
let server: WebhookServer;
let webhook: Awaited<ReturnType<typeof webhookFor>>;

type Pod = { apiVersion: string; kind: string; metadata: { name?: string; generateName?: string; annotations?: Record<string, string>; labels?: Record<string, string> }; spec: Record<string, unknown> };
type C = Record<string, unknown>;

async function post(path: string, body: unknown): Promise<AdmissionResponse> {
  const json = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const req = request(`${server.url}${path}`, { method: 'POST', ca: certs.caPem, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve(JSON.parse(text) as Record<string, unknown>));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
  return admissionReviewResponse.parse(json, 'webhook answer').response;
}

/** A Pod as a ReplicaSet creates it: an app on port 8080 (and 9090), nothing of Warden's. */
function appPod(opts: { serviceAccount?: string; annotations?: Record<string, string>; ports?: number[] } = {}): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { generateName: 'orders-7d9f-', labels: { app: 'orders' }, ...(opts.annotations ? { annotations: opts.annotations } : {}) },
    spec: {
      serviceAccountName: opts.serviceAccount ?? 'orders',
      securityContext: { runAsNonRoot: true },
      containers: [
        {
          name: 'app',
          image: GOOD_IMAGE,
          ports: (opts.ports ?? [8080, 9090]).map((p) => ({ containerPort: p })),
          resources: { limits: { cpu: '500m', memory: '256Mi' } },
        },
      ],
    },
  };
}

/** The Pod after the mutating webhook, as the API server would store it. */
async function injected(pod: Pod = appPod(), path = '/mutate', ns = 'shop'): Promise<Pod> {
  const r = await post(path, admissionReview(pod, ns));
  expect(r.allowed).toBe(true);
  expect(r.patchType).toBe('JSONPatch');
  return applyJsonPatch(pod, JSON.parse(Buffer.from(r.patch!, 'base64').toString('utf8'))) as Pod;
}

const validate = (pod: Pod, ns = 'shop', operation: 'CREATE' | 'UPDATE' = 'CREATE') => post('/validate', admissionReview(pod, ns, operation));
const init = (pod: Pod) => pod.spec.initContainers as C[];
const proxyOf = (pod: Pod) => init(pod).find((c) => c.name === PROXY_CONTAINER)!;
const clone = <T>(x: T): T => structuredClone(x);

/** One test per change: an injected Pod, changed so, is refused with a message containing `expected`. */
function refusesEach(cases: Array<[string, (pod: Pod) => void, string]>, base: () => Pod = appPod): void {
  for (const [what, change, expected] of cases) {
    it(`refuses ${what}`, async () => {
      const pod = clone(await injected(base()));
      change(pod);
      const r = await validate(pod);
      expect(r.allowed).toBe(false);
      expect(r.status?.message).toContain(expected);
    });
  }
}

beforeAll(async () => {
  built = await buildExamplePolicies();
  certs = await generateCertificates({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  webhook = await webhookFor(built, { config: { injection: { proxyImage: PROXY_IMAGE } } });
  server = await startWebhookServer(webhook.deps, { certPem: certs.certPem, keyPem: certs.keyPem, host: '127.0.0.1', port: 0 });
}, 240_000);

afterAll(async () => {
  await server?.close();
  built?.cleanup();
});

describe('the mutating webhook', () => {
  it('injects the interception init first and the proxy as a native sidecar for the workload of the service account', async () => {
    const pod = await injected();
    expect(init(pod).map((c) => c.name)).toEqual([INIT_CONTAINER, PROXY_CONTAINER]);
    const [interception, proxy] = init(pod) as [C, C];
    expect(interception).toMatchObject({ image: PROXY_IMAGE, securityContext: { capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] } } });
    expect(parseInterceptionArgs((interception.args as string[]).slice(1))).toEqual({ redirects: [{ appPort: 8080, proxyPort: 15101 }, { appPort: 9090, proxyPort: 15102 }], adminPort: 15020 });
    expect(proxy).toMatchObject({ image: PROXY_IMAGE, restartPolicy: 'Always', securityContext: { runAsUser: 10001, runAsNonRoot: true, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } } });
    const args = proxy.args as string[];
    expect(args.slice(0, 5)).toEqual(['proxy', '--workload', 'orders', '--namespace', 'shop']);
    expect(args).toEqual(expect.arrayContaining(['--inbound', '[::]:15101=http://127.0.0.1:8080', '--inbound', '[::]:15102=http://127.0.0.1:9090']));
    expect(proxy.startupProbe).toMatchObject({ httpGet: { path: '/healthz', port: 15020 } });
    expect((pod.spec.volumes as C[]).map((v) => v.name)).toEqual(['warden-svid', 'warden-verification-key', 'warden-run', 'warden-tmp']);
    expect((pod.spec.volumes as C[])[0]).toMatchObject({ secret: { secretName: 'warden-svid-orders' } });
    expect(pod.metadata.annotations?.['warden.dev/injected']).toMatch(/^orders@/);
    // The user's container is untouched.
    expect(pod.spec.containers).toEqual(appPod().spec.containers);
  });

  it("gives the sidecar a drain that ends within the pod's grace period, and the default where it fits", async () => {
    const drainOf = async (grace?: unknown) => {
      const pod = appPod();
      if (grace !== undefined) pod.spec.terminationGracePeriodSeconds = grace;
      const args = proxyOf(await injected(pod)).args as string[];
      const i = args.indexOf('--drain-seconds');
      return i < 0 ? 'default' : args[i + 1];
    };
    expect(await drainOf()).toBe('default');
    expect(await drainOf(30)).toBe('default');
    expect(await drainOf(120)).toBe('default');
    expect(await drainOf(8)).toBe('4');
    expect(await drainOf(1)).toBe('0');
    expect(await drainOf(0)).toBe('0');
    expect(await drainOf('5')).toBe('default'); // not a number: the API server refuses such a pod; Kubernetes' default assumed
    // The validating webhook admits the sidecar so configured.
    const short = appPod();
    short.spec.terminationGracePeriodSeconds = 8;
    const r = await validate(await injected(short));
    expect([r.allowed, r.status?.message]).toEqual([true, undefined]);
  });

  it('gives a Pod it injected to the validating webhook, which admits it', async () => {
    const r = await validate(await injected());
    expect(r.status?.message).toBeUndefined();
    expect(r.allowed).toBe(true);
  });

  it('is idempotent: an injected Pod (reinvocation, a re-apply) gets no patch', async () => {
    const once = await injected();
    const r = await post('/mutate', admissionReview(once, 'shop'));
    expect(r).toMatchObject({ allowed: true });
    expect(r.patch).toBeUndefined();
  });

  it('keeps the user init containers after its own and adds to existing volumes and annotations', async () => {
    const pod = appPod({ annotations: { team: 'shop' } });
    pod.spec.initContainers = [{ name: 'migrate', image: GOOD_IMAGE, resources: { limits: { cpu: '1', memory: '1Gi' } } }];
    pod.spec.volumes = [{ name: 'data', emptyDir: {} }];
    const out = await injected(pod);
    expect(init(out).map((c) => c.name)).toEqual([INIT_CONTAINER, PROXY_CONTAINER, 'migrate']);
    expect((out.spec.volumes as C[])[0]).toEqual({ name: 'data', emptyDir: {} });
    expect(out.metadata.annotations).toMatchObject({ team: 'shop', 'warden.dev/injected': expect.stringMatching(/^orders@/) });
    expect((await validate(out)).allowed).toBe(true);
  });

  it('at /mutate/annotated injects only pods annotated for it', async () => {
    const plain = await post('/mutate/annotated', admissionReview(appPod(), 'shop'));
    expect(plain).toMatchObject({ allowed: true });
    expect(plain.patch).toBeUndefined();
    const asked = await injected(appPod({ annotations: { 'warden.dev/inject': 'enabled' } }), '/mutate/annotated');
    expect(init(asked).map((c) => c.name)).toEqual([INIT_CONTAINER, PROXY_CONTAINER]);
  });

  it('refuses a Pod whose service account has no bundle, saying what to add, and logs the refusal', async () => {
    const before = webhook.sink.events.length;
    const r = await post('/mutate', admissionReview(appPod({ serviceAccount: 'payments' }), 'shop'));
    expect(r.allowed).toBe(false);
    expect(r.status?.message).toContain('service account payments in namespace shop is not a workload of the policy repository');
    const event = webhook.sink.events.slice(before).find((e) => e.path === 'warden/admission/inject')!;
    expect(decisionEvent.check(event)).toEqual([]);
    expect(event).toMatchObject({ kind: 'admission', outcome: 'deny', labels: { workload: 'admission', namespace: 'shop' }, input: { name: 'orders-7d9f-', user: 'alice@example.com' } });
  });

  it('refuses to inject a hostNetwork Pod (its rules would land in the node)', async () => {
    const pod = appPod();
    pod.spec.hostNetwork = true;
    const r = await post('/mutate', admissionReview(pod, 'shop'));
    expect(r.allowed).toBe(false);
    expect(r.status?.message).toContain('hostNetwork');
  });

  it("refuses a Pod that declares the sidecar's admin port", async () => {
    const r = await post('/mutate', admissionReview(appPod({ ports: [8080, 15020] }), 'shop'));
    expect(r.allowed).toBe(false);
    expect(r.status?.message).toContain("declares port 15020, which is the Warden sidecar's admin port");
  });

  it('leaves other kinds, operations and exempt namespaces alone', async () => {
    for (const body of [admissionReview(appPod(), 'kube-system'), admissionReview(appPod(), 'shop', 'UPDATE')]) {
      const r = await post('/mutate', body);
      expect(r.allowed).toBe(true);
      expect(r.patch).toBeUndefined();
    }
  });
});

describe('coverage checks the real sidecar, not a look-alike', () => {
  const fakes: Array<[string, (pod: Pod) => void, string]> = [
    ['the annotation alone', (p) => {
      p.spec.initContainers = [];
      p.spec.volumes = [];
      p.metadata.annotations = { 'warden.dev/inject': 'true' };
    }, '[coverage/proxy-plugin] (metadata.annotations) the pod does not run the Warden proxy: label the namespace (kubectl label namespace shop warden.dev/inject=enabled)'],
    ['a one-shot init container named warden-proxy', (p) => void delete proxyOf(p).restartPolicy, '[coverage/proxy-plugin] (spec.initContainers[1].restartPolicy) warden-proxy is a one-shot init container'],
    ['a fake warden-proxy image', (p) => void (proxyOf(p).image = 'registry.example.com/evil/proxy:1.0@sha256:' + 'e'.repeat(64)), '[coverage/proxy-image]'],
    ['the right image by tag instead of digest', (p) => void (proxyOf(p).image = 'ghcr.io/warden-dev/warden-proxy:0.1.0'), '[coverage/proxy-image]'],
    ['a proxy for another workload', (p) => void ((proxyOf(p).args as string[])[2] = 'storefront'), 'runs --workload "storefront", but service account orders is the workload "orders"'],
    ['a second --workload (commander keeps the last)', (p) => void (proxyOf(p).args as string[]).push('--workload', 'storefront'), '--workload is given twice'],
    ['--workload=value spelling for another workload', (p) => {
      const a = proxyOf(p).args as string[];
      a.splice(1, 2, '--workload=storefront');
    }, 'runs --workload "storefront"'],
    ['a command that replaces the proxy', (p) => void (proxyOf(p).command = ['sh', '-c', 'sleep infinity']), 'warden-proxy sets command'],
    ['NODE_OPTIONS loading other code', (p) => void (proxyOf(p).env = [{ name: 'NODE_OPTIONS', value: '--require /tmp/x.js' }]), 'sets NODE_OPTIONS'],
    ['a volume over the image code', (p) => void (proxyOf(p).volumeMounts as C[]).push({ name: 'warden-tmp', mountPath: '/app/proxy-plugin' }), 'mounts a volume over /app/proxy-plugin'],
    ['a proxy with a local bundle instead of the engine', (p) => void (proxyOf(p).args as string[]).push('--bundle', '/tmp/any.tar.gz'), 'must not be given --bundle'],
    ['a verification key from elsewhere', (p) => {
      const a = proxyOf(p).args as string[];
      a[a.indexOf('--verification-key') + 1] = '/tmp/my-key.pem';
    }, 'must be read from the ConfigMap warden-verification-key'],
    ['no listener for an app port', (p) => {
      const a = proxyOf(p).args as string[];
      a.splice(a.indexOf('[::]:15102=http://127.0.0.1:9090') - 1, 2);
    }, 'has no --inbound listener for app port 9090'],
    ['no interception init', (p) => void init(p).shift(), '[coverage/interception] (container warden-init, spec.initContainers) the pod has no warden-init init container'],
    ['the interception init not first', (p) => void init(p).unshift({ name: 'early', image: GOOD_IMAGE, resources: { limits: { cpu: '1', memory: '1Gi' } } }), 'warden-init must be the first init container'],
    ['an interception init with another image', (p) => void (init(p)[0]!.image = GOOD_IMAGE), 'is not an allowed interception image'],
    ['an interception init that skips a port', (p) => void (init(p)[0]!.args = ['init-net', '--redirect', '8080=15101', '--admin-port', '15020']), 'warden-init does not redirect app port 9090'],
    ['a redirect to a port the proxy does not serve', (p) => void (init(p)[0]!.args = ['init-net', '--redirect', '8080=15101', '--redirect', '9090=15999', '--admin-port', '15020']), 'redirects app port 9090 to port 15999, where warden-proxy has no listener'],
    ['an admin port in the rules that is not the proxy\'s (an app port left open)', (p) => void (init(p)[0]!.args = ['init-net', '--redirect', '8080=15101', '--redirect', '9090=15102', '--admin-port', '7070']), 'leaves port 7070 open as the admin port'],
    ['an interception init with more than NET_ADMIN/NET_RAW', (p) => void ((init(p)[0]!.securityContext as { capabilities: { add: string[] } }).capabilities.add.push('SYS_ADMIN')), 'container "warden-init" adds SYS_ADMIN'],
    ['an app container that can rewrite iptables', (p) => void ((p.spec.containers as C[])[0]!.securityContext = { capabilities: { add: ['NET_ADMIN'] } }), '[coverage/interception-integrity]'],
    ['hostNetwork', (p) => void (p.spec.hostNetwork = true), '[coverage/host-network] (spec.hostNetwork)'],
  ];
  refusesEach(fakes);

  it('never recommends the annotation as the way in', async () => {
    const r = await validate(appPod({ annotations: { 'warden.dev/inject': 'true' } }));
    expect(r.allowed).toBe(false);
    expect(r.status?.message).toContain('kubectl label namespace shop warden.dev/inject=enabled');
    expect(r.status?.message).not.toMatch(/add the annotation/);
  });
});

/** An app with a probe of each kind: httpGet on a named app port, tcpSocket on the other, and probes interception does not touch. */
function probedPod(): Pod {
  const pod = appPod();
  const app = (pod.spec.containers as C[])[0]!;
  app.ports = [{ name: 'http', containerPort: 8080 }, { containerPort: 9090 }, { containerPort: 9091, protocol: 'UDP' }];
  app.livenessProbe = { httpGet: { path: '/healthz?deep=1', port: 'http', scheme: 'HTTPS', httpHeaders: [{ name: 'X-Probe', value: 'live' }] }, periodSeconds: 7, timeoutSeconds: 3 };
  app.readinessProbe = { tcpSocket: { port: 9090 }, initialDelaySeconds: 2 };
  app.startupProbe = { exec: { command: ['true'] } };
  (pod.spec.containers as C[]).push({ name: 'metrics', image: GOOD_IMAGE, resources: { limits: { cpu: '100m', memory: '64Mi' } }, livenessProbe: { httpGet: { path: '/up', port: 8081 } }, readinessProbe: { httpGet: { path: '/', port: 8080, host: '10.0.0.9' } } });
  return pod;
}
const appArgsProbes = (pod: Pod) => {
  const a = proxyOf(pod).args as string[];
  return a[a.indexOf('--app-probes') + 1]!;
};
const setAppProbes = (pod: Pod, value: unknown) => {
  const a = proxyOf(pod).args as string[];
  a[a.indexOf('--app-probes') + 1] = typeof value === 'string' ? value : JSON.stringify(value);
};

describe('kubelet probes of injected pods', () => {
  it('rewrites httpGet and tcpSocket probes on app ports to the sidecar and hands it the original targets', async () => {
    const pod = await injected(probedPod());
    const [app, metrics] = pod.spec.containers as [C, C];
    expect(app.livenessProbe).toEqual({ httpGet: { path: '/app-health/app/livez', port: 15020, scheme: 'HTTP' }, periodSeconds: 7, timeoutSeconds: 3 });
    expect(app.readinessProbe).toEqual({ httpGet: { path: '/app-health/app/readyz', port: 15020, scheme: 'HTTP' }, initialDelaySeconds: 2 });
    // exec probes, probes on ports that are not app ports and probes of another host are the user's as written.
    expect(app.startupProbe).toEqual({ exec: { command: ['true'] } });
    expect(metrics).toEqual((probedPod().spec.containers as C[])[1]);
    expect(Object.fromEntries(parseAppProbes(appArgsProbes(pod)) as Map<string, unknown>)).toEqual({
      '/app-health/app/livez': { kind: 'http', port: 8080, path: '/healthz?deep=1', scheme: 'HTTPS', headers: [{ name: 'X-Probe', value: 'live' }], timeoutSeconds: 3 },
      '/app-health/app/readyz': { kind: 'tcp', port: 9090, timeoutSeconds: 1 },
    });
    // Nothing else of the user's containers changed.
    const { livenessProbe: _l, readinessProbe: _r, ...rest } = app;
    const { livenessProbe: _l0, readinessProbe: _r0, ...rest0 } = (probedPod().spec.containers as C[])[0]!;
    expect(rest).toEqual(rest0);
  });

  it('warns, without refusing, about a probe on a port no container declares (interception will reset it)', async () => {
    const pod = appPod({ ports: [8080] });
    (pod.spec.containers as C[])[0]!.livenessProbe = { tcpSocket: { port: 8081 } };
    const r = await post('/mutate', admissionReview(pod, 'shop'));
    expect(r.allowed).toBe(true);
    expect(r.warnings).toEqual([expect.stringContaining('warden: spec.containers[0].livenessProbe probes port 8081, which no container declares as a TCP port')]);
    expect((await post('/mutate', admissionReview(probedPod(), 'shop'))).warnings).toEqual([expect.stringContaining('spec.containers[1].livenessProbe probes port 8081')]);
  });

  it('gives the rewritten pod to the validating webhook, which admits it; reinvocation changes nothing', async () => {
    const once = await injected(probedPod());
    const r = await validate(once);
    expect(r.status?.message).toBeUndefined();
    expect(r.allowed).toBe(true);
    const again = await post('/mutate', admissionReview(once, 'shop'));
    expect(again).toMatchObject({ allowed: true });
    expect(again.patch).toBeUndefined();
  });

  it("rewrites a user native sidecar's probe on its app port (the JSON Patch runs before the init containers shift)", async () => {
    const pod = appPod({ ports: [8080] });
    pod.spec.initContainers = [
      { name: 'migrate', image: GOOD_IMAGE, resources: { limits: { cpu: '1', memory: '1Gi' } } },
      { name: 'cache', image: GOOD_IMAGE, restartPolicy: 'Always', ports: [{ containerPort: 6379 }], resources: { limits: { cpu: '1', memory: '1Gi' } }, readinessProbe: { tcpSocket: { port: 6379 } } },
    ];
    const out = await injected(pod);
    expect(init(out).map((c) => c.name)).toEqual([INIT_CONTAINER, PROXY_CONTAINER, 'migrate', 'cache']);
    expect(init(out)[3]!.readinessProbe).toEqual({ httpGet: { path: '/app-health/cache/readyz', port: 15020, scheme: 'HTTP' } });
    expect(init(out)[2]).toEqual(init(pod)[0]);
    expect((await validate(out)).allowed).toBe(true);
  });

  it('refuses to inject a grpc probe on an app port, saying what to use instead; a grpc probe elsewhere is left alone', async () => {
    const pod = appPod();
    (pod.spec.containers as C[])[0]!.livenessProbe = { grpc: { port: 9090 } };
    const r = await post('/mutate', admissionReview(pod, 'shop'));
    expect(r.allowed).toBe(false);
    expect(r.status?.message).toContain('spec.containers[0].livenessProbe is a grpc probe on app port 9090');
    expect(r.status?.message).toContain('use an httpGet or tcpSocket probe, or an exec probe');
    (pod.spec.containers as C[])[0]!.livenessProbe = { grpc: { port: 9999 } };
    expect(((await injected(pod)).spec.containers as C[])[0]!.livenessProbe).toEqual({ grpc: { port: 9999 } });
  });

  refusesEach([
    ['an app probe aimed at a port that is not an app port (a loopback-only admin port of the app)', (p) => {
      const probes = JSON.parse(appArgsProbes(p)) as Record<string, { port: number }>;
      probes['/app-health/app/readyz']!.port = 6060;
      setAppProbes(p, probes);
    }, "[coverage/app-probes] (container warden-proxy, spec.initContainers[1].args) the sidecar's --app-probes sends /app-health/app/readyz to port 6060, which is not an app port"],
    ['an app probe no probe of the pod uses', (p) => {
      const probes = JSON.parse(appArgsProbes(p)) as Record<string, unknown>;
      probes['/app-health/metrics/livez'] = { kind: 'http', port: 8080, path: '/orders/export', scheme: 'HTTP', headers: [], timeoutSeconds: 1 };
      setAppProbes(p, probes);
    }, 'configures /app-health/metrics/livez, which no probe of the pod uses'],
    ['a rewritten probe whose target was removed from the sidecar', (p) => {
      const probes = JSON.parse(appArgsProbes(p)) as Record<string, unknown>;
      delete probes['/app-health/app/livez'];
      setAppProbes(p, probes);
    }, '[coverage/app-probes] (container warden-proxy, spec.containers[0].livenessProbe.httpGet.path) spec.containers[0].livenessProbe asks the sidecar for /app-health/app/livez, which its --app-probes does not configure'],
    ["a probe that asks for another container's path", (p) => void (((p.spec.containers as C[])[0]!.readinessProbe as { httpGet: { path: string } }).httpGet.path = '/app-health/app/livez'), 'but this probe\'s path is /app-health/app/readyz'],
    ['a probe on an app port put back after injection', (p) => void ((p.spec.containers as C[])[0]!.readinessProbe = { tcpSocket: { port: 9090 } }), 'spec.containers[0].readinessProbe is a tcpSocket probe on app port 9090'],
    ['a grpc probe on an app port', (p) => void ((p.spec.containers as C[])[1]!.startupProbe = { grpc: { port: 8080 } }), 'spec.containers[1].startupProbe is a grpc probe on app port 8080'],
    ['--app-probes given twice (commander keeps the last)', (p) => void (proxyOf(p).args as string[]).push('--app-probes', '{}'), '--app-probes is given twice'],
    ['a header smuggling a second line', (p) => {
      const probes = JSON.parse(appArgsProbes(p)) as Record<string, { headers: unknown[] }>;
      probes['/app-health/app/livez']!.headers.push({ name: 'X-A', value: 'x\r\nHost: evil' });
      setAppProbes(p, probes);
    }, '--app-probes /app-health/app/livez.headers[1] must be {name, value}'],
    ['an app probe with a method of its own', (p) => {
      const probes = JSON.parse(appArgsProbes(p)) as Record<string, Record<string, unknown>>;
      probes['/app-health/app/livez']!.method = 'DELETE';
      setAppProbes(p, probes);
    }, 'has an unknown field "method"'],
    ['an app probe path that is not under /app-health', (p) => setAppProbes(p, { '/metrics': { kind: 'tcp', port: 8080, timeoutSeconds: 1 } }), '"/metrics" is not /app-health/<container>/<livez|readyz|startupz>'],
  ], probedPod);
});

describe('node access without privileged', () => {
  const refusals: Array<[string, (pod: Pod) => void, string]> = [
    ['a hostPath on /', (p) => void (p.spec.volumes as C[]).push({ name: 'root', hostPath: { path: '/' } }), "[guardrails/no-host-path] (spec.volumes[4].hostPath.path) volume \"root\" mounts the node's /"],
    ['the containerd socket', (p) => void (p.spec.volumes as C[]).push({ name: 'ctr', hostPath: { path: '/run/containerd/containerd.sock', type: 'Socket' } }), '/run/containerd/containerd.sock'],
    ['/var, above the runtime sockets', (p) => void (p.spec.volumes as C[]).push({ name: 'var', hostPath: { path: '/var' } }), "mounts the node's /var"],
    ['a path spelled with ..', (p) => void (p.spec.volumes as C[]).push({ name: 'x', hostPath: { path: '/data/../var/run//docker.sock' } }), "mounts the node's /var/run/docker.sock"],
    ['SYS_ADMIN', (p) => void ((p.spec.containers as C[])[0]!.securityContext = { capabilities: { add: ['SYS_ADMIN'] } }), '[guardrails/no-added-capabilities]'],
    ['NET_ADMIN on an app container', (p) => void ((p.spec.containers as C[])[0]!.securityContext = { capabilities: { add: ['net_admin'] } }), 'adds NET_ADMIN'],
    ['allowPrivilegeEscalation', (p) => void ((p.spec.containers as C[])[0]!.securityContext = { allowPrivilegeEscalation: true }), '[guardrails/no-privilege-escalation]'],
  ];
  refusesEach(refusals);

  it('checks what kubectl debug adds: an ephemeral container as root, or with NET_ADMIN, is refused', async () => {
    const pod = clone(await injected());
    pod.metadata.name = 'orders-7d9f-abcde';
    const debug = { name: 'debugger', image: GOOD_IMAGE, targetContainerName: 'app' };
    const asRoot = clone(pod);
    asRoot.spec.securityContext = {};
    asRoot.spec.ephemeralContainers = [debug];
    const body = admissionReview(asRoot, 'shop', 'UPDATE');
    (body.request as Record<string, unknown>).subResource = 'ephemeralcontainers';
    const r = await post('/validate', body);
    expect(r.allowed).toBe(false);
    expect(r.status?.message).toContain('[guardrails/ephemeral-non-root] (container debugger, spec.ephemeralContainers[0].securityContext.runAsNonRoot)');
    const netAdmin = clone(pod);
    netAdmin.spec.ephemeralContainers = [{ ...debug, securityContext: { runAsNonRoot: true, runAsUser: 1000, capabilities: { add: ['NET_ADMIN'] } } }];
    const r2 = await post('/validate', admissionReview(netAdmin, 'shop', 'UPDATE'));
    expect(r2.allowed).toBe(false);
    expect(r2.status?.message).toContain('[coverage/interception-integrity]');
    const fine = clone(pod);
    fine.spec.ephemeralContainers = [{ ...debug, securityContext: { runAsNonRoot: true, runAsUser: 1000, allowPrivilegeEscalation: false } }];
    expect((await post('/validate', admissionReview(fine, 'shop', 'UPDATE'))).allowed).toBe(true);
  });
});

describe('injection configuration', () => {
  it('takes the SVID from a Secret name pattern or from a CSI driver', () => {
    const secret = injectedVolumes({ ...defaultConfig.injection, svid: { secretName: 'svid-{workload}-{serviceAccount}' } }, 'orders-sa', 'orders')[0];
    expect(secret).toEqual({ name: 'warden-svid', secret: { secretName: 'svid-orders-orders-sa', defaultMode: 0o440 } });
    const csi = injectedVolumes({ ...defaultConfig.injection, svid: { csiDriver: 'spiffe.csi.cert-manager.io', volumeAttributes: { 'spiffe.csi.cert-manager.io/fs-group': '10001' } } }, 'orders', 'orders')[0];
    expect(csi).toEqual({ name: 'warden-svid', csi: { driver: 'spiffe.csi.cert-manager.io', readOnly: true, volumeAttributes: { 'spiffe.csi.cert-manager.io/fs-group': '10001' } } });
  });

  it('refuses a proxy image that is not pinned by digest, naming the field', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'warden-injection-config-')), 'config.yaml');
    writeFileSync(file, 'injection:\n  proxyImage: ghcr.io/warden-dev/warden:0.1.0\n');
    expect(() => loadConfig(file)).toThrow(/injection\/proxyImage|injection\.proxyImage/);
    writeFileSync(file, `injection:\n  proxyImage: ghcr.io/warden-dev/warden@sha256:${'a'.repeat(64)}\n  whenNoBundle: skip\n`);
    expect(loadConfig(file).injection).toMatchObject({ proxyImage: `ghcr.io/warden-dev/warden@sha256:${'a'.repeat(64)}`, whenNoBundle: 'skip', engineUrl: defaultConfig.injection.engineUrl });
  });
});
