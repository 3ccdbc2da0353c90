// Masking: secrets are replaced in a copy of the policy input before a decision event is queued, so
// they never leave the pod.
/** Headers whose values never leave the pod. */
export const SECRET_HEADERS = ['authorization', 'cookie', 'proxy-authorization'];
const MASK = '**masked**';

/**
 * Mask secrets in a copy of a policy input: secret headers, and `sensitive` dotted field paths
 * (from x-warden-authz) inside the request body and MCP arguments. Returns the JSON pointers masked.
 */
export function maskInput(input: Record<string, unknown>, sensitive: readonly string[]): { input: Record<string, unknown>; masked: string[] } {
  // Copy only what masking touches (this runs for every decision): headers always, bodies when needed.
  const request = input.request as { headers?: Record<string, string>; body?: unknown } | undefined;
  const mcp = input.mcp as { arguments?: unknown } | undefined;
  const copy: Record<string, unknown> = { ...input };
  if (request) copy.request = { ...request, ...(request.headers ? { headers: { ...request.headers } } : {}), ...(sensitive.length && request.body !== undefined ? { body: structuredClone(request.body) } : {}) };
  if (mcp) copy.mcp = { ...mcp, ...(sensitive.length && mcp.arguments !== undefined ? { arguments: structuredClone(mcp.arguments) } : {}) };
  const masked: string[] = [];
  const headers = (copy.request as { headers?: Record<string, string> } | undefined)?.headers;
  for (const h of SECRET_HEADERS) {
    if (headers && h in headers) {
      headers[h] = MASK;
      masked.push(`/input/request/headers/${h}`);
    }
  }
  const roots: Array<[unknown, string]> = [
    [(copy.request as { body?: unknown } | undefined)?.body, '/input/request/body'],
    [(copy.mcp as { arguments?: unknown } | undefined)?.arguments, '/input/mcp/arguments'],
  ];
  for (const field of sensitive) {
    const parts = field.split('.');
    for (const [root, pointer] of roots) {
      let node = root;
      for (const p of parts.slice(0, -1)) node = node && typeof node === 'object' ? (node as Record<string, unknown>)[p] : undefined;
      const last = parts[parts.length - 1]!;
      if (node && typeof node === 'object' && last in node) {
        (node as Record<string, unknown>)[last] = MASK;
        masked.push(`${pointer}/${parts.join('/')}`);
      }
    }
  }
  return { input: copy, masked };
}
