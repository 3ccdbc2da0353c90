// A throwaway certificate authority for tests: the same local CA `warden up` uses (engine/local-ca.ts),
// under the names the tests already import.
import { createLocalCa, type Issued, type LocalCa } from '../../engine/local-ca.js';

export type { Issued };
/** A CA that can issue server and SPIFFE client certificates. */
export type TestCa = LocalCa;

/** Create a CA named `name`. */
export function createCa(name = 'Warden Test CA'): Promise<TestCa> {
  return createLocalCa(name);
}
