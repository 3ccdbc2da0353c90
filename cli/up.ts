// `warden up` (what `npm start` runs): the whole system on embedded defaults, in this one process on
// 127.0.0.1 — build policies/, start the engine, the admission webhook and the example workloads
// behind their sidecars, run a scripted scenario printed as a live decision feed read back from the
// audit store, summarise, and keep running until Ctrl-C. The heavy modules (proxy plugin, admission,
// MCP SDK, x509) are loaded inside the action so other commands do not pay for them.
import type { Command } from 'commander';
import { buildRepo } from '../engine/compiler/build.js';
import { formatDiagnostic } from '../engine/compiler/compile-error.js';
import { parseListenAddress } from '../formats/listen-address.js';
import { UserError } from '../formats/user-error.js';

interface UpFlags {
  repo: string;
  out: string;
  stateDir: string;
  scenario: string;
  enginePort: string;
  webhookPort: string;
  exitAfterScenario?: boolean;
}

function port(flag: string, value: string): number {
  return parseListenAddress(flag, `127.0.0.1:${value}`).port;
}

export function registerUp(program: Command): void {
  program
    .command('up')
    .description('bring the whole system up locally (engine, admission webhook, example workloads behind sidecars), run the demo scenario as a live decision feed, keep running until Ctrl-C')
    .option('--repo <dir>', 'policy repository', 'policies')
    .option('--out <dir>', 'bundle folder', 'bundles')
    .option('--state-dir <dir>', 'audit store (audit.db), checkpoint key, local CA and JWKS', '.warden')
    .option('--scenario <name>', 'scenario to run: demo | none (start the services only)', 'demo')
    .option('--engine-port <n>', 'engine port on 127.0.0.1 (0 = any free port)', '8181')
    .option('--webhook-port <n>', 'admission webhook port on 127.0.0.1 (0 = any free port)', '8443')
    .option('--exit-after-scenario', 'stop everything after the summary instead of waiting for Ctrl-C')
    .action(async (flags: UpFlags) => {
      if (flags.scenario !== 'demo' && flags.scenario !== 'none') throw new UserError(`--scenario ${flags.scenario}: use demo or none`);
      const enginePort = port('--engine-port', flags.enginePort);
      const webhookPort = port('--webhook-port', flags.webhookPort);
      const out = (line: string) => void process.stdout.write(`${line}\n`);
      const started = Date.now();

      out(`warden up: building ${flags.repo}/ …`);
      const result = await buildRepo({ repo: flags.repo, out: flags.out });
      for (const w of result.warnings) process.stderr.write(`${formatDiagnostic(w)}\n`);
      for (const w of result.workloads) out(`  bundle ${w.workload.padEnd(12)} ${w.revision} (${w.status})`);

      const [{ startStack }, scenario] = await Promise.all([import('./up-stack.js'), import('./up-scenario.js')]);
      out('warden up: starting the engine, the admission webhook and the workloads behind their sidecars …');
      let stack;
      try {
        stack = await startStack({ bundlesDir: flags.out, stateDir: flags.stateDir, enginePort, webhookPort });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EADDRINUSE' || code === 'EACCES') throw new UserError(`${(err as Error).message}: is another \`warden up\` running? pick other ports with --engine-port/--webhook-port`);
        throw err;
      }
      // Ctrl-C at any point from here on stops everything cleanly.
      let stopping: Promise<void> | undefined;
      const stop = () => (stopping ??= stack.close());
      const signalled = new Promise<void>((resolve) => {
        const onSignal = () => {
          out('\nwarden up: stopping …');
          void stop().then(resolve);
        };
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
      });
      try {
        out(`  engine ${stack.engine.url} (audit store ${stack.files.store}), webhook ${stack.webhook.url}, ${Object.keys(stack.workloads).join(', ')} ready`);
        if (flags.scenario === 'demo') {
          out('\nlive decision feed (each step, then the decisions the engine stored for it):');
          const r = await scenario.runScenario(stack, out);
          await scenario.printSummary(stack.engine.store!, started, r, out);
          if (!r.destructiveRefused || !r.admissionRefused) process.exitCode = 1;
        }
        scenario.explore(stack, out);
      } catch (err) {
        await stop();
        throw err;
      }
      if (flags.exitAfterScenario) {
        await stop();
        out('warden up: stopped');
        return;
      }
      out('\nwarden up: running — Ctrl-C to stop');
      await signalled;
      out('warden up: stopped');
    });
}
