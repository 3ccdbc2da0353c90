// Opening the audit store a `--store` URL names: `sqlite:<file>` or `postgres://…`. Kept apart from the
// store's interface (store.ts) so the interface never imports the backends that implement it; each
// backend is imported only when its URL is given (the PostgreSQL driver is not loaded for SQLite).
import type { AuditStore } from './store.js';

/** A `--store` URL that names no backend we have. */
export class StoreUrlError extends Error {
  override name = 'StoreUrlError';
}

/** Open a store from a URL: `sqlite:path/to/file.db` or `postgres://user@host:port/db`. */
export async function openStore(url: string): Promise<AuditStore> {
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (!path) throw new StoreUrlError(`store URL "${url}" has no file path; use sqlite:.warden/audit.db`);
    const { SqliteStore } = await import('./sqlite-store.js');
    return SqliteStore.open(path);
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    const { PostgresStore } = await import('./postgres-store.js');
    return PostgresStore.open(url);
  }
  throw new StoreUrlError(`store URL "${url}" is not sqlite:<file> or postgres://user@host:port/database`);
}
