// YAML text of every deploy/ file, as committed (shared by deploy/generate.ts and the drift test).
import { stringify } from 'yaml';
import { helmFiles } from './helm.js';
import { deployFiles } from './manifests.js';

const HEADER = '# Generated from deploy/manifests.ts by `npx tsx deploy/generate.ts`; do not edit.\n# Change a cluster with a kustomize overlay (patches) instead; see docs/cluster.md.\n';

/** Every generated file under deploy/ (the kustomize base, the sidecar example, the Helm chart), path → text. */
export function renderFiles(): Record<string, string> {
  return {
    ...Object.fromEntries(
      Object.entries(deployFiles()).map(([path, objects]) => [path, HEADER + objects.map((o) => stringify(o, { lineWidth: 0, aliasDuplicateObjects: false })).join('---\n')]),
    ),
    ...helmFiles(),
  };
}
