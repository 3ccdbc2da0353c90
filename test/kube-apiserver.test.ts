// End-to-end checks that the test kube-apiserver is a real one: it stores objects in etcd, honours
// server-side dry run, and calls a validating admission webhook over HTTPS whose denial reaches the client.
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AdmissionregistrationV1Api,
  ApiException,
  AppsV1Api,
  CoreV1Api,
  type V1Deployment,
} from '@kubernetes/client-node';
import { createCertificateAuthority } from '../runtime/certificate-authority.js';
import { startKubeApiServer } from './support/kube-apiserver.js';
import { kubeApiServerForSuite } from './support/kube-suite.js';

function deployment(name: string): V1Deployment {
  const labels = { app: name };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, labels },
    spec: {
      replicas: 1,
      selector: { matchLabels: labels },
      template: { metadata: { labels }, spec: { containers: [{ name: 'app', image: 'registry.example/app:1.0' }] } },
    },
  };
}

/** The Status message of a failed API call (client-node 1.4 puts the response body in `body`, often as a string). */
function statusMessage(err: unknown): string {
  if (!(err instanceof ApiException)) throw err;
  const body: unknown = typeof err.body === 'string' ? JSON.parse(err.body) : err.body;
  return (body as { message?: string }).message ?? '';
}

describe('test kube-apiserver', () => {
  const kube = kubeApiServerForSuite();

  it('stores a Deployment in a new namespace and reads it back', async () => {
    const core = kube().kubeConfig.makeApiClient(CoreV1Api);
    const apps = kube().kubeConfig.makeApiClient(AppsV1Api);
    await core.createNamespace({ body: { metadata: { name: 'shop' } } });

    const created = await apps.createNamespacedDeployment({ namespace: 'shop', body: deployment('orders') });
    const read = await apps.readNamespacedDeployment({ name: 'orders', namespace: 'shop' });

    expect(read.metadata?.uid).toBe(created.metadata?.uid);
    expect(read.spec?.template.spec?.containers[0]?.image).toBe('registry.example/app:1.0');
  });

  it('answers a server-side dry run without storing the Deployment', async () => {
    const core = kube().kubeConfig.makeApiClient(CoreV1Api);
    const apps = kube().kubeConfig.makeApiClient(AppsV1Api);
    await core.createNamespace({ body: { metadata: { name: 'dry-run' } } });

    const dry = await apps.createNamespacedDeployment({ namespace: 'dry-run', body: deployment('ghost'), dryRun: 'All' });
    const stored = await apps.listNamespacedDeployment({ namespace: 'dry-run' });

    expect(dry.metadata?.name).toBe('ghost');
    expect(dry.spec?.replicas).toBe(1);
    expect(stored.items).toEqual([]);
  });

  describe('with a validating webhook on https://127.0.0.1', () => {
    const denial = 'warden test webhook: deployments in this namespace are refused';
    const reviews: { uid: string; kind: string; name: string; namespace: string; dryRun: boolean }[] = [];
    let webhook: Server;

    beforeAll(async () => {
      const ca = await createCertificateAuthority('warden-webhook-test-ca');
      const serving = await ca.issue({ kind: 'server', commonName: 'warden-test-webhook', ipAddresses: ['127.0.0.1'] });
      webhook = createServer({ cert: serving.certPem, key: serving.keyPem }, (req, res) => {
        let body = '';
        req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
        req.on('end', () => {
          const review = JSON.parse(body) as {
            request: { uid: string; kind: { kind: string }; name: string; namespace: string; dryRun?: boolean };
          };
          const r = review.request;
          reviews.push({ uid: r.uid, kind: r.kind.kind, name: r.name, namespace: r.namespace, dryRun: r.dryRun ?? false });
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify({
            apiVersion: 'admission.k8s.io/v1',
            kind: 'AdmissionReview',
            response: { uid: r.uid, allowed: false, status: { code: 403, message: denial } },
          }));
        });
      });
      await new Promise<void>((resolve) => webhook.listen(0, '127.0.0.1', resolve));
      const { port } = webhook.address() as AddressInfo;

      const core = kube().kubeConfig.makeApiClient(CoreV1Api);
      await core.createNamespace({ body: { metadata: { name: 'guarded', labels: { 'warden.test/webhook': 'deny' } } } });
      const admission = kube().kubeConfig.makeApiClient(AdmissionregistrationV1Api);
      await admission.createValidatingWebhookConfiguration({
        body: {
          metadata: { name: 'warden-test-deny' },
          webhooks: [{
            name: 'deny.warden.test',
            clientConfig: { url: `https://127.0.0.1:${port}/validate`, caBundle: Buffer.from(ca.certPem).toString('base64') },
            rules: [{ apiGroups: ['apps'], apiVersions: ['v1'], operations: ['CREATE'], resources: ['deployments'] }],
            // Only the labelled namespace: the other tests share this API server.
            namespaceSelector: { matchLabels: { 'warden.test/webhook': 'deny' } },
            failurePolicy: 'Fail',
            sideEffects: 'None',
            admissionReviewVersions: ['v1'],
            timeoutSeconds: 5,
          }],
        },
      });

      // The API server picks up webhook configurations from a watch, a moment after they are stored:
      // probe with dry runs (no side effects) until the webhook is seen answering, within a bound.
      const apps = kube().kubeConfig.makeApiClient(AppsV1Api);
      const deadline = Date.now() + 15_000;
      while (reviews.length === 0) {
        if (Date.now() > deadline) throw new Error('the API server did not call the webhook within 15 s of its configuration being created');
        await apps.createNamespacedDeployment({ namespace: 'guarded', body: deployment('probe'), dryRun: 'All' }).catch(() => undefined);
        if (reviews.length === 0) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      reviews.length = 0;
    });

    afterAll(async () => {
      await new Promise((resolve) => webhook?.close(resolve));
    });

    it('sends the Deployment to the webhook and returns its denial to the client', async () => {
      const apps = kube().kubeConfig.makeApiClient(AppsV1Api);

      const err: unknown = await apps.createNamespacedDeployment({ namespace: 'guarded', body: deployment('payments') }).then(
        () => undefined,
        (e: unknown) => e,
      );

      expect(err).toBeInstanceOf(ApiException);
      expect((err as ApiException<unknown>).code).toBe(403);
      expect(statusMessage(err)).toBe(`admission webhook "deny.warden.test" denied the request: ${denial}`);
      expect(reviews).toEqual([expect.objectContaining({ kind: 'Deployment', name: 'payments', namespace: 'guarded', dryRun: false })]);
      await expect(apps.readNamespacedDeployment({ name: 'payments', namespace: 'guarded' })).rejects.toMatchObject({ code: 404 });
    });

    it('leaves namespaces outside the webhook selector alone', async () => {
      const core = kube().kubeConfig.makeApiClient(CoreV1Api);
      const apps = kube().kubeConfig.makeApiClient(AppsV1Api);
      await core.createNamespace({ body: { metadata: { name: 'unguarded' } } });

      await apps.createNamespacedDeployment({ namespace: 'unguarded', body: deployment('inventory') });

      expect(reviews.filter((r) => r.name === 'inventory')).toEqual([]);
    });
  });
});

describe('startKubeApiServer', () => {
  it('stop() ends the API server and removes its data dir', async () => {
    const kube = await startKubeApiServer();
    const core = kube.kubeConfig.makeApiClient(CoreV1Api);
    await core.listNamespace();

    await kube.stop();

    expect(existsSync(kube.dataDir)).toBe(false);
    await expect(core.listNamespace()).rejects.toThrow(/ECONNREFUSED/);
  });

  it('fails fast with the API server\'s own words when it cannot start', async () => {
    const started = startKubeApiServer({ extraArgs: ['--no-such-flag'] });

    await expect(started).rejects.toThrow(/kube-apiserver exited \(code 1\)[\s\S]*unknown flag: --no-such-flag/);
  });
});
