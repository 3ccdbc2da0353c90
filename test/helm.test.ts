// The Helm chart, checked with the real `helm` (built from the Go module proxy, tools.json): it lints,
// with its default values it renders exactly the kustomize base (both come from deploy/manifests.ts),
// its values reach the objects (the injector's settings through the webhook's own configuration
// loader), values that do not fit are refused by its schema, and a real kube-apiserver accepts what it
// renders (server-side dry run).
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { KubernetesObject } from '@kubernetes/client-node';
import { afterAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { loadConfig } from '../admission/config.js';
import { dryRunCreate } from './support/kube-apiserver.js';
import { kubeApiServerForSuite } from './support/kube-suite.js';

const run = promisify(execFile);
const helm = resolve('.tools/bin/helm');
const chart = resolve('deploy/helm/warden');
const home = mkdtempSync(join(tmpdir(), `warden-helm-${process.pid}-`));
const env = { ...process.env, HELM_CACHE_HOME: join(home, 'cache'), HELM_CONFIG_HOME: join(home, 'config'), HELM_DATA_HOME: join(home, 'data') };
afterAll(() => rmSync(home, { recursive: true, force: true }));
const writeTo = (file: string, text: string) => (writeFileSync(file, text), file);

const objectsOf = (text: string) => parseAllDocuments(text).map((d) => d.toJS() as KubernetesObject).filter((o) => o !== null);
const key = (o: KubernetesObject) => `${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
const sorted = (objs: KubernetesObject[]) => [...objs].sort((a, b) => (key(a) < key(b) ? -1 : 1));
const template = async (...set: string[]) => objectsOf((await run(helm, ['template', 'warden', chart, ...set.flatMap((s) => ['--set', s])], { env })).stdout);
// Every object file of the kustomize base (its kustomization lists them).
const base = () => (parse(readFileSync(resolve('deploy/base/kustomization.yaml'), 'utf8')) as { resources: string[] }).resources.flatMap((f) => objectsOf(readFileSync(resolve('deploy/base', f), 'utf8')));
const CUSTOM = [
  'images.controlPlane.digest=sha256:1111111111111111111111111111111111111111111111111111111111111111',
  'engine.replicas=3',
  'admission.replicas=4',
  'bundles.from=oci://registry.internal/platform/bundles:prod',
  'bundles.registrySecret=ci-registry',
  'auditStore.secretName=audit-db',
  'auditStore.secretKey=dsn',
  `certificates.caBundle=${Buffer.from('-----BEGIN CERTIFICATE-----\n').toString('base64')}`,
  `images.sidecar.digest=sha256:${'2'.repeat(64)}`,
  'injector.whenNoBundle=skip',
  'injector.svid.csiDriver=spiffe.csi.cert-manager.io',
  `injector.allowedProxyImages[0]=ghcr.io/warden-dev/warden-sidecar@sha256:${'3'.repeat(64)}`,
  'injector.resources.limits.memory=512Mi',
  'admission.config.coverage.mode=warn',
  'admission.config.exemptNamespaces[0]=kube-system',
  'admission.config.exemptNamespaces[1]=monitoring',
];

describe('Helm chart', () => {
  it('passes helm lint', async () => {
    const { stdout } = await run(helm, ['lint', '--strict', chart], { env });
    expect(stdout).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
  });

  it('renders exactly the kustomize base with its default values', async () => {
    expect(sorted(await template())).toEqual(sorted(base()));
  });

  it('puts image digests, replicas, the published bundles, the audit store Secret and the CA where they belong', async () => {
    const objs = await template(...CUSTOM);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- walking rendered objects by known paths
    const get = (k: string) => objs.find((o) => key(o) === k) as any;
    const engine = get('Deployment/warden-system/warden-engine');
    const container = engine.spec.template.spec.containers[0];
    expect(engine.spec.replicas).toBe(3);
    expect(container.image).toBe('ghcr.io/warden-dev/warden@sha256:1111111111111111111111111111111111111111111111111111111111111111');
    expect(container.args.slice(container.args.indexOf('--bundles-from'), container.args.indexOf('--bundles-from') + 2)).toEqual(['--bundles-from', 'oci://registry.internal/platform/bundles:prod']);
    expect(container.env).toEqual([{ name: 'WARDEN_AUDIT_STORE', valueFrom: { secretKeyRef: { name: 'audit-db', key: 'dsn' } } }]);
    expect(engine.spec.template.spec.volumes).toContainEqual({ name: 'registry', secret: { secretName: 'ci-registry', defaultMode: 0o440, items: [{ key: '.dockerconfigjson', path: 'config.json' }] } });
    expect(get('Deployment/warden-system/warden-admission').spec.replicas).toBe(4);
    expect(get('ValidatingWebhookConfiguration//warden-admission').webhooks[0].clientConfig.caBundle).toBe(Buffer.from('-----BEGIN CERTIFICATE-----\n').toString('base64'));
    expect(objs.filter((o) => o.kind === 'Certificate')).toEqual([]);
  });

  it('writes the sidecar image by digest and the injector and webhook settings into a configuration the webhook loads', async () => {
    const objs = await template(...CUSTOM);
    const configMap = objs.find((o) => key(o) === 'ConfigMap/warden-system/warden-admission-config') as KubernetesObject & { data: Record<string, string> };
    const file = join(home, 'admission-config.yaml');
    writeFileSync(file, configMap.data['config.yaml']!);
    const config = loadConfig(file); // the webhook's own loader: schema-checked, defaults filled in
    expect(config.injection).toMatchObject({
      proxyImage: `ghcr.io/warden-dev/warden-sidecar@sha256:${'2'.repeat(64)}`,
      engineUrl: 'https://warden-engine.warden-system.svc:8443',
      whenNoBundle: 'skip',
      svid: { csiDriver: 'spiffe.csi.cert-manager.io' },
      allowedProxyImages: [`ghcr.io/warden-dev/warden-sidecar@sha256:${'3'.repeat(64)}`],
      resources: { limits: { memory: '512Mi' } },
    });
    expect(config.coverage.mode).toBe('warn');
    expect(config.exemptNamespaces).toEqual(['kube-system', 'monitoring']);
    // Unset settings keep the webhook's defaults.
    expect(loadConfig(writeTo(file, ((await template()).find((o) => key(o) === 'ConfigMap/warden-system/warden-admission-config') as typeof configMap).data['config.yaml']!)).injection.whenNoBundle).toBe('refuse');
  });

  it('warns after install while the sidecar digest is still the placeholder', async () => {
    const install = async (...set: string[]) => (await run(helm, ['install', 'warden', chart, '--dry-run=client', ...set.flatMap((s) => ['--set', s])], { env })).stdout;
    const placeholder = await install();
    expect(placeholder).toMatch(/WARNING: images\.sidecar\.digest is still the placeholder/);
    const pinned = await install(`images.sidecar.digest=sha256:${'2'.repeat(64)}`);
    expect(pinned).not.toMatch(/WARNING/);
    expect(pinned).toContain(`the webhook injects ghcr.io/warden-dev/warden-sidecar@sha256:${'2'.repeat(64)}`);
  });

  it('refuses values that do not fit, naming the field, before anything is installed', async () => {
    for (const [set, field] of [
      ['images.sidecar.digest=', /\/images\/sidecar\/digest/],
      ['images.sidecar.digest=latest', /\/images\/sidecar\/digest/],
      ['images.controlPlane.digest=sha256:abc', /\/images\/controlPlane\/digest/],
      ['engine.replicas=0', /\/engine\/replicas/],
      ['injector.whenNoBundle=maybe', /\/injector\/whenNoBundle/],
      ['injector.whenNoBundel=skip', /\/injector.*whenNoBundel/],
      ['injector.initImage=ghcr.io/warden-dev/warden-sidecar:0.1.0', /\/injector\/initImage/],
      ['admission.config.coverage.whenEngineUnreachable=maybe', /\/admission\/config\/coverage\/whenEngineUnreachable/],
      ['bundles.from=registry.example.com/bundles:main', /\/bundles\/from/],
      ['certificates.certManager.issuer.kind=Cluster', /\/certificates\/certManager\/issuer\/kind/],
    ] as const) {
      const err = await template(set).then(() => undefined, (e: { stderr: string }) => e);
      expect(err, set).toBeDefined();
      expect(err!.stderr, set).toMatch(/values don't meet the specifications of the schema/);
      expect(err!.stderr, set).toMatch(field);
    }
  });

  it('issues the serving certificates with cert-manager when asked, and names the missing issuer', async () => {
    const objs = await template('certificates.certManager.enabled=true', 'certificates.certManager.issuer.name=platform-ca');
    const certs = objs.filter((o) => o.kind === 'Certificate') as Array<KubernetesObject & { spec: { secretName: string; issuerRef: { name: string; kind: string } } }>;
    expect(certs.map((c) => [c.spec.secretName, c.spec.issuerRef.name, c.spec.issuerRef.kind])).toEqual([
      ['warden-engine-tls', 'platform-ca', 'ClusterIssuer'],
      ['warden-admission-tls', 'platform-ca', 'ClusterIssuer'],
    ]);
    const err = await template('certificates.certManager.enabled=true').catch((e: { stderr: string }) => e);
    expect((err as { stderr: string }).stderr).toMatch(/certificates\.certManager\.issuer\.name: the cert-manager Issuer or ClusterIssuer/);
  });

  describe('against a real kube-apiserver', () => {
    const kube = kubeApiServerForSuite();

    it('accepts every object the chart renders in a server-side dry run', async () => {
      const objects = await template(...CUSTOM);
      const { refused } = await dryRunCreate(kube().kubeConfig, objects);
      expect(refused).toEqual([]);
      expect(objects.length).toBeGreaterThan(10);
    });
  });
});
