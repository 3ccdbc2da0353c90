// Constraint matching as Gatekeeper reads spec.match: kinds, namespaces (with prefix globs),
// excludedNamespaces, labelSelector (new or old object), namespaceSelector, scope, name.
import { describe, expect, it } from 'vitest';
import type { ConstraintMatch } from '../formats/gatekeeper.js';
import { constraintMatches, inventoryOf, reviewFromObject, selectorMatches, type GatekeeperReview } from './gatekeeper.js';

const pod = (namespace: string | undefined, labels: Record<string, string> = {}): GatekeeperReview =>
  reviewFromObject({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web-1', ...(namespace ? { namespace } : {}), labels } });
const matches = (m: ConstraintMatch, r: GatekeeperReview, ns?: Record<string, Record<string, string>>) => constraintMatches(m, r, ns ? (n) => ns[n] : undefined);

describe('Gatekeeper constraint matching', () => {
  it('matches kinds by API group and kind, with * wildcards', () => {
    expect(matches({ kinds: [{ apiGroups: [''], kinds: ['Pod'] }] }, pod('shop'))).toBe(true);
    expect(matches({ kinds: [{ apiGroups: ['apps'], kinds: ['Pod'] }] }, pod('shop'))).toBe(false);
    expect(matches({ kinds: [{ apiGroups: ['*'], kinds: ['*'] }] }, pod('shop'))).toBe(true);
    expect(matches({ kinds: [{ apiGroups: [''], kinds: ['Service'] }] }, pod('shop'))).toBe(false);
  });

  it('limits to namespaces and excludes namespaces, both with trailing * prefix globs', () => {
    expect(matches({ namespaces: ['shop'] }, pod('shop'))).toBe(true);
    expect(matches({ namespaces: ['sh*'] }, pod('shop'))).toBe(true);
    expect(matches({ namespaces: ['billing'] }, pod('shop'))).toBe(false);
    expect(matches({ excludedNamespaces: ['kube-*'] }, pod('kube-system'))).toBe(false);
    expect(matches({ excludedNamespaces: ['kube-*'] }, pod('shop'))).toBe(true);
  });

  it('does not apply namespace criteria to objects without a namespace, but a Namespace is matched by its name', () => {
    expect(matches({ namespaces: ['shop'] }, pod(undefined))).toBe(true);
    const ns = reviewFromObject({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'kube-system' } });
    expect(matches({ excludedNamespaces: ['kube-system'] }, ns)).toBe(false);
  });

  it('matches labelSelector on the new object or, on UPDATE, the old one', () => {
    const sel = { labelSelector: { matchLabels: { tier: 'web' } } };
    expect(matches(sel, pod('shop', { tier: 'web' }))).toBe(true);
    expect(matches(sel, pod('shop', { tier: 'db' }))).toBe(false);
    const update = { ...pod('shop', { tier: 'db' }), operation: 'UPDATE', oldObject: { metadata: { labels: { tier: 'web' } } } };
    expect(matches(sel, update)).toBe(true);
  });

  it('evaluates matchExpressions operators like Kubernetes', () => {
    const labels = { env: 'prod', team: 'shop' };
    expect(selectorMatches({ matchExpressions: [{ key: 'env', operator: 'In', values: ['prod', 'staging'] }] }, labels)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'env', operator: 'NotIn', values: ['prod'] }] }, labels)).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: 'owner', operator: 'Exists' }] }, labels)).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: 'owner', operator: 'DoesNotExist' }] }, labels)).toBe(true);
  });

  it('matches namespaceSelector on the namespace labels, and applies the rule when they are unknown (fail closed)', () => {
    const m = { namespaceSelector: { matchLabels: { env: 'prod' } } };
    expect(matches(m, pod('shop'), { shop: { env: 'prod' } })).toBe(true);
    expect(matches(m, pod('shop'), { shop: { env: 'dev' } })).toBe(false);
    expect(matches(m, pod('shop'))).toBe(true);
  });

  it('honours scope and name', () => {
    expect(matches({ scope: 'Cluster' }, pod('shop'))).toBe(false);
    expect(matches({ scope: 'Namespaced' }, pod('shop'))).toBe(true);
    expect(matches({ name: 'web-*' }, pod('shop'))).toBe(true);
    expect(matches({ name: 'api' }, pod('shop'))).toBe(false);
  });

  it('lays out inventory by namespace or cluster, then apiVersion, kind and name', () => {
    const inv = inventoryOf([
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } },
      { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'orders', namespace: 'shop' } },
    ]);
    expect(Object.keys(inv.cluster['v1'] as object)).toEqual(['Namespace']);
    expect(((inv.namespace['shop'] as Record<string, Record<string, Record<string, unknown>>>)['apps/v1']!['Deployment']!['orders'] as { kind: string }).kind).toBe('Deployment');
  });
});
