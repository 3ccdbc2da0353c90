import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createCertificateAuthority, type CertificateAuthority } from './certificate-authority.js';
import { watchPemFiles, type PemSet, type PemWatch } from './pem-files.js';

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
const put = (name: string, text: string) => {
  writeFileSync(join(dir, `${name}.tmp`), text);
  renameSync(join(dir, `${name}.tmp`), join(dir, name));
};

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
});
