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
/** Longer lists are compared every time: what is remembered stays under 16 × 256 KiB of JSON per spec. */
const MAX_REMEMBERED_CHARS = 256 * 1024;

// A remembered list: a copy of the live list (nobody else holds it) and its record.
interface Remembered {
  list: unknown;
  record: DriftRecord;
}
const remembered = new WeakMap<McpSpec, Remembered[]>();

/** A record of its own: remembered records are handed out as copies (a receiver may change its copy). */
export const copyDrift = (r: DriftRecord): DriftRecord => ({ added: [...r.added], removed: [...r.removed], changed: r.changed.map((c) => ({ tool: c.tool, fields: [...c.fields] })) });

// True when two values JSON.parse gave are the same JSON: arrays in order, objects with the same own keys
// (in any order: compare() reads no order of keys), each member the same. Own keys only, a parsed
// `__proto__` key included; no copy and no text is made, and the walk stops at the first difference.
function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameJson(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  let keys = 0;
  for (const k in a) {
    if (!Object.hasOwn(a, k)) continue;
    if (!Object.hasOwn(b, k) || !sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
    keys++;
  }
  for (const k in b) if (Object.hasOwn(b, k)) keys--;
  return keys === 0;
}

/**
 * Compare a live tool list with the compiled one. Annotations the spec did not set compare as absent.
 * A list seen before (the same JSON, against the same spec) is not compared again: its record is
 * remembered, a few lists per spec, the last seen looked at first and the oldest forgotten first. Looking
 * a list up walks it once against each remembered one, stopping at the first difference: no text is made
 * of it (JSON.stringify of the whole list was half the cost of filtering a tools/list answer).
 */
export function detectDrift(live: LiveTool[], spec: McpSpec): DriftRecord {
  let lists = remembered.get(spec);
  if (lists) {
    for (let i = lists.length - 1; i >= 0; i--) {
      const r = lists[i]!;
      if (!sameJson(live, r.list)) continue;
      if (i !== lists.length - 1) lists.push(...lists.splice(i, 1));
      return copyDrift(r.record);
    }
  }
  const record = compare(live, spec);
  const text = JSON.stringify(live);
  if (text.length > MAX_REMEMBERED_CHARS) return record;
  if (!lists) remembered.set(spec, (lists = []));
  if (lists.length >= MAX_REMEMBERED_LISTS) lists.shift();
  // Its own copy, from the text just made: the caller's list may be changed after this call.
  lists.push({ list: JSON.parse(text) as unknown, record: copyDrift(record) });
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
