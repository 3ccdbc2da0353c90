// A bundle as a pod sees it: archive bytes → verified files → manifest, data and WASM module.
import { bundleManifest, type BundleManifest } from '../formats/bundle-manifest.js';
import { compiledSpec, type CompiledSpec } from '../formats/compiled-spec.js';
import { SchemaError } from '../formats/schema.js';
import { BundleError, readArchive } from './archive.js';
import { InputSelection } from './input-selection.js';
import { verifyBundle, type SignaturePayload, type TrustPolicy } from './signature.js';

/** A bundle whose signature has been checked (or that was explicitly accepted unsigned). */
export interface VerifiedBundle {
  manifest: BundleManifest;
  revision: string;
  data: Record<string, unknown>;
  /** The compiled spec at data.warden.spec, validated; absent from bundles that carry none (admission). */
  spec?: CompiledSpec;
  /** The input the bundle's Rego reads (the manifest's inputPaths; the whole input when absent or malformed), worked out once at load. */
  inputs: InputSelection;
  wasm: Uint8Array;
  files: ReadonlyMap<string, Buffer>;
  signature?: SignaturePayload;
}

/** `trust: 'unsigned-ok'` is for local development only; pods always pass a TrustPolicy. */
export type BundleTrust = TrustPolicy | 'unsigned-ok';

function parseJsonFile(name: string, bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new BundleError(`bundle file ${name} is not valid JSON: ${(err as Error).message}`);
  }
}

// Place a data.json's value at its folder path under data (OPA: the folder path is the path in data).
function mergeData(into: Record<string, unknown>, path: string[], value: unknown, file: string): void {
  let node = into;
  for (const seg of path) {
    const next = node[seg];
    if (next === undefined) node[seg] = {};
    else if (typeof next !== 'object' || next === null || Array.isArray(next)) throw new BundleError(`bundle data conflict at ${file}`);
    node = node[seg] as Record<string, unknown>;
  }
  if (path.length === 0 && (typeof value !== 'object' || value === null || Array.isArray(value))) {
    throw new BundleError(`bundle file ${file} must hold a JSON object`);
  }
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) {
      if (k in node) throw new BundleError(`bundle data key ${[...path, k].join('.')} is defined twice (${file})`);
      node[k] = v;
    }
  } else {
    throw new BundleError(`bundle file ${file} must hold a JSON object`);
  }
}

/**
 * When a verified bundle was built, ms since the epoch: its manifest's `metadata.builtAt`, else the
 * signature's `iat`, else 0. Informational only (metrics): bundles are ordered by generationOf.
 */
export function builtAtOf(bundle: Pick<VerifiedBundle, 'manifest' | 'signature'>): number {
  const stamp = bundle.manifest.metadata?.builtAt as unknown;
  const t = typeof stamp === 'string' ? Date.parse(stamp) : NaN;
  return Number.isFinite(t) ? t : (bundle.signature?.iat ?? 0) * 1000;
}

/**
 * A verified bundle's generation (manifest `metadata.generation`, signed with it): its place in the
 * policy history. A pod never replaces its bundle by one of a lower generation, so neither a replayed
 * old bundle nor an old engine pod rebuilding old rules can roll it back. Bundles from before
 * generations were recorded count as 0. Anything else than a whole number is refused.
 */
export function generationOf(bundle: Pick<VerifiedBundle, 'manifest'>): number {
  const g = bundle.manifest.metadata?.generation as unknown;
  if (g === undefined) return 0;
  if (typeof g !== 'number' || !Number.isSafeInteger(g) || g < 0) throw new BundleError(`bundle ${bundle.manifest.revision} has generation ${JSON.stringify(g)} in its .manifest metadata; it must be a whole number of 0 or more (rebuild it with warden build)`);
  return g;
}

/** Refuse `next` when its generation is below the one in force (equal is the same policy commit, e.g. re-signed). */
export function refuseOlder(next: { revision: string; generation: number }, inForce: { revision: string; generation: number } | undefined): void {
  if (inForce && next.generation < inForce.generation) {
    throw new BundleError(`bundle ${next.revision} is of generation ${next.generation}, older than the loaded ${inForce.revision} (generation ${inForce.generation}); keeping ${inForce.revision}`);
  }
}

// The one reader of data.warden.spec: everything that reads the spec (the plugin's routing, MCP and
// masking, reviews, explanations) gets it typed from here. A spec that does not match its format is
// refused with the bundle, even when signed: the signature says who built it, not that it is well-formed.
function specOf(data: Record<string, unknown>, revision: string): CompiledSpec | undefined {
  const warden = data.warden;
  if (warden === undefined) return undefined;
  if (typeof warden !== 'object' || warden === null || Array.isArray(warden)) throw new BundleError(`bundle ${revision}: data.warden must be an object`);
  const spec = (warden as Record<string, unknown>).spec;
  if (spec === undefined) return undefined;
  try {
    return compiledSpec.parse(spec, `bundle ${revision} data.warden.spec`);
  } catch (err) {
    throw err instanceof SchemaError ? new BundleError(`${err.message} (the compiled spec does not match this Warden's format: rebuild the bundle with warden build of the same version)`) : err;
  }
}

/** A workload bundle's compiled spec; a BundleError for a bundle that carries none (not built by warden build). */
export function compiledSpecOf(bundle: Pick<VerifiedBundle, 'spec' | 'revision'>): CompiledSpec {
  if (!bundle.spec) throw new BundleError(`bundle ${bundle.revision} carries no compiled spec (data.warden.spec): it is not a workload bundle of warden build`);
  return bundle.spec;
}

/** Parse and verify a bundle archive. Verification happens before anything in it is interpreted. */
export async function openBundle(archive: Uint8Array, trust: BundleTrust): Promise<VerifiedBundle> {
  const files = await readArchive(archive);
  const signature = trust === 'unsigned-ok' ? undefined : await verifyBundle(files, trust);
  const manifestBytes = files.get('.manifest');
  if (!manifestBytes) throw new BundleError('bundle has no .manifest');
  let manifest: BundleManifest;
  try {
    manifest = bundleManifest.parse(parseJsonFile('.manifest', manifestBytes), 'bundle .manifest');
  } catch (err) {
    throw err instanceof SchemaError ? new BundleError(err.message) : err;
  }
  const wasmEntry = manifest.wasm?.[0]?.module?.replace(/^\/+/, '') ?? 'policy.wasm';
  const wasm = files.get(wasmEntry);
  if (!wasm) throw new BundleError(`bundle has no ${wasmEntry} (Warden evaluates WASM bundles only)`);
  const data: Record<string, unknown> = {};
  for (const [name, bytes] of files) {
    if (name === 'data.json' || name.endsWith('/data.json')) {
      const path = name.split('/').slice(0, -1);
      mergeData(data, path, parseJsonFile(name, bytes), name);
    }
  }
  const spec = specOf(data, manifest.revision);
  return { manifest, revision: manifest.revision, data, ...(spec ? { spec } : {}), inputs: InputSelection.fromManifest(manifest), wasm, files, ...(signature ? { signature } : {}) };
}
