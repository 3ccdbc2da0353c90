#!/usr/bin/env node
// The `warden` command: runs the compiled CLI in dist/ (`npm run build`; tsx is a dev tool only).
// In a source checkout it refuses to run a dist/ older than the sources, so nobody tests stale code.
import { existsSync } from 'node:fs';

if (existsSync(new URL('../cli/main.ts', import.meta.url))) {
  const { isStale } = await import('./build.js');
  const stale = isStale();
  if (stale) {
    process.stderr.write(`warden: dist/ is stale (${stale}); run \`npm run build\` (npm start and npm test build it for you)\n`);
    process.exit(1);
  }
}
// `proxy` and `ext-authz` (a pod's sidecar) run the same commands bundled into one file, which starts
// faster (bin/build.js); everything else runs the per-file dist/, whose subcommands load lazily.
const first = process.argv.slice(2).find((a) => !a.startsWith('-'));
if ((first === 'proxy' || first === 'ext-authz') && existsSync(new URL('../dist/sidecar.js', import.meta.url))) await import('../dist/sidecar.js');
else await import('../dist/cli/main.js');
