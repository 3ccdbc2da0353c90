// Gatekeeper's replicated inventory at admission time: the kinds listed in the webhook configuration
// (`gatekeeper.sync`, like Gatekeeper's Config syncOnly) are listed from the API server, cached for
// a short TTL, and handed to the templates as data.inventory. Template modules are re-instantiated
// with the new data only when the snapshot or the admission bundle changed.
import { createHash } from 'node:crypto';
import { KubernetesObjectApi, type KubeConfig } from '@kubernetes/client-node';
import type { AdmissionPolicies } from './bundle.js';
import { loadTemplatePolicy } from './bundle.js';
import { GatekeeperSet, inventoryOf } from './gatekeeper.js';

/** A kind to replicate, e.g. {apiVersion: "v1", kind: "Service"}. */
export interface SyncedKind {
  apiVersion: string;
  kind: string;
}

/** Objects to expose as data.inventory; `version` changes whenever they do. */
export interface InventorySource {
  snapshot(): Promise<{ version: string; objects: Array<Record<string, unknown>> }>;
}

/** InventorySource over the Kubernetes API (`list` on each synced kind), cached for `ttlMs`. */
export class KubeInventory implements InventorySource {
  private readonly api: KubernetesObjectApi;
  private last: { at: number; version: string; objects: Array<Record<string, unknown>> } | undefined;

  constructor(
    kc: KubeConfig,
    private readonly kinds: SyncedKind[],
    private readonly ttlMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {
    this.api = KubernetesObjectApi.makeApiClient(kc);
  }

  async snapshot(): Promise<{ version: string; objects: Array<Record<string, unknown>> }> {
    if (this.last && this.now() - this.last.at < this.ttlMs) return this.last;
    const objects: Array<Record<string, unknown>> = [];
    for (const k of this.kinds) {
      const list = await this.api.list(k.apiVersion, k.kind);
      for (const item of list.items) objects.push({ ...(item as unknown as Record<string, unknown>), apiVersion: k.apiVersion, kind: k.kind });
    }
    const h = createHash('sha256');
    for (const o of objects) {
      const m = (o.metadata ?? {}) as { namespace?: string; name?: string; resourceVersion?: string };
      h.update(`${String(o.kind)}/${m.namespace ?? ''}/${m.name ?? ''}@${m.resourceVersion ?? ''}\n`);
    }
    this.last = { at: this.now(), version: h.digest('hex'), objects };
    return this.last;
  }
}

/** Keeps a GatekeeperSet whose templates see the current inventory. */
export class InventoryGatekeeper {
  private cached: { key: string; set: GatekeeperSet } | undefined;

  constructor(private readonly source: InventorySource) {}

  /** The set for these policies and the current inventory; on a listing failure, the last one (or none). */
  async setFor(policies: AdmissionPolicies): Promise<GatekeeperSet> {
    let snap: { version: string; objects: Array<Record<string, unknown>> };
    try {
      snap = await this.source.snapshot();
    } catch {
      return this.cached?.set ?? policies.gatekeeper;
    }
    const key = `${policies.revision}\0${snap.version}`;
    if (this.cached?.key === key) return this.cached.set;
    const data = { inventory: inventoryOf(snap.objects) };
    const modules = new Map<string, { policy: Awaited<ReturnType<typeof loadTemplatePolicy>>; entrypoint: string }>();
    for (const t of policies.templates) modules.set(t.kind, { policy: await loadTemplatePolicy(t.wasm, `${policies.revision}:${t.name}`, data, policies.limits), entrypoint: t.entrypoint });
    const set = new GatekeeperSet(modules, policies.gatekeeper.constraints);
    this.cached = { key, set };
    return set;
  }
}
