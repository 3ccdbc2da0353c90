// The callers a policy diff replays: every principal the specs name, plus anonymous and unknown ones.
import type { Grant } from '../../formats/authz.js';
import type { CompiledSpec } from '../../formats/compiled-spec.js';
import type { Source } from '../../formats/input.js';

/** A named caller: `label` is what the permission matrix shows. */
export interface Caller {
  label: string;
  source: Source;
}

/** Grants found in a bundle's spec data (operations, tools, resources, prompts). */
export function grantsOf(spec: CompiledSpec): Grant[] {
  const out: Grant[] = [];
  for (const op of Object.values(spec.http.operations)) out.push(...(op.authz.allow ?? []));
  for (const group of [spec.mcp.tools, spec.mcp.resources, spec.mcp.prompts]) for (const e of Object.values(group)) out.push(...(e.authz.allow ?? []));
  return out;
}

const instantiate = (glob: string) => glob.replace(/\*\*/g, 'x/y').replace(/\*/g, 'x');

/** Callers for a set of grants and known workload principals, deduplicated by label. */
export function callersFor(grants: Grant[], workloadPrincipals: string[], trustDomain = 'cluster.local'): Caller[] {
  const byLabel = new Map<string, Caller>();
  const add = (c: Caller) => byLabel.has(c.label) || byLabel.set(c.label, c);
  const mtls = (principal: string) => add({ label: principal, source: { principal, authn: 'mtls', claims: {}, address: '10.0.0.10' } });
  for (const p of workloadPrincipals) mtls(p);
  for (const g of grants) {
    if (g.principal) mtls(instantiate(g.principal));
    if (g.namespace) mtls(`spiffe://${trustDomain}/ns/${g.namespace}/sa/some-workload`);
    if (g.scopes || g.claims) {
      const claims: Record<string, unknown> = {};
      const parts: string[] = [];
      if (g.scopes) {
        claims.scope = g.scopes.join(' ');
        parts.push(`scope=${g.scopes.join(' ')}`);
      }
      for (const [k, v] of Object.entries(g.claims ?? {})) {
        claims[k] = v[0];
        parts.push(`${k}=${String(v[0])}`);
      }
      const label = `jwt{${parts.join(', ')}}`;
      add({ label, source: { principal: label, authn: 'jwt', claims: { sub: label, ...claims }, address: '10.0.1.10' } });
    }
  }
  add({ label: 'anonymous', source: { principal: 'anonymous', authn: 'none', claims: {}, address: '203.0.113.10' } });
  mtls(`spiffe://${trustDomain}/ns/unknown/sa/unknown`);
  return [...byLabel.values()];
}
