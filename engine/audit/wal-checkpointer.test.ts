// The SQLite store's background checkpointer: what a writer appends reaches the database file without
// the writer checkpointing, and closing the store leaves no WAL behind.
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { makeEvents } from '../../test/support/decision-events.js';
import { SqliteStore } from './sqlite-store.js';

const tmp = mkdtempSync(join(tmpdir(), 'warden-wal-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('SQLite WAL checkpointer', () => {
  it('copies appended events into the database file from its own thread, and close removes the WAL', async () => {
    const path = join(tmp, 'audit.db');
    const store = SqliteStore.open(path);
    const before = statSync(path).size;
    // Far below the writer's own autocheckpoint threshold: only the background thread can copy these.
    await store.append(makeEvents(500), Date.now());
    expect(statSync(`${path}-wal`).size).toBeGreaterThan(0);
    await vi.waitFor(() => expect(statSync(path).size).toBeGreaterThan(before), { timeout: 10_000, interval: 50 });
    expect(store.checkpointError).toBeUndefined();
    await store.close();
    expect(existsSync(`${path}-wal`)).toBe(false);
    const again = SqliteStore.open(path);
    expect((await again.bounds())?.count).toBe(500);
    await again.close();
  });
});
