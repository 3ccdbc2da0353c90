// OPA bundle signatures (`.signatures.json`): file hashes as OPA computes them, a JWS over the list,
// and verification with the same rules as OPA (exact file list, every hash, scope, key id).
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { CompactSign, compactVerify, decodeProtectedHeader, errors as joseErrors } from 'jose';
import { BundleError } from './archive.js';

/** Name of the signatures file inside a bundle. */
export const SIGNATURES_FILE = '.signatures.json';

/** Algorithms Warden signs and verifies with (OPA's set minus none). */
export const SIGNING_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'HS256', 'HS384', 'HS512'] as const;
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];

/** One signed file entry. */
export interface SignedFile {
  name: string;
  hash: string;
  algorithm: 'SHA-256';
}

/** The JWT payload of a bundle signature. */
export interface SignaturePayload {
  files: SignedFile[];
  keyid?: string;
  scope?: string;
  iat?: number;
  iss?: string;
}

/** A key that may verify bundles, with the algorithm it is used with. */
export interface VerificationKey {
  id: string;
  algorithm: SigningAlgorithm;
  key: KeyObject | Uint8Array;
}

/** How a pod decides whether to trust a bundle. */
export interface TrustPolicy {
  keys: VerificationKey[];
  /** When set, the signature's `scope` must equal it (OPA's --scope). */
  scope?: string;
  /** Key id to use regardless of the JWT's `kid` (OPA's precedence: configured id first). */
  keyId?: string;
}

/** Trust a single PEM public key (the one `warden build` writes as verification-key.pem), its algorithm from the key. */
export function trustFromPem(pem: string, scope?: string): TrustPolicy {
  const key = createPublicKey(pem);
  return { keys: [{ id: 'configured', algorithm: defaultAlgorithm(key), key }], keyId: 'configured', ...(scope ? { scope } : {}) };
}

/** The JWS algorithm a public key verifies with by default. */
export function defaultAlgorithm(key: KeyObject): SigningAlgorithm {
  if (key.asymmetricKeyType === 'rsa') return 'RS256';
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (curve === 'secp384r1') return 'ES384';
  if (curve === 'secp521r1') return 'ES512';
  return 'ES256';
}

// JSON/YAML data, the manifest and the signatures file are hashed over their parsed value (OPA's IsStructuredDoc).
function isStructured(name: string): boolean {
  const base = name.slice(name.lastIndexOf('/') + 1);
  return base === 'data.json' || base === 'data.yaml' || base === '.manifest' || base === SIGNATURES_FILE;
}

// Go's encoding/json (HTML escaping off) for one primitive; JSON.stringify differs only in U+2028/U+2029.
function encodePrimitive(v: unknown): string {
  return JSON.stringify(v).replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

function walk(v: unknown, out: string[]): void {
  if (Array.isArray(v)) {
    out.push('[');
    v.forEach((e, i) => {
      if (i > 0) out.push(',');
      walk(e, out);
    });
    out.push(']');
  } else if (v !== null && typeof v === 'object') {
    out.push('{');
    const keys = Object.keys(v).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    keys.forEach((k, i) => {
      if (i > 0) out.push(',');
      out.push(encodePrimitive(k), ':');
      walk((v as Record<string, unknown>)[k], out);
    });
    out.push('}');
  } else {
    out.push(encodePrimitive(v));
  }
}

/** SHA-256 of a bundle file the way OPA hashes it (hex). `data.yaml` must be passed already parsed. */
export function hashBundleFile(name: string, content: Uint8Array | unknown): string {
  const h = createHash('sha256');
  if (isStructured(name)) {
    const value = content instanceof Uint8Array ? (JSON.parse(Buffer.from(content).toString('utf8')) as unknown) : content;
    const parts: string[] = [];
    walk(value, parts);
    h.update(parts.join(''), 'utf8');
  } else {
    h.update(content as Uint8Array);
  }
  return h.digest('hex');
}

/** Sign every file of a bundle; returns the `.signatures.json` content. */
export async function signBundle(
  files: ReadonlyMap<string, Uint8Array>,
  signer: { key: KeyObject | Uint8Array; algorithm: SigningAlgorithm; keyId: string; scope?: string; issuer?: string },
  now: () => number = Date.now,
): Promise<Buffer> {
  const payload: SignaturePayload = {
    files: [...files.keys()]
      .filter((n) => n !== SIGNATURES_FILE)
      .sort()
      .map((name) => ({ name, hash: hashBundleFile(name, files.get(name)!), algorithm: 'SHA-256' })),
    keyid: signer.keyId,
    iat: Math.floor(now() / 1000),
    ...(signer.scope ? { scope: signer.scope } : {}),
    ...(signer.issuer ? { iss: signer.issuer } : {}),
  };
  const jwt = await new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader({ alg: signer.algorithm, typ: 'JWT', kid: signer.keyId })
    .sign(signer.key);
  return Buffer.from(JSON.stringify({ signatures: [jwt] }, null, 1));
}

/** Verify a bundle's signature against the trust policy; throws BundleError saying what failed. */
export async function verifyBundle(files: ReadonlyMap<string, Uint8Array>, trust: TrustPolicy): Promise<SignaturePayload> {
  const raw = files.get(SIGNATURES_FILE);
  if (!raw) throw new BundleError('bundle is not signed (no .signatures.json) and a verification key is configured');
  if (trust.keys.length === 0) throw new BundleError('bundle is signed but no verification key is configured');
  let sigs: unknown;
  try {
    sigs = JSON.parse(Buffer.from(raw).toString('utf8'));
  } catch {
    throw new BundleError('.signatures.json is not valid JSON');
  }
  const list = (sigs as { signatures?: unknown }).signatures;
  if (!Array.isArray(list) || list.length !== 1 || typeof list[0] !== 'string') {
    throw new BundleError('.signatures.json must hold exactly one signature');
  }
  const token = list[0];
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    throw new BundleError('bundle signature is not a JWS');
  }
  const keyId = trust.keyId ?? header.kid;
  const key = keyId ? trust.keys.find((k) => k.id === keyId) : trust.keys.length === 1 ? trust.keys[0] : undefined;
  if (!key) throw new BundleError(`bundle is signed with key id ${JSON.stringify(keyId ?? null)}, which is not a configured verification key`);
  if (header.alg !== key.algorithm) {
    throw new BundleError(`bundle signature uses ${String(header.alg)} but key ${key.id} is configured for ${key.algorithm}`);
  }
  let payload: SignaturePayload;
  try {
    const { payload: bytes } = await compactVerify(token, key.key, { algorithms: [key.algorithm] });
    payload = JSON.parse(new TextDecoder().decode(bytes)) as SignaturePayload;
  } catch (err) {
    const why = err instanceof joseErrors.JWSSignatureVerificationFailed ? 'the signature does not match' : (err as Error).message;
    throw new BundleError(`bundle signature is invalid: ${why}`);
  }
  if ((trust.scope ?? undefined) !== (payload.scope ?? undefined)) {
    throw new BundleError(`bundle signature scope ${JSON.stringify(payload.scope ?? null)} does not match the configured scope ${JSON.stringify(trust.scope ?? null)}`);
  }
  if (!Array.isArray(payload.files)) throw new BundleError('bundle signature payload has no file list');
  const signed = new Map(payload.files.map((f) => [f.name.replace(/^\/+/, ''), f]));
  for (const name of files.keys()) {
    if (name === SIGNATURES_FILE) continue;
    const entry = signed.get(name);
    if (!entry) throw new BundleError(`bundle file ${name} is not covered by the signature`);
    if (entry.algorithm !== 'SHA-256') throw new BundleError(`bundle file ${name} is signed with unsupported hash ${entry.algorithm}`);
    if (hashBundleFile(name, files.get(name)!) !== entry.hash) throw new BundleError(`bundle file ${name} does not match its signed hash (tampered?)`);
    signed.delete(name);
  }
  if (signed.size > 0) throw new BundleError(`signed bundle files are missing: ${[...signed.keys()].join(', ')}`);
  return payload;
}
