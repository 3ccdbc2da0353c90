// "What would have allowed it": the grants of the operation, tool, resource or prompt a denied call
// addressed, and for each one which of its conditions failed for this caller. The conditions are the
// very Rego lines the compiler generates for the grant (grantConditions), evaluated one by one by OPA
// over the bundle; this module only chooses them and words the failures for a person.
import type { Grant } from '../../formats/authz.js';
import { grantConditions } from '../compiler/generate.js';
import type { CompiledSpec } from '../../formats/compiled-spec.js';

/** What the call addressed, with the grants its spec entry lists. */
export interface GrantTarget {
  kind: 'operation' | 'tool' | 'resource' | 'prompt';
  name: string;
  public: boolean;
  destructive: boolean;
  grants: Grant[];
}

/** One condition of a grant and whether it held. */
export interface ConditionVerdict {
  rego: string;
  held: boolean;
  /** For a failed condition: what it needs, and what the caller had. */
  says?: string;
}

/** One grant, judged against the caller. */
export interface GrantVerdict {
  /** Index in x-warden-authz.allow. */
  index: number;
  grant: Grant;
  /** The generated rule (or the compiler's note that the grant grants nothing), bundle path:line. */
  where?: string;
  /** Every condition held and the compiler wrote a rule for the grant. */
  covers: boolean;
  conditions: ConditionVerdict[];
  /** Why the grant grants nothing whatever the caller (a destructive tool's grant without destructive: true). */
  void?: string;
}

/** The grants of the addressed entry, judged. */
export interface WhatWouldAllow {
  /** e.g. `tool drop_table`, `operation refundOrder`; undefined when the call addressed nothing in the spec. */
  target?: string;
  public: boolean;
  grants: GrantVerdict[];
  /** One sentence for the top of the answer. */
  summary: string;
}

interface Source {
  principal?: string;
  authn?: string;
  claims?: Record<string, unknown>;
}

const authnWords = (authn: string | undefined) => (authn === 'jwt' ? 'a JWT' : authn === 'mtls' ? 'a workload certificate (mTLS)' : 'nothing (anonymous)');

function tokenScopes(claims: Record<string, unknown> | undefined): string[] {
  const out: string[] = [];
  if (typeof claims?.scope === 'string') out.push(...claims.scope.split(' ').filter(Boolean));
  if (Array.isArray(claims?.scp)) out.push(...claims.scp.filter((s): s is string => typeof s === 'string'));
  return out;
}

/** The entry a call addressed, from the bundle's spec data; undefined when it addressed none. */
export function grantTarget(spec: CompiledSpec, input: Record<string, unknown>, operation: string | undefined): GrantTarget | undefined {
  const mcp = input.mcp as { method?: string; tool?: string; name?: string; uri?: string } | undefined;
  // Own entries only: a call naming `constructor` addresses nothing.
  const from = (kind: GrantTarget['kind'], name: string, entries: Record<string, { authz: { allow?: Grant[]; public?: boolean }; destructive?: boolean }>): GrantTarget | undefined => {
    const entry = Object.hasOwn(entries, name) ? entries[name] : undefined;
    return entry ? { kind, name, public: entry.authz.public === true, destructive: entry.destructive === true, grants: entry.authz.allow ?? [] } : undefined;
  };
  if (mcp) {
    if (mcp.method === 'tools/call' && typeof mcp.tool === 'string') return from('tool', mcp.tool, spec.mcp.tools);
    if (mcp.method === 'prompts/get' && typeof mcp.name === 'string') return from('prompt', mcp.name, spec.mcp.prompts);
    if (mcp.method === 'resources/read' && typeof mcp.uri === 'string') return from('resource', mcp.uri, spec.mcp.resources);
    return undefined;
  }
  return operation ? from('operation', operation, spec.http.operations) : undefined;
}

/** The Rego expressions to evaluate: `g<i>c<j>` → condition j of grant i. */
export function conditionChecks(t: GrantTarget): Record<string, string> {
  const out: Record<string, string> = {};
  t.grants.forEach((g, i) => grantConditions(g, 'data.warden.core').forEach((c, j) => (out[`g${i}c${j}`] = c)));
  return out;
}

// Words for a failed condition: what the grant needs and what this caller brought.
function says(rego: string, g: Grant, s: Source): string {
  const who = s.principal ?? 'anonymous';
  const jwt = s.authn === 'jwt';
  if (rego.startsWith('input.source.principal ==') || rego.includes('.principal_matches(')) {
    const p = g.principal!;
    const exact = !p.includes('*');
    if (jwt) return `grants the workload identity ${exact ? p : `matching ${p}`} only; the caller authenticated with a JWT (subject ${who})`;
    return `needs the principal ${exact ? p : `matching ${p}`}; the caller is ${who}${s.authn === 'none' ? ' (anonymous)' : ''}`;
  }
  if (rego.endsWith('.workload_caller')) return `grants workload identities only (mTLS or a trusted mesh header); the caller authenticated with ${authnWords(s.authn)}`;
  if (rego.endsWith('.authenticated')) return `needs an authenticated caller; the caller presented ${authnWords(s.authn)}`;
  if (rego.includes('.caller_namespace ==')) {
    if (jwt) return `grants workload identities of namespace ${g.namespace} only; the caller authenticated with a JWT (subject ${who})`;
    return `needs a workload in namespace ${g.namespace}; the caller is ${who}`;
  }
  if (rego.includes('.has_scopes(')) {
    const need = g.scopes ?? [];
    if (!jwt) return `needs a JWT with scope ${need.map((x) => `\`${x}\``).join(' ')}; the caller authenticated with ${authnWords(s.authn)}`;
    const have = tokenScopes(s.claims);
    const missing = need.filter((x) => !have.includes(x));
    return `needs scope ${(missing.length ? missing : need).map((x) => `\`${x}\``).join(' ')}; the token has ${have.length ? have.map((x) => `\`${x}\``).join(' ') : 'no scope'}`;
  }
  const claim = Object.keys(g.claims ?? {}).find((c) => rego.includes(`.claim_matches(${JSON.stringify(c)},`));
  if (claim !== undefined) {
    const accepted = (g.claims![claim] ?? []).map((v) => JSON.stringify(v)).join(', ');
    if (!jwt) return `needs a JWT whose claim ${claim} is one of ${accepted}; the caller authenticated with ${authnWords(s.authn)}`;
    const has = s.claims?.[claim];
    return `needs claim ${claim} to be one of ${accepted}; the token has ${has === undefined ? `no ${claim} claim` : `${claim}=${JSON.stringify(has)}`}`;
  }
  return `needs ${rego}`;
}

// Where the compiler put grant i of the target in generated.rego: the rule after its comment, or the comment itself.
function whereInGenerated(generated: string | undefined, t: GrantTarget, i: number): string | undefined {
  if (!generated) return undefined;
  const lines = generated.split('\n');
  const header = t.kind === 'operation' ? `# ${t.name}: ` : `# ${t.kind} ${t.name}`;
  let inSection = false;
  for (let n = 0; n < lines.length; n++) {
    const l = lines[n]!;
    if (l.startsWith('# ') && !l.startsWith('# x-warden-authz') && !l.startsWith('# public')) inSection = l.startsWith(header) && (t.kind === 'operation' || /^[ ([]/.test(l.slice(header.length)));
    if (inSection && l.startsWith(`# x-warden-authz.allow[${i}]`)) return `warden/generated.rego:${l.includes('grants nothing') ? n + 1 : n + 2}`;
  }
  return undefined;
}

/** Judge each grant of the target from OPA's condition values. */
export function judgeGrants(t: GrantTarget | undefined, checks: Record<string, boolean>, source: Source, generated: string | undefined, call: string, denials: string[]): WhatWouldAllow {
  if (!t) return { public: false, grants: [], summary: `${call} addresses no operation, tool, resource or prompt of the spec, so no grant can allow it: add it to the spec with x-warden-authz, or allow it in the workload's Rego` };
  const target = `${t.kind} ${t.name}`;
  const grants = t.grants.map((g, i): GrantVerdict => {
    const conditions = grantConditions(g, 'data.warden.core').map((rego, j) => {
      const held = checks[`g${i}c${j}`] === true;
      return { rego, held, ...(held ? {} : { says: says(rego, g, source) }) };
    });
    const voided = t.destructive && g.destructive !== true ? `the ${t.kind} is destructive and this grant lacks "destructive": true, so it grants nothing (the compiler wrote no rule for it)` : undefined;
    const where = whereInGenerated(generated, t, i);
    return { index: i, grant: g, ...(where ? { where } : {}), covers: !voided && conditions.every((c) => c.held), conditions, ...(voided ? { void: voided } : {}) };
  });
  const covering = grants.filter((g) => g.covers);
  let summary: string;
  if (t.public || covering.length) {
    const by = t.public ? `${target} is public` : `x-warden-authz.allow[${covering.map((g) => g.index).join('], [')}] covers the caller`;
    summary = denials.length ? `${by}, but the call was denied by: ${denials.join('; ')}` : by;
  } else if (!grants.length) summary = `${target} has no x-warden-authz grants: the spec grants it to nobody`;
  else {
    const closest = [...grants].sort((a, b) => Number(!!a.void) - Number(!!b.void) || a.conditions.filter((c) => !c.held).length - b.conditions.filter((c) => !c.held).length)[0]!;
    // The workload-identity condition goes with a principal or namespace one, whose words already say how the caller authenticated.
    const failed = closest.conditions.filter((c) => !c.held);
    const told = failed.length > 1 ? failed.filter((c) => !c.rego.endsWith('.workload_caller')) : failed;
    const fix = closest.void ? `x-warden-authz.allow[${closest.index}] with "destructive": true` : `x-warden-authz.allow[${closest.index}] (${told.map((c) => c.says).join('; ')})`;
    summary = `no grant of ${target} covers the caller; the closest is ${fix}`;
  }
  return { target, public: t.public, grants, summary };
}
