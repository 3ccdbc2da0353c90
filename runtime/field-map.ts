// A map of request fields (header names, query keys) as a plain object that inherits nothing: `constructor`,
// `toString` and `__proto__` are keys like any other, and reading one that was not sent gives undefined.
//
// `Object.create(null)` gives that too, but V8 keeps such an object in dictionary mode: every spread,
// copy and property walk of it (the decision event's masked copy, the input's serialization) takes the
// slow path. An object made by a constructor whose prototype is itself an empty object without a
// prototype stays a fast object and has the same chain of nothing: measured on the MCP call's whole
// path through warden proxy (bench/NOTES.md, 2026-12-07 07:30).
function FieldMapObject(): void {}
FieldMapObject.prototype = Object.freeze(Object.create(null) as object);

/** An empty field map: own members only, no inherited ones (see the top of this file). */
export function fieldMap<T>(): Record<string, T> {
  return new (FieldMapObject as unknown as new () => Record<string, T>)();
}
