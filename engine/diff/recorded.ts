// Recorded calls for a policy diff: decision events from the audit log within a window, as policy
// inputs. When the window holds more than `sample` calls, a uniform random sample of them is kept.
import type { PolicyInput } from '../../formats/input.js';
import { parseFilter } from '../audit/query.js';
import type { AuditReader } from '../audit/store.js';

const PAGE = 10_000;

/** Up to `sample` HTTP and MCP decisions within `since` (uniformly sampled), grouped by workload. */
export async function recordedCalls(reader: AuditReader, since: string, sample: number, now = Date.now()): Promise<Map<string, PolicyInput[]>> {
  const kept: Array<{ workload: string; input: PolicyInput }> = [];
  let seen = 0;
  let seed = 0x9e3779b9;
  const random = () => {
    // xorshift32: deterministic, so a review of the same window replays the same sample
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 4294967296;
  };
  let after = 0;
  for (;;) {
    const page = await reader.query(parseFilter({ since, sort: 'seq', 'after-seq': String(after), limit: String(PAGE) }, now));
    for (const { seq, event } of page) {
      after = seq;
      if (event.kind !== 'http' && event.kind !== 'mcp') continue;
      const input = event.input as Partial<PolicyInput> | undefined;
      if (!input?.source || !input.request || !input.destination) continue;
      seen++;
      const item = { workload: event.labels.workload, input: input as PolicyInput };
      if (kept.length < sample) kept.push(item);
      else {
        const j = Math.floor(random() * seen);
        if (j < sample) kept[j] = item;
      }
    }
    if (page.length < PAGE) break;
  }
  const out = new Map<string, PolicyInput[]>();
  for (const { workload, input } of kept) out.set(workload, [...(out.get(workload) ?? []), input]);
  return out;
}
