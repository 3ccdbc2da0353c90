// A throwaway certificate authority for tests: a CA, a server certificate for 127.0.0.1, and client
// certificates carrying a SPIFFE ID in their URI SAN, as the cluster's identity issuer would mint them.
// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata polyfill loaded first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';

/** PEM key and certificate, ready for node:tls options. */
export interface Issued {
  key: string;
  cert: string;
}

/** A CA that can issue server and SPIFFE client certificates. */
export interface TestCa {
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

async function keys(): Promise<KeyPair> {
  return (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as KeyPair;
}

/** Create a CA named `name`. */
export async function createCa(name = 'Warden Test CA'): Promise<TestCa> {
  x509.cryptoProvider.set(webcrypto as unknown as Crypto);
  const caKeys = await keys();
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(Date.now() + 24 * 3_600_000);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: `CN=${name}`,
    notBefore,
    notAfter,
    keys: caKeys,
    signingAlgorithm: alg,
    extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)],
  });
  let serial = 1;
  const issue = async (subject: string, san: x509.JsonGeneralNames, usage: string): Promise<Issued> => {
    const k = await keys();
    serial += 1;
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial.toString(16).padStart(2, '0'),
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
