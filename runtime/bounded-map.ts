// A map kept to a number of entries, oldest first out: the one way Warden's caches and memories (reused
// results, result texts, verified tokens, header readings, compiled schemas, pending tool lists, filtered
// tool lists, MCP session owners) stay bounded whatever callers send. A Map iterates in insertion order,
// so its first key is the oldest.

/** Set `key` in `map`, first forgetting the oldest entry when the map already holds `max`. */
export function rememberAtMost<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  if (map.size >= max) map.delete(map.keys().next().value!);
  map.set(key, value);
}
