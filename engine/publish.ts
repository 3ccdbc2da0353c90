// Publishing what `warden build` wrote to an OCI registry, and mirroring it back into a bundles folder.
// Layout under one repository prefix (e.g. oci://registry.example.com/platform/bundles:main):
//   …/bundles/<workload>:main   one artifact per bundle, the layout stock OPA pulls (runtime/oci-registry.ts)
//   …/bundles/admission:main    the admission bundle, the same way
//   …/bundles:main              the index: index.json (and, for people, verification-key.pem) as layers,
//                               so an engine fronting the registry knows every bundle without building.
//                               The engine trusts its own --verification-key, never the registry's copy.
// Bundles go up before the index, so the index never names a bundle the registry does not hold yet.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { BundleIndex } from './bundle-server.js';
import { generationOf, openBundle, refuseOlder } from '../runtime/bundle.js';
import type { TrustPolicy } from '../runtime/signature.js';
import { formatOciReference, MEDIA, pullBundle, pushBundle, RegistryClient, RegistryError, type Descriptor, type OciReference } from '../runtime/oci-registry.js';
import { UserError } from '../formats/user-error.js';

/** Media types of the index artifact's layers (Warden's own; OPA never reads them). */
export const INDEX_MEDIA = { index: 'application/vnd.warden.bundle-index.v1+json', key: 'application/vnd.warden.verification-key.v1+pem' } as const;

/** One artifact pushed. */
export interface Published {
  name: string;
  revision: string;
  generation: number;
  reference: string;
  digest: string;
}

const sha256hex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

function readIndex(dir: string): BundleIndex {
  const path = join(dir, 'index.json');
  if (!existsSync(path)) throw new UserError(`${path} does not exist; run warden build first (it writes the bundles and their index)`);
  return JSON.parse(readFileSync(path, 'utf8')) as BundleIndex;
}

/** The bundles of `dir` by name (workloads and admission), each checked against the sha256 index.json records. */
function bundlesOf(dir: string, only?: string): Array<{ name: string; bytes: Buffer }> {
  const index = readIndex(dir);
  const entries = [...Object.entries(index.bundles ?? {}), ...(index.admission ? [['admission', index.admission] as const] : [])];
  const chosen = only ? entries.filter(([n]) => n === only) : entries;
  if (only && chosen.length === 0) throw new UserError(`${join(dir, 'index.json')} has no bundle named ${only} (have: ${entries.map(([n]) => n).join(', ')})`);
  return chosen.map(([name, entry]) => {
    const bytes = readFileSync(join(dir, `${name}.tar.gz`));
    if (sha256hex(bytes) !== entry.sha256) throw new UserError(`${join(dir, `${name}.tar.gz`)} does not match the sha256 ${join(dir, 'index.json')} records for it (changed after the build?); run warden build again`);
    return { name, bytes };
  });
}

const child = (ref: OciReference, name: string): OciReference => ({ ...ref, repository: `${ref.repository}/${name}` });

/**
 * Push the bundles folder `dir` under `ref`: with `workload`, that one bundle to exactly `ref`;
 * otherwise every bundle to `<ref repository>/<name>:<tag>`, then the index to `ref` itself.
 */
export async function publishBundles(dir: string, ref: OciReference, client: RegistryClient, workload?: string): Promise<Published[]> {
  const out: Published[] = [];
  for (const { name, bytes } of bundlesOf(dir, workload)) {
    const manifest = (await openBundle(bytes, 'unsigned-ok')).manifest; // the signature is the pods' to check
    const generation = Number(manifest.metadata?.generation ?? 0);
    const target = workload ? ref : child(ref, name);
    const { digest } = await pushBundle(client, target, bytes, {
      'org.opencontainers.image.revision': manifest.revision,
      'dev.warden.bundle': name,
      'dev.warden.generation': String(generation),
    });
    out.push({ name, revision: manifest.revision, generation, reference: formatOciReference(target), digest });
  }
  if (!workload) {
    const index = await client.pushBlob(ref.repository, readFileSync(join(dir, 'index.json')), INDEX_MEDIA.index);
    const key = await client.pushBlob(ref.repository, readFileSync(join(dir, 'verification-key.pem')), INDEX_MEDIA.key);
    const config = await client.pushBlob(ref.repository, Buffer.from('{}'), MEDIA.config);
    const digest = await client.putManifest(ref.repository, ref.reference, { schemaVersion: 2, mediaType: MEDIA.manifest, artifactType: INDEX_MEDIA.index, config, layers: [index, key] });
    out.push({ name: '(index)', revision: '', generation: 0, reference: formatOciReference(ref), digest });
  }
  return out;
}

function atomicWrite(path: string, data: Uint8Array | string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

/**
 * Mirror the index artifact `ref` (and every bundle it names) into `dir`, for the engine's bundle server.
 * Only bundles whose sha256 changed are downloaded. The registry is not trusted: each bundle must match
 * the index, carry a signature `trust` verifies (the engine derives who may write the audit log from
 * the bundles it serves), and not be of a lower generation than the one it replaces; index.json is
 * written last, and nothing is written unless every bundle passed. Returns the index digest now
 * mirrored (unchanged: `since`).
 */
export async function mirrorBundles(ref: OciReference, client: RegistryClient, dir: string, trust: TrustPolicy, since?: string): Promise<string> {
  if (since && (await client.resolve(ref.repository, ref.reference)) === since) return since;
  const m = await client.manifest(ref.repository, ref.reference);
  const layers = (JSON.parse(m.bytes.toString('utf8')) as { layers?: Descriptor[] }).layers ?? [];
  const layer = (type: string) => {
    const l = layers.find((x) => x.mediaType === type);
    if (!l) throw new RegistryError(`${formatOciReference(ref)} is not a Warden bundle index (no ${type} layer); push one with warden push`);
    return client.blob(ref.repository, l, 16 * 1024 * 1024);
  };
  const indexBytes = await layer(INDEX_MEDIA.index);
  const index = JSON.parse(indexBytes.toString('utf8')) as BundleIndex;
  const entries = [...Object.entries(index.bundles ?? {}), ...(index.admission ? [['admission', index.admission] as const] : [])];
  const staged: Array<{ path: string; bytes: Buffer }> = [];
  for (const [name, entry] of entries) {
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name)) throw new RegistryError(`the index at ${formatOciReference(ref)} names a bundle ${JSON.stringify(name)}, which is not a workload name`);
    const path = join(dir, `${name}.tar.gz`);
    const current = existsSync(path) ? readFileSync(path) : undefined;
    if (current && sha256hex(current) === entry.sha256) continue;
    const where = formatOciReference(child(ref, name));
    const got = (await pullBundle(client, child(ref, name)))!;
    if (sha256hex(got.bytes) !== entry.sha256) throw new RegistryError(`${where} does not hold the bundle the index names (sha256 ${entry.sha256}); refusing to serve it`);
    const next = await openBundle(got.bytes, trust).catch((err: Error) => {
      throw new RegistryError(`${where}: ${err.message}; refusing to serve it`);
    });
    if (current) {
      const inForce = await openBundle(current, 'unsigned-ok');
      refuseOlder({ revision: next.revision, generation: generationOf(next) }, { revision: inForce.revision, generation: generationOf(inForce) });
    }
    staged.push({ path, bytes: got.bytes });
  }
  for (const s of staged) atomicWrite(s.path, s.bytes);
  atomicWrite(join(dir, 'index.json'), indexBytes);
  return m.digest;
}

/** A running mirror; `stop()` ends it after the pull in progress. */
export interface RegistryMirror {
  /** Settles after the first pull (mirrored or failed: a failure is logged, the folder stays as it was). */
  first: Promise<void>;
  stop(): Promise<void>;
}

/** Keep `dir` a mirror of the index artifact `ref`: pull at once, then every `intervalMs`. */
export function followRegistry(ref: OciReference, client: RegistryClient, dir: string, trust: TrustPolicy, intervalMs: number, log: { info(o: object, m: string): void; warn(o: object, m: string): void }): RegistryMirror {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let wake: (() => void) | undefined;
  let since: string | undefined;
  let markFirst!: () => void;
  const first = new Promise<void>((r) => (markFirst = r));
  const origin = formatOciReference(ref);
  const loop = (async () => {
    while (!stopped) {
      try {
        const digest = await mirrorBundles(ref, client, dir, trust, since);
        if (digest !== since) log.info({ origin, digest }, 'bundles mirrored from the registry');
        since = digest;
      } catch (err) {
        log.warn({ origin, reason: (err as Error).message }, 'registry mirror failed; serving the bundles already here');
      }
      markFirst();
      if (!stopped) await new Promise<void>((r) => ((wake = r), (timer = setTimeout(r, intervalMs))));
    }
  })();
  return {
    first,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      wake?.();
      await loop;
    },
  };
}
