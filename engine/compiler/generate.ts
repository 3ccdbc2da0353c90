// Spec annotations → one readable Rego module per workload (package warden.generated) plus the data
// the core rules route with. Every generated rule carries a comment pointing at the spec line it came from.
import type { AuthzAnnotation, Grant } from '../../formats/authz.js';
import type { CompiledEntry, CompiledSpec, MaskList, RouteBucket, RouteEntry, RouteSegment } from '../../formats/compiled-spec.js';
import { formatPointer } from '../../formats/json-pointer.js';
import type { WorkloadManifest } from '../../formats/workload.js';
import type { McpEntry } from './mcp-tools.js';
import type { HttpOperation } from './openapi.js';

/** What the generator produces for one workload. */
export interface Generated {
  rego: string;
  /** Goes to data.warden.spec. */
  spec: CompiledSpec;
}

const q = (s: string): string => JSON.stringify(s);

/**
 * Rego body lines for one grant (all conditions must hold). `core` is how the core package is named
 * where the lines go: `core` inside the generated module, `data.warden.core` in a query (warden explain).
 */
export function grantConditions(g: Grant, core = 'core'): string[] {
  const out: string[] = [];
  // A SPIFFE principal or a namespace names a workload: only a workload identity (mTLS, trusted mesh
  // header) matches it, never a bearer token, whatever its claims say.
  if (g.principal) {
    out.push(g.principal.includes('*') ? `${core}.principal_matches(${q(g.principal)})` : `input.source.principal == ${q(g.principal)}`);
    out.push(`${core}.workload_caller`);
  }
  if (g.namespace) out.push(`${core}.caller_namespace == ${q(g.namespace)}`, `${core}.workload_caller`);
  if (g.scopes) out.push(`${core}.has_scopes(${JSON.stringify(g.scopes)})`);
  for (const [claim, values] of Object.entries(g.claims ?? {})) out.push(`${core}.claim_matches(${q(claim)}, ${JSON.stringify(values)})`);
  return [...new Set(out)];
}

function describeGrant(g: Grant): string {
  const parts: string[] = [];
  if (g.principal) parts.push(`principal ${g.principal}`);
  if (g.namespace) parts.push(`namespace ${g.namespace}`);
  if (g.scopes) parts.push(`scopes ${g.scopes.join(' ')}`);
  for (const [c, v] of Object.entries(g.claims ?? {})) parts.push(`claim ${c} in [${v.join(', ')}]`);
  if (g.destructive) parts.push('destructive: true');
  return parts.join(', ');
}

// Generated rules are keyed by what they grant: `operations[<operationId>].grants`, `tools[<name>].grants`,
// `resources[<uri>].grants`, `prompts[<name>].grants`, each an object of the grants that hold, keyed by
// their place in x-warden-authz (`"public"`, or the allow index). OPA's WASM has no rule indexing, so a flat
// `grants` with one body per grant would try every grant of the spec on every call; keyed by a ground
// ref, the planner emits a dynamic call to just the rules of the entry the call addresses.
type Subtree = 'operations' | 'tools' | 'resources' | 'prompts';

interface RuleTarget {
  subtree: Subtree;
  kind: string;
  name: string;
  authz: NonNullable<HttpOperation['authz']>;
  where: string;
  destructive: boolean;
}

function rulesFor(t: RuleTarget): string[] {
  const out: string[] = [];
  // Keyed by where the grant stands in x-warden-authz (`public`, or the allow index): an object, not a set,
  // so no grant object is hashed into a set on every call (OPA hashes a set's members on insert and lookup).
  const grant = (key: string, reason: string, conditions: string[], comment: string) => {
    out.push(`# ${comment}`);
    const head = `${t.subtree}[${q(t.name)}].grants[${key}] :=`;
    const value = `{"kind": ${q(t.kind)}, "name": ${q(t.name)}, "reason": ${q(reason)}}`;
    if (conditions.length === 0) out.push(`${head} ${value}`, '');
    else out.push(`${head} ${value} if {`, ...conditions.map((c) => `\t${c}`), '}', '');
  };
  if (t.authz.public) grant('"public"', `${t.kind} ${t.name} is public (${t.where})`, [], `public: anyone may call, including anonymous callers`);
  (t.authz.allow ?? []).forEach((g, i) => {
    if (t.destructive && g.destructive !== true) {
      out.push(`# x-warden-authz.allow[${i}] (${describeGrant(g)}) grants nothing: the tool is destructive and the grant lacks "destructive: true"`, '');
      return;
    }
    const label = `x-warden-authz.allow[${i}]`;
    const note = g.description ? ` — ${g.description}` : '';
    grant(String(i), `${t.kind} ${t.name} granted by ${label} (${t.where})${note}`, grantConditions(g), `${label}: ${describeGrant(g)}${note}`);
  });
  return out;
}

// The rules that pick, for the call being decided, the keyed grants of what it addresses.
function callGrants(present: ReadonlySet<Subtree>): string[] {
  const out = [
    '# ---------------------------------------------------------------- the call being decided',
    '',
    '# Its grants are those keyed by the operation or MCP entry it addresses; no other grant is evaluated.',
    '# At most one of these holds for a call (an HTTP call has no input.mcp; an MCP call has one method).',
  ];
  if (present.has('operations')) out.push('grants := operations[core.route.id].grants if core.http_call', '');
  if (present.has('resources')) out.push('grants := resources[input.mcp.uri].grants if input.mcp.method == "resources/read"', '');
  if (present.has('prompts')) out.push('grants := prompts[input.mcp.name].grants if input.mcp.method == "prompts/get"', '');
  if (present.has('tools')) {
    out.push('grants := tools[input.mcp.tool].grants if input.mcp.method == "tools/call"', '');
    out.push('# The called tool\'s grants alone (the core checks that a destructive tool is granted).');
    out.push('tool_grants := tools[input.mcp.tool].grants if input.mcp.method == "tools/call"', '');
  } else out.push('default tool_grants := {}', '');
  return out;
}

// The position in a template that best separates the routes of one (method, segment count) bucket:
// the one leaving the fewest candidates for the worst request (templates with a parameter there stay
// candidates for every request). Index 0 unless a shared prefix such as /api/v1 makes another better.
function indexPosition(segmentsOf: RouteSegment[][], length: number): number {
  let best = 0;
  let bestCost = Infinity;
  for (let pos = 0; pos < length; pos++) {
    const groups = new Map<string, number>();
    let params = 0;
    for (const segs of segmentsOf) {
      const s = segs[pos];
      if (typeof s === 'string') groups.set(s, (groups.get(s) ?? 0) + 1);
      else params++;
    }
    const cost = params + Math.max(0, ...groups.values());
    if (cost < bestCost) [best, bestCost] = [pos, cost];
  }
  return best;
}

// Rego's lower (Go's strings.ToLower) maps each code point on its own; JavaScript's toLowerCase of a whole
// string looks at context (a final capital sigma), so each code point is lowered apart. (U+0130 lowers to
// two code points here and to one in Go: a route spelled with it is not matched regardless of case.)
const regoLower = (s: string) => Array.from(s, (c) => c.toLowerCase()).join('');

const SUBTREE: Record<McpEntry['kind'], Subtree> = { tool: 'tools', resource: 'resources', prompt: 'prompts' };

// Per method, a list indexed by segment count (null where no template has that many segments).
function routeData(ops: HttpOperation[]): Record<string, Array<RouteBucket | null>> {
  const byMethod = new Map<string, Map<number, HttpOperation[]>>();
  const add = (method: string, op: HttpOperation) => {
    const byLen = byMethod.get(method) ?? byMethod.set(method, new Map()).get(method)!;
    (byLen.get(op.segments.length) ?? byLen.set(op.segments.length, []).get(op.segments.length)!).push(op);
  };
  for (const op of ops) add(op.method, op);
  // Routers answer HEAD with the GET handler; so does the routing table, unless HEAD is declared.
  for (const op of ops) if (op.method === 'GET' && !ops.some((o) => o.method === 'HEAD' && o.template === op.template)) add('HEAD', op);
  const routes: Record<string, Array<RouteBucket | null>> = {};
  for (const [method, byLen] of byMethod) {
    const buckets: Array<RouteBucket | null> = Array.from({ length: Math.max(...byLen.keys()) + 1 }, () => null);
    for (const [length, bucketOps] of byLen) {
      const position = indexPosition(bucketOps.map((o) => o.segments), length);
      const bucket: RouteBucket = { position, literal: {}, param: [], folded: Array.from({ length }, () => ({})) };
      for (const op of bucketOps) {
        const entry: RouteEntry = { id: op.id, rank: op.rank, segments: op.segments };
        const s = op.segments[position];
        if (typeof s === 'string') (bucket.literal[s] ??= []).push(entry);
        else bucket.param.push(entry);
        const route = op.segments.map((seg) => (typeof seg === 'string' ? regoLower(seg) : seg));
        op.segments.forEach((seg, i) => {
          if (typeof seg !== 'string') return;
          const at = (bucket.folded[i]![regoLower(seg)] ??= { spellings: [], routes: [] });
          if (!at.spellings.includes(seg)) at.spellings.push(seg);
          at.routes.push({ spelling: seg, route });
        });
      }
      buckets[length] = bucket;
    }
    routes[method] = buckets;
  }
  return routes;
}

// An annotation's sensitive entries as the pointers the decision log masks. A dotted field is masked
// wherever the call carries it: in the JSON body, or in the arguments of an MCP call (an MCP endpoint
// may also be an OpenAPI operation). `header:` and `query:` name a request header (normalized to lower
// case, as the input holds it) or a query parameter (every value of it); `path:` a parameter of the
// operation's template, as the segment at its place (the runtime masks it in the path as well).
function maskOf(authz: AuthzAnnotation | undefined, segments: readonly RouteSegment[] = []): MaskList {
  return (authz?.sensitive ?? []).flatMap((entry) => {
    if (entry.startsWith('header:')) return [formatPointer(['input', 'request', 'headers', entry.slice('header:'.length).toLowerCase()])];
    if (entry.startsWith('query:')) return [formatPointer(['input', 'request', 'query', entry.slice('query:'.length)])];
    if (entry.startsWith('path:')) {
      const at = segments.findIndex((s) => typeof s !== 'string' && s.param === entry.slice('path:'.length));
      // Checked when the spec was read (openapi.ts, mcp-tools.ts): a name no template has never gets here.
      return at < 0 ? [] : [formatPointer(['input', 'request', 'segments', String(at)])];
    }
    const keys = entry.split('.');
    return [formatPointer(['input', 'request', 'body', ...keys]), formatPointer(['input', 'mcp', 'arguments', ...keys])];
  });
}

// The rules granting the spec's operations, each under a comment naming it and its spec line.
function operationRules(ops: HttpOperation[], present: Set<Subtree>): string[] {
  const lines: string[] = [];
  if (ops.length > 0) lines.push('# ---------------------------------------------------------------- HTTP operations', '');
  for (const op of ops) {
    const where = `${op.file}:${op.authzLine ?? op.line ?? 1}`;
    lines.push(`# ${op.id}: ${op.method} ${op.template}${op.summary ? ` — ${op.summary}` : ''} (${op.file}:${op.line ?? 1})`);
    if (!op.authz || (!op.authz.public && !(op.authz.allow ?? []).length)) {
      lines.push('# no x-warden-authz grants: no caller is granted this operation by the spec', '');
      continue;
    }
    lines.push(...rulesFor({ subtree: 'operations', kind: 'operation', name: op.id, authz: op.authz, where, destructive: false }));
    present.add('operations');
  }
  return lines;
}

// The rules granting the MCP tools, resources and prompts.
function mcpRules(mcp: McpEntry[], present: Set<Subtree>): string[] {
  const lines: string[] = [];
  if (mcp.length > 0) lines.push('# ---------------------------------------------------------------- MCP tools, resources, prompts', '');
  for (const e of mcp) {
    const where = `${e.file}:${e.authzLine ?? e.line ?? 1}`;
    const flags = e.kind === 'tool' ? (e.destructive ? ' [destructive]' : e.readOnly ? ' [read-only]' : ' [writes]') : '';
    lines.push(`# ${e.kind} ${e.name}${flags} (${e.file}:${e.line ?? 1})`);
    if (!e.authz || (!e.authz.public && !(e.authz.allow ?? []).length)) {
      lines.push('# no x-warden-authz grants: no caller is granted this by the spec', '');
      continue;
    }
    const rules = rulesFor({ subtree: SUBTREE[e.kind], kind: e.kind, name: e.name, authz: e.authz, where, destructive: e.destructive });
    lines.push(...rules);
    if (rules.some((l) => l.startsWith(SUBTREE[e.kind]))) present.add(SUBTREE[e.kind]);
  }
  return lines;
}

// The spec data of a workload (data.warden.spec): what the core Rego, the proxy plugin and reviews read.
function compileSpec(workload: WorkloadManifest, ops: HttpOperation[], mcp: McpEntry[]): CompiledSpec {
  const entries = (kind: McpEntry['kind']): Record<string, CompiledEntry> =>
    Object.fromEntries(mcp.filter((e) => e.kind === kind).map((e) => [e.name, { authz: e.authz ?? {}, mask: maskOf(e.authz) }]));
  return {
    workload: { name: workload.name, namespace: workload.namespace, mode: workload.mode },
    http: { routes: routeData(ops), operations: Object.fromEntries(ops.map((o) => [o.id, { method: o.method, template: o.template, authz: o.authz ?? {}, mask: maskOf(o.authz, o.segments) }])) },
    mcp: {
      endpoint: workload.mcp?.endpoint ?? null,
      transport_paths: [workload.mcp?.endpoint, workload.mcp?.sse?.stream, workload.mcp?.sse?.messages].filter((p): p is string => typeof p === 'string'),
      drift: workload.mcp?.drift ?? 'log',
      ...(workload.mcp?.oauth ? { oauth: workload.mcp.oauth } : {}),
      tools: Object.fromEntries(
        mcp
          .filter((e) => e.kind === 'tool')
          .map((t) => [
            t.name,
            {
              annotations: t.annotations,
              destructive: t.destructive,
              read_only: t.readOnly,
              mask: maskOf(t.authz),
              authz: t.authz ?? {},
              description: t.description ?? '',
              input_schema: (t.inputSchema ?? {}) as Record<string, unknown>,
            },
          ]),
      ),
      resources: entries('resource'),
      prompts: entries('prompt'),
    },
  };
}

/** Generate the Rego module and spec data for a workload. */
export function generate(workload: WorkloadManifest, sources: string[], ops: HttpOperation[], mcp: McpEntry[]): Generated {
  const present = new Set<Subtree>();
  const lines: string[] = [
    `# Code generated by warden from ${sources.length ? sources.join(', ') : 'no spec files'}. DO NOT EDIT.`,
    `# Workload ${workload.namespace}/${workload.name}. Each rule below grants one annotated operation or MCP entry`,
    '# to the callers its x-warden-authz names; everything not granted here or by the workload Rego is denied.',
    '# Rules are keyed by what they grant (operations[<operationId>], tools[<name>], resources[<uri>],',
    '# prompts[<name>]); a call is decided by the grants of the one entry it addresses (see the end of the file).',
    'package warden.generated',
    '',
    'import data.warden.core',
    'import rego.v1',
    '',
    ...operationRules(ops, present),
    ...mcpRules(mcp, present),
  ];
  lines.push(...callGrants(present));
  // A workload with no annotated grants (Rego only, no spec) uses no core rule, and `opa check --strict`
  // refuses an unused import.
  const code = lines.join('\n').split('\n').filter((l) => !l.trimStart().startsWith('#') && !l.startsWith('import '));
  if (!code.some((l) => /\bcore\./.test(l))) lines.splice(lines.indexOf('import data.warden.core'), 1);
  return { rego: lines.join('\n').replace(/\n+$/, '\n'), spec: compileSpec(workload, ops, mcp) };
}
