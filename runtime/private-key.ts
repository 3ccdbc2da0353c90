// crypto.parse_private_keys: every private key in PEM text (or base64 of it), as Go's json.Marshal writes
// *rsa.PrivateKey, *ecdsa.PrivateKey and ed25519.PrivateKey (big integers exact). node:crypto parses.
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { BuiltinError, decodeBase64Std, exactJson, str, type HostResult } from './builtin-operand.js';

const BUILTIN = 'crypto.parse_private_keys';

/** The PEM block types Go's x509 reads as private keys, with node's name for their DER. */
export const PRIVATE_KEY_BLOCKS: Record<string, 'pkcs1' | 'pkcs8' | 'sec1'> = { 'RSA PRIVATE KEY': 'pkcs1', 'PRIVATE KEY': 'pkcs8', 'EC PRIVATE KEY': 'sec1' };

/** An unsigned big-endian integer from base64url (a JWK's n, e, d, x, y, …). */
export const big = (b64url: string | undefined): bigint => BigInt(`0x${Buffer.from(b64url ?? '', 'base64url').toString('hex') || '0'}`);

/** A private key as Go's json.Marshal writes it (the value OPA returns for it). */
export function privateKeyGoJson(key: KeyObject): unknown {
  const jwk = key.export({ format: 'jwk' });
  if (jwk.kty === 'RSA') {
    return { N: big(jwk.n), E: Number(big(jwk.e)), D: big(jwk.d), Primes: [big(jwk.p), big(jwk.q)], Precomputed: { Dp: big(jwk.dp), Dq: big(jwk.dq), Qinv: big(jwk.qi), CRTValues: [] } };
  }
  // elliptic.Curve marshals as {}: its parameters are unexported.
  if (jwk.kty === 'EC') return { Curve: {}, X: big(jwk.x), Y: big(jwk.y), D: big(jwk.d) };
  // ed25519.PrivateKey is the seed followed by the public key, a byte slice: base64.
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return Buffer.concat([Buffer.from(jwk.d!, 'base64url'), Buffer.from(jwk.x!, 'base64url')]).toString('base64');
  throw new BuiltinError(BUILTIN, `x509: unsupported private key type ${jwk.kty ?? '?'}`);
}

/** Parses one DER private key of a PEM block type from PRIVATE_KEY_BLOCKS; a malformed key is a builtin error. */
export function privateKeyFromDer(builtin: string, der: Buffer, type: 'pkcs1' | 'pkcs8' | 'sec1'): KeyObject {
  try {
    return createPrivateKey({ key: der, format: 'der', type });
  } catch (err) {
    throw new BuiltinError(builtin, `x509: ${(err as Error).message}`);
  }
}

/** crypto.parse_private_keys(keys): every private key of the PEM text, [] when none, null for "". */
export function parsePrivateKeys(input: unknown): HostResult {
  let text = str(BUILTIN, input);
  if (text === '') return null;
  // Go tries base64 first and keeps the text as it is when that fails.
  text = decodeBase64Std(text)?.toString('latin1') ?? text;
  const keys: unknown[] = [];
  for (const m of text.matchAll(/-----BEGIN ([^\n-]+)-----\r?\n([\s\S]*?)-----END \1-----/g)) {
    const type = PRIVATE_KEY_BLOCKS[m[1]!];
    if (type) keys.push(privateKeyGoJson(privateKeyFromDer(BUILTIN, Buffer.from(m[2]!.replace(/\s+/g, ''), 'base64'), type)));
  }
  return exactJson(keys);
}
