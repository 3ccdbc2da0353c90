import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createCertificateAuthority, type CertificateAuthority } from './certificate-authority.js';
import { rotate } from '../test/support/tls.js';
import { reloadIntervalMs, watchPemFiles, type PemSet, type PemWatch } from './pem-files.js';

let ca: CertificateAuthority;
let dir: string;
let watch: PemWatch | undefined;

beforeAll(async () => {
  ca = await createCertificateAuthority('pem-files-test');
});
afterEach(() => {
  watch?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// Write a file the way a rotation does: the new content appears whole, by rename.
const put = (name: string, text: string) => rotate(dir, { [name]: text });

async function started(): Promise<{ changes: PemSet[]; errors: string[]; first: { certPem: string; keyPem: string } }> {
  dir = mkdtempSync(join(tmpdir(), 'warden-pem-'));
  const first = await ca.issue({ kind: 'client', uris: ['spiffe://cluster.local/ns/shop/sa/orders'] });
  put('tls.crt', first.certPem);
  put('tls.key', first.keyPem);
  put('ca.crt', ca.certPem);
  const changes: PemSet[] = [];
  const errors: string[] = [];
  watch = watchPemFiles(
    { cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key'), ca: join(dir, 'ca.crt') },
    { cert: first.certPem, key: first.keyPem, ca: ca.certPem },
    { intervalMs: 60_000, onChange: (p) => changes.push(p), onError: (m) => errors.push(m) },
  );
  return { changes, errors, first };
}

describe('watchPemFiles', () => {
  it('reports nothing while the files are unchanged, and the new set once they are rotated', async () => {
    const { changes, errors } = await started();
    await watch!.check();
    expect(changes).toEqual([]);
    const next = await ca.issue({ kind: 'client', uris: ['spiffe://cluster.local/ns/shop/sa/orders'] });
    put('tls.crt', next.certPem);
    put('tls.key', next.keyPem);
    await watch!.check();
    expect(changes).toEqual([{ cert: next.certPem, key: next.keyPem, ca: ca.certPem }]);
    expect(watch!.current.cert).toBe(next.certPem);
    expect(errors).toEqual([]);
  });

  it('keeps the certificate in use while the new key does not match it, once per bad set, then takes the whole set', async () => {
    const { changes, errors, first } = await started();
    const next = await ca.issue({ kind: 'client', uris: ['spiffe://cluster.local/ns/shop/sa/orders'] });
    put('tls.crt', next.certPem); // the key is not there yet
    await watch!.check();
    await watch!.check();
    expect(changes).toEqual([]);
    expect(watch!.current.cert).toBe(first.certPem);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/tls\.crt.*do not form a usable TLS context .*keeping the certificate in use/);
    put('tls.key', next.keyPem);
    await watch!.check();
    expect(changes.map((c) => c.cert)).toEqual([next.certPem]);
  });

  it('keeps the certificate in use when a file is gone or is not PEM, reporting each problem once', async () => {
    const { changes, errors, first } = await started();
    rmSync(join(dir, 'tls.key'));
    await watch!.check();
    await watch!.check(); // still missing: reported once, not on every read
    put('tls.key', 'not a key');
    await watch!.check();
    expect(changes).toEqual([]);
    expect(watch!.current.key).toBe(first.keyPem);
    expect(errors.map((e) => e.replace(dir, '<dir>'))).toEqual([
      expect.stringMatching(/^cannot re-read <dir>\/tls\.crt, .*tls\.key.*ENOENT.*keeping the certificate in use$/),
      expect.stringMatching(/do not form a usable TLS context/),
    ]);
  });

  it('refuses empty files: TLS would serve no certificate, or trust the system roots for an empty CA bundle', async () => {
    const { changes, errors } = await started();
    put('tls.crt', '');
    put('tls.key', '');
    await watch!.check();
    expect(changes).toEqual([]);
    expect(errors).toHaveLength(1);
    const next = await ca.issue({ kind: 'client', uris: ['spiffe://cluster.local/ns/shop/sa/orders'] });
    put('tls.crt', next.certPem);
    put('tls.key', next.keyPem);
    put('ca.crt', '');
    await watch!.check();
    expect(changes).toEqual([]);
    expect(errors[1]).toMatch(/the CA bundle holds no certificate/);
    expect(watch!.current.ca).toBe(ca.certPem);
  });

  it('takes a rotated CA bundle alone, and refuses one that is not a certificate', async () => {
    dir = mkdtempSync(join(tmpdir(), 'warden-pem-'));
    put('ca.crt', ca.certPem);
    const changes: PemSet[] = [];
    const errors: string[] = [];
    watch = watchPemFiles({ ca: join(dir, 'ca.crt') }, { ca: ca.certPem }, { intervalMs: 60_000, onChange: (p) => changes.push(p), onError: (m) => errors.push(m) });
    const other = await createCertificateAuthority('pem-files-other');
    put('ca.crt', `${ca.certPem}${other.certPem}`);
    await watch.check();
    expect(changes).toEqual([{ ca: `${ca.certPem}${other.certPem}` }]);
    put('ca.crt', '-----BEGIN CERTIFICATE-----\nnot base64 der\n-----END CERTIFICATE-----\n');
    await watch.check();
    expect(changes).toHaveLength(1);
    expect(errors).toHaveLength(1);
  });

  it('does not take a set that could not be applied, and applies nothing once closed', async () => {
    dir = mkdtempSync(join(tmpdir(), 'warden-pem-'));
    put('ca.crt', ca.certPem);
    const errors: string[] = [];
    let failApply = true;
    const applied: PemSet[] = [];
    watch = watchPemFiles({ ca: join(dir, 'ca.crt') }, { ca: ca.certPem }, {
      intervalMs: 60_000,
      onChange: (p) => {
        if (failApply) throw new Error('server is gone');
        applied.push(p);
      },
      onError: (m) => errors.push(m),
    });
    const other = await createCertificateAuthority('pem-files-other');
    put('ca.crt', other.certPem);
    await watch.check();
    expect(watch.current.ca).toBe(ca.certPem);
    expect(errors[0]).toMatch(/applying the new files .* failed \(server is gone\); keeping the certificate in use/);
    failApply = false;
    await watch.check(); // retried: still changed against the set in use
    expect(applied).toEqual([{ ca: other.certPem }]);
    watch.close();
    put('ca.crt', ca.certPem);
    await watch.check();
    expect(applied).toHaveLength(1);
  });
});

describe('reloadIntervalMs', () => {
  it('takes 0 to a day in whole seconds and refuses the rest, naming the flag', () => {
    expect([reloadIntervalMs('0'), reloadIntervalMs('10'), reloadIntervalMs('86400')]).toEqual([0, 10_000, 86_400_000]);
    for (const bad of ['86401', '3000000', '1.5', '-1', '', '10s']) expect(() => reloadIntervalMs(bad)).toThrow(`--cert-reload "${bad}" must be a whole number of seconds from 0 (never) to 86400`);
  });
});
