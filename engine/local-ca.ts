// A local X.509 certificate authority for `warden up` (and the tests): one CA, a serving certificate
// for a loopback address or host name, and client certificates carrying a SPIFFE ID in their URI SAN,
// as the cluster's identity issuer (SPIRE, cert-manager csi-driver-spiffe) would mint them. In a
// cluster the CA is the mesh's; here it lives only as long as the process that made it.
// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata polyfill loaded first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { randomBytes, webcrypto } from 'node:crypto';

/** PEM key and certificate, ready for node:tls options. */
export interface Issued {
  key: string;
  cert: string;
}

/** A CA that can issue server and SPIFFE client certificates. */
export interface LocalCa {
  /** The CA certificate (PEM): the trust bundle for both servers and clients. */
  cert: string;
  server(host: string): Promise<Issued>;
  client(spiffeId: string): Promise<Issued>;
}

const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

function pem(der: ArrayBuffer, label: string): string {
  const b64 = Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END ${label}-----\n`;
}

type KeyPair = webcrypto.CryptoKeyPair;

// ECDSA P-256: fast to generate (start-up time matters) and accepted by Go's TLS and Node alike.
async function keys(): Promise<KeyPair> {
  return (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as KeyPair;
}

// RFC 5280 serials are positive: clear the top bit so the DER integer never reads as negative.
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return bytes.toString('hex');
}

/** Create a CA named `name`, valid from a minute ago for `hours` hours (default a day). */
export async function createLocalCa(name = 'Warden Local CA', hours = 24): Promise<LocalCa> {
  x509.cryptoProvider.set(webcrypto as unknown as Crypto);
  const caKeys = await keys();
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(Date.now() + hours * 3_600_000);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: `CN=${name}`,
    notBefore,
    notAfter,
    keys: caKeys,
    signingAlgorithm: alg,
    extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)],
  });
  const issue = async (subject: string, san: x509.JsonGeneralNames, usage: string): Promise<Issued> => {
    const k = await keys();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serialNumber(),
      subject,
      issuer: ca.subject,
      notBefore,
      notAfter,
      publicKey: k.publicKey,
      signingKey: caKeys.privateKey,
      signingAlgorithm: alg,
      extensions: [
        new x509.BasicConstraintsExtension(false),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
        new x509.ExtendedKeyUsageExtension([usage]),
        new x509.SubjectAlternativeNameExtension(san),
      ],
    });
    return { key: pem(await webcrypto.subtle.exportKey('pkcs8', k.privateKey), 'PRIVATE KEY'), cert: cert.toString('pem') };
  };
  return {
    cert: ca.toString('pem'),
    server: (host) => issue(`CN=${host}`, [/^\d+\.\d+\.\d+\.\d+$/.test(host) ? { type: 'ip', value: host } : { type: 'dns', value: host }], '1.3.6.1.5.5.7.3.1'),
    client: (spiffeId) => issue('O=SPIRE', [{ type: 'url', value: spiffeId }], '1.3.6.1.5.5.7.3.2'),
  };
}
