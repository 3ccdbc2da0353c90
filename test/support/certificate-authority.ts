// A throwaway X.509 certificate authority for tests: one CA, and serving or client certificates
// issued by it, as PEM, so real TLS peers (kube-apiserver, webhook servers) can verify each other.
import { KeyObject, randomBytes, webcrypto } from 'node:crypto';
// @peculiar/x509 2.x resolves its internals through tsyringe, which needs the Reflect metadata API
// loaded first (its README says so); this import must stay above the x509 one.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

// Node's WebCrypto, typed as the DOM `Crypto` the library names (not in this project's lib).
x509.cryptoProvider.set(webcrypto as unknown as Crypto);

// ECDSA P-256: fast to generate (startup time matters) and accepted by Go's TLS and Node alike.
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
  | { kind: 'client'; commonName: string; organizations?: string[] };

/** A CA whose certificate is `certPem`; `issue` signs new leaf certificates with it. */
export interface CertificateAuthority {
  certPem: string;
  issue(request: CertificateRequest): Promise<IssuedCertificate>;
}

/** Creates a CA valid from an hour before `now` to a day after it (tests never outlive that). */
export async function createCertificateAuthority(commonName = 'warden-test-ca', now = new Date()): Promise<CertificateAuthority> {
  const notBefore = new Date(now.getTime() - hour);
  const notAfter = new Date(now.getTime() + 24 * hour);
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
    let subject = `CN=${request.commonName}`;
    if (request.kind === 'server') {
      extensions.push(new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]));
      // Go ignores the CN: the names a client dials must be subject alternative names.
      extensions.push(new x509.SubjectAlternativeNameExtension([
        ...(request.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
        ...(request.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
      ]));
    } else {
      extensions.push(new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]));
      // Kubernetes reads a client certificate's O= entries as the user's groups.
      subject += (request.organizations ?? []).map((o) => `, O=${o}`).join('');
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
    return { certPem: cert.toString('pem'), keyPem: pemOf(keys.privateKey) };
  }

  return { certPem: caCert.toString('pem'), issue };
}

// RFC 5280 serials are positive: clear the top bit so the DER integer never reads as negative.
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return bytes.toString('hex');
}

function pemOf(privateKey: webcrypto.CryptoKey): string {
  return KeyObject.from(privateKey).export({ format: 'pem', type: 'pkcs8' }).toString();
}
