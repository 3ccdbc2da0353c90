// `warden admission serve|manifests|audit|certs`: registered by the CLI (the composition root), which
// is the one place that wires the webhook in; the engine's own modules never import admission/.
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import type { Logger } from 'pino';
import { readPem, reloadIntervalMs } from '../runtime/pem-files.js';
import { defaultConfig } from './config.js';

// Every `warden` command loads this file: the webhook's modules (x509, the Kubernetes client, WASM)
// are imported inside the actions so that other commands do not pay for them at start.
const load = async () => {
  const [k8s, yaml, audit, certs, config, sink, manifests, namespaces, inventory, server, webhook] = await Promise.all([
    import('@kubernetes/client-node'),
    import('yaml'),
    import('./audit.js'),
    import('./certs.js'),
    import('./config.js'),
    import('./decision-sink.js'),
    import('./manifests.js'),
    import('./namespaces.js'),
    import('./inventory.js'),
    import('./server.js'),
    import('./webhook.js'),
  ]);
  const [{ reloadOnRotation }, { pino }] = await Promise.all([import('../runtime/pem-files.js'), import('pino')]);
  return { KubeConfig: k8s.KubeConfig, stringify: yaml.stringify, reloadOnRotation, pino, ...audit, ...certs, ...config, ...sink, ...manifests, ...namespaces, ...inventory, ...server, ...webhook };
};

interface SourceFlags {
  admissionBundle?: string;
  engine?: string;
  engineCert?: string;
  engineKey?: string;
  engineCa?: string;
  spill?: string;
  bundles: string;
  verificationKey: string;
  scope?: string;
  config?: string;
  namespace?: string;
  certReload: string;
}

const sourceOptions = (cmd: Command): Command =>
  cmd
    .option('--admission-bundle <path|url>', 'the admission bundle built by `warden build`: a file, an http(s) URL or oci://registry/repo/admission:tag (credentials from $DOCKER_CONFIG/config.json); default: from --engine, else admission.tar.gz in --bundles')
    .option('--engine <url>', 'engine base URL: the admission bundle (GET /bundles/admission), coverage checks (GET /bundles) and decision events (POST /logs); default: the local --bundles folder, events to the log only')
    .option('--engine-cert <pem>', "the webhook's client certificate for the engine (its SPIFFE identity; the engine must know it as --admission-principal)")
    .option('--engine-key <pem>', 'key of --engine-cert')
    .option('--engine-ca <pem>', "CA the engine's certificate is checked against")
    .option('--spill <file>', 'NDJSON file decision events spill to while the engine is away', 'warden-admission.spill.ndjson')
    .option('--bundles <dir>', 'bundles folder for coverage checks when no --engine is given', 'bundles')
    .option('--verification-key <pem>', 'public key bundles are signed with', 'bundles/verification-key.pem')
    .option('--scope <scope>', 'signature scope bundles must carry')
    .option('--config <file>', 'webhook configuration (YAML/JSON: modes, exempt namespaces, limits)')
    .option('--namespace <ns>', `namespace the webhook runs in (exempt), default ${defaultConfig.namespace}`)
    .option('--cert-reload <seconds>', 'how often certificate and key files (--certs, --engine-cert/key/ca) are re-read, so rotated ones are used without a restart (0: never)', '10');


// The one connection to the engine (the webhook's client certificate, the engine's CA): the admission
// bundle, the coverage checks and the decision events all go over it.
async function engineConnection(flags: SourceFlags, logger: Logger, reloadMs: number) {
  const [{ EngineConnection }, { reloadOnRotation }] = await Promise.all([import('../runtime/engine-connection.js'), import('../runtime/pem-files.js')]);
  const tls = { ...(flags.engineCa ? { ca: readPem('--engine-ca', resolve(flags.engineCa)) } : {}), ...(flags.engineCert ? { cert: readPem('--engine-cert', resolve(flags.engineCert)) } : {}), ...(flags.engineKey ? { key: readPem('--engine-key', resolve(flags.engineKey)) } : {}) };
  const conn = new EngineConnection(flags.engine!, tls);
  // A rotated SVID is presented to the engine from the next request on, without a restart.
  const paths = { cert: flags.engineCert && resolve(flags.engineCert), key: flags.engineKey && resolve(flags.engineKey), ca: flags.engineCa && resolve(flags.engineCa) };
  const rotation = reloadOnRotation('engine client certificate', paths, tls, (p) => conn.setTls(p), logger, reloadMs);
  return Object.assign(conn, { stopReloading: () => rotation?.close() });
}

async function engineSink(flags: SourceFlags, engine: Awaited<ReturnType<typeof engineConnection>>, logger: Logger) {
  const { DecisionLog } = await import('../runtime/decision-log.js');
  return new DecisionLog({ engine, logger, ...(flags.spill ? { spillFile: resolve(flags.spill) } : {}) });
}

async function webhookFrom(flags: SourceFlags & { kubeconfig?: string }, memory = false) {
  const { loadConfig, resolveConfig, trustFromPem, KubeConfig, KubeNamespaces, InventoryGatekeeper, KubeInventory, createWebhook, pinoSink, memorySink, pino } = await load();
  const reloadMs = reloadIntervalMs(flags.certReload); // a bad --cert-reload is refused before anything starts
  const logger = pino({ name: 'warden-admission' });
  const engine = flags.engine ? await engineConnection(flags, logger, reloadMs) : undefined;
  // Decisions go to the engine's audit log (mTLS identity) when an engine is given, else to the log.
  const shipper = !memory && engine ? await engineSink(flags, engine, logger) : undefined;
  const sink = memory ? memorySink() : (shipper ?? pinoSink());
  const base = flags.config ? loadConfig(flags.config) : resolveConfig();
  const config = flags.namespace ? { ...base, namespace: flags.namespace } : base;
  const trust = trustFromPem(readPem('--verification-key', resolve(flags.verificationKey)), flags.scope);
  // Namespace labels (for namespaceSelector) come from the API server when the webhook can reach it.
  // Gatekeeper's inventory (gatekeeper.sync kinds) comes from there too.
  let namespaces: InstanceType<typeof KubeNamespaces> | undefined;
  let inventory: InstanceType<typeof InventoryGatekeeper> | undefined;
  if (flags.kubeconfig || process.env.KUBERNETES_SERVICE_HOST) {
    const kc = new KubeConfig();
    if (flags.kubeconfig) kc.loadFromFile(flags.kubeconfig);
    else kc.loadFromCluster();
    namespaces = new KubeNamespaces(kc);
    if (config.gatekeeper.sync.length > 0) inventory = new InventoryGatekeeper(new KubeInventory(kc, config.gatekeeper.sync));
  }
  const webhook = await createWebhook({
    config,
    sink,
    ...(namespaces ? { namespaces } : {}),
    ...(inventory ? { inventory } : {}),
    sources: {
      admissionBundle: flags.admissionBundle ?? (engine ? { engine } : join(resolve(flags.bundles), 'admission.tar.gz')),
      workloads: engine ? { engine } : { folder: resolve(flags.bundles) },
      trust,
    },
  });
  // closeSink ships what is queued (or spills it) before the process exits.
  return {
    webhook,
    logger,
    reloadMs,
    closeSink: async () => {
      engine?.stopReloading();
      await shipper?.close();
      engine?.close();
    },
  };
}

/** Register `warden admission …`. */
export function registerAdmission(program: Command): void {
  const admission = program.command('admission').description('the admission webhooks: inject the sidecar (mutating) and refuse pods outside the zero-trust regime (validating)');

  sourceOptions(admission.command('serve').description('run the webhooks (HTTPS: POST /validate, /mutate, /mutate/annotated)'))
    .option('--port <n>', 'port', '8443')
    .option('--host <addr>', 'address to listen on', '0.0.0.0')
    .option('--certs <dir>', 'folder with tls.crt/tls.key (from `warden admission certs`); generated in memory when absent')
    .option('--kubeconfig <file>', 'API server for namespace labels (namespaceSelector); in a pod the in-cluster config is used')
    .action(async (flags: SourceFlags & { port: string; host: string; certs?: string; kubeconfig?: string }) => {
      const { readCertificates, generateCertificates, startWebhookServer, reloadOnRotation } = await load();
      const { webhook, logger, reloadMs, closeSink } = await webhookFrom(flags);
      const first = await webhook.reload();
      if (first.error) process.stderr.write(`warden: ${first.error} — every review is refused until it loads\n`);
      const certs = (flags.certs && readCertificates(resolve(flags.certs))) || (await generateCertificates({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], days: 30 }));
      const server = await startWebhookServer(webhook.deps, { certPem: certs.certPem, keyPem: certs.keyPem, host: flags.host, port: Number(flags.port) });
      process.stderr.write(`warden admission webhook listening on https://${flags.host}:${server.port}/validate and /mutate\n`);
      if (!flags.certs) process.stderr.write(`caBundle (generated, valid 30 days): ${Buffer.from(certs.caPem).toString('base64')}\n`);
      const timer = setInterval(() => void webhook.reload().then((r) => r.error && process.stderr.write(`warden: ${r.error}\n`)), 10_000);
      // cert-manager renews the serving certificate in place: new connections get the renewed one.
      const certsDir = flags.certs && resolve(flags.certs);
      const rotation = certsDir
        ? reloadOnRotation('webhook serving certificate', { cert: join(certsDir, 'tls.crt'), key: join(certsDir, 'tls.key') }, { cert: certs.certPem, key: certs.keyPem }, (p) => server.server.setSecureContext({ cert: p.cert, key: p.key, minVersion: 'TLSv1.2' }), logger, reloadMs)
        : undefined;
      const stop = () => {
        clearInterval(timer);
        rotation?.close();
        // The server stops taking reviews first, then the last decisions go to the engine (or the spill file).
        void server
          .close()
          .then(closeSink)
          .finally(() => process.exit(0));
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      await new Promise(() => undefined);
    });

  admission
    .command('certs')
    .description('generate the webhook CA and serving certificate for its Service')
    .option('--out <dir>', 'output folder', '.warden/admission-certs')
    .option('--namespace <ns>', 'namespace of the webhook Service', defaultConfig.namespace)
    .option('--service <name>', 'Service name', 'warden-admission')
    .option('--ip <addr...>', 'extra IP addresses (e.g. 127.0.0.1 for a local webhook)')
    .option('--days <n>', 'validity in days', '365')
    .action(async (flags: { out: string; namespace: string; service: string; ip?: string[]; days: string }) => {
      const { generateCertificates, serviceDnsNames, writeCertificates } = await load();
      const certs = await generateCertificates({ dnsNames: serviceDnsNames(flags.service, flags.namespace), ipAddresses: flags.ip ?? [], days: Number(flags.days) });
      writeCertificates(resolve(flags.out), certs);
      process.stdout.write(`wrote ${flags.out}/ca.crt, tls.crt, tls.key (valid ${flags.days} days for ${serviceDnsNames(flags.service, flags.namespace).join(', ')})\n`);
    });

  admission
    .command('manifests')
    .description('print the Mutating- and ValidatingWebhookConfiguration (with caBundle), Service, Deployment, its configuration and TLS Secret')
    .option('--certs <dir>', 'certificate folder (from `warden admission certs`)', '.warden/admission-certs')
    .option('--namespace <ns>', 'namespace', defaultConfig.namespace)
    .option('--image <ref>', 'webhook image', 'ghcr.io/warden-dev/warden:0.1.0')
    .option('--engine <url>', 'engine URL', 'http://warden-engine.warden-system.svc:8181')
    .option('--failure-policy <p>', 'Fail or Ignore (both webhooks)', 'Fail')
    .option('--proxy-image <ref@sha256:…>', 'the sidecar image the injector adds, by digest (default: --image when it has a digest)')
    .action(async (flags: { certs: string; namespace: string; image: string; engine: string; failurePolicy: 'Fail' | 'Ignore'; proxyImage?: string }) => {
      const { readCertificates, generateCertificates, serviceDnsNames, writeCertificates, webhookManifests, stringify } = await load();
      let certs = readCertificates(resolve(flags.certs));
      if (!certs) {
        certs = await generateCertificates({ dnsNames: serviceDnsNames('warden-admission', flags.namespace) });
        writeCertificates(resolve(flags.certs), certs);
        process.stderr.write(`generated certificates in ${flags.certs}/\n`);
      }
      const proxyImage = flags.proxyImage ?? (/@sha256:[0-9a-f]{64}$/.test(flags.image) ? flags.image : undefined);
      if (!proxyImage) process.stderr.write(`warning: no sidecar image by digest (--proxy-image <repo>@sha256:…): the injector will refuse every pod until injection.proxyImage is configured\n`);
      const docs = webhookManifests({ namespace: flags.namespace, image: flags.image, engineUrl: flags.engine, failurePolicy: flags.failurePolicy, ...(proxyImage ? { proxyImage } : {}), ...certs });
      process.stdout.write(docs.map((d) => stringify(d)).join('---\n'));
    });

  sourceOptions(admission.command('audit').description('review the objects already in the cluster, like Gatekeeper audit'))
    .option('--kubeconfig <file>', 'kubeconfig (default: $KUBECONFIG or ~/.kube/config, in-cluster when run in a pod)')
    .option('--json', 'print JSON')
    .action(async (flags: SourceFlags & { kubeconfig?: string; json?: boolean }) => {
      const { KubeConfig, auditCluster, formatAudit } = await load();
      const { webhook } = await webhookFrom(flags, true);
      const kc = new KubeConfig();
      if (flags.kubeconfig) kc.loadFromFile(flags.kubeconfig);
      else kc.loadFromDefault();
      const entries = await auditCluster(kc, webhook.deps);
      process.stdout.write(flags.json ? `${JSON.stringify(entries, null, 2)}\n` : `${formatAudit(entries)}\n`);
      if (entries.some((e) => e.findings.some((f) => f.mode === 'enforce'))) process.exitCode = 3;
    });
}
