// `warden doctor`: what this machine has (Node, OPA) and what is wrong with it.
import type { Command } from 'commander';
import { locateOpa, opaVersion, OPA_VERSION } from '../toolchain/opa.js';

/** One line of the report. */
export interface Finding {
  what: string;
  ok: boolean;
  detail: string;
}

/** Check the toolchain; returns findings instead of throwing so every problem is listed at once. */
export async function diagnose(env: NodeJS.ProcessEnv = process.env): Promise<Finding[]> {
  const findings: Finding[] = [];
  const major = Number(process.versions.node.split('.')[0]);
  findings.push({
    what: 'node',
    ok: major >= 20,
    detail: `v${process.versions.node}${major >= 20 ? '' : ' — Warden needs Node.js 20 or newer'}`,
  });
  const opa = locateOpa(env);
  if (!opa) {
    findings.push({ what: 'opa', ok: false, detail: `not found (WARDEN_OPA, .tools/bin/opa, PATH) — run \`node bin/setup.js\` to build OPA ${OPA_VERSION}` });
  } else {
    try {
      const v = await opaVersion(opa.path);
      const ok = v === OPA_VERSION;
      findings.push({
        what: 'opa',
        ok,
        detail: `${opa.path} (via ${opa.foundBy}) ${v}${ok ? '' : ` — Warden needs ${OPA_VERSION}`}`,
      });
    } catch (err) {
      findings.push({ what: 'opa', ok: false, detail: `${opa.path} (via ${opa.foundBy}) does not run: ${(err as Error).message}` });
    }
  }
  return findings;
}

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description('check the toolchain (Node.js, the pinned OPA binary) and say what is wrong')
    .action(async () => {
      const findings = await diagnose();
      for (const f of findings) process.stdout.write(`${f.ok ? 'ok  ' : 'FAIL'}  ${f.what.padEnd(6)} ${f.detail}\n`);
      if (findings.some((f) => !f.ok)) process.exitCode = 1;
    });
}
