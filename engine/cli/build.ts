// `warden build`: compile the policy repository into signed per-workload bundles.
import type { Command } from 'commander';
import { SIGNING_ALGORITHMS, type SigningAlgorithm } from '../../runtime/signature.js';
import { buildRepo, DEV_KEY_PATH, type BuildProgress } from '../compiler/build.js';
import { formatDiagnostic } from '../compiler/compile-error.js';
import { parseGeneration } from '../compiler/generation.js';
import { UserError } from '../../formats/user-error.js';

/** Options shared by commands that build (build, diff, up). */
export interface BuildFlags {
  repo: string;
  out: string;
  signingKey?: string;
  signingAlg?: string;
  keyId?: string;
  scope?: string;
  only?: string[];
  generation?: string;
  json?: boolean;
}

function progressPrinter(): (e: BuildProgress) => void {
  const tty = process.stderr.isTTY;
  return (e) => {
    if (e.type === 'done') process.stderr.write(`${tty ? '\r\x1b[2K' : ''}  ${e.status.padEnd(9)} ${e.workload} (${e.ms} ms)\n`);
    else if (tty && e.type === 'step') process.stderr.write(`\r\x1b[2K  ${e.step}…  ${e.workload}`);
  };
}

export function registerBuild(program: Command): void {
  program
    .command('build')
    .description('compile policies/ into one signed WASM bundle per workload (opa check --strict and opa test gate it)')
    .option('--repo <dir>', 'policy repository', 'policies')
    .option('--out <dir>', 'output folder for bundles', 'bundles')
    .option('--signing-key <pem>', `PEM private key (EC or RSA); default: $WARDEN_SIGNING_KEY, else a development key at ${DEV_KEY_PATH}`)
    .option('--signing-alg <alg>', `signature algorithm (${SIGNING_ALGORITHMS.filter((a) => !a.startsWith('HS')).join(', ')}); default from the key`)
    .option('--key-id <id>', 'key id in the signature header (default: the key thumbprint)')
    .option('--scope <scope>', 'signature scope pods must be configured with')
    .option('--only <workloads...>', 'build only these workloads')
    .option('--generation <n>', 'generation to record, a number that grows with every build (e.g. the CI run number); default: the policy commit\'s commit count')
    .option('--json', 'print the result as JSON')
    .action(async (flags: BuildFlags) => {
      if (flags.signingAlg && (!SIGNING_ALGORITHMS.includes(flags.signingAlg as SigningAlgorithm) || flags.signingAlg.startsWith('HS'))) {
        throw new UserError(`--signing-alg ${flags.signingAlg} is not supported; use one of ${SIGNING_ALGORITHMS.filter((a) => !a.startsWith('HS')).join(', ')}`);
      }
      const result = await buildRepo({
        repo: flags.repo,
        out: flags.out,
        ...(flags.signingKey ? { signingKey: flags.signingKey } : {}),
        ...(flags.signingAlg ? { algorithm: flags.signingAlg as SigningAlgorithm } : {}),
        ...(flags.keyId ? { keyId: flags.keyId } : {}),
        ...(flags.scope ? { scope: flags.scope } : {}),
        ...(flags.only ? { only: flags.only } : {}),
        ...(flags.generation !== undefined ? { generation: parseGeneration(flags.generation, '--generation') } : {}),
        onProgress: flags.json ? undefined : progressPrinter(),
      });
      for (const w of result.warnings) process.stderr.write(`${formatDiagnostic(w)}\n`);
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
        return;
      }
      const built = result.workloads.filter((w) => w.status !== 'unchanged').length;
      process.stdout.write(`${built === 0 ? 'nothing rebuilt' : `${built} of ${result.workloads.length} workload(s) rebuilt`}; bundles in ${flags.out}/ signed with key ${result.keyId}\n`);
      for (const w of result.workloads) process.stdout.write(`  ${w.workload.padEnd(20)} ${w.revision}  generation ${w.generation}  ${w.status}\n`);
      if (result.admission) {
        const r = result.admission.rules;
        process.stdout.write(`  ${'(admission)'.padEnd(20)} ${result.admission.revision}  ${result.admission.status}: guardrails ${r.guardrails ? 'yes' : 'no'}, ${r.templates} Gatekeeper template(s), ${r.constraints} constraint(s)\n`);
      }
      process.stdout.write(`verify with: opa build --verification-key ${result.verificationKey} …  (public key written there)\n`);
      if (result.usedDevelopmentKey) process.stderr.write(`note: signed with the development key ${DEV_KEY_PATH}; pass --signing-key in CI and production\n`);
    });
}
