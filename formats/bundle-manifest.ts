// OPA's bundle `.manifest`, as Warden writes it (and stock OPA reads it).
import { validator } from './schema.js';

/** Workload facts the compiler records in the manifest's free `metadata`. */
export interface BundleMetadata {
  workload: string;
  namespace: string;
  principal: string;
  mode: 'enforce' | 'dry-run';
  /** Git commit of the policy repository the bundle was built from ("unversioned" outside Git). */
  commit: string;
  /**
   * Place of `commit` in the policy history (its commit count, or a CI-given number): pods order
   * bundles by it and never load a lower one. Never the build time.
   */
  generation: number;
  /** Content hash of every input of the build. */
  contentHash: string;
  builtAt: string;
  warden: string;
  /** The workload opted into OPA's strict builtin errors (a failing builtin fails the decision); absent: OPA's default. */
  strictBuiltinErrors?: boolean;
  /** The workload's evaluation limits from workload.yaml, when it sets any. */
  limits?: { deadlineMs?: number; memoryMiB?: number };
  /**
   * The `input` paths the bundle's Rego can read (engine/compiler/input-paths.ts); pods build only
   * these parts of the input. `[[]]` is the whole input; absent or malformed also means the whole input.
   */
  inputPaths?: InputPath[];
  /**
   * The strings the bundle's own Rego holds (engine/compiler/input-paths.ts namedKeysOfModules). Where a
   * pod keeps a part of the caller's JSON whole, a key there that differs only by case from one of these
   * refuses the call. Absent (an older bundle): not checked.
   */
  inputKeys?: string[];
}

/** A path under `input`, one object key per element (`["request", "method"]`); `[]` is the whole input. */
export type InputPath = string[];

/** `.manifest`: revision, roots, wasm entrypoints, rego version, metadata. */
export interface BundleManifest {
  revision: string;
  roots: string[];
  wasm?: Array<{ entrypoint: string; module: string }>;
  rego_version?: 0 | 1;
  metadata?: Partial<BundleMetadata> & Record<string, unknown>;
}

/** JSON Schema of BundleManifest. */
export const bundleManifestSchema = {
  $id: 'https://warden.dev/schemas/bundle-manifest.json',
  type: 'object',
  required: ['revision', 'roots'],
  properties: {
    revision: { type: 'string', minLength: 1 },
    roots: { type: 'array', items: { type: 'string' } },
    wasm: {
      type: 'array',
      items: {
        type: 'object',
        required: ['entrypoint', 'module'],
        properties: { entrypoint: { type: 'string' }, module: { type: 'string' } },
      },
    },
    rego_version: { enum: [0, 1] },
    metadata: { type: 'object' },
  },
} as const;

export const bundleManifest = validator<BundleManifest>(bundleManifestSchema);
