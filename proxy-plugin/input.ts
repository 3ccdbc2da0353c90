// Building the policy input for one call from its identity and normalized request.
import type { Destination, McpInput, PolicyInput, Source } from '../formats/input.js';
import type { NormalizedRequest } from './normalize.js';

/** The request as the policy input holds it: the normalized request without its raw query. */
export function inputRequest(req: NormalizedRequest): PolicyInput['request'] {
  return { method: req.method, path: req.path, segments: req.segments, query: req.query, headers: req.headers };
}

/** The input document Rego sees as `input`. */
export function buildInput(source: Source, destination: Destination, req: NormalizedRequest, extra?: { body?: unknown; upgrade?: string | undefined; mcp?: McpInput }): PolicyInput {
  const request = inputRequest(req);
  if (extra?.body !== undefined) request.body = extra.body;
  if (extra?.upgrade !== undefined) request.upgrade = extra.upgrade;
  const input: PolicyInput = { source, destination, request };
  if (extra?.mcp) input.mcp = extra.mcp;
  return input;
}
