// The webhook over HTTPS with the example policy repository built for real: what it admits, what it
// refuses and why, how modes change the answer, and how it meets bad input (never crashing, never
// allowing a reviewed kind by accident).
import { request } from 'node:https';
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decisionEvent } from '../formats/decision-event.js';
import { admissionReviewResponse, type AdmissionResponse } from '../formats/admission-review.js';
import { admissionReview, buildExamplePolicies, deployment, webhookFor, type BuiltPolicies } from '../test/support/admission-fixture.js';
import { generateCertificates, type WebhookCertificates } from './certs.js';
import { startWebhookServer, type WebhookServer } from './server.js';
import { admit } from './decide.js';

let built: BuiltPolicies;
let certs: WebhookCertificates;
let server: WebhookServer;
let webhook: Awaited<ReturnType<typeof webhookFor>>;

function post(body: string | Buffer, path = '/validate'): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(`${server.url}${path}`, { method: 'POST', ca: certs.caPem, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function review(object: Parameters<typeof admissionReview>[0], namespace = 'shop', operation: 'CREATE' | 'UPDATE' = 'CREATE'): Promise<AdmissionResponse> {
  const res = await post(JSON.stringify(admissionReview(object, namespace, operation)));
  expect(res.status).toBe(200);
  return admissionReviewResponse.parse(res.json, 'webhook answer').response;
}

beforeAll(async () => {
  built = await buildExamplePolicies();
  certs = await generateCertificates({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  webhook = await webhookFor(built);
  server = await startWebhookServer(webhook.deps, { certPem: certs.certPem, keyPem: certs.keyPem, host: '127.0.0.1', port: 0 });
}, 240_000);

afterAll(async () => {
  await server?.close();
  built?.cleanup();
});

describe('admission webhook', () => {
  it('admits a compliant Deployment of a workload with a signed bundle and logs the decision', async () => {
    const before = webhook.sink.events.length;
    const r = await review(deployment({ name: 'orders' }));
    expect(r).toMatchObject({ uid: '705ab4f5-6393-11e8-b7cc-42010a800002', allowed: true });
    expect(r.warnings).toBeUndefined();
    const event = webhook.sink.events[before]!;
    expect(decisionEvent.check(event)).toEqual([]);
    expect(event).toMatchObject({ kind: 'admission', outcome: 'allow', labels: { source: 'admission', workload: 'admission', namespace: 'shop' }, input: { workload: 'orders', name: 'orders', request: { userInfo: { username: 'alice@example.com' } } } });
    expect(Object.keys(event.bundles).sort()).toEqual(['admission', 'orders']);
  });

  it('refuses a Deployment whose pods would not be injected, saying to label the namespace', async () => {
    const unlabelled = { ...webhook.deps, namespaces: { labels: async () => ({}) } };
    const out = await admit(admissionReview(deployment({ name: 'orders', inject: false }), 'shop'), unlabelled);
    const r = (out.body as { response: AdmissionResponse }).response;
    expect(r.allowed).toBe(false);
    expect(r.status?.code).toBe(403);
    expect(r.status?.message).toContain('[coverage/injection] (spec.template.metadata.annotations)');
    expect(r.status?.message).toContain('kubectl label namespace shop warden.dev/inject=enabled');
    // The annotation alone is never offered as the way in (it is not enforced by itself).
    expect(r.status?.message).not.toContain('warden.dev/inject: "true"');
    // A labelled namespace: its pods will be injected, so the Deployment passes the early check.
    const labelled = { ...webhook.deps, namespaces: { labels: async () => ({ 'warden.dev/inject': 'enabled' }) } };
    expect(((await admit(admissionReview(deployment({ name: 'orders', inject: false }), 'shop'), labelled)).body as { response: AdmissionResponse }).response.allowed).toBe(true);
  });

  it('does not take a container named warden-proxy in a Deployment for the sidecar', async () => {
    const d = deployment({ name: 'orders', inject: false });
    d.spec!.template.spec!.containers.push({ ...d.spec!.template.spec!.containers[0]!, name: 'warden-proxy' });
    const r = await review(d);
    expect(r.allowed).toBe(false);
    expect(r.status?.message).toContain('[coverage/proxy-image]');
    expect(r.status?.message).toContain('[coverage/interception]');
  });

  it('refuses a service account that is not a workload of the policy repository', async () => {
    const r = await review(deployment({ name: 'payments', serviceAccount: 'payments' }));
    expect(r.allowed).toBe(false);
    expect(r.status?.message).toContain('[coverage/workload-bundle]');
    expect(r.status?.message).toContain('service account payments in namespace shop');
  });

  it('treats a pod without serviceAccountName as running as default, which has no bundle', async () => {
    const d = deployment({ name: 'orders' });
    delete d.spec!.template.spec!.serviceAccountName;
    const r = await review(d);
    expect(r.status?.message).toContain('service account default in namespace shop');
  });

  it('refuses a privileged container, naming the container and the field', async () => {
    const r = await review(deployment({ name: 'orders', app: { securityContext: { privileged: true } } }));
    expect(r.allowed).toBe(false);
    expect(r.status?.message).toContain('[guardrails/no-privileged] (container app, spec.template.spec.containers[0].securityContext.privileged)');
  });

  it('refuses host namespaces and missing limits in one answer listing each problem', async () => {
    const r = await review(deployment({ name: 'orders', hostNetwork: true, app: { resources: {} } }));
    expect(r.status?.message).toContain('[guardrails/no-host-namespaces]');
    expect(r.status?.message).toContain('resources.limits.cpu');
    expect(r.status?.message).toContain('resources.limits.memory');
  });

  it('refuses a Deployment violating the Gatekeeper constraint from the policy repository', async () => {
    const r = await review(deployment({ name: 'orders', labels: { app: 'orders' } }));
    expect(r.allowed).toBe(false);
    expect(r.status?.message).toContain('[gatekeeper/WardenRequiredLabels/workloads-have-a-team]');
    expect(r.status?.message).toContain('missing required label(s)');
  });

  it('admits an image without digest with a warning, because image-digest is in warn mode', async () => {
    const r = await review(deployment({ name: 'orders', app: { image: 'registry.example.com/shop/orders:1.4.2' } }));
    expect(r.allowed).toBe(true);
    expect(r.warnings?.[0]).toContain('[guardrails/image-digest]');
  });

  it('only logs a dry-run rule set: allowed, outcome dry-run-deny, details in an audit annotation', async () => {
    const dry = await webhookFor(built, { config: { guardrails: { mode: 'dry-run', rules: {} } } });
    const out = await admit(admissionReview(deployment({ name: 'orders', app: { securityContext: { privileged: true } } }), 'shop'), dry.deps);
    const r = (out.body as { response: AdmissionResponse }).response;
    expect(r.allowed).toBe(true);
    expect(r.auditAnnotations?.['warden.dev/dry-run']).toContain('no-privileged');
    expect(dry.sink.events.at(-1)).toMatchObject({ outcome: 'dry-run-deny', mode: 'dry-run' });
  });

  it('reviews every pod controller: a privileged CronJob is refused at its jobTemplate path', async () => {
    const d = deployment({ name: 'orders', app: { securityContext: { privileged: true } } });
    const cron = { apiVersion: 'batch/v1', kind: 'CronJob', metadata: { name: 'nightly', labels: { team: 'shop' } }, spec: { schedule: '0 1 * * *', jobTemplate: { spec: { template: d.spec!.template } } } };
    const r = await review(cron);
    expect(r.status?.message).toContain('spec.jobTemplate.spec.template.spec.containers[0].securityContext.privileged');
  });

  it('lets a non-compliant object that is being deleted have its finalizers removed', async () => {
    const d = deployment({ name: 'legacy', inject: false, app: { securityContext: { privileged: true } } });
    d.metadata = { ...d.metadata, deletionTimestamp: new Date('2026-11-25T12:00:00Z'), finalizers: [] };
    expect((await review(JSON.parse(JSON.stringify(d)) as typeof d, 'shop', 'UPDATE')).allowed).toBe(true);
    expect((await review(JSON.parse(JSON.stringify({ ...d, metadata: { name: 'legacy' } })) as typeof d, 'shop', 'UPDATE')).allowed).toBe(false);
  });

  it('lets exempt namespaces through without review', async () => {
    const r = await review(deployment({ name: 'coredns', inject: false, app: { securityContext: { privileged: true } } }), 'kube-system');
    expect(r.allowed).toBe(true);
  });

  it('allows kinds it does not review when no Gatekeeper constraint matches them, with a note', async () => {
    const r = await review({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings' } });
    expect(r.allowed).toBe(true);
  });

  it('refuses a Deployment that has no pod template rather than allowing it unchecked', async () => {
    const r = await review({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'broken', labels: { team: 'x' } }, spec: {} });
    expect(r.allowed).toBe(false);
    expect(r.status?.message).toContain('[review/no-pod-template]');
  });

  it('answers a malformed review with a clear 400 and a wrong apiVersion with a refusal naming v1', async () => {
    const notJson = await post('{not json');
    expect(notJson.status).toBe(400);
    expect(String(notJson.json.error)).toContain('not JSON');
    const old = admissionReview(deployment({ name: 'orders' }), 'shop');
    old.apiVersion = 'admission.k8s.io/v1beta1';
    const r = await post(JSON.stringify(old));
    expect(r.status).toBe(200);
    expect((r.json.response as AdmissionResponse).allowed).toBe(false);
    expect((r.json.response as AdmissionResponse).status?.message).toContain('admission.k8s.io/v1');
    const noUid = await post(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }));
    expect(noUid.status).toBe(400);
  });

  it('refuses a body over the size limit with 413 without reading it all', async () => {
    const huge = Buffer.alloc(5 * 1024 * 1024, 0x20);
    const r = await post(huge);
    expect(r.status).toBe(413);
  });

  it('denies by default when the engine cannot be reached, and allows when configured to', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const engine = `http://127.0.0.1:${port}`;
    const closed = await webhookFor(built, { engine });
    const denied = (await admit(admissionReview(deployment({ name: 'orders' }), 'shop'), closed.deps)).body as { response: AdmissionResponse };
    expect(denied.response.allowed).toBe(false);
    expect(denied.response.status?.message).toContain('[coverage/engine-unreachable]');
    const lenient = await webhookFor(built, { engine, config: { coverage: { mode: 'enforce', whenEngineUnreachable: 'allow', cacheTtlMs: 0 } } });
    const allowed = (await admit(admissionReview(deployment({ name: 'orders' }), 'shop'), lenient.deps)).body as { response: AdmissionResponse };
    expect(allowed.response.allowed).toBe(true);
  });
});
