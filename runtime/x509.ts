// crypto.x509.parse_certificates: certificates (PEM, or base64 of PEM or DER, chains allowed) as OPA
// returns them, a subset of Go's x509.Certificate marshalled to JSON plus OPA's URIStrings: the
// fields policies read (Subject, Issuer, SerialNumber, validity, SANs, Raw). Node's X509Certificate
// parses; the DER chain is split by its ASN.1 headers.
import { createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { base64Std, BuiltinError, exactJsonText, jsonTextResult, str, type HostResult } from './builtin-operand.js';
import { PRIVATE_KEY_BLOCKS, privateKeyGoJson } from './private-key.js';

const BUILTIN = 'crypto.x509.parse_certificates';

function fail(message: string): never {
  throw new BuiltinError(BUILTIN, message);
}

function pemBlocks(text: string): Buffer {
  const parts: Buffer[] = [];
  for (const m of text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g)) {
    if (m[1] !== 'CERTIFICATE') fail(`PEM block type is '${m[1]!}', expected CERTIFICATE`);
    parts.push(Buffer.from(m[2]!.replace(/\s+/g, ''), 'base64'));
  }
  return Buffer.concat(parts);
}

// Go's x509.ParseCertificates: consecutive DER SEQUENCEs.
function derChain(der: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let pos = 0;
  while (pos < der.length) {
    if (der[pos] !== 0x30 || pos + 2 > der.length) fail('x509: malformed certificate');
    let len = der[pos + 1]!;
    let header = 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      if (n === 0 || n > 4 || pos + 2 + n > der.length) fail('x509: malformed certificate');
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + der[pos + 2 + i]!;
      header += n;
    }
    if (pos + header + len > der.length) fail('x509: malformed certificate');
    out.push(der.subarray(pos, pos + header + len));
    pos += header + len;
  }
  return out;
}

const NAME_FIELDS: Record<string, string> = { C: 'Country', O: 'Organization', OU: 'OrganizationalUnit', L: 'Locality', ST: 'Province', street: 'StreetAddress', postalCode: 'PostalCode' };

// pkix.Name as Go marshals it: the multi-valued attributes as arrays (null when absent).
function name(text: string): Record<string, unknown> {
  const out: Record<string, unknown> = { Country: null, Organization: null, OrganizationalUnit: null, Locality: null, Province: null, StreetAddress: null, PostalCode: null, SerialNumber: '', CommonName: '' };
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const [k, v] = [line.slice(0, eq), line.slice(eq + 1)];
    if (k === 'CN') out.CommonName = v;
    else if (k === 'serialNumber') out.SerialNumber = v;
    else if (NAME_FIELDS[k]) ((out[NAME_FIELDS[k]] as string[] | null) ?? (out[NAME_FIELDS[k]] = [])).push(v);
  }
  return out;
}

function sans(cert: X509Certificate, prefix: string): string[] | null {
  const list = (cert.subjectAltName ?? '').split(', ').filter((s) => s.startsWith(prefix)).map((s) => s.slice(prefix.length));
  return list.length ? list : null;
}

/**
 * One DER certificate as the JSON text OPA gives for it (a subset of Go's x509.Certificate, plus OPA's
 * URIStrings unless `uriStrings` is false: a tls.Certificate's Leaf is Go's plain x509.Certificate).
 */
export function certificateJson(der: Buffer, uriStrings = true): string {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(der);
  } catch {
    fail('x509: malformed certificate');
  }
  const fields = {
    Raw: der.toString('base64'),
    Version: 3,
    Issuer: name(cert.issuer),
    Subject: name(cert.subject),
    NotBefore: new Date(cert.validFrom).toISOString().replace('.000Z', 'Z'),
    NotAfter: new Date(cert.validTo).toISOString().replace('.000Z', 'Z'),
    IsCA: cert.ca,
    DNSNames: sans(cert, 'DNS:'),
    EmailAddresses: sans(cert, 'email:'),
    IPAddresses: sans(cert, 'IP Address:'),
    ...(uriStrings ? { URIStrings: sans(cert, 'URI:') } : {}),
  };
  // The serial is a big integer in Go's JSON: written as a number, every digit kept.
  return `${JSON.stringify(fields).slice(0, -1)},"SerialNumber":${BigInt(`0x${cert.serialNumber}`).toString()}}`;
}

/** crypto.x509.parse_certificates(certs): every certificate of the chain, as JSON text (exact serials). */
export function parseCertificates(input: unknown): HostResult {
  return jsonTextResult(`[${certificatesDer(str(BUILTIN, input)).map((der) => certificateJson(der)).join(',')}]`);
}

// tls.X509KeyPair's input: PEM as it is, else base64 of PEM, else base64 of DER (wrapped as `type`).
function keypairPem(builtin: string, text: string, type: string): string {
  if (text.startsWith('-----BEGIN')) return text;
  const decoded = base64Std(builtin, text);
  return decoded.subarray(0, 10).toString('latin1').startsWith('-----BEGIN') ? decoded.toString('latin1') : `-----BEGIN ${type}-----\n${decoded.toString('base64')}\n-----END ${type}-----\n`;
}

/** crypto.x509.parse_keypair(cert, key): Go's tls.Certificate for a certificate chain and the private key of its leaf. */
export function parseKeypair(certInput: unknown, keyInput: unknown): HostResult {
  const builtin = 'crypto.x509.parse_keypair';
  const certPem = keypairPem(builtin, str(builtin, certInput), 'CERTIFICATE');
  const keyPem = keypairPem(builtin, str(builtin, keyInput), 'PRIVATE KEY');
  const blocks = (text: string) => [...text.matchAll(/-----BEGIN ([^\n-]+)-----\r?\n([\s\S]*?)-----END \1-----/g)].map((m) => ({ type: m[1]!, der: Buffer.from(m[2]!.replace(/\s+/g, ''), 'base64') }));
  const certs = blocks(certPem).filter((b) => b.type === 'CERTIFICATE').map((b) => b.der);
  if (certs.length === 0) throw new BuiltinError(builtin, 'tls: failed to find any PEM data in certificate input');
  const keyBlock = blocks(keyPem).find((b) => b.type === 'PRIVATE KEY' || b.type.endsWith(' PRIVATE KEY'));
  if (!keyBlock) throw new BuiltinError(builtin, 'tls: failed to find any PEM data in key input');
  // Go tries PKCS #1, PKCS #8 and SEC 1 whatever the block's type says.
  let key: KeyObject | undefined;
  for (const type of ['pkcs1', 'pkcs8', 'sec1'] as const) {
    try {
      key = createPrivateKey({ key: keyBlock.der, format: 'der', type });
      break;
    } catch {
      // the next form
    }
  }
  if (!key) throw new BuiltinError(builtin, 'tls: failed to parse private key');
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(certs[0]!);
  } catch {
    throw new BuiltinError(builtin, 'x509: malformed certificate');
  }
  // The key must be the leaf's: a certificate paired with someone else's key is no key pair.
  const spki = (k: KeyObject) => k.export({ format: 'der', type: 'spki' });
  if (!spki(createPublicKey(key)).equals(spki(leaf.publicKey))) throw new BuiltinError(builtin, 'tls: private key does not match public key');
  const pair = exactJsonText({ Certificate: certs.map((c) => c.toString('base64')), PrivateKey: privateKeyGoJson(key), OCSPStaple: null, SignedCertificateTimestamps: null, SupportedSignatureAlgorithms: null });
  return jsonTextResult(`${pair.slice(0, -1)},"Leaf":${certificateJson(certs[0]!, false)}}`);
}

/** The DER certificates of a PEM chain, or of base64 of PEM or DER (Go's getX509CertsFromString); a builtin error when malformed. */
export function certificatesDer(text: string): Buffer[] {
  let der: Buffer;
  if (text.startsWith('-----BEGIN')) der = pemBlocks(text);
  else {
    const decoded = base64Std(BUILTIN, text);
    der = decoded.subarray(0, 10).toString('latin1').startsWith('-----BEGIN') ? pemBlocks(decoded.toString('utf8')) : decoded;
  }
  return derChain(der);
}

/** crypto.x509.parse_rsa_private_key(pem): the first private key (PEM, or base64 of PEM) as a JWK, null when there is none. */
export function parsePrivateKeyJwk(input: unknown): HostResult {
  const builtin = 'crypto.x509.parse_rsa_private_key';
  let text = str(builtin, input);
  if (text === '') throw new BuiltinError(builtin, 'input PEM data was empty');
  if (!text.startsWith('-----BEGIN')) {
    text = base64Std(builtin, text).toString('utf8');
  }
  for (const m of text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g)) {
    const type = PRIVATE_KEY_BLOCKS[m[1]!];
    if (!type) continue;
    try {
      const key = createPrivateKey({ key: Buffer.from(m[2]!.replace(/\s+/g, ''), 'base64'), format: 'der', type });
      return key.export({ format: 'jwk' }) as HostResult;
    } catch (err) {
      throw new BuiltinError(builtin, `x509: ${(err as Error).message}`);
    }
  }
  return null;
}
