// How audit results look to a person or a tool: aligned tables, JSON, NDJSON, Graphviz DOT, Mermaid.
import type { Edge, StoredEvent, TopDimension, TopRow } from './store.js';

/** Output formats of event lists. */
export type EventsFormat = 'table' | 'json' | 'ndjson';
/** Output formats of the who-talks-to-whom graph. */
export type GraphFormat = 'table' | 'json' | 'dot' | 'mermaid';

/** Columns padded to their widest cell; the last column is not padded. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

function obj(v: unknown): Record<string, unknown> {
  return v !== null && typeof v === 'object' ? (v as Record<string, unknown>) : {};
}

/** What was called, as a person reads it: the JSON-RPC method (and tool) of an MCP call, not `POST /mcp`. */
export function callOf(e: StoredEvent['event']): string {
  const input = obj(e.input);
  if (e.kind === 'admission') {
    const kind = obj(input.kind).kind;
    const name = [input.namespace, input.name].filter((x) => typeof x === 'string' && x !== '').join('/');
    return [input.operation, kind, name].filter((x) => typeof x === 'string' && x !== '').join(' ') || 'admission';
  }
  const req = obj(input.request);
  const mcp = obj(input.mcp);
  if (typeof mcp.method === 'string') {
    const target = [mcp.tool, mcp.name, mcp.uri].find((x) => typeof x === 'string');
    return typeof target === 'string' ? `${mcp.method} ${target}` : mcp.method;
  }
  return typeof req.method === 'string' ? `${req.method} ${String(req.path ?? '')}` : e.kind;
}

/** Who asked: the caller's principal, or for an admission decision the Kubernetes user who sent the object. */
export function principalOf(e: StoredEvent['event']): string {
  const input = obj(e.input);
  if (e.kind === 'admission') {
    const user = obj(obj(input.request).userInfo).username ?? input.user;
    return typeof user === 'string' && user !== '' ? user : '-';
  }
  const principal = obj(input.source).principal;
  return typeof principal === 'string' ? principal : '-';
}

/** The cells of one event: time, decision, workload, caller, what was called, operation, decision id. */
function eventCells(s: StoredEvent): string[] {
  const e = s.event;
  const op = obj(e.result).operation;
  return [e.timestamp, e.outcome, `${e.labels.namespace}/${e.labels.workload}`, principalOf(e), callOf(e), typeof op === 'string' ? op : '-', e.decision_id];
}

const EVENT_HEADERS = ['TIME', 'DECISION', 'WORKLOAD', 'PRINCIPAL', 'CALL', 'OPERATION', 'DECISION ID'];

/** Events in a format; JSON and NDJSON carry the events themselves. */
export function renderEvents(events: StoredEvent[], format: EventsFormat): string {
  switch (format) {
    case 'table':
      return events.length ? table(EVENT_HEADERS, events.map(eventCells)) : 'no matching events\n';
    case 'json':
      return `${JSON.stringify(events.map((s) => s.event), null, 2)}\n`;
    case 'ndjson':
      return events.map((s) => `${JSON.stringify(s.event)}\n`).join('');
  }
}

/** One event on one line, for `tail` on a terminal. */
export function eventLine(s: StoredEvent): string {
  return `${eventCells(s).join('  ')}\n`;
}

/** A "top denied" aggregate. */
export function renderTop(rows: TopRow[], by: TopDimension, format: 'table' | 'json'): string {
  if (format === 'json') return `${JSON.stringify(rows, null, 2)}\n`;
  if (!rows.length) return 'no matching events\n';
  const withWorkload = by !== 'principal';
  return table(
    ['COUNT', ...(withWorkload ? ['WORKLOAD'] : []), by.toUpperCase()],
    rows.map((r) => [String(r.count), ...(withWorkload ? [r.workload ?? ''] : []), r.key]),
  );
}

function dotString(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** Graphviz DOT: one node per principal and workload, one edge per pair; red when anything was denied. */
export function edgesDot(edges: Edge[]): string {
  const lines = ['digraph warden {', '  rankdir=LR;', '  node [shape=box, fontname="Helvetica"];'];
  const workloads = new Set(edges.map((e) => `${e.namespace}/${e.destination}`));
  for (const w of workloads) lines.push(`  ${dotString(`workload:${w}`)} [label=${dotString(w)}, shape=component];`);
  for (const p of new Set(edges.map((e) => e.source))) lines.push(`  ${dotString(`principal:${p}`)} [label=${dotString(p)}];`);
  for (const e of edges) {
    const label = `allow ${e.allow} / deny ${e.deny}${e.dry_run_deny ? ` / dry-run-deny ${e.dry_run_deny}` : ''}`;
    const color = e.deny ? 'red' : e.dry_run_deny ? 'orange' : 'darkgreen';
    lines.push(`  ${dotString(`principal:${e.source}`)} -> ${dotString(`workload:${e.namespace}/${e.destination}`)} [label=${dotString(label)}, color=${color}];`);
  }
  lines.push('}');
  return `${lines.join('\n')}\n`;
}

function mermaidLabel(s: string): string {
  return `"${s.replace(/"/g, '#quot;')}"`;
}

/** Mermaid flowchart of the same graph; node ids are generated (labels may hold any character). */
export function edgesMermaid(edges: Edge[]): string {
  const ids = new Map<string, string>();
  const lines = ['flowchart LR'];
  const node = (key: string, label: string, shape: 'box' | 'workload') => {
    let id = ids.get(key);
    if (!id) {
      id = `n${ids.size + 1}`;
      ids.set(key, id);
      lines.push(shape === 'workload' ? `  ${id}[[${mermaidLabel(label)}]]` : `  ${id}[${mermaidLabel(label)}]`);
    }
    return id;
  };
  const links: string[] = [];
  for (const e of edges) {
    const from = node(`p:${e.source}`, e.source, 'box');
    const to = node(`w:${e.namespace}/${e.destination}`, `${e.namespace}/${e.destination}`, 'workload');
    const label = `allow ${e.allow} / deny ${e.deny}${e.dry_run_deny ? ` / dry-run-deny ${e.dry_run_deny}` : ''}`;
    links.push(`  ${from} -->|${mermaidLabel(label)}| ${to}`);
  }
  return `${[...lines, ...links].join('\n')}\n`;
}

/** The who-talks-to-whom graph in a format. */
export function renderGraph(edges: Edge[], format: GraphFormat): string {
  switch (format) {
    case 'json':
      return `${JSON.stringify(edges, null, 2)}\n`;
    case 'dot':
      return edgesDot(edges);
    case 'mermaid':
      return edgesMermaid(edges);
    case 'table':
      return edges.length
        ? table(['SOURCE', 'DESTINATION', 'ALLOW', 'DENY', 'DRY-RUN-DENY', 'TOTAL'], edges.map((e) => [e.source, `${e.namespace}/${e.destination}`, String(e.allow), String(e.deny), String(e.dry_run_deny), String(e.total)]))
        : 'no matching events\n';
  }
}
