// The compiled MCP spec a bundle carries at data.warden.spec.mcp: the reviewed tool list and paths.
import type { DriftAction, WorkloadManifest } from '../../formats/workload.js';

/** One reviewed tool. */
export interface CompiledTool {
  annotations?: Record<string, unknown>;
  description?: string;
  input_schema?: unknown;
  destructive?: boolean;
  read_only?: boolean;
  sensitive?: string[];
}

/** The MCP part of a bundle's data. */
export interface McpSpec {
  endpoint: string;
  transport_paths: string[];
  drift: DriftAction;
  tools: Record<string, CompiledTool>;
  /** The workload manifest's mcp.oauth, compiled into the bundle: serve as an OAuth protected resource. */
  oauth?: NonNullable<NonNullable<WorkloadManifest['mcp']>['oauth']>;
}

// Read once per bundle: the sidecar asks for every call (is this an MCP path?), and a bundle's data never changes.
const specs = new WeakMap<object, McpSpec | null>();

/** Read the MCP spec out of a bundle's data; undefined when the workload declares no MCP endpoint. */
export function mcpSpec(data: unknown): McpSpec | undefined {
  if (!data || typeof data !== 'object') return undefined;
  let spec = specs.get(data);
  if (spec === undefined) specs.set(data, (spec = readSpec(data) ?? null));
  return spec ?? undefined;
}

function readSpec(data: object): McpSpec | undefined {
  const m = (data as { warden?: { spec?: { mcp?: Partial<McpSpec> } } }).warden?.spec?.mcp;
  if (!m || typeof m.endpoint !== 'string') return undefined;
  return {
    endpoint: m.endpoint,
    transport_paths: Array.isArray(m.transport_paths) ? m.transport_paths.filter((p): p is string => typeof p === 'string') : [m.endpoint],
    drift: m.drift === 'block' ? 'block' : 'log',
    tools: m.tools && typeof m.tools === 'object' ? m.tools : {},
    ...(m.oauth && typeof m.oauth === 'object' ? { oauth: m.oauth } : {}),
  };
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
