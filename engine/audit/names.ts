// The name ids of an audit store: repeated column values (workload, principal, revision…) are stored
// once in audit_names and referred to by id. This cache keeps what a process has looked up so an
// append resolves most names without SQL.
/** Most names cached; past it the cache starts over (ids never change, so this only costs lookups). */
const MAX_CACHED = 100_000;

/**
 * value → id of audit_names. Ids are never reused or changed, so a cached id stays right for the life
 * of the store; the one exception is an id written by a transaction that then rolled back, which is
 * why a failed append calls forget().
 */
export class NameIds {
  private readonly ids = new Map<string, number>();

  get(value: string): number | undefined {
    return this.ids.get(value);
  }

  set(value: string, id: number): void {
    if (this.ids.size >= MAX_CACHED) this.ids.clear();
    this.ids.set(value, id);
  }

  /** Drop everything (after a rolled-back transaction that may have created names). */
  forget(): void {
    this.ids.clear();
  }
}
