// Where Warden's own files are: the repository root (for tools.json, .tools/, the default policies/).
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The root of the Warden checkout this code runs from. */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
