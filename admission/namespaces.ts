// Namespace labels for Constraints with a namespaceSelector, read from the Kubernetes API and cached
// briefly (namespace labels change rarely; a review must not wait on the API server every time).
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';

/** Labels of a namespace; undefined when they cannot be read (the constraint then applies: fail closed). */
export interface NamespaceDirectory {
  labels(namespace: string): Promise<Record<string, string> | undefined>;
}

/** NamespaceDirectory over the Kubernetes API (`get namespaces` permission), cached for `ttlMs`. */
export class KubeNamespaces implements NamespaceDirectory {
  private readonly core: CoreV1Api;
  private readonly cache = new Map<string, { at: number; labels: Record<string, string> }>();

  constructor(
    kc: KubeConfig,
    private readonly ttlMs = 30_000,
    private readonly now: () => number = Date.now,
  ) {
    this.core = kc.makeApiClient(CoreV1Api);
  }

  async labels(namespace: string): Promise<Record<string, string> | undefined> {
    const hit = this.cache.get(namespace);
    if (hit && this.now() - hit.at < this.ttlMs) return hit.labels;
    try {
      const ns = await this.core.readNamespace({ name: namespace });
      const labels = ns.metadata?.labels ?? {};
      this.cache.set(namespace, { at: this.now(), labels });
      return labels;
    } catch {
      return undefined;
    }
  }
}
