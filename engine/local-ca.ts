// A local X.509 certificate authority for `warden up` (and the tests): one CA, a serving certificate
// for a loopback address or host name, and client certificates carrying a SPIFFE ID in their URI SAN,
// as the cluster's identity issuer (SPIRE, cert-manager csi-driver-spiffe) would mint them. In a
// cluster the CA is the mesh's; here it lives only as long as the process that made it.
import { createCertificateAuthority } from '../runtime/certificate-authority.js';

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

/** Create a CA named `name`, valid from an hour ago for `hours` hours (default a day). */
export async function createLocalCa(name = 'Warden Local CA', hours = 24): Promise<LocalCa> {
  const ca = await createCertificateAuthority(name, { hours });
  const issued = ({ certPem, keyPem }: { certPem: string; keyPem: string }): Issued => ({ cert: certPem, key: keyPem });
  return {
    cert: ca.certPem,
    server: async (host) =>
      issued(await ca.issue({ kind: 'server', commonName: host, ...(/^\d+\.\d+\.\d+\.\d+$/.test(host) ? { ipAddresses: [host] } : { dnsNames: [host] }) })),
    client: async (spiffeId) => issued(await ca.issue({ kind: 'client', organizations: ['SPIRE'], uris: [spiffeId] })),
  };
}
