// The package entry `warden/runtime`: open a signed bundle and evaluate its policy in-process, the way
// the sidecar and the webhook do, for programs that embed Warden's decisions.
export { BundleError } from './archive.js';
export { generationOf, openBundle, type BundleTrust, type VerifiedBundle } from './bundle.js';
export { EvaluationError, Policy, type PolicyOptions } from './policy.js';
export type { TrustPolicy, VerificationKey } from './signature.js';
