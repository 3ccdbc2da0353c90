// Every format that crosses a process boundary, defined once: JSON Schema (validated with ajv) + types.
export * from './schema.js';
export * from './workload.js';
export * from './authz.js';
export * from './input.js';
export * from './decision.js';
export * from './decision-event.js';
export * from './bundle-manifest.js';
export * from './admission-review.js';
export * from './gatekeeper.js';
