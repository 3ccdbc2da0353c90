// Replaying calls against two builds of the policy repository and collecting the decisions that flip.
import { readFileSync } from 'node:fs';
import type { Decision } from '../../formats/decision.js';
import type { PolicyInput } from '../../formats/input.js';
import { compiledSpecOf, openBundle } from '../../runtime/bundle.js';
import { REPLAY_LIMITS, SIDECAR_LIMITS, withLimits } from '../../runtime/evaluation-limits.js';
import { CaseVariantInput } from '../../runtime/input-selection.js';
import { EvaluationError, Policy } from '../../runtime/policy.js';
import type { WorkloadBuild } from '../compiler/build.js';
import type { CompiledSpec } from '../../formats/compiled-spec.js';
import { callersFor, grantsOf } from './callers.js';

/** One call replayed against both revisions. */
export interface Probe {
  workload: string;
  /** Operation id, `tool:<name>`, `resource:<uri>`, `prompt:<name>`, `mcp:<method>` or `METHOD /path`. */
  target: string;
  caller: string;
  input: PolicyInput;
  origin: 'spec' | 'fixture' | 'recorded';
}

export type Direction = 'deny-to-allow' | 'allow-to-deny';

/** Decisions that flipped, grouped by workload, target and direction. */
export interface Flip {
  workload: string;
  target: string;
  direction: Direction;
  callers: string[];
  count: number;
  origins: Array<Probe['origin']>;
  example: PolicyInput;
  /** The reasons each side gave for the example (grant lines for allows, denials for denies). */
  baseReasons: string[];
  headReasons: string[];
}

/** One workload's part of the review. */
export interface WorkloadDiff {
  workload: string;
  status: 'changed' | 'unchanged' | 'added' | 'removed';
  baseRevision?: string;
  headRevision?: string;
  probes: number;
  flips: Flip[];
  matrix: { callers: string[]; targets: string[]; cells: Record<string, Record<string, { base: boolean; head: boolean }>> };
  /** Targets some caller could reach before and none can now. */
  unreachable: string[];
}

interface Side {
  policy: Policy;
  spec: CompiledSpec;
  /** The build it came from (absent for a bundle read on its own, e.g. the console's matrix). */
  build?: WorkloadBuild;
  principal: string;
}

async function load(builds: WorkloadBuild[]): Promise<Map<string, Side>> {
  const out = new Map<string, Side>();
  for (const b of builds) {
    const bundle = await openBundle(readFileSync(b.bundle), 'unsigned-ok');
    // The workload's memory bound (deterministic) but a generous deadline: a replay judges the policy, not
    // the speed of the machine it runs on; a replayed call that loops is still stopped and shown denied.
    const workload = withLimits(SIDECAR_LIMITS, bundle.manifest.metadata?.limits, `bundle ${bundle.revision} metadata`);
    const policy = await Policy.load(bundle, { limits: { deadlineMs: REPLAY_LIMITS.deadlineMs, memoryMiB: workload.memoryMiB } });
    out.set(b.workload, { policy, spec: compiledSpecOf(bundle), build: b, principal: String(bundle.manifest.metadata?.principal ?? '') });
  }
  return out;
}

// The tool's required arguments, each a value of its declared type (the input schema is the tool
// author's JSON Schema: only `type: object` is checked at build time, so nothing else is assumed).
function sampleArguments(schema: Record<string, unknown>): Record<string, unknown> {
  const args: Record<string, unknown> = {};
  const properties = (typeof schema.properties === 'object' && schema.properties !== null ? schema.properties : {}) as Record<string, { type?: unknown } | undefined>;
  for (const name of Array.isArray(schema.required) ? schema.required.filter((r): r is string => typeof r === 'string') : []) {
    const t = Object.hasOwn(properties, name) ? properties[name]?.type : undefined;
    args[name] = t === 'number' || t === 'integer' ? 1 : t === 'boolean' ? false : t === 'array' ? [] : t === 'object' ? {} : 'x';
  }
  return args;
}

function request(method: string, path: string): PolicyInput['request'] {
  return { method, path, segments: path === '/' ? [] : path.slice(1).split('/'), query: {}, headers: {} };
}

/** Spec-derived probes: every operation, tool, resource and prompt of either side × every caller. */
function specProbes(name: string, base: Side | undefined, head: Side | undefined, principals: string[]): Probe[] {
  const specs = [base?.spec, head?.spec].filter((s): s is CompiledSpec => !!s);
  const callers = callersFor(specs.flatMap(grantsOf), principals);
  const spec = specs[specs.length - 1]!;
  const destination = { workload: name, namespace: spec.workload.namespace, principal: (head ?? base)!.principal };
  const targets: Array<{ target: string; request: PolicyInput['request']; mcp?: PolicyInput['mcp'] }> = [];
  const seen = new Set<string>();
  for (const s of specs) {
    for (const [id, op] of Object.entries(s.http.operations)) {
      const path = op.template.replace(/\{[^}]+\}/g, '1');
      const key = `${id} ${op.method} ${path}`;
      if (!seen.has(key)) targets.push({ target: id, request: request(op.method, path) });
      seen.add(key);
    }
    const endpoint = s.mcp.endpoint;
    if (!endpoint) continue;
    const rpc = (target: string, mcp: NonNullable<PolicyInput['mcp']>) => {
      if (!seen.has(target)) targets.push({ target, request: request('POST', endpoint), mcp });
      seen.add(target);
    };
    for (const [tool, t] of Object.entries(s.mcp.tools)) rpc(`tool:${tool}`, { method: 'tools/call', tool, arguments: sampleArguments(t.input_schema) });
    for (const uri of Object.keys(s.mcp.resources)) rpc(`resource:${uri}`, { method: 'resources/read', uri });
    for (const p of Object.keys(s.mcp.prompts)) rpc(`prompt:${p}`, { method: 'prompts/get', name: p });
    for (const m of ['initialize', 'tools/list']) rpc(`mcp:${m}`, { method: m });
  }
  return callers.flatMap((c) => targets.map((t) => ({ workload: name, target: t.target, caller: c.label, origin: 'spec' as const, input: { source: c.source, destination, request: t.request, ...(t.mcp ? { mcp: t.mcp } : {}) } })));
}

function decide(side: Side | undefined, input: PolicyInput): Decision {
  if (!side) return { allow: false, reasons: ['no bundle for this workload (default deny)'] };
  try {
    return side.policy.decide('warden/decision', input);
  } catch (err) {
    if (err instanceof EvaluationError) return { allow: false, reasons: [`evaluation error: ${err.message}`] };
    // Refused before the evaluation, as the sidecar refuses it (400).
    if (err instanceof CaseVariantInput) return { allow: false, reasons: [`request refused: ${err.message}`] };
    throw err;
  }
}

/** Label a recorded call for grouping: its operation (from the head decision) or tool, else method and path. */
export function targetOf(input: PolicyInput, d: Decision): string {
  if (input.mcp) return input.mcp.method === 'tools/call' ? `tool:${input.mcp.tool ?? '?'}` : `mcp:${input.mcp.method}`;
  return d.operation ?? `${input.request.method} ${input.request.path}`;
}

/** Compare two builds on spec probes plus recorded calls; one WorkloadDiff per workload of either side. */
export async function replay(
  baseBuilds: WorkloadBuild[],
  headBuilds: WorkloadBuild[],
  recorded: (workload: string) => PolicyInput[] = () => [],
  fixtures: (workload: string) => PolicyInput[] = () => [],
): Promise<WorkloadDiff[]> {
  const [base, head] = await Promise.all([load(baseBuilds), load(headBuilds)]);
  const principals = [...new Set([...base.values(), ...head.values()].map((s) => s.principal))];
  const names = [...new Set([...base.keys(), ...head.keys()])].sort();
  const out: WorkloadDiff[] = [];
  for (const name of names) {
    const b = base.get(name);
    const h = head.get(name);
    const status: WorkloadDiff['status'] = !b ? 'added' : !h ? 'removed' : b.build?.contentHash === h.build?.contentHash ? 'unchanged' : 'changed';
    const diff: WorkloadDiff = {
      workload: name,
      status,
      ...(b?.build ? { baseRevision: b.build.revision } : {}),
      ...(h?.build ? { headRevision: h.build.revision } : {}),
      probes: 0,
      flips: [],
      matrix: { callers: [], targets: [], cells: {} },
      unreachable: [],
    };
    out.push(diff);
    if (status === 'unchanged') continue;
    const probes = specProbes(name, b, h, principals);
    for (const input of fixtures(name)) probes.push({ workload: name, target: '', caller: input.source.principal, input, origin: 'fixture' });
    for (const input of recorded(name)) probes.push({ workload: name, target: '', caller: input.source.principal, input, origin: 'recorded' });
    diff.probes = probes.length;
    const groups = new Map<string, Flip>();
    const reach = new Map<string, { base: boolean; head: boolean }>();
    for (const p of probes) {
      const db = decide(b, p.input);
      const dh = decide(h, p.input);
      const target = p.target || targetOf(p.input, dh.allow ? dh : db);
      if (p.origin === 'spec') {
        ((diff.matrix.cells[p.caller] ??= {})[target] = { base: db.allow, head: dh.allow });
        const r = reach.get(target) ?? { base: false, head: false };
        reach.set(target, { base: r.base || db.allow, head: r.head || dh.allow });
      }
      if (db.allow === dh.allow) continue;
      const direction: Direction = dh.allow ? 'deny-to-allow' : 'allow-to-deny';
      const key = `${target}\0${direction}`;
      const g = groups.get(key) ?? { workload: name, target, direction, callers: [], count: 0, origins: [], example: p.input, baseReasons: db.reasons, headReasons: dh.reasons };
      g.count++;
      if (!g.callers.includes(p.caller)) g.callers.push(p.caller);
      if (!g.origins.includes(p.origin)) g.origins.push(p.origin);
      groups.set(key, g);
    }
    diff.flips = [...groups.values()].sort((x, y) => (x.direction === y.direction ? x.target.localeCompare(y.target) : x.direction === 'deny-to-allow' ? -1 : 1));
    diff.matrix.callers = Object.keys(diff.matrix.cells).sort();
    diff.matrix.targets = [...reach.keys()];
    diff.unreachable = [...reach.entries()].filter(([, r]) => r.base && !r.head).map(([t]) => t);
  }
  return out;
}

/** The permission matrix of one bundle (who may call what), as `warden diff` computes it for a side. */
export async function permissionMatrix(archive: Uint8Array): Promise<WorkloadDiff['matrix'] & { workload: string }> {
  const bundle = await openBundle(archive, 'unsigned-ok');
  const spec = compiledSpecOf(bundle);
  const side: Side = { policy: await Policy.load(bundle), spec, principal: String(bundle.manifest.metadata?.principal ?? '') };
  const cells: WorkloadDiff['matrix']['cells'] = {};
  const targets: string[] = [];
  for (const p of specProbes(spec.workload.name, side, side, [side.principal])) {
    const allowed = decide(side, p.input).allow;
    (cells[p.caller] ??= {})[p.target] = { base: allowed, head: allowed };
    if (!targets.includes(p.target)) targets.push(p.target);
  }
  return { workload: spec.workload.name, callers: Object.keys(cells).sort(), targets, cells };
}
