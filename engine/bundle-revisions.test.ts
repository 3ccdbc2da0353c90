// The revision archive on both audit store backends (a real SQLite file, a real PostgreSQL server), as
// engine replicas use it: each replica opens the store on its own.
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, type PostgresServer } from '../test/support/postgres.js';
import { openStore } from './audit/open-store.js';
import type { AuditStore } from './audit/store.js';
import { importArchiveFolder, PRUNE_GRACE_MS, RevisionArchive } from './bundle-revisions.js';

const dir = mkdtempSync(join(tmpdir(), 'warden-revisions-'));
let server: PostgresServer | undefined;
let n = 0;
const open: AuditStore[] = [];

const backends = [
  {
    name: 'SQLite',
    setup: () => Promise.resolve(),
    fresh: () => Promise.resolve(`sqlite:${join(dir, `audit-${++n}.db`)}`),
    sql: (url: string, sql: string) => {
      const db = new Database(url.slice('sqlite:'.length));
      db.exec(sql);
      db.close();
      return Promise.resolve();
    },
    count: (url: string, table: string) => {
      const db = new Database(url.slice('sqlite:'.length), { readonly: true });
      const c = db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).pluck().get() as number;
      db.close();
      return Promise.resolve(c);
    },
  },
  {
    name: 'PostgreSQL',
    setup: async () => {
      server = await startPostgres({ settings: { fsync: 'off' } });
    },
    fresh: () => server!.createDatabase(`revisions_${++n}`),
    sql: async (url: string, sql: string) => {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      await c.query(sql).finally(() => c.end());
    },
    count: async (url: string, table: string) => {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      return Number((await c.query<{ n: string }>(`SELECT COUNT(*) AS n FROM ${table}`).finally(() => c.end())).rows[0]!.n);
    },
  },
];

afterAll(async () => {
  for (const s of open) await s.close();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe.each(backends)('the bundle revision archive in the audit store on $name', (backend) => {
  // One archive per engine replica: each opens the store itself.
  const replica = async (url: string) => {
    const store = await openStore(url);
    open.push(store);
    return new RevisionArchive(store, store.location);
  };
  const NOW = Date.UTC(2026, 11, 6, 12, 0, 0);

  beforeAll(async () => {
    await backend.setup();
  });

  it('keeps each (bundle, revision) once, content-addressed, and finds exactly those bytes', async () => {
    const url = await backend.fresh();
    const a = await replica(url);
    expect(await a.keep('orders', 'abc123-def456', Buffer.from('bundle one'), 1000)).toBe(true);
    expect(await a.keep('storefront', 'abc123-999999', Buffer.from('bundle one'), 2000)).toBe(true);
    // Same revision again with other bytes: the first kept bytes stay (a revision names one bundle).
    expect(await a.keep('orders', 'abc123-def456', Buffer.from('other bytes'), 3000)).toBe(true);
    expect((await a.find('orders', 'abc123-def456'))?.bytes.toString()).toBe('bundle one');
    expect((await a.find('orders', 'abc123-def456'))?.kept.keptAt).toBe(1000);
    expect(await a.find('orders', 'nope-nope')).toBeUndefined();
    expect(await a.has('storefront', 'abc123-999999')).toBe(true);
    expect(await backend.count(url, 'bundle_blobs')).toBe(1);
  });

  it('shows every replica what any replica kept', async () => {
    const url = await backend.fresh();
    const [a, b] = [await replica(url), await replica(url)];
    await a.keep('ops-mcp', 'c0ffee-1', Buffer.from('served by replica A'));
    expect((await b.find('ops-mcp', 'c0ffee-1'))?.bytes.toString()).toBe('served by replica A');
    expect((await b.list()).map((k) => k.revision)).toEqual(['c0ffee-1']);
  });

  it('refuses names that are not a bundle name and a revision, and never finds them', async () => {
    const a = await replica(await backend.fresh());
    for (const [bundle, revision] of [['../etc', 'r1'], ['orders', '../../passwd'], ['orders', 'a/b'], ['Orders', 'r1'], ['orders', ''], ['orders', '.hidden'], ['orders', 'x'.repeat(200)]]) {
      expect(await a.keep(bundle!, revision!, Buffer.from('x')), `${bundle} ${revision}`).toBe(false);
      expect(await a.find(bundle!, revision!)).toBeUndefined();
    }
    expect(await a.list()).toEqual([]);
  });

  it('refuses a blob altered in the store rather than explain with it', async () => {
    const url = await backend.fresh();
    const a = await replica(url);
    await a.keep('orders', 'r-1', Buffer.from('the real bundle'));
    await backend.sql(url, backend.name === 'SQLite' ? "UPDATE bundle_blobs SET bytes = X'00ff'" : "UPDATE bundle_blobs SET bytes = '\\x00ff'::bytea");
    await expect(a.find('orders', 'r-1')).rejects.toThrow(/does not match its sha256/);
  });

  it('prunes revisions no stored event names, not served, past the grace period, and the blobs only they used', async () => {
    const url = await backend.fresh();
    const a = await replica(url);
    const old = NOW - PRUNE_GRACE_MS - 1;
    await a.keep('orders', 'old-1', Buffer.from('old'), old);
    await a.keep('orders', 'cur-2', Buffer.from('current'), old);
    await a.keep('orders', 'named-3', Buffer.from('named'), old);
    // Kept a moment ago by another replica, for an index this one has not scanned: not pruned yet.
    await a.keep('orders', 'fresh-4', Buffer.from('fresh'), NOW - 1000);
    const dropped = await a.prune((b, r) => b === 'orders' && r === 'cur-2', async (r) => r === 'named-3', NOW);
    expect(dropped.map((k) => k.revision)).toEqual(['old-1']);
    expect(await a.find('orders', 'old-1')).toBeUndefined();
    expect((await a.find('orders', 'cur-2'))?.bytes.toString()).toBe('current');
    expect((await a.find('orders', 'named-3'))?.bytes.toString()).toBe('named');
    expect((await a.find('orders', 'fresh-4'))?.bytes.toString()).toBe('fresh');
    expect(await backend.count(url, 'bundle_blobs')).toBe(3);
  });

  it('imports the folder archive an earlier Warden kept, skipping a blob that does not match its address', async () => {
    const a = await replica(await backend.fresh());
    const folder = join(dir, `folder-${backend.name}`);
    const put = (bundle: string, revision: string, bytes: string, sha = createHash('sha256').update(bytes).digest('hex')) => {
      mkdirSync(join(folder, 'refs', bundle), { recursive: true });
      mkdirSync(join(folder, 'blobs'), { recursive: true });
      writeFileSync(join(folder, 'blobs', `${sha}.tar.gz`), bytes);
      writeFileSync(join(folder, 'refs', bundle, `${revision}.json`), JSON.stringify({ bundle, revision, sha256: sha, keptAt: 1234 }));
    };
    put('orders', 'r-1', 'kept bundle');
    put('orders', 'r-2', 'altered on disk', '0'.repeat(64));
    const first = await importArchiveFolder(folder, a);
    expect(first.imported).toBe(1);
    expect(first.skipped).toEqual([expect.stringMatching(/r-2\.json: its blob does not match its sha256/)]);
    expect(await a.find('orders', 'r-1')).toMatchObject({ kept: { keptAt: 1234 } });
    expect((await importArchiveFolder(folder, a)).imported).toBe(0);
  });
});
