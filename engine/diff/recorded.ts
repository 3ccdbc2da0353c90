// Recorded calls for a policy diff: recent decision events from the audit log, as policy inputs.
import type { PolicyInput } from '../../formats/input.js';
import { parseFilter } from '../audit/query.js';
import type { AuditReader } from '../audit/store.js';

/** The newest `sample` HTTP and MCP decisions within `since`, grouped by workload. */
export async function recordedCalls(reader: AuditReader, since: string, sample: number, now = Date.now()): Promise<Map<string, PolicyInput[]>> {
  const out = new Map<string, PolicyInput[]>();
  const filter = parseFilter({ since, limit: String(Math.min(sample, 10_000)) }, now);
  for (const { event } of await reader.query(filter)) {
    if (event.kind !== 'http' && event.kind !== 'mcp') continue;
    const input = event.input as Partial<PolicyInput> | undefined;
    if (!input?.source || !input.request || !input.destination) continue;
    const list = out.get(event.labels.workload) ?? [];
    list.push(input as PolicyInput);
    out.set(event.labels.workload, list);
  }
  return out;
}
