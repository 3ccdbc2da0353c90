// Serving certificates for the webhook: a small CA (its certificate is the caBundle the API server
// trusts) and a server certificate for the Service's DNS names (and 127.0.0.1 for local runs).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCertificateAuthority } from '../runtime/certificate-authority.js';

/** The webhook's TLS material, PEM. */
export interface WebhookCertificates {
  caPem: string;
  certPem: string;
  keyPem: string;
}

/** DNS names of the webhook Service in a namespace. */
export function serviceDnsNames(service: string, namespace: string): string[] {
  return [service, `${service}.${namespace}`, `${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`];
}

/** Generate a CA and a serving certificate valid for `days` from `now`. */
export async function generateCertificates(opts: { dnsNames: string[]; ipAddresses?: string[]; days?: number; now?: Date }): Promise<WebhookCertificates> {
  const ca = await createCertificateAuthority('warden-admission-ca', { ...(opts.now ? { now: opts.now } : {}), hours: (opts.days ?? 365) * 24 });
  const leaf = await ca.issue({ kind: 'server', commonName: opts.dnsNames[0] ?? opts.ipAddresses?.[0] ?? 'warden-admission', dnsNames: opts.dnsNames, ipAddresses: opts.ipAddresses ?? [] });
  return { caPem: ca.certPem, ...leaf };
}

export const CERT_FILES = { ca: 'ca.crt', cert: 'tls.crt', key: 'tls.key' } as const;

/** Write certificates to a folder (key mode 600). */
export function writeCertificates(dir: string, c: WebhookCertificates): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, CERT_FILES.ca), c.caPem);
  writeFileSync(join(dir, CERT_FILES.cert), c.certPem);
  writeFileSync(join(dir, CERT_FILES.key), c.keyPem, { mode: 0o600 });
}

/** Read certificates from a folder, or undefined when it has none. */
export function readCertificates(dir: string): WebhookCertificates | undefined {
  if (!existsSync(join(dir, CERT_FILES.cert)) || !existsSync(join(dir, CERT_FILES.key))) return undefined;
  const read = (f: string) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), 'utf8') : '');
  return { caPem: read(CERT_FILES.ca), certPem: read(CERT_FILES.cert), keyPem: read(CERT_FILES.key) };
}
