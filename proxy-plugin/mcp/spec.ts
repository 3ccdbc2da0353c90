// The compiled MCP spec a bundle carries at data.warden.spec.mcp: the reviewed tool list and paths.
import type { CompiledMcp, CompiledTool } from '../../formats/compiled-spec.js';
import type { VerifiedBundle } from '../../runtime/bundle.js';

/** The MCP part of a bundle's spec, for a workload that declares an MCP endpoint (tools as far as they are read here). */
export type McpSpec = Pick<CompiledMcp, 'transport_paths' | 'drift' | 'oauth'> & { endpoint: string; tools: Record<string, Partial<CompiledTool>> };

/** The MCP spec of a bundle (validated when it was opened); undefined when the workload declares no MCP endpoint. */
export function mcpSpec(bundle: Pick<VerifiedBundle, 'spec'>): (CompiledMcp & { endpoint: string }) | undefined {
  const m = bundle.spec?.mcp;
  // No copy: the sidecar asks for every call (is this an MCP path?), and a bundle's spec never changes.
  return m && typeof m.endpoint === 'string' ? (m as CompiledMcp & { endpoint: string }) : undefined;
}

// Servers differ in how they route a path (express: case-insensitive, a trailing slash ignored), so a
// spelling that one of them could take for a transport path is the handler's too.
const loose = (p: string) => p.toLowerCase().replace(/\/+$/, '');

/** How `path` relates to the transport paths: one of them, another spelling of one, or neither. */
export function transportPathMatch(spec: McpSpec, path: string): 'exact' | 'variant' | undefined {
  if (spec.transport_paths.includes(path)) return 'exact';
  const l = loose(path);
  return spec.transport_paths.some((t) => loose(t) === l) ? 'variant' : undefined;
}
