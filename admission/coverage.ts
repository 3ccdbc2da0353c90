// Coverage: is a pod inside the zero-trust regime? It must carry the Warden proxy plugin, and its
// service account must be a workload of the policy repository with a signed bundle at the current
// revision. The bundle directory answers the second question from the engine (GET /bundles and the
// bundles themselves, signatures verified) or from a local bundles folder, cached for a short TTL.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openBundle } from '../runtime/bundle.js';
import type { EngineConnection } from '../runtime/engine-connection.js';
import type { TrustPolicy } from '../runtime/signature.js';
import type { PodTemplate } from './pod-template.js';

/** Name of the proxy plugin container, and the annotation that asks for it to be injected. */
export const PROXY_CONTAINER = 'warden-proxy';
export const INJECT_ANNOTATION = 'warden.dev/inject';

/** Where bundles come from: the engine's bundle server, or a folder written by `warden build`. */
export interface BundleSource {
  /** Bundle name → current revision. Throws when the source cannot be reached. */
  index(): Promise<Record<string, { revision: string }>>;
  fetch(name: string): Promise<Uint8Array>;
  describe: string;
}

/**
 * The engine's bundle server (`warden serve`): GET /bundles, GET /bundles/<name>, over the webhook's
 * connection to the engine (its client certificate, the engine's CA).
 */
export function engineSource(conn: EngineConnection, opts: { timeoutMs?: number } = {}): BundleSource {
  const get = async (path: string): Promise<Buffer> => {
    const r = await conn.request(path, { signal: AbortSignal.timeout(opts.timeoutMs ?? 2_000) });
    if (r.status !== 200) throw new Error(`GET ${path} answered ${r.status}`);
    return r.body;
  };
  return {
    describe: `engine ${conn.base.href}`,
    index: async () => (JSON.parse((await get('bundles')).toString('utf8')) as { bundles?: Record<string, { revision: string }> }).bundles ?? {},
    fetch: async (name) => new Uint8Array(await get(`bundles/${encodeURIComponent(name)}`)),
  };
}

/** A bundles folder (index.json + <name>.tar.gz), as `warden build` writes it. */
export function folderSource(dir: string): BundleSource {
  return {
    describe: `folder ${dir}`,
    index: async () => ((JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { bundles?: Record<string, { revision: string }> }).bundles ?? {}),
    fetch: async (name) => readFile(join(dir, `${name}.tar.gz`)),
  };
}

/** Answer to "which workload is service account X in namespace Y?". */
export type WorkloadLookup =
  | { status: 'covered'; workload: string; revision: string }
  | { status: 'unknown' }
  | { status: 'unreachable'; error: string };

/** The question the webhook asks; implementations cache. */
export interface WorkloadDirectory {
  lookup(namespace: string, serviceAccount: string): Promise<WorkloadLookup>;
}

interface Known {
  workload: string;
  revision: string;
  principal: string;
}

/**
 * Directory over a BundleSource: the index is re-read after `ttlMs`; a bundle is downloaded and its
 * signature verified only when its revision changed. A bundle that fails verification covers nobody.
 */
export class BundleDirectory implements WorkloadDirectory {
  private known = new Map<string, Known>();
  private fetchedAt = -Infinity;
  private refreshing: Promise<void> | undefined;
  private lastError: string | undefined;

  constructor(
    private readonly source: BundleSource,
    private readonly trust: TrustPolicy,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  private async refresh(): Promise<void> {
    try {
      const index = await this.source.index();
      const next = new Map<string, Known>();
      for (const [name, { revision }] of Object.entries(index)) {
        if (name === 'admission') continue;
        const prev = this.known.get(name);
        if (prev && prev.revision === revision) {
          next.set(name, prev);
          continue;
        }
        try {
          const bundle = await openBundle(await this.source.fetch(name), this.trust);
          const principal = bundle.manifest.metadata?.principal;
          if (bundle.revision === revision && typeof principal === 'string') next.set(name, { workload: name, revision, principal });
        } catch {
          // Unsigned, tampered or unreadable: it covers no one (and the proxy would refuse it too).
        }
      }
      this.known = next;
      this.fetchedAt = this.now();
      this.lastError = undefined;
    } catch (err) {
      this.lastError = `${this.source.describe} could not be read: ${(err as Error).message}`;
    }
  }

  async lookup(namespace: string, serviceAccount: string): Promise<WorkloadLookup> {
    if (this.now() - this.fetchedAt >= this.ttlMs) {
      this.refreshing ??= this.refresh().finally(() => (this.refreshing = undefined));
      await this.refreshing;
    }
    if (this.now() - this.fetchedAt >= this.ttlMs && this.lastError) return { status: 'unreachable', error: this.lastError };
    const suffix = `/ns/${namespace}/sa/${serviceAccount}`;
    for (const k of this.known.values()) if (k.principal.endsWith(suffix)) return { status: 'covered', workload: k.workload, revision: k.revision };
    return { status: 'unknown' };
  }
}

/** One coverage finding, for the denial message. */
export interface CoverageFinding {
  rule: 'proxy-plugin' | 'workload-bundle' | 'engine-unreachable';
  msg: string;
  field?: string;
}

/** Does the pod carry the proxy plugin, as a container or by asking for injection? */
export function hasProxyPlugin(pod: PodTemplate): boolean {
  const containers = [...(pod.spec.containers ?? []), ...((pod.spec.initContainers as Array<{ name?: string }> | undefined) ?? [])];
  return containers.some((c) => c.name === PROXY_CONTAINER) || pod.metadata.annotations?.[INJECT_ANNOTATION] === 'true';
}

/** The service account the pod runs as (Kubernetes' default is `default`). */
export function serviceAccountOf(pod: PodTemplate): string {
  return pod.spec.serviceAccountName || pod.spec.serviceAccount || 'default';
}

/** Check coverage; returns findings (empty = covered) and the workload when known. */
export async function checkCoverage(
  pod: PodTemplate,
  namespace: string,
  directory: WorkloadDirectory,
  whenUnreachable: 'deny' | 'allow',
): Promise<{ findings: CoverageFinding[]; workload?: string; revision?: string; note?: string }> {
  const findings: CoverageFinding[] = [];
  if (!hasProxyPlugin(pod)) {
    findings.push({
      rule: 'proxy-plugin',
      field: `${pod.path.replace(/\.spec$/, '')}.metadata.annotations`,
      msg: `the pod does not carry the Warden proxy plugin: add the annotation ${INJECT_ANNOTATION}: "true" to the pod template (or a container named ${PROXY_CONTAINER})`,
    });
  }
  const sa = serviceAccountOf(pod);
  const found = await directory.lookup(namespace, sa);
  if (found.status === 'covered') return { findings, workload: found.workload, revision: found.revision };
  if (found.status === 'unknown') {
    findings.push({
      rule: 'workload-bundle',
      field: `${pod.path}.serviceAccountName`,
      msg: `service account ${sa} in namespace ${namespace} is not a workload of the policy repository (no signed bundle at the current revision): add policies/workloads/<name>/workload.yaml with namespace: ${namespace} and serviceAccount: ${sa}, build and publish it, or run the pod as a service account that has one`,
    });
    return { findings };
  }
  if (whenUnreachable === 'allow') return { findings, note: `coverage not checked: ${found.error} (allowed by configuration)` };
  findings.push({ rule: 'engine-unreachable', msg: `cannot tell whether service account ${sa} has a signed policy bundle: ${found.error}; retry when the Warden engine is reachable` });
  return { findings };
}
