// crypto.x509.parse_and_verify_certificates: OPA's chain check, Go's x509 Verify with the first certificate
// as the only root, the last as the leaf, the others as intermediates, and Go's defaults (now, any DNS name,
// server authentication). Signatures, validity and issuer names are node:crypto's; the extensions Go
// enforces (basic constraints, path length, critical extensions) are read with the ASN.1 schemas loaded for
// CSRs, on first use. What Go checks and this does not (name constraints) fails the evaluation: a chain is
// never called valid on weaker grounds than OPA's.
import { X509Certificate } from 'node:crypto';
import { jsonTextResult, str, type HostResult } from './builtin-operand.js';
import { asn1Schemas } from './certificate-request.js';
import { certificateJson, certificatesDer } from './x509.js';

const BUILTIN = 'crypto.x509.parse_and_verify_certificates';

// Signature algorithms Go verifies in a chain: SHA-1, MD5 and DSA signatures are refused (InsecureAlgorithmError).
const SECURE_SIGNATURES = new Set(['1.2.840.113549.1.1.11', '1.2.840.113549.1.1.12', '1.2.840.113549.1.1.13', '1.2.840.113549.1.1.10', '1.2.840.10045.4.3.2', '1.2.840.10045.4.3.3', '1.2.840.10045.4.3.4', '1.3.101.112']);
// Extensions Go's x509 handles; a critical one outside this list makes the certificate unusable.
const HANDLED_EXTENSIONS = new Set(['2.5.29.14', '2.5.29.15', '2.5.29.17', '2.5.29.19', '2.5.29.30', '2.5.29.31', '2.5.29.32', '2.5.29.33', '2.5.29.35', '2.5.29.36', '2.5.29.37', '2.5.29.54']);
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const ANY_USAGE = '2.5.29.37.0';
const SGC = ['1.3.6.1.4.1.311.10.3.3', '2.16.840.1.113730.4.1'];
// Go gives up after this many signature checks while building chains.
const MAX_SIGNATURE_CHECKS = 100;

interface Cert {
  der: Buffer;
  x509: X509Certificate;
  signature: string;
  isCA: boolean;
  maxPathLen: number | undefined;
  nameConstraints: boolean;
  unhandledCritical: boolean;
}

function readCert(der: Buffer): Cert {
  const { schema, x509 } = asn1Schemas();
  const parsed = schema.AsnConvert.parse(der, x509.Certificate);
  const exts = parsed.tbsCertificate.extensions ?? [];
  const bc = exts.find((e) => e.extnID === x509.id_ce_basicConstraints);
  const constraints = bc ? schema.AsnConvert.parse(bc.extnValue, x509.BasicConstraints) : undefined;
  return {
    der,
    x509: new X509Certificate(der),
    signature: parsed.signatureAlgorithm.algorithm,
    isCA: constraints?.cA === true,
    maxPathLen: constraints?.cA ? constraints.pathLenConstraint : undefined,
    nameConstraints: exts.some((e) => e.extnID === x509.id_ce_nameConstraints),
    unhandledCritical: exts.some((e) => e.critical && !HANDLED_EXTENSIONS.has(e.extnID)),
  };
}

// Go's checkChainForKeyUsage with the default usage, server authentication.
function allowsServerAuth(chain: Cert[]): boolean {
  return chain.every(({ x509 }) => {
    const usages = x509.keyUsage;
    if (!usages || usages.length === 0 || usages.includes(ANY_USAGE)) return true;
    return usages.includes(SERVER_AUTH) || usages.some((u) => SGC.includes(u));
  });
}

/** crypto.x509.parse_and_verify_certificates(certs): [true, chain from leaf to root] or [false, []]. */
export function parseAndVerifyCertificates(input: unknown, nowMs: number): HostResult {
  const text = str(BUILTIN, input);
  const invalid = [false, []];
  let certs: Cert[];
  try {
    certs = certificatesDer(text).map(readCert);
  } catch {
    return invalid; // OPA answers a chain it cannot parse with [false, []], not an error
  }
  if (certs.length < 2) return invalid;
  const [root, leaf] = [certs[0]!, certs[certs.length - 1]!];
  const intermediates = certs.slice(1, -1);
  const now = new Date(nowMs);
  const current = (c: Cert) => new Date(c.x509.validFrom) <= now && now <= new Date(c.x509.validTo);
  let checks = 0;
  const signedBy = (child: Cert, parent: Cert) => {
    if (++checks > MAX_SIGNATURE_CHECKS) return false;
    if (!SECURE_SIGNATURES.has(child.signature) || !child.x509.checkIssued(parent.x509)) return false;
    const bits = parent.x509.publicKey.asymmetricKeyDetails?.modulusLength;
    if (bits !== undefined && bits < 1024) return false;
    try {
      return child.x509.verify(parent.x509.publicKey);
    } catch {
      return false;
    }
  };
  // Depth first from the leaf, roots before intermediates, as Go's buildChains.
  const extend = (chain: Cert[]): Cert[] | undefined => {
    const child = chain[chain.length - 1]!;
    for (const [parent, isRoot] of [[root, true], ...intermediates.map((c) => [c, false] as const)] as Array<[Cert, boolean]>) {
      if (chain.includes(parent) || !current(parent) || parent.unhandledCritical) continue;
      if (!isRoot && !parent.isCA) continue;
      if (parent.nameConstraints) throw new Error(`${BUILTIN}: a CA certificate with name constraints is not supported by Warden's runtime; the evaluation fails rather than skip the check`);
      if (parent.maxPathLen !== undefined && chain.length - 1 > parent.maxPathLen) continue;
      if (!signedBy(child, parent)) continue;
      const found = isRoot ? [...chain, parent] : extend([...chain, parent]);
      if (found && allowsServerAuth(found)) return found;
    }
    return undefined;
  };
  if (!current(leaf) || leaf.unhandledCritical) return invalid;
  const chain = leaf.der.equals(root.der) ? [leaf] : extend([leaf]);
  if (!chain) return invalid;
  return jsonTextResult(`[true,[${chain.map((c) => certificateJson(c.der)).join(',')}]]`);
}
