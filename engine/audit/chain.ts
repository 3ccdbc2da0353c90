// The audit hash chain and its signed checkpoints: what makes the store tamper-evident.
// Each stored event gets hash = sha256(prev_hash || its stored JSON text) in ingestion order; a checkpoint
// is an ES256 JWS over {store, seq, hash, time} that an operator's public key can check later, so a
// rewrite of the whole chain after a checkpoint is still caught.
import { createHash, hash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { CompactSign, compactVerify, exportJWK, generateKeyPair, importJWK, calculateJwkThumbprint, type CryptoKey, type JWK } from 'jose';

/** prev_hash of the first event a store ever holds. */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * Canonical JSON: object keys sorted, no whitespace; what checkpoints sign, and the event text of
 * version 1 stores. Same output as the original map/sort/join definition, but built by string appends, keys
 * sorted only when they are not already in order, and key quoting cached: events repeat a small set
 * of field names, and this runs once per ingested event.
 */
export function canonical(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      // A hole stays empty, as Array.prototype.map + join rendered it; JSON never has holes.
      if (!(i in value)) continue;
      const v: unknown = value[i];
      out += v === undefined ? 'null' : canonical(v);
    }
    return `${out}]`;
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj);
  if (!inOrder(keys)) keys.sort();
  let out = '{';
  for (const k of keys) {
    const v = obj[k];
    if (v === undefined) continue;
    out += `${out.length > 1 ? ',' : ''}${quoteKey(k)}:${canonical(v)}`;
  }
  return `${out}}`;
}

/** Keys in the order Array.prototype.sort leaves them (UTF-16 code units, as `<` compares). */
function inOrder(keys: string[]): boolean {
  for (let i = 1; i < keys.length; i++) if (keys[i - 1]! > keys[i]!) return false;
  return true;
}

// Quoted field names; bounded so events with arbitrary keys (request headers, claims) cannot grow it.
const quotedKeys = new Map<string, string>();
const QUOTED_KEYS_MAX = 4096;

function quoteKey(k: string): string {
  let q = quotedKeys.get(k);
  if (q === undefined) {
    q = JSON.stringify(k);
    if (quotedKeys.size < QUOTED_KEYS_MAX) quotedKeys.set(k, q);
  }
  return q;
}

/** The chain link: sha256 over the previous hash's 32 bytes followed by the stored event text (UTF-8). */
export function chainHash(prevHash: string, eventText: string): string {
  return chainDigest(Buffer.from(prevHash, 'hex'), eventText).toString('hex');
}

// One reused buffer holds prev digest + event text for the one-shot hash: a Hash object per event cost
// about a third of the hashing. Texts that might not fit (3 UTF-8 bytes per UTF-16 unit, at worst) go
// through createHash; both compute the same digest.
const scratch = Buffer.allocUnsafe(64 * 1024);
const SCRATCH_TEXT_MAX = (scratch.length - 32) / 3;

/** chainHash on raw digests, so a batch append hex-decodes nothing and hex-encodes once per event. */
export function chainDigest(prevDigest: Buffer, eventText: string): Buffer {
  if (prevDigest.length !== 32 || eventText.length > SCRATCH_TEXT_MAX) return createHash('sha256').update(prevDigest).update(eventText).digest();
  return chainDigestInPlace(scratch, 0, 32 + scratch.write(eventText, 32, 'utf8'), prevDigest);
}

/**
 * chainDigest of an event text already UTF-8 encoded at `bytes[at + 32, end)`: the 32 bytes in front
 * of it are overwritten with `prevDigest` and the whole span hashed in place, so a batch packed with
 * that room before each text (the SQLite writer's) is hashed without copying its texts.
 */
export function chainDigestInPlace(bytes: Buffer, at: number, end: number, prevDigest: Buffer): Buffer {
  prevDigest.copy(bytes, at);
  return hash('sha256', bytes.subarray(at, end), 'buffer');
}

/** Why a checkpoint was written: on a timer, or at the boundary retention is about to delete up to. */
export type CheckpointReason = 'periodic' | 'retention';

/** A signed statement "this store's chain had hash H at seq N at time T". */
export interface Checkpoint {
  seq: number;
  hash: string;
  /** RFC 3339. */
  time: string;
  reason: CheckpointReason;
  /** Compact JWS (ES256) whose payload is CheckpointClaims. */
  jws: string;
}

/** What a checkpoint signs. `store` ties it to one store so it cannot be replayed into another. */
export interface CheckpointClaims {
  store: string;
  seq: number;
  hash: string;
  time: string;
  reason: CheckpointReason;
}

/** The key that signs checkpoints (held by whoever ingests or applies retention). */
export interface CheckpointSigner {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

/** Sign a checkpoint for `store` at the given chain position. */
export async function signCheckpoint(signer: CheckpointSigner, claims: CheckpointClaims): Promise<Checkpoint> {
  const jws = await new CompactSign(new TextEncoder().encode(canonical(claims)))
    .setProtectedHeader({ alg: 'ES256', kid: signer.kid, typ: 'warden-audit-checkpoint' })
    .sign(signer.privateKey);
  return { seq: claims.seq, hash: claims.hash, time: claims.time, reason: claims.reason, jws };
}

/** Check a checkpoint's signature; returns the signed claims, or a reason it cannot be trusted. */
export async function openCheckpoint(
  jws: string,
  publicJwk: JWK,
): Promise<{ ok: true; claims: CheckpointClaims } | { ok: false; reason: string }> {
  try {
    const key = await importJWK({ ...publicJwk, alg: 'ES256' }, 'ES256');
    const { payload } = await compactVerify(jws, key, { algorithms: ['ES256'] });
    return { ok: true, claims: JSON.parse(new TextDecoder().decode(payload)) as CheckpointClaims };
  } catch (err) {
    return { ok: false, reason: `signature does not verify with the given public key (${(err as Error).message})` };
  }
}

/** The public JWK file that goes with a private key file: `x.jwk` → `x.pub.jwk`. */
export function publicKeyPath(privatePath: string): string {
  return privatePath.replace(/(\.jwk)?$/, '.pub.jwk');
}

/** Read the checkpoint key from a private JWK file, creating one (0600, plus a .pub.jwk) when asked. */
export async function loadCheckpointSigner(path: string, opts: { create: boolean }): Promise<{ signer: CheckpointSigner; created: boolean }> {
  let created = false;
  if (!existsSync(path)) {
    if (!opts.create) throw new Error(`no checkpoint signing key at ${path}`);
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const priv = { ...(await exportJWK(privateKey)), alg: 'ES256', use: 'sig' };
    const pub = { ...(await exportJWK(publicKey)), alg: 'ES256', use: 'sig' };
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, `${JSON.stringify(priv, null, 2)}\n`, { mode: 0o600 });
    chmodSync(path, 0o600);
    writeFileSync(publicKeyPath(path), `${JSON.stringify(pub, null, 2)}\n`);
    created = true;
  }
  const jwk = JSON.parse(readFileSync(path, 'utf8')) as JWK;
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256' || !jwk.d) throw new Error(`${path}: not a P-256 private JWK (ES256 checkpoint key)`);
  const privateKey = (await importJWK({ ...jwk, alg: 'ES256' }, 'ES256')) as CryptoKey;
  const publicJwk: JWK = { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y, alg: 'ES256', use: 'sig' };
  const kid = await calculateJwkThumbprint(publicJwk);
  return { signer: { kid, privateKey, publicJwk }, created };
}

/** Read a public JWK (a `.pub.jwk`, or a private JWK whose public part is used). */
export function loadPublicJwk(path: string): JWK {
  const jwk = JSON.parse(readFileSync(path, 'utf8')) as JWK;
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256') throw new Error(`${path}: not a P-256 JWK (ES256 checkpoint key)`);
  return { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y };
}
