// Placeholder until the host builtins land (branch builtins): the SDK's own builtins only.
import type { HostBuiltin } from './policy.js';

export const hostBuiltins: Readonly<Record<string, HostBuiltin>> = {};
