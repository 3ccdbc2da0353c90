// The key bundles are signed with: loaded from PEM (EC or RSA), or generated for local development.
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import type { SigningAlgorithm } from '../../runtime/signature.js';
import { UserError } from '../../formats/user-error.js';

/** Raised for a missing or unusable signing key; the message says what to do. */
export class SigningError extends UserError {
  override name = 'SigningError';
}

/** A private key ready to sign, its public half, the algorithm and key id. */
export interface SigningKey {
  key: KeyObject;
  publicKey: KeyObject;
  algorithm: SigningAlgorithm;
  keyId: string;
}

function defaultAlgorithm(key: KeyObject): SigningAlgorithm {
  const d = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'ec') {
    if (d?.namedCurve === 'prime256v1' || d?.namedCurve === 'P-256') return 'ES256';
    if (d?.namedCurve === 'secp384r1' || d?.namedCurve === 'P-384') return 'ES384';
    if (d?.namedCurve === 'secp521r1' || d?.namedCurve === 'P-521') return 'ES512';
  }
  if (key.asymmetricKeyType === 'rsa') return 'RS256';
  throw new SigningError(`unsupported signing key type ${key.asymmetricKeyType ?? 'unknown'} (use an EC P-256/P-384/P-521 or RSA key)`);
}

/** Key id: the public key's JWK thumbprint (RFC 7638), shortened; stable across rebuilds. */
export async function keyIdOf(publicKey: KeyObject): Promise<string> {
  return (await calculateJwkThumbprint(await exportJWK(publicKey), 'sha256')).slice(0, 16);
}

/** Load a PEM private key; `algorithm` must fit the key (RSxxx or PSxxx for RSA, ESxxx for EC). */
export async function loadSigningKey(path: string, opts: { algorithm?: SigningAlgorithm; keyId?: string } = {}): Promise<SigningKey> {
  if (!existsSync(path)) throw new SigningError(`signing key ${path} does not exist (pass --signing-key with a PEM private key, or omit it to use a generated development key)`);
  let key: KeyObject;
  try {
    key = createPrivateKey(readFileSync(path));
  } catch (err) {
    throw new SigningError(`signing key ${path} is not a PEM private key: ${(err as Error).message}`);
  }
  const algorithm = opts.algorithm ?? defaultAlgorithm(key);
  const family = key.asymmetricKeyType === 'rsa' ? /^(RS|PS)/ : /^ES/;
  if (!family.test(algorithm)) throw new SigningError(`signing algorithm ${algorithm} does not fit the ${key.asymmetricKeyType} key in ${path}`);
  if (key.asymmetricKeyType === 'ec' && algorithm !== defaultAlgorithm(key)) {
    throw new SigningError(`signing algorithm ${algorithm} does not fit the curve of the key in ${path} (use ${defaultAlgorithm(key)})`);
  }
  const publicKey = createPublicKey(key);
  return { key, publicKey, algorithm, keyId: opts.keyId ?? (await keyIdOf(publicKey)) };
}

/** Create an ES256 key pair for local development at `path` (private, mode 600) and `path`.pub. */
export function generateDevelopmentKey(path: string): void {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
  writeFileSync(`${path}.pub`, publicKey.export({ type: 'spki', format: 'pem' }));
}
