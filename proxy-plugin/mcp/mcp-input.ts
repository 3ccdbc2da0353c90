// One JSON-RPC call → the `mcp` part of the policy input (formats/input.ts).
import type { McpInput } from '../../formats/input.js';
import type { JsonRpcNotification, JsonRpcRequest } from './jsonrpc.js';

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** What the policy sees of a call: the method, and the tool / prompt / resource it targets with its arguments. */
export function mcpInput(m: JsonRpcRequest | JsonRpcNotification): McpInput {
  const p = m.params ?? {};
  const out: McpInput = { method: m.method };
  if ('id' in m) out.id = m.id;
  if (m.method === 'tools/call' && typeof p.name === 'string') out.tool = p.name;
  if ((m.method === 'prompts/get' || m.method === 'tools/call') && typeof p.name === 'string') out.name = p.name;
  if (m.method === 'resources/read' && typeof p.uri === 'string') out.uri = p.uri;
  if ((m.method === 'tools/call' || m.method === 'prompts/get') && isObject(p.arguments)) out.arguments = p.arguments;
  return out;
}
