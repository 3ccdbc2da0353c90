// graph.reachable_paths: every path from the given nodes through an adjacency object (node → array or
// set of neighbours), as OPA's v1/topdown/reachable.go walks it: a path ends at a node with no edges,
// at a node missing from the graph (left out of the path), or just before it would revisit a node.
import { BuiltinError, isObject } from './builtin-operand.js';
import type { JsonValue } from './sprintf.js';
import { RegoSet } from './rego-value.js';
import { sortedSet } from './value-order.js';

type Graph = { [node: string]: JsonValue };

// Object keys arrive as strings; neighbours that are not strings can never be found in the graph.
function edges(graph: Graph, node: JsonValue): JsonValue[] | undefined {
  if (typeof node !== 'string' || !Object.hasOwn(graph, node)) return undefined;
  const e = graph[node];
  return Array.isArray(e) ? e : [];
}

function walk(graph: Graph, node: JsonValue, path: JsonValue[], out: JsonValue[], reached: ReadonlySet<JsonValue>): void {
  const next = edges(graph, node);
  if (next === undefined) {
    out.push(path);
    return;
  }
  const here = [...path, node];
  if (next.length === 0) {
    out.push(here);
    return;
  }
  const seen = new Set(reached).add(node);
  for (const neighbour of next) {
    if (seen.has(neighbour)) out.push(here);
    else walk(graph, neighbour, here, out, seen);
  }
}

/** graph.reachable_paths(graph, initial): the set of paths. */
export function reachablePaths(graph: JsonValue, initial: JsonValue): RegoSet {
  if (!isObject(graph)) throw new BuiltinError('graph.reachable_paths', 'operand 1 must be object');
  if (!Array.isArray(initial)) throw new BuiltinError('graph.reachable_paths', 'operand 2 must be one of {array, set}');
  const out: JsonValue[] = [];
  for (const node of initial) {
    const next = edges(graph, node);
    if (next === undefined) continue;
    if (next.length === 0) out.push([node]);
    else for (const neighbour of next) walk(graph, neighbour, [node], out, new Set([node]));
  }
  return new RegoSet(sortedSet(out));
}
