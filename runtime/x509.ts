// crypto.x509.parse_certificates: certificates (PEM, or base64 of PEM or DER, chains allowed) as OPA
// returns them, a subset of Go's x509.Certificate marshalled to JSON plus OPA's URIStrings: the
// fields policies read (Subject, Issuer, SerialNumber, validity, SANs, Raw). Node's X509Certificate
// parses; the DER chain is split by its ASN.1 headers.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { BuiltinError, str, type HostResult } from './builtin-operand.js';

const BUILTIN = 'crypto.x509.parse_certificates';

function fail(message: string): never {
  throw new BuiltinError(BUILTIN, message);
}

// Go's base64.StdEncoding: the standard alphabet, padded, newlines ignored.
function base64Std(s: string): Buffer {
  const t = s.replace(/[\r\n]/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(t) || t.length % 4 !== 0) fail('illegal base64 data');
  return Buffer.from(t, 'base64');
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

function certificateJson(der: Buffer): string {
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
    URIStrings: sans(cert, 'URI:'),
  };
  // The serial is a big integer in Go's JSON: written as a number, every digit kept.
  return `${JSON.stringify(fields).slice(0, -1)},"SerialNumber":${BigInt(`0x${cert.serialNumber}`).toString()}}`;
}

/** crypto.x509.parse_certificates(certs): every certificate of the chain, as JSON text (exact serials). */
export function parseCertificates(input: unknown): HostResult {
  const text = str(BUILTIN, input);
  let der: Buffer;
  if (text.startsWith('-----BEGIN')) der = pemBlocks(text);
  else {
    const decoded = base64Std(text);
    der = decoded.subarray(0, 10).toString('latin1').startsWith('-----BEGIN') ? pemBlocks(decoded.toString('utf8')) : decoded;
  }
  const json = `[${derChain(der).map(certificateJson).join(',')}]`;
  const bytes = new TextEncoder().encode(json);
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

const PRIVATE_BLOCKS: Record<string, 'pkcs1' | 'pkcs8' | 'sec1'> = { 'RSA PRIVATE KEY': 'pkcs1', 'PRIVATE KEY': 'pkcs8', 'EC PRIVATE KEY': 'sec1' };

/** crypto.x509.parse_rsa_private_key(pem): the first private key (PEM, or base64 of PEM) as a JWK, null when there is none. */
export function parsePrivateKeyJwk(input: unknown): HostResult {
  const builtin = 'crypto.x509.parse_rsa_private_key';
  let text = str(builtin, input);
  if (text === '') throw new BuiltinError(builtin, 'input PEM data was empty');
  if (!text.startsWith('-----BEGIN')) {
    const t = text.replace(/[\r\n]/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(t) || t.length % 4 !== 0) throw new BuiltinError(builtin, 'illegal base64 data');
    text = Buffer.from(t, 'base64').toString('utf8');
  }
  for (const m of text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g)) {
    const type = PRIVATE_BLOCKS[m[1]!];
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
