// A bundle as a pod sees it: archive bytes → verified files → manifest, data and WASM module.
import { bundleManifest, type BundleManifest } from '../formats/bundle-manifest.js';
import { SchemaError } from '../formats/schema.js';
import { BundleError, readArchive } from './archive.js';
import { verifyBundle, type SignaturePayload, type TrustPolicy } from './signature.js';

/** A bundle whose signature has been checked (or that was explicitly accepted unsigned). */
export interface VerifiedBundle {
  manifest: BundleManifest;
  revision: string;
  data: Record<string, unknown>;
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
 * signature's `iat`, else 0. A pod refuses a bundle older than the one it runs (a replayed old bundle
 * is signed too).
 */
export function builtAtOf(bundle: Pick<VerifiedBundle, 'manifest' | 'signature'>): number {
  const stamp = bundle.manifest.metadata?.builtAt as unknown;
  const t = typeof stamp === 'string' ? Date.parse(stamp) : NaN;
  return Number.isFinite(t) ? t : (bundle.signature?.iat ?? 0) * 1000;
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
  return { manifest, revision: manifest.revision, data, wasm, files, ...(signature ? { signature } : {}) };
}
