// The admission bundle (bundles/admission.tar.gz) as the webhook loads it: one signed OPA bundle with
// several WASM modules — the guardrails (`/policy.wasm`) and one module per Gatekeeper template — plus
// `data.gatekeeper` naming templates and Constraints. Verified once, then every module is loaded.
import { ADMISSION_ENTRYPOINT } from '../formats/admission-review.js';
import type { GatekeeperData } from '../formats/gatekeeper.js';
import { BundleError } from '../runtime/archive.js';
import { generationOf, openBundle, refuseOlder, type BundleTrust, type VerifiedBundle } from '../runtime/bundle.js';
import { InputSelection } from '../runtime/input-selection.js';
import { ADMISSION_LIMITS, type EvaluationLimits } from '../runtime/evaluation-limits.js';
import { Policy } from '../runtime/policy.js';
import { GatekeeperSet } from './gatekeeper.js';

/** The loaded admission rule sets. */
export interface AdmissionPolicies {
  revision: string;
  /** Place in the policy history: a bundle of a lower generation never replaces it. */
  generation: number;
  guardrails: Policy | undefined;
  gatekeeper: GatekeeperSet;
  /** The bounds every module was loaded with (inventory re-instantiations use them too). */
  limits: EvaluationLimits;
  /** The template modules, to re-instantiate with data.inventory (admission/inventory.ts). */
  templates: Array<{ name: string; kind: string; entrypoint: string; wasm: Uint8Array }>;
}

// Gatekeeper templates see only data.inventory, which the webhook does not replicate: give them none.
export const moduleBundle = (wasm: Uint8Array, revision: string, data: Record<string, unknown> = {}): VerifiedBundle => ({
  manifest: { revision, roots: [''] },
  revision,
  data,
  wasm,
  files: new Map(),
  inputs: InputSelection.fromManifest({}), // admission decisions take their whole review
});

/**
 * Load one Gatekeeper template module (compiled by engine/compiler/gatekeeper.ts) with the runtime's
 * host builtins (Go-compatible sprintf, which Gatekeeper messages are written for).
 */
export function loadTemplatePolicy(wasm: Uint8Array, revision: string, data: Record<string, unknown> = {}, limits: EvaluationLimits = ADMISSION_LIMITS): Promise<Policy> {
  return Policy.load(moduleBundle(wasm, revision, data), { limits });
}

/**
 * Verify and load bundles/admission.tar.gz. Throws BundleError with what is wrong, and when the bundle
 * is of a lower generation than the bundle `inForce` (a replayed old bundle is signed too: it must not roll the rules back).
 */
export async function loadAdmissionBundle(
  archive: Uint8Array,
  trust: BundleTrust,
  inForce?: Pick<AdmissionPolicies, 'revision' | 'generation'>,
  limits: EvaluationLimits = ADMISSION_LIMITS,
): Promise<AdmissionPolicies> {
  const bundle = await openBundle(archive, trust);
  const generation = generationOf(bundle);
  refuseOlder({ revision: bundle.revision, generation }, inForce);
  const modules = bundle.manifest.wasm ?? [];
  const file = (module: string): Buffer => {
    const bytes = bundle.files.get(module.replace(/^\/+/, ''));
    if (!bytes) throw new BundleError(`admission bundle lists ${module} in its manifest but does not contain it`);
    return bytes;
  };
  const g = modules.find((m) => m.entrypoint === ADMISSION_ENTRYPOINT);
  const { gatekeeper: gkData, ...guardrailData } = bundle.data as { gatekeeper?: GatekeeperData };
  const guardrails = g ? await Policy.load(moduleBundle(file(g.module), bundle.revision, guardrailData), { limits }) : undefined;
  const loaded = new Map<string, { policy: Policy; entrypoint: string }>();
  const templates: AdmissionPolicies['templates'] = [];
  for (const t of gkData?.templates ?? []) {
    templates.push({ name: t.name, kind: t.kind, entrypoint: t.entrypoint, wasm: file(t.module) });
    loaded.set(t.kind, { policy: await loadTemplatePolicy(file(t.module), `${bundle.revision}:${t.name}`, {}, limits), entrypoint: t.entrypoint });
  }
  return { revision: bundle.revision, generation, limits, guardrails, gatekeeper: new GatekeeperSet(loaded, gkData?.constraints ?? []), templates };
}
