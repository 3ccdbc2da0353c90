// How deep a parsed JSON value nests, measured without recursion: everything after parsing (masking,
// size checks, the policy input's serialization) walks values recursively, so a body nested 100,000
// levels deep must be refused before any of it runs.

/** Deepest nesting Warden accepts in a body it reads (JSON-RPC messages, JSON request bodies). */
export const MAX_JSON_DEPTH = 64;

/** True when `value` nests objects and arrays deeper than `max` levels (a scalar is depth 0). */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth + 1 > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v as Record<string, unknown>)) if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
  }
  return false;
}
