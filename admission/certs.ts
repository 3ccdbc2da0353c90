// Serving certificates for the webhook: a small CA (its certificate is the caBundle the API server
// trusts) and a server certificate for the Service's DNS names (and 127.0.0.1 for local runs).
import { randomBytes, webcrypto } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
// @peculiar/x509 2.x resolves its internals with tsyringe, which needs the Reflect metadata polyfill first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const keyAlgorithm = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const signingAlgorithm = { name: 'ECDSA', hash: 'SHA-256' } as const;
const day = 86_400_000;

/** The webhook's TLS material, PEM. */
export interface WebhookCertificates {
  caPem: string;
  certPem: string;
  keyPem: string;
}

const serial = () => randomBytes(16).toString('hex').replace(/^[89a-f]/, '1');

async function pemKey(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END PRIVATE KEY-----\n`;
}

/** DNS names of the webhook Service in a namespace. */
export function serviceDnsNames(service: string, namespace: string): string[] {
  return [service, `${service}.${namespace}`, `${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`];
}

/** Generate a CA and a serving certificate valid for `days` from `now`. */
export async function generateCertificates(opts: { dnsNames: string[]; ipAddresses?: string[]; days?: number; now?: Date }): Promise<WebhookCertificates> {
  const now = opts.now ?? new Date();
  const notBefore = new Date(now.getTime() - 3_600_000);
  const notAfter = new Date(now.getTime() + (opts.days ?? 365) * day);
  const caKeys = await webcrypto.subtle.generateKey(keyAlgorithm, true, ['sign', 'verify']);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: 'CN=warden-admission-ca',
    notBefore,
    notAfter,
    signingAlgorithm,
    keys: caKeys,
    extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)],
  });
  const keys = await webcrypto.subtle.generateKey(keyAlgorithm, true, ['sign', 'verify']);
  const names = [...opts.dnsNames.map((value) => ({ type: 'dns' as const, value })), ...(opts.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value }))];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${opts.dnsNames[0] ?? opts.ipAddresses?.[0] ?? 'warden-admission'}`,
    issuer: ca.subject,
    notBefore,
    notAfter,
    signingAlgorithm,
    publicKey: keys.publicKey,
    signingKey: caKeys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(names),
    ],
  });
  return { caPem: ca.toString('pem'), certPem: cert.toString('pem'), keyPem: await pemKey(keys.privateKey) };
}

/** Files in a certificate folder (as `warden admission certs` writes them). */
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
