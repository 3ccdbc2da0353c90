// The `warden` command line, errors written for a person. This is the composition root: the engine's
// subcommands (engine/cli/), the proxy plugin's (`warden proxy`, `ext-authz`), the webhook's
// (`warden admission`) and `warden up` (cli/up*.ts, the whole system on one machine) meet here only.
import type { Command } from 'commander';
import { runProgram, wardenProgram, type Registrar } from './program.js';

// (No engine module is imported here: the sidecar's import graph starts at this file.)

// Each subcommand's module is imported only when that subcommand runs (or for the full --help): a
// sidecar never loads the compiler, and `warden --version` loads nothing at all.
const subcommands: Record<string, () => Promise<Registrar>> = {
  doctor: async () => (await import('../engine/cli/doctor.js')).registerDoctor,
  build: async () => (await import('../engine/cli/build.js')).registerBuild,
  push: async () => (await import('../engine/cli/push.js')).registerPush,
  up: async () => (await import('./up.js')).registerUp,
  diff: async () => (await import('../engine/cli/diff.js')).registerDiff,
  audit: async () => (await import('../engine/cli/audit.js')).registerAudit,
  explain: async () => (await import('../engine/cli/explain.js')).registerExplain,
  serve: async () => (await import('../engine/cli/serve.js')).registerServe,
  proxy: async () => (await import('../proxy-plugin/command.js')).registerProxy,
  'ext-authz': async () => (await import('../proxy-plugin/command.js')).registerProxy,
  'init-net': async () => (await import('../proxy-plugin/interception.js')).registerInitNet,
  admission: async () => (await import('../admission/cli.js')).registerAdmission,
};

/** Build the program with the subcommands `only` names (default: all, for help). */
export async function createProgram(only?: string[]): Promise<Command> {
  const wanted = only ?? Object.keys(subcommands);
  // An image holds only some parts (the sidecar: proxy and ext-authz); the full help lists what is there.
  const load = (name: string) => subcommands[name]!().catch((err: NodeJS.ErrnoException) => (only === undefined && err.code === 'ERR_MODULE_NOT_FOUND' ? undefined : Promise.reject(err)));
  return wardenProgram(new Set((await Promise.all(wanted.map(load))).filter((r): r is Registrar => r !== undefined)));
}

// The subcommand argv names (its first word), if it is one Warden has; `--version` needs none.
function subcommandOf(argv: string[]): string[] | undefined {
  const first = argv.slice(2).find((a) => !a.startsWith('-'));
  if (first === undefined && argv.slice(2).some((a) => a === '-v' || a === '--version')) return [];
  return first !== undefined && first in subcommands ? [first] : undefined;
}

process.exitCode = await runProgram(await createProgram(subcommandOf(process.argv)), process.argv);
