// Building the policy input for one call from its identity and normalized request.
import type { Destination, McpInput, PolicyInput, Source } from '../formats/input.js';
import type { NormalizedRequest } from './normalize.js';

/** The input document Rego sees as `input`. */
export function buildInput(source: Source, destination: Destination, req: NormalizedRequest, extra?: { body?: unknown; upgrade?: string | undefined; mcp?: McpInput }): PolicyInput {
  return {
    source,
    destination,
    request: {
      method: req.method,
      path: req.path,
      segments: req.segments,
      query: req.query,
      headers: req.headers,
      ...(extra?.body !== undefined ? { body: extra.body } : {}),
      ...(extra?.upgrade !== undefined ? { upgrade: extra.upgrade } : {}),
    },
    ...(extra?.mcp ? { mcp: extra.mcp } : {}),
  };
}
