// Assembling a webhook from its parts: trust (verification key), the admission bundle (from the engine,
// a file or a URL; re-read when it changes), the workload directory (engine or bundles folder), config
// and sink.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { BundleError } from '../runtime/archive.js';
import { sameRevisionEtag, type EngineConnection } from '../runtime/engine-connection.js';
import { parseOciReference, pullBundle, RegistryClient } from '../runtime/oci-registry.js';
import type { TrustPolicy } from '../runtime/signature.js';
import { loadAdmissionBundle, type AdmissionPolicies } from './bundle.js';
import type { AdmissionConfig } from './config.js';
import { BundleDirectory, engineSource, folderSource, type WorkloadDirectory } from './coverage.js';
import type { AdmissionDeps, DecisionSink } from './decide.js';
import type { NamespaceDirectory } from './namespaces.js';
import type { InventoryGatekeeper } from './inventory.js';

// One definition of "trust this PEM key" for every part (runtime/signature.ts).
export { trustFromPem } from '../runtime/signature.js';

/** Where the webhook gets its inputs. */
export interface WebhookSources {
  /**
   * The engine (GET /bundles/admission over the webhook's connection, If-None-Match: a reload downloads
   * only a changed bundle), or a path or http(s) URL of admission.tar.gz, or an OCI artifact
   * (oci://registry/repo/admission:tag, credentials from $DOCKER_CONFIG/config.json; only a new digest is downloaded).
   */
  admissionBundle: { engine: EngineConnection } | string;
  /** The engine (GET /bundles, GET /bundles/<name> over the webhook's connection) or a bundles folder. */
  workloads: { engine: EngineConnection } | { folder: string };
  trust: TrustPolicy;
}

/** A webhook's live state: deps for `admit`, and `reload()` to pick up a new admission bundle. */
export interface Webhook {
  deps: AdmissionDeps;
  reload(): Promise<{ changed: boolean; error?: string }>;
}

// Where the admission bundle comes from, for messages.
function describeAdmissionSource(where: WebhookSources['admissionBundle']): string {
  return typeof where === 'string' ? where : `${where.engine.base.href.replace(/\/$/, '')}/bundles/admission`;
}

// The admission bundle's bytes, or undefined when the one in force (`etag`, `revision`) is still current;
// `kept` is the ETag of another engine replica's build of the revision in force.
async function readSource(where: WebhookSources['admissionBundle'], etag: string | undefined, revision: string | undefined): Promise<{ bytes: Uint8Array; etag?: string } | { kept: string } | undefined> {
  if (typeof where !== 'string') {
    const r = await where.engine.request('bundles/admission', { headers: etag ? { 'if-none-match': etag } : {}, signal: AbortSignal.timeout(5_000) });
    if (r.status === 304) return undefined;
    if (r.status !== 200) throw new BundleError(`GET /bundles/admission answered ${r.status}`);
    const kept = sameRevisionEtag(r, revision);
    if (kept) return { kept };
    const tag = r.headers.etag;
    return { bytes: new Uint8Array(r.body), ...(typeof tag === 'string' ? { etag: tag } : {}) };
  }
  if (/^oci(\+http)?:\/\//.test(where)) {
    const ref = parseOciReference(where);
    const got = await pullBundle(RegistryClient.for(ref), ref, etag);
    return got ? { bytes: got.bytes, etag: got.digest } : undefined;
  }
  return { bytes: await readFileOrUrl(where) };
}

async function readFileOrUrl(where: string): Promise<Uint8Array> {
  if (/^https?:\/\//.test(where)) {
    const res = await fetch(where, { signal: AbortSignal.timeout(5_000) });
    if (!res.ok) throw new BundleError(`GET ${where} answered ${res.status}`);
    return new Uint8Array(await res.arrayBuffer());
  }
  return readFile(where);
}

/** Build the webhook; the first bundle load failing leaves it up but refusing (fail closed). */
export async function createWebhook(opts: { config: AdmissionConfig; sources: WebhookSources; sink: DecisionSink; directory?: WorkloadDirectory; namespaces?: NamespaceDirectory; inventory?: InventoryGatekeeper; instance?: string }): Promise<Webhook> {
  let current: AdmissionPolicies | undefined;
  let lastHash = '';
  let lastEtag: string | undefined;
  const directory =
    opts.directory ??
    new BundleDirectory('engine' in opts.sources.workloads ? engineSource(opts.sources.workloads.engine) : folderSource(opts.sources.workloads.folder), opts.sources.trust, opts.config.coverage.cacheTtlMs);
  const reload = async (): Promise<{ changed: boolean; error?: string }> => {
    try {
      const got = await readSource(opts.sources.admissionBundle, current ? lastEtag : undefined, current?.revision);
      if (!got) return { changed: false };
      if ('kept' in got) {
        lastEtag = got.kept;
        return { changed: false };
      }
      const tag = createHash('sha256').update(got.bytes).digest('hex');
      if (current && tag === lastHash) return { changed: false };
      current = await loadAdmissionBundle(got.bytes, opts.sources.trust, current, opts.config.evaluation);
      lastHash = tag;
      lastEtag = got.etag;
      return { changed: true };
    } catch (err) {
      // Keep the last good bundle; with none, every review of a covered kind is refused.
      return { changed: false, error: `admission bundle ${describeAdmissionSource(opts.sources.admissionBundle)}: ${(err as Error).message}` };
    }
  };
  await reload();
  return {
    deps: { config: opts.config, policies: () => current, directory, sink: opts.sink, ...(opts.namespaces ? { namespaces: opts.namespaces } : {}), ...(opts.inventory ? { inventory: opts.inventory } : {}), ...(opts.instance ? { instance: opts.instance } : {}) },
    reload,
  };
}
