// A TrustPolicy from a PEM public key file, as a pod would be configured.
import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { SigningAlgorithm, TrustPolicy } from '../../runtime/signature.js';

export function trustFromPem(path: string, id: string, algorithm: SigningAlgorithm): TrustPolicy {
  return { keys: [{ id, algorithm, key: createPublicKey(readFileSync(path)) }] };
}
