// The `warden` command line, errors written for a person. This is the composition root: the engine's
// subcommands (engine/cli/), the proxy plugin's (`warden proxy`, `ext-authz`), the webhook's
// (`warden admission`) and `warden up` (cli/up*.ts, the whole system on one machine) meet here only.
import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../engine/toolchain/paths.js';
import { isUserFacing } from '../engine/cli/user-error.js';
import { registerDoctor } from '../engine/cli/doctor.js';
import { registerBuild } from '../engine/cli/build.js';
import { registerPush } from '../engine/cli/push.js';
import { registerUp } from './up.js';
import { registerDiff } from '../engine/cli/diff.js';
import { registerAudit } from '../engine/cli/audit.js';
import { registerServe } from '../engine/cli/serve.js';
import { registerProxy } from '../proxy-plugin/command.js';
import { registerAdmission } from '../admission/cli.js';

const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };

/** Build the program; exported so tests can run commands in-process. */
export function createProgram(): Command {
  const program = new Command('warden')
    .description('Zero-trust authorization for Kubernetes workloads: Rego + API specs → signed WASM bundles, enforced per call.')
    .version(pkg.version, '-v, --version')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerDoctor(program);
  registerBuild(program);
  registerPush(program);
  registerUp(program);
  registerDiff(program);
  registerAudit(program);
  registerServe(program);
  registerProxy(program);
  registerAdmission(program);
  return program;
}

async function main(argv: string[]): Promise<number> {
  const program = createProgram();
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

process.exitCode = await main(process.argv);
