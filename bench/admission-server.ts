// Child process of the admission benchmark: the webhook over HTTPS on its own event loop, as it runs
// in its pod, with decision events serialized by pino to /dev/null. Reports its port over IPC.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { generateCertificates } from '../admission/certs.js';
import { resolveConfig } from '../admission/config.js';
import { pinoSink } from '../admission/decision-sink.js';
import { startWebhookServer } from '../admission/server.js';
import { createWebhook, trustFromPem } from '../admission/webhook.js';

const [bundles] = process.argv.slice(2) as [string, string];
const certs = await generateCertificates({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
const webhook = await createWebhook({
  // The injector's image, so that POST /mutate injects (the mutate+validate flow).
  config: resolveConfig({ injection: { proxyImage: process.argv[3] } }),
  sink: pinoSink(pino({ level: 'info' }, pino.destination({ dest: '/dev/null', sync: false }))),
  sources: { admissionBundle: join(bundles, 'admission.tar.gz'), workloads: { folder: bundles }, trust: trustFromPem(readFileSync(join(bundles, 'verification-key.pem'), 'utf8')) },
});
const server = await startWebhookServer(webhook.deps, { certPem: certs.certPem, keyPem: certs.keyPem, host: '127.0.0.1', port: 0 });
process.send!({ port: server.port, caPem: certs.caPem });
process.on('message', (m) => {
  if (m === 'cpu') {
    const u = process.cpuUsage();
    process.send!({ cpu: u.user + u.system });
  }
});
process.on('disconnect', () => process.exit(0));
