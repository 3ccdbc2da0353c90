// The `warden` program itself: its name, version and help behaviour, and how a run ends (an exit code;
// errors written for a person, never a stack trace unless it is a bug). Shared by the whole CLI
// (cli/main.ts) and the sidecar's own entry (cli/sidecar.ts), which registers only its subcommands.
import { Command, CommanderError } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { isUserFacing } from './user-facing.js';

// package.json is one folder up from cli/*.ts and from dist/sidecar.js, two from dist/cli/*.js.
const pkgFile = [new URL('../package.json', import.meta.url), new URL('../../package.json', import.meta.url)].find((u) => existsSync(u))!;

/** A subcommand module's registration function. */
export type Registrar = (program: Command) => void;

/** The `warden` program with `registrars`' subcommands. */
export function wardenProgram(registrars: Iterable<Registrar>): Command {
  const pkg = JSON.parse(readFileSync(pkgFile, 'utf8')) as { version: string };
  const program = new Command('warden')
    .description('Zero-trust authorization for Kubernetes workloads: Rego + API specs → signed WASM bundles, enforced per call.')
    .version(pkg.version, '-v, --version')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  for (const register of registrars) register(program);
  return program;
}

/** Run `program` on `argv`: the process's exit code (1 for a user's error, 2 for a bug). */
export async function runProgram(program: Command, argv: string[]): Promise<number> {
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    if (isUserFacing(err)) {
      process.stderr.write(`warden: ${(err as Error).message}\n`);
      return 1;
    }
    process.stderr.write(`warden: internal error (please report it): ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 2;
  }
}
