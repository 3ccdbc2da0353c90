// Vitest global setup: tests that spawn `bin/warden.js` run dist/, so dist/ is rebuilt here whenever it
// is older than the sources (a no-op when fresh). Unit tests import the TypeScript sources directly.
import { build, isStale } from '../bin/build.js';

/** Rebuild dist/ when stale, before any test file runs. */
export default async function setup(): Promise<void> {
  if (isStale()) await build();
}
