// Drift ("rug pull") detection: a live tools/list compared with the reviewed, compiled tool list.
import type { DecisionEvent, EventSource } from '../../formats/decision-event.js';
import type { McpSpec } from './spec.js';

/** A tool as a server lists it. */
export interface LiveTool {
  name: string;
  description?: string;
  inputSchema?: unknown;
  annotations?: Record<string, unknown>;
  [k: string]: unknown;
}

/** How one reviewed tool differs on the live server. */
export interface ToolChange {
  tool: string;
  fields: Array<'description' | 'inputSchema' | 'annotations'>;
}

/** The difference between a live tool list and the compiled one; empty lists mean no drift. */
export interface DriftRecord {
  added: string[];
  removed: string[];
  changed: ToolChange[];
}

// JSON with object keys sorted: equal documents compare equal whatever the key order.
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v as object).sort().map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v ?? null);
}

// `$schema` names the JSON Schema dialect a server's SDK writes out, not the shape of the arguments.
function schemaShape(s: unknown): unknown {
  if (!s || typeof s !== 'object' || Array.isArray(s)) return s ?? {};
  const { $schema: _dialect, ...shape } = s as Record<string, unknown>;
  return shape;
}

/** Live tool lists remembered per spec, with what they differ in (a server lists the same tools every time). */
const MAX_REMEMBERED_LISTS = 16;
/** Longer lists are compared every time: what is remembered stays under 16 × 256 KiB per spec. */
const MAX_REMEMBERED_CHARS = 256 * 1024;
const remembered = new WeakMap<McpSpec, Map<string, DriftRecord>>();

const copy = (r: DriftRecord): DriftRecord => ({ added: [...r.added], removed: [...r.removed], changed: r.changed.map((c) => ({ tool: c.tool, fields: [...c.fields] })) });

/**
 * Compare a live tool list with the compiled one. Annotations the spec did not set compare as absent.
 * A list seen before (the same JSON text, against the same spec) is not compared again: its record is
 * remembered, a few lists per spec, the oldest forgotten first.
 */
export function detectDrift(live: LiveTool[], spec: McpSpec): DriftRecord {
  const key = JSON.stringify(live);
  let lists = remembered.get(spec);
  const known = lists?.get(key);
  if (known) return copy(known);
  const record = compare(live, spec);
  if (key.length > MAX_REMEMBERED_CHARS) return record;
  if (!lists) remembered.set(spec, (lists = new Map()));
  if (lists.size >= MAX_REMEMBERED_LISTS) lists.delete(lists.keys().next().value!);
  lists.set(key, copy(record));
  return record;
}

function compare(live: LiveTool[], spec: McpSpec): DriftRecord {
  const record: DriftRecord = { added: [], removed: [], changed: [] };
  const seen = new Set<string>();
  for (const t of live) {
    seen.add(t.name);
    // Own entries only: a live tool named `constructor` or `__proto__` is new, not a reviewed one.
    const c = Object.hasOwn(spec.tools, t.name) ? spec.tools[t.name] : undefined;
    if (!c) {
      record.added.push(t.name);
      continue;
    }
    const fields: ToolChange['fields'] = [];
    if ((t.description ?? '') !== (c.description ?? '')) fields.push('description');
    if (canonical(schemaShape(t.inputSchema)) !== canonical(schemaShape(c.input_schema))) fields.push('inputSchema');
    if (canonical(t.annotations ?? {}) !== canonical(c.annotations ?? {})) fields.push('annotations');
    if (fields.length > 0) record.changed.push({ tool: t.name, fields });
  }
  for (const name of Object.keys(spec.tools)) if (!seen.has(name)) record.removed.push(name);
  return record;
}

/** True when the record holds any difference. */
export function hasDrift(r: DriftRecord): boolean {
  return r.added.length + r.removed.length + r.changed.length > 0;
}

/** Tools that must not be offered in block mode: new ones and changed ones (their review no longer holds). */
export function unreviewedTools(r: DriftRecord): Set<string> {
  return new Set([...r.added, ...r.changed.map((c) => c.tool)]);
}

/** The decision-log event for a drift observation (kind `drift`; formats/decision-event.ts). */
export function driftEvent(
  r: DriftRecord,
  ctx: { decisionId: string; now: Date; workload: string; namespace: string; via: EventSource; revision?: string; action: 'log' | 'block' },
): DecisionEvent {
  return {
    decision_id: ctx.decisionId,
    timestamp: ctx.now.toISOString(),
    kind: 'drift',
    outcome: ctx.action === 'block' ? 'deny' : 'allow',
    mode: 'enforce',
    labels: { workload: ctx.workload, namespace: ctx.namespace || 'unknown', source: ctx.via },
    bundles: ctx.revision ? { [ctx.workload]: { revision: ctx.revision } } : {},
    path: 'warden/drift',
    result: { drift: r as unknown as Record<string, unknown>, action: ctx.action },
  };
}
