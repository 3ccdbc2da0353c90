import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RevisionArchive } from './bundle-revisions.js';

const dir = mkdtempSync(join(tmpdir(), 'warden-revisions-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the bundle revision archive', () => {
  it('keeps each (bundle, revision) once, content-addressed, and finds exactly those bytes', () => {
    const a = new RevisionArchive(join(dir, 'a'));
    expect(a.keep('orders', 'abc123-def456', Buffer.from('bundle one'), 1000)).toBe(true);
    expect(a.keep('storefront', 'abc123-999999', Buffer.from('bundle one'), 2000)).toBe(true);
    // Same revision again with other bytes: the first kept bytes stay (a revision names one bundle).
    expect(a.keep('orders', 'abc123-def456', Buffer.from('other bytes'), 3000)).toBe(true);
    expect(a.find('orders', 'abc123-def456')?.bytes.toString()).toBe('bundle one');
    expect(a.find('orders', 'abc123-def456')?.kept.keptAt).toBe(1000);
    expect(readdirSync(join(dir, 'a', 'blobs'))).toHaveLength(1);
    expect(a.find('orders', 'nope-nope')).toBeUndefined();
  });

  it('refuses names that could leave its folder, and never finds them', () => {
    const a = new RevisionArchive(join(dir, 'b'));
    for (const [bundle, revision] of [['../etc', 'r1'], ['orders', '../../passwd'], ['orders', 'a/b'], ['Orders', 'r1'], ['orders', ''], ['orders', '.hidden']]) {
      expect(a.keep(bundle!, revision!, Buffer.from('x')), `${bundle} ${revision}`).toBe(false);
      expect(a.find(bundle!, revision!)).toBeUndefined();
    }
  });

  it('refuses a blob altered on disk rather than explain with it', () => {
    const a = new RevisionArchive(join(dir, 'c'));
    a.keep('orders', 'r-1', Buffer.from('the real bundle'));
    const blob = readdirSync(join(dir, 'c', 'blobs'))[0]!;
    writeFileSync(join(dir, 'c', 'blobs', blob), 'a tampered bundle');
    expect(() => a.find('orders', 'r-1')).toThrow(/does not match its sha256/);
  });

  it('prunes revisions no stored event names and that are not served, and the blobs only they used', async () => {
    const a = new RevisionArchive(join(dir, 'd'));
    a.keep('orders', 'old-1', Buffer.from('old'));
    a.keep('orders', 'cur-2', Buffer.from('current'));
    a.keep('orders', 'named-3', Buffer.from('named'));
    const dropped = await a.prune((b, r) => b === 'orders' && r === 'cur-2', async (r) => r === 'named-3');
    expect(dropped.map((k) => k.revision)).toEqual(['old-1']);
    expect(a.find('orders', 'old-1')).toBeUndefined();
    expect(a.find('orders', 'cur-2')?.bytes.toString()).toBe('current');
    expect(a.find('orders', 'named-3')?.bytes.toString()).toBe('named');
    expect(readdirSync(join(dir, 'd', 'blobs'))).toHaveLength(2);
  });
});
