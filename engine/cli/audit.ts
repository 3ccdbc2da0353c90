// `warden audit query|top|graph|tail|verify|retention`: the audit log from a terminal, on a local
// store (`--store sqlite:…` / `postgres://…`) or a running engine (`--engine https://…`).
import { Command, Option } from 'commander';
import { existsSync } from 'node:fs';
import { loadCheckpointSigner, loadPublicJwk, publicKeyPath } from '../audit/chain.js';
import { EngineError, HttpAuditReader } from '../audit/http-reader.js';
import { deniedByDefault, FILTER_PARAMS, FilterError, GRAPH_DEFAULTS, parseDuration, parseFilter, TOP_DEFAULTS, type EventFilter, type RawFilter } from '../audit/query.js';
import { eventLine, renderEvents, renderGraph, renderTop, type EventsFormat, type GraphFormat } from '../audit/render.js';
import { applyRetention } from '../audit/retention.js';
import { openStore, StoreUrlError } from '../audit/open-store.js';
import type { AuditReader, AuditStore, TopDimension } from '../audit/store.js';
import { follow } from '../audit/tail.js';
import { verifyStore } from '../audit/verify.js';
import { UserError } from '../../formats/user-error.js';
import { readPem } from '../../runtime/pem-files.js';

/** Where the CLI keeps its embedded store and checkpoint key unless told otherwise. */
export const DEFAULT_STORE = 'sqlite:.warden/audit.db';
export const DEFAULT_KEY = '.warden/audit-checkpoint.jwk';

/** Where read commands take the audit log from. */
export interface SourceOptions {
  store?: string;
  engine?: string;
  engineCa?: string;
  engineCert?: string;
  engineKey?: string;
}

const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), v];

function camel(name: string): string {
  return name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** Filter flags; their names are the HTTP API's query parameters. */
function withFilters(cmd: Command, opts: { limit: number; sort?: boolean }): Command {
  cmd
    .option('--since <duration>', 'only events newer than this (90s, 15m, 1h, 7d)')
    .option('--from <time>', 'only events at or after this RFC 3339 time')
    .option('--to <time>', 'only events before this RFC 3339 time')
    .option('--workload <name>', 'destination workload (repeatable, or comma-separated)', collect)
    .option('--namespace <name>', 'destination namespace (repeatable)', collect)
    .option('--principal <id>', 'source principal: SPIFFE ID, JWT subject, "anonymous" (repeatable)', collect)
    .option('--decision <outcome>', 'allow, deny or dry-run-deny (repeatable)', collect)
    .option('--method <method>', 'HTTP method (repeatable)', collect)
    .option('--path-prefix <path>', 'request path starts with this (case-sensitive)')
    .option('--operation <id>', 'OpenAPI operation id (repeatable)', collect)
    .option('--tool <name>', 'MCP tool (repeatable)', collect)
    .option('--revision <rev>', 'bundle revision that decided (repeatable)', collect)
    .option('--decision-id <id>', 'decision id (repeatable)', collect)
    .option('--limit <n>', `at most this many rows (default ${opts.limit})`);
  if (opts.sort) cmd.addOption(new Option('--sort <order>', 'time, -time (newest first), seq, -seq').default('-time'));
  return cmd;
}

function withSource(cmd: Command): Command {
  return cmd
    .option('--store <url>', `audit store: sqlite:<file> or postgres://user@host:port/db (default ${DEFAULT_STORE})`)
    .option('--engine <url>', 'read from a running engine\'s HTTP API instead of a store')
    .option('--engine-ca <file>', 'CA bundle (PEM) that signed the engine\'s certificate')
    .option('--engine-cert <file>', 'client certificate (PEM) to present to the engine')
    .option('--engine-key <file>', 'client key (PEM) for --engine-cert');
}

function filterFrom(opts: Record<string, unknown>, defaults: { limit: number; sort?: EventFilter['sort'] }): EventFilter {
  const raw: RawFilter = {};
  for (const name of FILTER_PARAMS) {
    const v = opts[camel(name)];
    if (typeof v === 'string' || Array.isArray(v)) raw[name] = v as string | string[];
  }
  return asUserError(() => parseFilter(raw, Date.now(), defaults));
}

function asUserError<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof FilterError) throw new UserError(`--${err.message}`);
    throw err;
  }
}

async function openLocal(url: string | undefined, opts: { mustExist: boolean }): Promise<AuditStore> {
  const target = url ?? DEFAULT_STORE;
  if (opts.mustExist && target.startsWith('sqlite:') && !existsSync(target.slice('sqlite:'.length))) {
    throw new UserError(`no audit store at ${target.slice('sqlite:'.length)}: nothing has been ingested there yet (pass --store <url> or --engine <url>)`);
  }
  try {
    return await openStore(target);
  } catch (err) {
    if (err instanceof StoreUrlError) throw new UserError(`--store: ${err.message}`);
    throw new UserError(`cannot open the audit store ${target.replace(/\/\/[^@/]*@/, '//')}: ${(err as Error).message}`);
  }
}

/** The audit log a read command names: a local store (`--store`) or a running engine (`--engine`, mTLS). */
export async function openReader(o: SourceOptions): Promise<AuditReader> {
  if (o.engine && o.store) throw new UserError('give either --store or --engine, not both');
  if (!o.engine) return openLocal(o.store, { mustExist: true });
  let base: URL;
  try {
    base = new URL(o.engine);
  } catch {
    throw new UserError(`--engine: "${o.engine}" is not a URL (e.g. https://warden-engine.warden.svc:8443)`);
  }
  const pem = (flag: string, file: string | undefined) => (file === undefined ? undefined : readPem(flag, file));
  const tls = { ca: pem('--engine-ca', o.engineCa), cert: pem('--engine-cert', o.engineCert), key: pem('--engine-key', o.engineKey) };
  return new HttpAuditReader(base, Object.fromEntries(Object.entries(tls).filter(([, v]) => v !== undefined)));
}

/** Run `fn` on a reader, turning engine and filter errors into messages for the user. */
async function withReader<T>(o: SourceOptions, fn: (r: AuditReader) => Promise<T>): Promise<T> {
  const reader = await openReader(o);
  try {
    return await fn(reader);
  } catch (err) {
    if (err instanceof FilterError) throw new UserError(`--${err.message}`);
    if (err instanceof EngineError) throw new UserError(err.message);
    throw err;
  } finally {
    await reader.close();
  }
}

function outputOption(choices: string[], def: string): Option {
  return new Option('-o, --output <format>', `output format (default: ${def} on a terminal, ${choices.includes('ndjson') ? 'ndjson' : 'json'} otherwise)`).choices(choices);
}

function chosen<T extends string>(output: string | undefined, tty: T, piped: T): T {
  return (output as T | undefined) ?? (process.stdout.isTTY ? tty : piped);
}

/** Register `warden audit` and its subcommands. */
export function registerAudit(program: Command): void {
  const audit = program.command('audit').description('query, follow and verify the decision audit log');

  withSource(withFilters(audit.command('query').description('list decision events that match the filters'), { limit: 100, sort: true }))
    .addOption(outputOption(['table', 'json', 'ndjson'], 'table'))
    .action(async (o: SourceOptions & Record<string, unknown>) => {
      const filter = filterFrom(o, { limit: 100, sort: o.sort as EventFilter['sort'] });
      const events = await withReader(o, (r) => r.query(filter));
      process.stdout.write(renderEvents(events, chosen<EventsFormat>(o.output as string | undefined, 'table', 'ndjson')));
    });

  withSource(withFilters(audit.command('top').description('top denied principals, operations or MCP tools (deny and dry-run-deny unless --decision says otherwise)'), { limit: TOP_DEFAULTS.limit }))
    .addOption(new Option('--by <dimension>', 'what to count by').choices(['principal', 'operation', 'tool']).default('principal'))
    .addOption(outputOption(['table', 'json'], 'table'))
    .action(async (o: SourceOptions & Record<string, unknown>) => {
      const filter = deniedByDefault(filterFrom(o, TOP_DEFAULTS));
      const by = o.by as TopDimension;
      const rows = await withReader(o, (r) => r.top(by, filter));
      process.stdout.write(renderTop(rows, by, chosen(o.output as string | undefined, 'table', 'json')));
    });

  withSource(withFilters(audit.command('graph').description('who talks to whom: source principal → destination workload, with allow/deny counts'), { limit: GRAPH_DEFAULTS.limit }))
    .addOption(outputOption(['table', 'json', 'dot', 'mermaid'], 'table'))
    .action(async (o: SourceOptions & Record<string, unknown>) => {
      const filter = filterFrom(o, GRAPH_DEFAULTS);
      const edges = await withReader(o, (r) => r.edges(filter));
      process.stdout.write(renderGraph(edges, chosen<GraphFormat>(o.output as string | undefined, 'table', 'json')));
    });

  withSource(withFilters(audit.command('tail').description('follow new decision events as they are stored (Ctrl-C to stop)'), { limit: 1000 }))
    .option('--interval <duration>', 'how often to poll for new events', '1s')
    .option('--last <n>', 'first show this many of the newest matching events', '10')
    .addOption(outputOption(['table', 'json', 'ndjson'], 'table'))
    .action(async (o: SourceOptions & Record<string, unknown>) => {
      const filter = filterFrom(o, { limit: 1000 });
      const intervalMs = asUserError(() => parseDuration(String(o.interval), 'interval'));
      const last = Number(o.last);
      if (!Number.isInteger(last) || last < 0) throw new UserError(`--last: "${String(o.last)}" must be a whole number ≥ 0`);
      const format = chosen<EventsFormat>(o.output as string | undefined, 'table', 'ndjson');
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        await withReader(o, (r) =>
          follow(r, filter, (events) => {
            for (const s of events) process.stdout.write(format === 'table' ? eventLine(s) : format === 'json' ? `${JSON.stringify(s.event, null, 2)}\n` : `${JSON.stringify(s.event)}\n`);
          }, { intervalMs, last, signal: stop.signal }),
        );
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });

  audit
    .command('verify')
    .description('check the hash chain and the signed checkpoints; name every edited, deleted or reordered event (exit 1 if any)')
    .option('--store <url>', `audit store (default ${DEFAULT_STORE})`)
    .option('--public-key <file>', `public JWK that signs checkpoints (default ${publicKeyPath(DEFAULT_KEY)} when it exists)`)
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (o: { store?: string; publicKey?: string; output: 'text' | 'json' }) => {
      const keyFile = o.publicKey ?? (existsSync(publicKeyPath(DEFAULT_KEY)) ? publicKeyPath(DEFAULT_KEY) : undefined);
      let jwk;
      if (keyFile) {
        try {
          jwk = loadPublicJwk(keyFile);
        } catch (err) {
          throw new UserError(`--public-key ${keyFile}: ${(err as Error).message}`);
        }
      }
      const store = await openLocal(o.store, { mustExist: true });
      try {
        const report = await verifyStore(store, jwk);
        if (o.output === 'json') {
          process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        } else {
          const range = report.first_seq !== undefined ? ` (seq ${report.first_seq}..${report.last_seq})` : '';
          process.stdout.write(`${report.store}: ${report.events} events${range}, ${report.checkpoints} checkpoints\n`);
          if (report.checkpoints_unchecked) process.stdout.write('warning: no --public-key given: checkpoint signatures were not checked, so a rewrite that recomputed every hash would go unnoticed\n');
          for (const p of report.problems) process.stdout.write(`${p.kind.toUpperCase().padEnd(14)} ${p.message}\n`);
          process.stdout.write(report.ok ? 'ok: the chain is intact\n' : `FAILED: ${report.problems.length} problem(s)\n`);
        }
        if (!report.ok) process.exitCode = 1;
      } finally {
        await store.close();
      }
    });

  audit
    .command('retention')
    .description('delete the oldest events by age and/or count, signing a checkpoint at the new start so verify still passes')
    .option('--store <url>', `audit store (default ${DEFAULT_STORE})`)
    .option('--max-age <duration>', 'delete events received longer ago than this (e.g. 30d)')
    .option('--max-rows <n>', 'keep at most this many events')
    .option('--key <file>', `private JWK that signs checkpoints (default ${DEFAULT_KEY}, created if missing)`)
    .option('--batch <n>', 'rows deleted per transaction', '1000')
    .action(async (o: { store?: string; maxAge?: string; maxRows?: string; key?: string; batch: string }) => {
      if (o.maxAge === undefined && o.maxRows === undefined) throw new UserError('give --max-age and/or --max-rows');
      const maxAgeMs = o.maxAge !== undefined ? asUserError(() => parseDuration(o.maxAge!, 'max-age')) : undefined;
      const maxRows = o.maxRows !== undefined ? Number(o.maxRows) : undefined;
      if (maxRows !== undefined && (!Number.isInteger(maxRows) || maxRows < 1)) throw new UserError(`--max-rows: "${o.maxRows}" must be a whole number ≥ 1`);
      const batchSize = Number(o.batch);
      if (!Number.isInteger(batchSize) || batchSize < 1) throw new UserError(`--batch: "${o.batch}" must be a whole number ≥ 1`);
      const store = await openLocal(o.store, { mustExist: true });
      try {
        const keyPath = o.key ?? DEFAULT_KEY;
        let signer;
        try {
          const loaded = await loadCheckpointSigner(keyPath, { create: o.key === undefined });
          if (loaded.created) process.stderr.write(`created checkpoint key ${keyPath} (public part: ${publicKeyPath(keyPath)}); keep the public part where verifiers can trust it\n`);
          signer = loaded.signer;
        } catch (err) {
          throw new UserError(`--key ${keyPath}: ${(err as Error).message}`);
        }
        const r = await applyRetention(store, signer, { ...(maxAgeMs !== undefined ? { maxAgeMs } : {}), ...(maxRows !== undefined ? { maxRows } : {}) }, { batchSize });
        process.stdout.write(`deleted ${r.deleted} events in ${r.batches} batches${r.firstSeq !== undefined ? `; the log now starts at seq ${r.firstSeq}` : ''}\n`);
      } finally {
        await store.close();
      }
    });
}
