// io.jwt.*: decoding, signature checks, decode_verify and signing, with the semantics of OPA's Go
// evaluator (v1/topdown/tokens.go). Host builtins are synchronous, and jose's API is asynchronous
// (WebCrypto), so the cryptography is node:crypto's synchronous one over the same key formats: PEM
// certificates, PEM public keys and JWK (sets).
import { createHmac, createPrivateKey, createPublicKey, constants, sign as cryptoSign, timingSafeEqual, verify as cryptoVerify, X509Certificate, type KeyObject } from 'node:crypto';
import { BuiltinError, isObject, str } from './builtin-operand.js';
import { goJson } from './go-json.js';
import type { JsonValue } from './sprintf.js';

type JsonObject = { [key: string]: JsonValue };

const ALGORITHMS = new Set(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'HS256', 'HS384', 'HS512', 'EdDSA']);
const HASH: Record<string, string> = { '256': 'sha256', '384': 'sha384', '512': 'sha512' };

interface VerificationKey {
  alg: string;
  kid: string;
  key: KeyObject | Buffer;
}

// OPA's base64url decoding: padding restored when missing, then Go's (non-strict) URL alphabet decoder.
function base64Url(builtin: string, s: string): Buffer {
  let t = s;
  if (!t.endsWith('=')) {
    if (t.length % 4 === 1) throw new BuiltinError(builtin, `illegal base64url string: ${s}`);
    t += '='.repeat((4 - (t.length % 4)) % 4);
  }
  if (!/^[A-Za-z0-9_-]*={0,2}$/.test(t) || t.length % 4 !== 0) throw new BuiltinError(builtin, `illegal base64 data in ${JSON.stringify(s)}`);
  return Buffer.from(t, 'base64url');
}

function jsonObject(builtin: string, text: string, what: string): JsonObject {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new BuiltinError(builtin, `${what}: invalid JSON`);
  }
  if (!isObject(v)) throw new BuiltinError(builtin, `${what}: decoded JSON type was not an Object`);
  return v;
}

interface Token {
  header: string;
  payload: string;
  signature: string;
}

function split(builtin: string, token: unknown): Token {
  const s = str(builtin, token);
  if (!s.includes('.')) throw new BuiltinError(builtin, 'encoded JWT had no period separators');
  const parts = s.split('.');
  if (parts.length !== 3) throw new BuiltinError(builtin, `encoded JWT must have 3 sections, found ${parts.length}`);
  return { header: parts[0]!, payload: parts[1]!, signature: parts[2]! };
}

function decodeHeader(builtin: string, t: Token): JsonObject {
  const header = jsonObject(builtin, base64Url(builtin, t.header).toString('utf8'), 'bad JWT header');
  if ('enc' in header) throw new BuiltinError(builtin, 'JWT is a JWE object, which is not supported');
  return header;
}

/** io.jwt.decode: [header, payload, signature as hex]; a `cty: JWT` token is decoded through to the inner one. */
export function decodeJwt(token: unknown): JsonValue {
  const t = split('io.jwt.decode', token);
  const header = decodeHeader('io.jwt.decode', t);
  const payload = base64Url('io.jwt.decode', t.payload).toString('utf8');
  if (typeof header.cty === 'string' && header.cty === 'JWT') return decodeJwt(payload.replace(/^["']+|["']+$/g, ''));
  return [header, jsonObject('io.jwt.decode', payload, 'JWT payload'), base64Url('io.jwt.decode', t.signature).toString('hex')];
}

// A PEM certificate or public key, or a JWK / JWK set (as OPA: a PEM block is never JSON, so try both).
function parseKeys(builtin: string, certificate: string): VerificationKey[] {
  const pem = /^\s*-----BEGIN ([A-Z0-9 ]+)-----\r?\n[\s\S]*?-----END \1-----\s*/.exec(certificate);
  if (pem) {
    if (pem[0].length !== certificate.length) throw new BuiltinError(builtin, 'extra data after a PEM certificate block');
    try {
      if (pem[1] === 'CERTIFICATE') return [{ alg: '', kid: '', key: new X509Certificate(certificate).publicKey }];
      if (pem[1] === 'PUBLIC KEY') return [{ alg: '', kid: '', key: createPublicKey(certificate) }];
    } catch (err) {
      throw new BuiltinError(builtin, `failed to parse a PEM ${pem[1]!.toLowerCase()}: ${(err as Error).message}`);
    }
    throw new BuiltinError(builtin, 'failed to extract a Key from the PEM certificate');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(certificate);
  } catch {
    throw new BuiltinError(builtin, 'failed to parse a JWK key (set): not JSON');
  }
  const jwks = isObject(parsed) && Array.isArray(parsed.keys) ? parsed.keys : [parsed];
  const keys: VerificationKey[] = [];
  for (const jwk of jwks) {
    if (!isObject(jwk)) throw new BuiltinError(builtin, 'failed to parse a JWK key (set): a key is not an object');
    const alg = typeof jwk.alg === 'string' ? jwk.alg : '';
    if (alg !== '' && !ALGORITHMS.has(alg)) continue;
    keys.push({ alg, kid: typeof jwk.kid === 'string' ? jwk.kid : '', key: jwkKey(builtin, jwk, false) });
  }
  return keys;
}

function jwkKey(builtin: string, jwk: JsonObject, secret: boolean): KeyObject | Buffer {
  if (jwk.kty === 'oct') {
    if (typeof jwk.k !== 'string') throw new BuiltinError(builtin, 'failed to parse a JWK key: oct key without k');
    return Buffer.from(jwk.k, 'base64url');
  }
  try {
    const input = { key: jwk as import('node:crypto').JsonWebKey, format: 'jwk' as const };
    return secret ? createPrivateKey(input) : createPublicKey(input);
  } catch (err) {
    throw new BuiltinError(builtin, `failed to parse a JWK key: ${(err as Error).message}`);
  }
}

// One signature check for a JWS algorithm; false for a key of the wrong kind (as Go's type assertions).
function verifySignature(alg: string, key: KeyObject | Buffer, input: Buffer, signature: Buffer): boolean {
  const family = alg.slice(0, 2);
  const hash = HASH[alg.slice(2)];
  try {
    if (alg === 'EdDSA') return !Buffer.isBuffer(key) && key.asymmetricKeyType === 'ed25519' && cryptoVerify(null, input, key, signature);
    if (Buffer.isBuffer(key)) {
      if (family !== 'HS' || !hash) return false;
      const mac = createHmac(hash, key).update(input).digest();
      return mac.length === signature.length && timingSafeEqual(mac, signature);
    }
    if (!hash) return false;
    if (family === 'RS') return key.asymmetricKeyType === 'rsa' && cryptoVerify(hash, input, key, signature);
    if (family === 'PS') return key.asymmetricKeyType === 'rsa' && cryptoVerify(hash, input, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO }, signature);
    if (family === 'ES') return key.asymmetricKeyType === 'ec' && cryptoVerify(hash, input, { key, dsaEncoding: 'ieee-p1363' }, signature);
  } catch {
    return false;
  }
  return false;
}

/** io.jwt.verify_<alg>(token, certificate or JWKS): whether one of the keys signed the token with `alg`. */
export function verifyWithKeys(alg: string): (token: unknown, certificate: unknown) => boolean {
  const builtin = `io.jwt.verify_${alg.toLowerCase()}`;
  return (token, certificate) => {
    const t = split(builtin, token);
    const keys = parseKeys(builtin, str(builtin, certificate));
    const signature = base64Url(builtin, t.signature);
    const header = decodeHeader(builtin, t);
    const parsed = headerFields(builtin, header);
    const input = Buffer.from(`${t.header}.${t.payload}`);
    if (parsed.kid !== '') {
      const byKid = keys.find((k) => k.kid === parsed.kid);
      if (byKid) return verifySignature(alg, byKid.key, input, signature);
    }
    return keys.some((k) => (k.alg === '' || k.alg === parsed.alg) && verifySignature(alg, k.key, input, signature));
  };
}

/** io.jwt.verify_hs<n>(token, secret). */
export function verifyWithSecret(alg: string): (token: unknown, secret: unknown) => boolean {
  const builtin = `io.jwt.verify_${alg.toLowerCase()}`;
  return (token, secret) => {
    const s = str(builtin, token);
    const key = Buffer.from(str(builtin, secret), 'utf8');
    const t = split(builtin, s);
    return verifySignature(alg, key, Buffer.from(`${t.header}.${t.payload}`), base64Url(builtin, t.signature));
  };
}

interface HeaderFields {
  alg: string;
  kid: string;
  cty: string;
  valid: boolean;
}

// The header fields OPA reads, with its type checks; `valid` is false without alg or with an unknown critical field.
function headerFields(builtin: string, header: JsonObject): HeaderFields {
  const out = { alg: '', kid: '', typ: '', cty: '' };
  let crit: Set<string> | undefined;
  const unknown: string[] = [];
  for (const [k, v] of Object.entries(header)) {
    if (k === 'crit') {
      if (!Array.isArray(v)) throw new BuiltinError(builtin, 'crit: must be a list');
      crit = new Set(v.filter((e): e is string => typeof e === 'string'));
      if (crit.size === 0) throw new BuiltinError(builtin, 'crit: must be a nonempty list');
    } else if (k in out) {
      if (typeof v !== 'string') throw new BuiltinError(builtin, `${k}: must be a string`);
      out[k as keyof typeof out] = v;
    } else unknown.push(k);
  }
  return { alg: out.alg, kid: out.kid, cty: out.cty, valid: out.alg !== '' && !unknown.some((u) => crit?.has(u)) };
}

const UNVERIFIED: JsonValue = [false, {}, {}];

/** io.jwt.decode_verify(token, constraints): [valid, header, payload], checking signature, alg, iss, aud, exp and nbf. */
export function decodeVerify(nowNs: () => bigint): (token: unknown, constraints: unknown) => JsonValue {
  const builtin = 'io.jwt.decode_verify';
  return (token, constraintsIn) => {
    if (!isObject(constraintsIn)) throw new BuiltinError(builtin, 'operand 2 must be object');
    let keys: VerificationKey[] | undefined;
    let secret = '';
    let alg = '';
    let iss = '';
    let aud = '';
    let time = -1;
    for (const [name, v] of Object.entries(constraintsIn)) {
      if (name === 'cert') {
        if (typeof v !== 'string') throw new BuiltinError(builtin, 'cert constraint: must be a string');
        keys = parseKeys(builtin, v);
      } else if (name === 'time') time = timeConstraint(v);
      else if (name === 'secret' || name === 'alg' || name === 'iss' || name === 'aud') {
        if (typeof v !== 'string') throw new BuiltinError(builtin, `${name} constraint: must be a string`);
        if (name === 'secret') secret = v;
        else if (name === 'alg') alg = v;
        else if (name === 'iss') iss = v;
        else aud = v;
      } else throw new BuiltinError(builtin, `unknown token validation constraint: ${name}`);
    }
    if (time === -1) time = Number(nowNs());
    if ((keys ? 1 : 0) + (secret !== '' ? 1 : 0) > 1) throw new BuiltinError(builtin, 'duplicate key constraints');
    if (!keys && secret === '') throw new BuiltinError(builtin, 'no key constraint');

    let current: unknown = token;
    let header: JsonObject;
    let payloadText: string;
    for (;;) {
      const t = split(builtin, current);
      header = decodeHeader(builtin, t);
      const fields = headerFields(builtin, header);
      if (!fields.valid) return UNVERIFIED;
      if (alg !== '' && alg !== fields.alg) return UNVERIFIED;
      const signature = base64Url(builtin, t.signature);
      const input = Buffer.from(`${t.header}.${t.payload}`);
      let verified: boolean;
      if (keys) {
        const byKid = fields.kid !== '' ? keys.find((k) => k.kid === fields.kid) : undefined;
        verified = byKid
          ? verifySignature(fields.alg, byKid.key, input, signature)
          : keys.some((k) => (k.alg === '' || k.alg === fields.alg) && verifySignature(fields.alg, k.key, input, signature));
      } else verified = verifySignature(fields.alg, Buffer.from(secret, 'utf8'), input, signature);
      if (!verified) return UNVERIFIED;
      payloadText = base64Url(builtin, t.payload).toString('utf8');
      if (fields.cty.toLowerCase() === 'jwt') {
        current = payloadText;
        continue;
      }
      break;
    }
    const payload = jsonObject(builtin, payloadText, 'JWT payload');
    if (iss !== '' && payload.iss !== iss) return UNVERIFIED;
    if ('aud' in payload) {
      const a = payload.aud;
      const ok = typeof a === 'string' ? a === aud : Array.isArray(a) && a.some((e) => typeof e === 'string' && e === aud);
      if (!ok) return UNVERIFIED;
    } else if (aud !== '') return UNVERIFIED;
    const seconds = time / 1e9;
    if ('exp' in payload) {
      if (typeof payload.exp !== 'number') throw new BuiltinError(builtin, 'exp value must be a number');
      if (seconds >= payload.exp) return UNVERIFIED;
    }
    if ('nbf' in payload) {
      if (typeof payload.nbf !== 'number') throw new BuiltinError(builtin, 'nbf value must be a number');
      if (seconds < payload.nbf) return UNVERIFIED;
    }
    return [true, header, payload];
  };
}

function timeConstraint(v: unknown): number {
  if (typeof v !== 'number') throw new BuiltinError('io.jwt.decode_verify', 'token time constraint: must be a number');
  if (v < 0) throw new BuiltinError('io.jwt.decode_verify', 'token time constraint: must not be negative');
  return v;
}

// Signs `headers.payload` (both already JSON text) with the first key of a JWK (set), as OPA's jwsbb does.
function encodeSign(builtin: string, headersText: string, payloadText: string, jwkText: string): string {
  let jwkParsed: unknown;
  try {
    jwkParsed = JSON.parse(jwkText);
  } catch {
    throw new BuiltinError(builtin, 'failed to parse the JWK: not JSON');
  }
  const jwk = isObject(jwkParsed) && Array.isArray(jwkParsed.keys) ? jwkParsed.keys[0] : jwkParsed;
  if (!isObject(jwk)) throw new BuiltinError(builtin, 'no keys found in JWK set');
  let headers: unknown;
  try {
    headers = JSON.parse(headersText);
  } catch {
    throw new BuiltinError(builtin, "missing or invalid 'alg' header: headers are not JSON");
  }
  const alg = isObject(headers) ? headers.alg : undefined;
  if (typeof alg !== 'string') throw new BuiltinError(builtin, "missing or invalid 'alg' header");
  if (!ALGORITHMS.has(alg)) throw new BuiltinError(builtin, `unknown JWS algorithm: ${alg}`);
  const typ = isObject(headers) ? headers.typ : undefined;
  if (typeof typ !== 'string' || typ === 'JWT') {
    try {
      JSON.parse(payloadText);
    } catch {
      throw new BuiltinError(builtin, 'type is JWT but payload is not JSON');
    }
  }
  const input = `${Buffer.from(headersText).toString('base64url')}.${Buffer.from(payloadText).toString('base64url')}`;
  const key = jwkKey(builtin, jwk, true);
  const hash = HASH[alg.slice(2)];
  const family = alg.slice(0, 2);
  let signature: Buffer;
  try {
    if (Buffer.isBuffer(key)) {
      if (family !== 'HS' || !hash) throw new Error(`a symmetric key cannot sign ${alg}`);
      signature = createHmac(hash, key).update(input).digest();
    } else if (alg === 'EdDSA') signature = cryptoSign(null, Buffer.from(input), key);
    else if (family === 'RS') signature = cryptoSign(hash!, Buffer.from(input), key);
    else if (family === 'PS') signature = cryptoSign(hash!, Buffer.from(input), { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST });
    else if (family === 'ES') signature = cryptoSign(hash!, Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
    else throw new Error(`a private key cannot sign ${alg}`);
  } catch (err) {
    throw new BuiltinError(builtin, (err as Error).message);
  }
  return `${input}.${signature.toString('base64url')}`;
}

/** io.jwt.encode_sign(headers, payload, key): objects marshalled as Go's encoding/json does. */
export function encodeSignObjects(headers: unknown, payload: unknown, key: unknown): string {
  return encodeSign('io.jwt.encode_sign', goJson(headers as JsonValue), goJson(payload as JsonValue), goJson(key as JsonValue));
}

/** io.jwt.encode_sign_raw(headers, payload, key): the three as JSON text, used verbatim. */
export function encodeSignRaw(headers: unknown, payload: unknown, key: unknown): string {
  const b = 'io.jwt.encode_sign_raw';
  const k = str(b, key);
  return encodeSign(b, str(b, headers), str(b, payload), k);
}

/** Every io.jwt.* builtin, over the evaluation's clock (decode_verify's default time). */
export function jwtBuiltins(nowNs: () => bigint): Record<string, (...args: never[]) => JsonValue> {
  const out: Record<string, (...args: never[]) => JsonValue> = {
    'io.jwt.decode': decodeJwt,
    'io.jwt.decode_verify': decodeVerify(nowNs),
    'io.jwt.encode_sign': encodeSignObjects,
    'io.jwt.encode_sign_raw': encodeSignRaw,
  };
  for (const alg of ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA']) out[`io.jwt.verify_${alg.toLowerCase()}`] = verifyWithKeys(alg);
  for (const alg of ['HS256', 'HS384', 'HS512']) out[`io.jwt.verify_${alg.toLowerCase()}`] = verifyWithSecret(alg);
  return out;
}
