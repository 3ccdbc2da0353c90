// A throwaway certificate authority for tests: the same local CA `warden up` uses (engine/local-ca.ts),
// under the names the tests already import.
import { X509Certificate } from 'node:crypto';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { createLocalCa, type Issued, type LocalCa } from '../../engine/local-ca.js';

export type { Issued };
/** A CA that can issue server and SPIFFE client certificates. */
export type TestCa = LocalCa;

/** Create a CA named `name`. */
export function createCa(name = 'Warden Test CA'): Promise<TestCa> {
  return createLocalCa(name);
}

/** The serial number of the certificate a TLS server at `host:port` presents (checked against `ca`). */
export function servedSerial(address: string, ca: string): Promise<string> {
  const [host, port] = address.replace(/^https?:\/\//, '').split(':') as [string, string];
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port: Number(port), ca }, () => {
      resolve(socket.getPeerX509Certificate()!.serialNumber);
      socket.end();
    });
    socket.on('error', reject);
  });
}

/** The serial number of a PEM certificate. */
export const serialOf = (pem: string): string => new X509Certificate(pem).serialNumber;

/** Replace files in `dir` as a rotation does: each new content appears whole, by rename. */
export function rotate(dir: string, files: Record<string, string>): void {
  for (const [name, text] of Object.entries(files)) {
    writeFileSync(join(dir, `${name}.tmp`), text);
    renameSync(join(dir, `${name}.tmp`), join(dir, name));
  }
}
