// Assembling a webhook from its parts: trust (verification key), the admission bundle (file or URL,
// re-read when it changes), the workload directory (engine or bundles folder), config and sink.
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { BundleError } from '../runtime/archive.js';
import type { SigningAlgorithm, TrustPolicy } from '../runtime/signature.js';
import { loadAdmissionBundle, type AdmissionPolicies } from './bundle.js';
import type { AdmissionConfig } from './config.js';
import { BundleDirectory, engineSource, folderSource, type WorkloadDirectory } from './coverage.js';
import type { AdmissionDeps, DecisionSink } from './decide.js';
import type { NamespaceDirectory } from './namespaces.js';
import type { InventoryGatekeeper } from './inventory.js';

/** Trust a single PEM public key (the one `warden build` writes as verification-key.pem). */
export function trustFromPem(pem: string, scope?: string): TrustPolicy {
  const key: KeyObject = createPublicKey(pem);
  const curve = key.asymmetricKeyDetails?.namedCurve;
  const algorithm: SigningAlgorithm = key.asymmetricKeyType === 'rsa' ? 'RS256' : curve === 'secp384r1' ? 'ES384' : curve === 'secp521r1' ? 'ES512' : 'ES256';
  return { keys: [{ id: 'configured', algorithm, key }], keyId: 'configured', ...(scope ? { scope } : {}) };
}

/** Where the webhook gets its inputs. */
export interface WebhookSources {
  /** Path or http(s) URL of admission.tar.gz. */
  admissionBundle: string;
  /** Engine base URL (coverage over HTTP) or a bundles folder. */
  workloads: { engine: string } | { folder: string };
  trust: TrustPolicy;
}

/** A webhook's live state: deps for `admit`, and `reload()` to pick up a new admission bundle. */
export interface Webhook {
  deps: AdmissionDeps;
  reload(): Promise<{ changed: boolean; error?: string }>;
}

async function readSource(where: string): Promise<Uint8Array> {
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
  const directory =
    opts.directory ??
    new BundleDirectory('engine' in opts.sources.workloads ? engineSource(opts.sources.workloads.engine) : folderSource(opts.sources.workloads.folder), opts.sources.trust, opts.config.coverage.cacheTtlMs);
  const reload = async (): Promise<{ changed: boolean; error?: string }> => {
    try {
      const bytes = await readSource(opts.sources.admissionBundle);
      const tag = createHash('sha256').update(bytes).digest('hex');
      if (current && tag === lastHash) return { changed: false };
      current = await loadAdmissionBundle(bytes, opts.sources.trust);
      lastHash = tag;
      return { changed: true };
    } catch (err) {
      // Keep the last good bundle; with none, every review of a covered kind is refused.
      return { changed: false, error: `admission bundle ${opts.sources.admissionBundle}: ${(err as Error).message}` };
    }
  };
  await reload();
  return {
    deps: { config: opts.config, policies: () => current, directory, sink: opts.sink, ...(opts.namespaces ? { namespaces: opts.namespaces } : {}), ...(opts.inventory ? { inventory: opts.inventory } : {}), ...(opts.instance ? { instance: opts.instance } : {}) },
    reload,
  };
}
