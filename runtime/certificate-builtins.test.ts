// The certificate builtins (chain verification, CSRs, key pairs, private keys) against `opa eval`, over
// certificates made here: a good chain and the hostile variants an attacker would hand a policy (a
// non-CA intermediate, the wrong usage, an expired leaf, a path too long, the wrong order, a stranger's
// root, an unknown critical extension, a key that is not the certificate's).
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { generateKeyPairSync, KeyObject, webcrypto } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { opaEval } from '../test/support/opa.js';
import { exactJsonText } from './builtin-operand.js';
import { createHostBuiltins, type HostBuiltinSet } from './builtins.js';
import { fixedClock } from './clock.js';
import { readValueText } from './opa-json.js';

x509.cryptoProvider.set(webcrypto as Crypto);
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
const day = 86_400_000;

interface Issued { pem: string; keys: CryptoKeyPair; cert: x509.X509Certificate }
type Options = { ca?: boolean; pathLen?: number; usage?: string[]; days?: [number, number]; extra?: x509.Extension[]; names?: x509.JsonGeneralNames };

async function issue(cn: string, parent: Issued | undefined, o: Options = {}): Promise<Issued> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const [from, to] = o.days ?? [-1, 365];
  const extensions: x509.Extension[] = [new x509.BasicConstraintsExtension(o.ca ?? false, o.pathLen, true), ...(o.extra ?? [])];
  if (o.usage) extensions.push(new x509.ExtendedKeyUsageExtension(o.usage));
  if (o.names) extensions.push(new x509.SubjectAlternativeNameExtension(o.names));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: `01${Math.floor(Math.random() * 1e9).toString(16)}`, subject: `CN=${cn}`, issuer: parent ? parent.cert.subject : `CN=${cn}`,
    notBefore: new Date(Date.now() + from * day), notAfter: new Date(Date.now() + to * day), signingAlgorithm: ALG,
    publicKey: keys.publicKey, signingKey: (parent ?? { keys }).keys.privateKey, extensions,
  });
  return { pem: cert.toString('pem'), keys, cert };
}

const CASES: Record<string, string> = {};
const CONSTRAINED: string[] = [];
let go: Record<string, unknown>;
let host: HostBuiltinSet;
const pemOf = (k: CryptoKey) => KeyObject.from(k).export({ format: 'pem', type: 'pkcs8' }).toString();

beforeAll(async () => {
  const root = await issue('Root', undefined, { ca: true });
  const inter = await issue('Intermediate', root, { ca: true });
  const leaf = await issue('leaf.example', inter, { usage: [x509.ExtendedKeyUsage.serverAuth], names: [{ type: 'dns', value: 'leaf.example' }, { type: 'url', value: 'spiffe://td/ns/a' }] });
  const plainLeaf = await issue('plain.example', root);
  const notCa = await issue('NotCA', root);
  const underNotCa = await issue('under-not-ca', notCa);
  const clientOnly = await issue('client', inter, { usage: [x509.ExtendedKeyUsage.clientAuth] });
  const expired = await issue('expired', inter, { days: [-30, -1] });
  const notYet = await issue('not-yet', inter, { days: [1, 30] });
  const shortRoot = await issue('ShortRoot', undefined, { ca: true, pathLen: 0 });
  const interOfShort = await issue('InterOfShort', shortRoot, { ca: true });
  const leafOfShort = await issue('leaf-of-short', interOfShort);
  const stranger = await issue('Stranger', undefined, { ca: true });
  const critical = await issue('critical', root, { extra: [new x509.Extension('1.2.3.4.5', true, new Uint8Array([5, 0]))] });
  const chain = (...c: Issued[]) => JSON.stringify(c.map((x) => x.pem).join('\n'));
  const verify = (c: string) => `crypto.x509.parse_and_verify_certificates(${c})`;
  Object.assign(CASES, {
    good: verify(chain(root, inter, leaf)), direct: verify(chain(root, plainLeaf)), oneCert: verify(chain(root)),
    nonCaIntermediate: verify(chain(root, notCa, underNotCa)), clientUsage: verify(chain(root, inter, clientOnly)),
    expired: verify(chain(root, inter, expired)), notYetValid: verify(chain(root, inter, notYet)),
    pathTooLong: verify(chain(shortRoot, interOfShort, leafOfShort)), wrongOrder: verify(chain(leaf, inter, root)),
    strangerRoot: verify(chain(stranger, inter, leaf)), unknownCritical: verify(chain(root, critical)),
    garbage: verify('"not a certificate"'), b64: verify(JSON.stringify(Buffer.from(`${root.pem}\n${plainLeaf.pem}`).toString('base64'))),
  });
  // Key pairs: the leaf with its own key, and with somebody else's.
  CASES.keypair = `crypto.x509.parse_keypair(${JSON.stringify(plainLeaf.pem)}, ${JSON.stringify(pemOf(plainLeaf.keys.privateKey))})`;
  CASES.keypairB64 = `crypto.x509.parse_keypair(${JSON.stringify(Buffer.from(plainLeaf.cert.rawData).toString('base64'))}, ${JSON.stringify(KeyObject.from(plainLeaf.keys.privateKey).export({ format: 'der', type: 'pkcs8' }).toString('base64'))})`;
  CASES.keypairMismatch = `crypto.x509.parse_keypair(${JSON.stringify(plainLeaf.pem)}, ${JSON.stringify(pemOf(leaf.keys.privateKey))})`;
  CASES.keypairNoKey = `crypto.x509.parse_keypair(${JSON.stringify(plainLeaf.pem)}, ${JSON.stringify(plainLeaf.pem)})`;
  // Private keys of every kind Go reads, alone and together.
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
  const ed = generateKeyPairSync('ed25519').privateKey;
  const pems = [rsa.export({ format: 'pem', type: 'pkcs1' }), ec.export({ format: 'pem', type: 'sec1' }), ed.export({ format: 'pem', type: 'pkcs8' }), rsa.export({ format: 'pem', type: 'pkcs8' })].join('');
  Object.assign(CASES, {
    keys: `crypto.parse_private_keys(${JSON.stringify(pems)})`, keysB64: `crypto.parse_private_keys(${JSON.stringify(Buffer.from(pems).toString('base64'))})`,
    keysNone: 'crypto.parse_private_keys("nope")', keysEmpty: 'crypto.parse_private_keys("")',
    keysBroken: `crypto.parse_private_keys(${JSON.stringify('-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n')})`,
  });
  // CSRs: every name kind, PEM, base64 of DER, and a PEM of the wrong type.
  const csrKeys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: 'CN=csr.example, O=Org1, O=Org2, C=DE, OU=Unit, L=Town, ST=State', keys: csrKeys, signingAlgorithm: ALG,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'a.example' }, { type: 'ip', value: '10.0.0.1' }, { type: 'ip', value: '2001:db8::1' }, { type: 'email', value: 'x@y.z' }, { type: 'url', value: 'spiffe://td/ns/x?q=1#f' }]), new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true)],
  });
  Object.assign(CASES, {
    csr: `crypto.x509.parse_certificate_request(${JSON.stringify(csr.toString('pem'))})`,
    csrDer: `crypto.x509.parse_certificate_request(${JSON.stringify(Buffer.from(csr.rawData).toString('base64'))})`,
    csrWrongType: `crypto.x509.parse_certificate_request(${JSON.stringify(root.pem)})`, csrGarbage: 'crypto.x509.parse_certificate_request("bm9wZQ==")',
    csrNotBase64: 'crypto.x509.parse_certificate_request("not base64!")',
  });
  // A CA that constrains names (permitted: example.com), and a leaf outside them.
  const constraint = new x509.Extension('2.5.29.30', true, new Uint8Array([0x30, 0x11, 0xa0, 0x0f, 0x30, 0x0d, 0x82, 0x0b, ...Buffer.from('example.com')]));
  const constrained = await issue('Constrained', undefined, { ca: true, extra: [constraint] });
  CONSTRAINED.push(verify(chain(constrained, await issue('outside', constrained, { names: [{ type: 'dns', value: 'evil.test' }] }))));
  const module = `package t\n\n${Object.entries(CASES).map(([k, e]) => `${k} := ${e}`).join('\n')}\n`;
  go = (await opaEval(module, 'data.t')) as Record<string, unknown>;
  host = createHostBuiltins({ clock: fixedClock(BigInt(Date.now()) * 1_000_000n) });
}, 120_000);

// A host builtin's answer as opa eval prints it (its JSON text read losslessly, as results are; undefined for a builtin error).
function warden(expr: string): unknown {
  const m = /^([\w.]+)\(([\s\S]*)\)$/.exec(expr)!;
  const args = JSON.parse(`[${m[2]!}]`) as unknown[];
  const result = host.functions[m[1]!]!(...args);
  return result instanceof ArrayBuffer ? readValueText(new TextDecoder().decode(result)) : result;
}

// A certificate is the documented subset of Go's x509.Certificate (docs/opa-conformance.md): Go's value
// is compared on the fields Warden gives, everywhere else in full.
function certificatesAsOurs(ours: unknown, theirs: unknown, inCertificate = false): unknown {
  if (Array.isArray(ours) && Array.isArray(theirs) && ours.length === theirs.length) return theirs.map((t, i) => certificatesAsOurs(ours[i], t, inCertificate));
  if (ours && theirs && typeof ours === 'object' && typeof theirs === 'object' && !Array.isArray(ours)) {
    const t = theirs as Record<string, unknown>;
    const subset = inCertificate || ('SerialNumber' in ours && 'NotAfter' in ours);
    return Object.fromEntries((subset ? Object.keys(ours) : Object.keys(t)).map((k) => [k, certificatesAsOurs((ours as Record<string, unknown>)[k], t[k], subset)]));
  }
  return theirs;
}

describe('certificate builtins agree with opa eval', () => {
  it('on chains, key pairs, private keys and CSRs, good and hostile', () => {
    for (const [name, expr] of Object.entries(CASES)) {
      const ours = warden(expr);
      expect(ours, name).toEqual(certificatesAsOurs(ours, go[name]));
    }
    expect(Object.keys(go.csr as object).sort(), 'a CSR has every field of Go\'s x509.CertificateRequest').toEqual(Object.keys(warden(CASES.csr!) as object).sort());
    // The reference itself: the good chains verify, every hostile one is [false, []], a foreign key is an error.
    expect([go.good, go.direct].map((v) => (v as unknown[])[0])).toEqual([true, true]);
    for (const hostile of ['oneCert', 'nonCaIntermediate', 'clientUsage', 'expired', 'notYetValid', 'pathTooLong', 'wrongOrder', 'strangerRoot', 'unknownCritical', 'garbage']) expect(go[hostile], hostile).toEqual([false, []]);
    for (const error of ['keypairMismatch', 'keypairNoKey', 'keysBroken', 'csrWrongType', 'csrGarbage', 'csrNotBase64']) expect(go[error], error).toBeUndefined();
  });
});

describe('crypto.x509.parse_and_verify_certificates under name constraints', () => {
  it('fails the evaluation (a denial) rather than call a chain valid without checking them', () => {
    expect(() => warden(CONSTRAINED[0]!)).toThrow(/name constraints is not supported/);
  });
});

describe('exactJsonText', () => {
  it('writes big integers as bare numbers, and no string can pass for one', () => {
    const value = { n: 2n ** 70n, m: -5n, s: '\u0000123', t: '\u0000S', u: '\\u0000B1', list: ['\u0000B7', 3n] };
    expect(exactJsonText(value)).toBe('{"n":1180591620717411303424,"m":-5,"s":"\\u0000123","t":"\\u0000S","u":"\\\\u0000B1","list":["\\u0000B7",3]}');
    expect(JSON.parse(exactJsonText(value)).s).toBe('\u0000123');
  });
});
