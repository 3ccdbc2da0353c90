// `warden explain <decision-id>`: why one stored decision came out as it did, from a local store (its
// events and the revision archive the engine keeps in it) or from a running engine
// (GET /audit/decisions/<id>/explain).
import { Command, Option } from 'commander';
import { EngineError, HttpAuditReader } from '../audit/http-reader.js';
import type { AuditStore } from '../audit/store.js';
import { RevisionArchive } from '../bundle-revisions.js';
import { explainDecision, type Explanation } from '../explain/explanation.js';
import { renderExplanation, type ExplainFormat } from '../explain/render.js';
import { DEFAULT_STORE, openReader, type SourceOptions } from './audit.js';
import { UserError } from '../../formats/user-error.js';

/** Where Wardens before the archive moved into the audit store kept bundle revisions; `warden serve` imports it. */
export const DEFAULT_REVISIONS = '.warden/revisions';

interface ExplainFlags extends SourceOptions {
  output?: ExplainFormat;
}

// From a running engine, its explanation; from a local store, one made here with the revision archive.
async function explainFrom(id: string, f: ExplainFlags): Promise<Explanation | undefined> {
  const reader = await openReader(f);
  try {
    if (reader instanceof HttpAuditReader) return (await reader.explain(id)) as Explanation | undefined;
    const archive = 'findRevision' in reader ? new RevisionArchive(reader as AuditStore, (reader as AuditStore).location) : undefined;
    return await explainDecision(id, { event: async (d) => (await reader.query({ decisionId: [d], sort: 'seq', limit: 1 }))[0], ...(archive ? { archive } : {}) });
  } catch (err) {
    if (err instanceof EngineError) throw new UserError(err.message);
    throw err;
  } finally {
    await reader.close();
  }
}

/** Register `warden explain`. */
export function registerExplain(program: Command): void {
  program
    .command('explain')
    .description('explain one decision: the bundle revision that made it, a replay, the deciding rules (file:line, from opa eval --explain) and, for a denial, what would have allowed it')
    .argument('<decision-id>', 'the id a denial carries (x-warden-decision-id header, MCP error data, audit query)')
    .option('--store <url>', `audit store: sqlite:<file> or postgres://… (default ${DEFAULT_STORE})`)
    .option('--engine <url>', "ask a running engine instead (GET /audit/decisions/<id>/explain)")
    .option('--engine-ca <file>', "CA bundle (PEM) that signed the engine's certificate")
    .option('--engine-cert <file>', 'client certificate (PEM) of an audit reader')
    .option('--engine-key <file>', 'client key (PEM) for --engine-cert')
    .addOption(new Option('-o, --output <format>', 'table (default on a terminal), markdown (for a ticket) or json (default otherwise)').choices(['table', 'json', 'markdown']))
    .action(async (id: string, f: ExplainFlags) => {
      if (!/^[A-Za-z0-9._:-]{8,128}$/.test(id)) throw new UserError(`"${id}" is not a decision id (8 to 128 of A-Z a-z 0-9 . _ : -); copy it from the x-warden-decision-id header or warden audit query`);
      const x = await explainFrom(id, f);
      if (!x) throw new UserError(`no decision ${id} in the audit log${f.engine ? ` of ${f.engine}` : ` ${f.store ?? DEFAULT_STORE}`} (retention may have removed it; check with warden audit query --decision-id ${id})`);
      process.stdout.write(renderExplanation(x, f.output ?? (process.stdout.isTTY ? 'table' : 'json')));
    });
}
