// Writes deploy/**/*.yaml from deploy/manifests.ts:  npx tsx deploy/generate.ts
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderFiles } from './render.js';

const here = dirname(fileURLToPath(import.meta.url));
for (const [path, text] of Object.entries(renderFiles())) {
  mkdirSync(dirname(join(here, path)), { recursive: true });
  writeFileSync(join(here, path), text);
  process.stdout.write(`wrote deploy/${path}\n`);
}
