// The SQLite store's writer thread (and its reader thread): what it does when it cannot run, and that it
// holds the process open exactly while it has work to finish.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { makeEvents } from '../../test/support/decision-events.js';
import { SqliteStore } from './sqlite-store.js';
import Database from 'better-sqlite3';
import { openSqlite, startSqliteWriter } from './sqlite-writer.js';
import { eventColumns, eventText } from './table.js';

const dir = mkdtempSync(join(tmpdir(), 'warden-writer-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const batch = (n: number) => {
  const events = makeEvents(n);
  return { columns: events.map(eventColumns), texts: events.map(eventText), rules: events.map(() => []), receivedAt: Date.now() };
};

describe('openSqlite', () => {
  it('gives a new store file 16 KiB pages in WAL mode, and leaves an existing file its page size', async () => {
    const fresh = SqliteStore.open(join(dir, 'fresh.db'));
    expect(fresh.database.pragma('page_size', { simple: true })).toBe(16384);
    expect(fresh.database.pragma('journal_mode', { simple: true })).toBe('wal');
    await fresh.close();

    const oldPath = join(dir, 'old-pages.db');
    const old = new Database(oldPath);
    old.pragma('page_size = 4096');
    old.exec('CREATE TABLE t (x)');
    old.close();
    const reopened = openSqlite(oldPath);
    expect(reopened.pragma('page_size', { simple: true })).toBe(4096);
    expect(reopened.pragma('journal_mode', { simple: true })).toBe('wal');
    reopened.close();
    const store = SqliteStore.open(oldPath);
    expect(await store.append(makeEvents(4), Date.now())).toMatchObject({ stored: 4 });
    await store.close();
  });
});

describe('SQLite writer thread', () => {
  it('rejects a write with the reason when its thread cannot open the store, and tries a new thread for the next write', async () => {
    const writer = startSqliteWriter(join(dir, 'missing-dir', 'audit.db'));
    await expect(writer.write(batch(2))).rejects.toThrow(/writer thread for .*missing-dir.*stopped: .*(directory|open)/i);
    await expect(writer.write(batch(2))).rejects.toThrow(/stopped/);
    await writer.stop();
  });

  it('reports a write the database refuses, stores nothing of it, and goes on writing', async () => {
    const path = join(dir, 'refusing.db');
    const store = SqliteStore.open(path);
    store.database.exec(`CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.decision_id LIKE 'refused-%' BEGIN SELECT RAISE(ABORT, 'refused by trigger'); END`);
    const writer = startSqliteWriter(path);
    const refused = batch(3);
    refused.columns[2]!.decision_id = 'refused-1';
    await expect(writer.write(refused)).rejects.toThrow(/refused by trigger/);
    expect(await store.bounds()).toBeUndefined();
    expect(await writer.write(batch(3))).toMatchObject({ stored: 3 });
    await writer.stop();
    await store.close();
  });

  /** Run `body` (ESM, with SqliteStore and makeEvents in scope) in a node process of its own, as nothing else would keep it alive. */
  const inProcess = async (body: string) => {
    const store = fileURLToPath(new URL('./sqlite-store.ts', import.meta.url));
    const events = fileURLToPath(new URL('../../test/support/decision-events.ts', import.meta.url));
    const script = `const { SqliteStore } = await import(${JSON.stringify(store)});\nconst { makeEvents } = await import(${JSON.stringify(events)});\n${body}`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    return { lines: out.trim().split('\n'), err, code };
  };

  it('keeps the process alive until pending appends are stored, and an open store alone does not', async () => {
    // No close() and nothing else pending: the process must still store all three batches, then exit.
    const r = await inProcess(`
      const s = SqliteStore.open(${JSON.stringify(join(dir, 'alive.db'))});
      for (let i = 0; i < 3; i++) s.append(makeEvents(50), Date.now()).then((r) => console.log('stored', r.stored));
    `);
    expect(r).toEqual({ lines: ['stored 50', 'stored 50', 'stored 50'], err: '', code: 0 });
  }, 30_000);

  it('lets close() finish, its reader and writer threads ended, in a process with nothing else to do', async () => {
    // The reader thread's answer to "close" leaves it unreferenced: stop() must hold the process until it exits.
    const r = await inProcess(`
      const s = SqliteStore.open(${JSON.stringify(join(dir, 'closing.db'))});
      await s.append(makeEvents(20), Date.now());
      console.log('edges', (await s.edgeSummary({ sort: '-time', limit: 10 })).eventCount);
      await s.close();
      console.log('closed');
    `);
    expect(r).toMatchObject({ lines: ['edges 20', 'closed'], code: 0 });
  }, 30_000);
});
