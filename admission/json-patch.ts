// RFC 6902 `add`, the one operation Warden's injector emits, applied the way the API server applies
// it: a missing parent is an error, "-" appends, an array index inserts before that element. For
// showing an injected Pod without an API server (`warden up`) and for the webhook's unit tests.

/** Apply a JSON Patch of `add` operations to a copy of `doc`; throws on any other operation or a bad path. */
export function applyJsonPatch(doc: unknown, ops: Array<{ op: string; path: string; value: unknown }>): unknown {
  const out = structuredClone(doc) as Record<string, unknown>;
  for (const { op, path, value } of ops) {
    if (op !== 'add') throw new Error(`unexpected JSON Patch op ${op} at ${path}`);
    const keys = path.split('/').slice(1).map((k) => k.replaceAll('~1', '/').replaceAll('~0', '~'));
    const last = keys.pop()!;
    let node: unknown = out;
    for (const k of keys) {
      node = (node as Record<string, unknown>)[k];
      if (node === undefined || node === null || typeof node !== 'object') throw new Error(`JSON Patch path ${path}: ${k} does not exist`);
    }
    if (Array.isArray(node)) {
      const i = last === '-' ? node.length : Number(last);
      if (!Number.isInteger(i) || i < 0 || i > node.length) throw new Error(`JSON Patch path ${path}: index out of range`);
      node.splice(i, 0, value);
    } else (node as Record<string, unknown>)[last] = value;
  }
  return out;
}
