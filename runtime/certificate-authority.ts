// A small X.509 certificate authority: one CA and the leaf certificates it signs (TLS servers by DNS
// name or IP, TLS clients by common name, organizations or SPIFFE URI), as PEM. The one place Warden
// mints certificates: the admission webhook's serving certificate, `warden up`'s local identities, tests.
// @peculiar/x509 2.x resolves its internals through tsyringe, which needs the Reflect metadata API
// loaded first (its README says so); this import must stay above the x509 one.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { KeyObject, randomBytes, webcrypto } from 'node:crypto';

// Node's WebCrypto, typed as the DOM `Crypto` the library names.
x509.cryptoProvider.set(webcrypto as unknown as Crypto);

// ECDSA P-256: fast to generate (start-up time matters) and accepted by Go's TLS and Node alike.
const keyAlgorithm = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const signingAlgorithm = { name: 'ECDSA', hash: 'SHA-256' } as const;
const hour = 3_600_000;

/** A certificate with its private key, both PEM. */
export interface IssuedCertificate {
  certPem: string;
  keyPem: string;
}

/** What a certificate is for: a TLS server (with the names clients dial) or a TLS client. */
export type CertificateRequest =
  | { kind: 'server'; commonName: string; dnsNames?: string[]; ipAddresses?: string[] }
  | { kind: 'client'; commonName?: string; organizations?: string[]; uris?: string[] };

/** A CA whose certificate is `certPem`; `issue` signs new leaf certificates with it. */
export interface CertificateAuthority {
  certPem: string;
  issue(request: CertificateRequest): Promise<IssuedCertificate>;
}

/** Validity of the CA and everything it issues: from an hour before `now` for `hours` (default a day). */
export interface ValidityOptions {
  now?: Date;
  hours?: number;
}

/** Create a CA named `commonName`. */
export async function createCertificateAuthority(commonName = 'warden-ca', validity: ValidityOptions | Date = {}): Promise<CertificateAuthority> {
  const opts = validity instanceof Date ? { now: validity } : validity;
  const now = opts.now ?? new Date();
  const notBefore = new Date(now.getTime() - hour);
  const notAfter = new Date(now.getTime() + (opts.hours ?? 24) * hour);
  const caKeys = await webcrypto.subtle.generateKey(keyAlgorithm, true, ['sign', 'verify']);
  const caCert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: `CN=${commonName}`,
    notBefore,
    notAfter,
    signingAlgorithm,
    keys: caKeys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });

  async function issue(request: CertificateRequest): Promise<IssuedCertificate> {
    const keys = await webcrypto.subtle.generateKey(keyAlgorithm, true, ['sign', 'verify']);
    const extensions: x509.Extension[] = [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ];
    let subject: string;
    if (request.kind === 'server') {
      subject = `CN=${request.commonName}`;
      extensions.push(new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]));
      // Go ignores the CN: the names a client dials must be subject alternative names.
      extensions.push(new x509.SubjectAlternativeNameExtension([
        ...(request.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
        ...(request.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
      ]));
    } else {
      // Kubernetes reads a client certificate's O= entries as the user's groups; SPIFFE IDs are URI SANs.
      subject = [`CN=${request.commonName ?? request.uris?.[0] ?? 'client'}`, ...(request.organizations ?? []).map((o) => `O=${o}`)].join(', ');
      extensions.push(new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]));
      if (request.uris?.length) extensions.push(new x509.SubjectAlternativeNameExtension(request.uris.map((value) => ({ type: 'url' as const, value }))));
    }
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serialNumber(),
      subject,
      issuer: caCert.subject,
      notBefore,
      notAfter,
      signingAlgorithm,
      publicKey: keys.publicKey,
      signingKey: caKeys.privateKey,
      extensions,
    });
    return { certPem: cert.toString('pem'), keyPem: KeyObject.from(keys.privateKey).export({ format: 'pem', type: 'pkcs8' }).toString() };
  }

  return { certPem: caCert.toString('pem'), issue };
}

// RFC 5280 serials are positive: clear the top bit so the DER integer never reads as negative.
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return bytes.toString('hex');
}
