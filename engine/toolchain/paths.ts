// Where Warden's own files are: the repository root (for tools.json, .tools/, the default policies/).
import { basename, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const above = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The root of the Warden checkout (or installed package) this code runs from, compiled (dist/) or not. */
export const repoRoot = basename(above) === 'dist' ? dirname(above) : above;
