// `warden push`: publish what `warden build` wrote to an OCI registry (engine/publish.ts has the layout).
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { parseOciReference, RegistryClient, RegistryError } from '../../runtime/oci-registry.js';
import { publishBundles } from '../publish.js';
import { UserError } from '../../formats/user-error.js';

/** Register `warden push`. */
export function registerPush(program: Command): void {
  program
    .command('push')
    .description('push the built bundles to an OCI registry, in the layout stock OPA pulls (each bundle at <ref>/<workload>, the index at <ref>)')
    .argument('<ref>', 'registry/repository:tag, e.g. registry.example.com/platform/bundles:main (oci+http:// for a plain-HTTP registry)')
    .option('--bundles <dir>', 'folder written by warden build', 'bundles')
    .option('--workload <name>', 'push only this bundle, to exactly <ref>')
    .option('--registry-config <file>', 'docker-config JSON with the registry credentials (default $DOCKER_CONFIG/config.json, else ~/.docker/config.json)')
    .option('--json', 'print what was pushed as JSON')
    .action(async (raw: string, flags: { bundles: string; workload?: string; registryConfig?: string; json?: boolean }) => {
      try {
        const ref = parseOciReference(raw);
        const pushed = await publishBundles(resolve(flags.bundles), ref, RegistryClient.for(ref, flags.registryConfig), flags.workload);
        if (flags.json) return void process.stdout.write(`${JSON.stringify(pushed, null, 2)}\n`);
        for (const p of pushed) process.stdout.write(`pushed ${p.name.padEnd(20)} ${p.name === '(index)' ? '' : `generation ${p.generation}  `}${p.reference}@${p.digest}\n`);
      } catch (err) {
        throw err instanceof RegistryError ? new UserError(err.message) : err;
      }
    });
}
