// crypto.x509.parse_certificate_request: a PKCS #10 CSR (PEM, or base64 of PEM or DER) as Go's
// json.Marshal writes x509.CertificateRequest. node:crypto has no CSR parser, so the ASN.1 is read with
// @peculiar/asn1-csr (the schema package under @peculiar/x509, which the project already uses); it is
// loaded on the first call only, so a pod whose policy never parses a CSR pays nothing for it.
import { createPublicKey } from 'node:crypto';
import { createRequire } from 'node:module';
import { base64Std, BuiltinError, exactJson, str, type HostResult } from './builtin-operand.js';
import { big } from './private-key.js';
import { parseUrl } from './uri.js';

const BUILTIN = 'crypto.x509.parse_certificate_request';

function fail(message: string): never {
  throw new BuiltinError(BUILTIN, message);
}

type Asn1 = {
  schema: typeof import('@peculiar/asn1-schema');
  csr: typeof import('@peculiar/asn1-csr');
  x509: typeof import('@peculiar/asn1-x509');
  rsa: typeof import('@peculiar/asn1-rsa');
};
let asn1: Asn1 | undefined;
/** The ASN.1 schemas, loaded on first use (a few hundred milliseconds on a cold start). */
export function asn1Schemas(): Asn1 {
  // Named `require` so that test/support/import-graph.ts sees these packages in the sidecar's graph.
  const require = createRequire(import.meta.url);
  asn1 ??= { schema: require('@peculiar/asn1-schema') as Asn1['schema'], csr: require('@peculiar/asn1-csr') as Asn1['csr'], x509: require('@peculiar/asn1-x509') as Asn1['x509'], rsa: require('@peculiar/asn1-rsa') as Asn1['rsa'] };
  return asn1;
}

// Go's x509.SignatureAlgorithm and PublicKeyAlgorithm numbers, by OID.
const SIGNATURE_ALGORITHMS: Record<string, number> = {
  '1.2.840.113549.1.1.2': 1, '1.2.840.113549.1.1.4': 2, '1.2.840.113549.1.1.5': 3, '1.2.840.113549.1.1.11': 4, '1.2.840.113549.1.1.12': 5,
  '1.2.840.113549.1.1.13': 6, '1.2.840.10040.4.3': 7, '2.16.840.1.101.3.4.3.2': 8, '1.2.840.10045.4.1': 9, '1.2.840.10045.4.3.2': 10,
  '1.2.840.10045.4.3.3': 11, '1.2.840.10045.4.3.4': 12, '1.3.101.112': 16,
};
const PSS_BY_HASH: Record<string, number> = { '2.16.840.1.101.3.4.2.1': 13, '2.16.840.1.101.3.4.2.2': 14, '2.16.840.1.101.3.4.2.3': 15 };
const PUBLIC_KEY_ALGORITHMS: Record<string, number> = { '1.2.840.113549.1.1.1': 1, '1.2.840.10040.4.1': 2, '1.2.840.10045.2.1': 3, '1.3.101.112': 4 };
// pkix.Name's fields, by attribute OID.
const NAME_FIELDS: Record<string, string> = {
  '2.5.4.6': 'Country', '2.5.4.10': 'Organization', '2.5.4.11': 'OrganizationalUnit', '2.5.4.7': 'Locality', '2.5.4.8': 'Province', '2.5.4.9': 'StreetAddress', '2.5.4.17': 'PostalCode',
};
const EXTENSION_REQUEST = '1.2.840.113549.1.9.14';

const oid = (dotted: string): number[] => dotted.split('.').map(Number);
const b64 = (buf: ArrayBuffer | ArrayBufferView): string => Buffer.from(buf instanceof ArrayBuffer ? buf : buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength)).toString('base64');

/** pkix.Name as Go marshals it, from the DER Name's attributes in order. */
export function goName(attributes: Array<{ type: string; value: string }>): Record<string, unknown> {
  const out: Record<string, unknown> = { Country: null, Organization: null, OrganizationalUnit: null, Locality: null, Province: null, StreetAddress: null, PostalCode: null, SerialNumber: '', CommonName: '', Names: attributes.map((a) => ({ Type: oid(a.type), Value: a.value })), ExtraNames: null };
  for (const { type, value } of attributes) {
    if (type === '2.5.4.3') out.CommonName = value;
    else if (type === '2.5.4.5') out.SerialNumber = value;
    else if (NAME_FIELDS[type]) ((out[NAME_FIELDS[type]] as string[] | null) ?? (out[NAME_FIELDS[type]] = [])).push(value);
  }
  return out;
}

// The public key as Go's json.Marshal writes *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey.
function publicKeyGoJson(spki: Buffer): unknown {
  let jwk: import('node:crypto').JsonWebKey;
  try {
    jwk = createPublicKey({ key: spki, format: 'der', type: 'spki' }).export({ format: 'jwk' });
  } catch {
    return null;
  }
  if (jwk.kty === 'RSA') return { N: big(jwk.n), E: Number(big(jwk.e)) };
  if (jwk.kty === 'EC') return { Curve: {}, X: big(jwk.x), Y: big(jwk.y) };
  if (jwk.kty === 'OKP') return Buffer.from(jwk.x!, 'base64url').toString('base64');
  return null;
}

/** crypto.x509.parse_certificate_request(csr): the request as OPA returns it (JSON text, exact big integers). */
export function parseCertificateRequest(input: unknown): HostResult {
  const text = str(BUILTIN, input);
  let bytes = text.startsWith('-----BEGIN CERTIFICATE REQUEST-----') ? Buffer.from(text, 'utf8') : base64Std(BUILTIN, text);
  const pem = /^\s*-----BEGIN ([^\n-]+)-----\r?\n([\s\S]*?)-----END \1-----/.exec(bytes.toString('latin1'));
  if (pem && pem[1] !== 'CERTIFICATE REQUEST') fail('invalid PEM-encoded certificate signing request');
  if (pem) bytes = Buffer.from(pem[2]!.replace(/\s+/g, ''), 'base64');
  const { schema, csr: csrSchema, x509, rsa } = asn1Schemas();
  let csr: InstanceType<typeof csrSchema.CertificationRequest>;
  try {
    csr = schema.AsnConvert.parse(bytes, csrSchema.CertificationRequest);
  } catch (err) {
    fail(`asn1: structure error: ${(err as Error).message}`);
  }
  const info = csr.certificationRequestInfo;
  const subject = info.subject.flatMap((rdn) => rdn.map((a) => ({ type: a.type, value: a.value.toString() })));
  const spki = Buffer.from(schema.AsnConvert.serialize(info.subjectPKInfo));
  const extensions: Array<InstanceType<typeof x509.Extension>> = [];
  const attributes = info.attributes.map((attr) => {
    const values = attr.values.map((v) => {
      if (attr.type !== EXTENSION_REQUEST) return [];
      const exts = schema.AsnConvert.parse(v, x509.Extensions);
      extensions.push(...exts);
      // Go reads each extension as an AttributeTypeAndValue: its id, then the next element (the critical
      // flag when present, else the value's bytes).
      return exts.map((e) => ({ Type: oid(e.extnID), Value: e.critical ? true : b64(e.extnValue.buffer) }));
    });
    return { Type: oid(attr.type), Value: values };
  });
  const names = { DNSNames: null as string[] | null, EmailAddresses: null as string[] | null, IPAddresses: null as string[] | null, URIs: null as unknown[] | null };
  const add = (k: keyof typeof names, v: unknown) => ((names[k] as unknown[] | null) ?? (names[k] = [])).push(v);
  for (const e of extensions.filter((x) => x.extnID === '2.5.29.17')) {
    for (const g of schema.AsnConvert.parse(e.extnValue, x509.SubjectAlternativeName)) {
      if (g.dNSName !== undefined) add('DNSNames', g.dNSName);
      else if (g.rfc822Name !== undefined) add('EmailAddresses', g.rfc822Name);
      else if (g.iPAddress !== undefined) add('IPAddresses', g.iPAddress);
      else if (g.uniformResourceIdentifier !== undefined) add('URIs', goUrl(g.uniformResourceIdentifier));
    }
  }
  const sigOid = csr.signatureAlgorithm.algorithm;
  const pssHash = sigOid === '1.2.840.113549.1.1.10' && csr.signatureAlgorithm.parameters ? schema.AsnConvert.parse(csr.signatureAlgorithm.parameters, rsa.RsaSaPssParams).hashAlgorithm.algorithm : undefined;
  return exactJson({
    Raw: bytes.toString('base64'),
    RawTBSCertificateRequest: b64(schema.AsnConvert.serialize(info)),
    RawSubjectPublicKeyInfo: spki.toString('base64'),
    RawSubject: b64(schema.AsnConvert.serialize(info.subject)),
    Version: info.version,
    Signature: b64(csr.signature),
    SignatureAlgorithm: pssHash ? (PSS_BY_HASH[pssHash] ?? 0) : (SIGNATURE_ALGORITHMS[sigOid] ?? 0),
    PublicKeyAlgorithm: PUBLIC_KEY_ALGORITHMS[info.subjectPKInfo.algorithm.algorithm] ?? 0,
    PublicKey: publicKeyGoJson(spki),
    Subject: goName(subject),
    Attributes: attributes,
    Extensions: extensions.length ? extensions.map((e) => ({ Id: oid(e.extnID), Critical: e.critical, Value: b64(e.extnValue.buffer) })) : null,
    ExtraExtensions: null,
    ...names,
  });
}

// A URI SAN as Go's *url.URL marshals (its exported fields).
function goUrl(text: string): unknown {
  let u;
  try {
    u = parseUrl(text);
  } catch {
    fail(`x509: cannot parse URI ${JSON.stringify(text)}`);
  }
  return { Scheme: u.scheme, Opaque: '', User: null, Host: u.host, Path: u.path, RawPath: u.rawPath, OmitHost: false, ForceQuery: false, RawQuery: u.rawQuery, Fragment: u.fragment, RawFragment: '' };
}
