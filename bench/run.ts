// `npm run bench`: runs every bench/*.bench.ts (or those named on the command line), prints one
// table, writes bench/results/latest.json. Figures only — benchmarks never pass or fail.
import { mkdirSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { printTable, type Figure } from './figure.js';

const here = dirname(fileURLToPath(import.meta.url));
// The whole run must fit in 10 minutes on 2 cores: the audit store is filled with 200k events unless
// BENCH_FULL=1 asks for the 1,000,000 the audit issue's figures are quoted at.
process.env.AUDIT_BENCH_EVENTS ??= process.env.BENCH_FULL ? '1000000' : '200000';
const only = process.argv.slice(2);
const files = readdirSync(here)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => only.length === 0 || only.some((o) => f.startsWith(o)))
  .sort();

const all: Figure[] = [];
const started = Date.now();
for (const f of files) {
  process.stderr.write(`bench: ${f} …\n`);
  const began = Date.now();
  const mod = (await import(pathToFileURL(join(here, f)).href)) as { run?: () => Promise<unknown>; figures?: (r: never) => Figure[] };
  if (typeof mod.run !== 'function') throw new Error(`${f} does not export run()`);
  // A benchmark returns figures, or its own result plus a figures() that turns it into figures.
  const result = await mod.run();
  const figures = Array.isArray(result) ? (result as Figure[]) : mod.figures!(result as never);
  printTable(figures);
  all.push(...figures);
  process.stderr.write(`bench: ${f} took ${Math.round((Date.now() - began) / 1000)} s\n`);
}
const machine = { cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version };
const out = join(here, 'results', 'latest.json');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(`${out}.tmp`, `${JSON.stringify({ date: new Date().toISOString(), machine, seconds: Math.round((Date.now() - started) / 1000), figures: all }, null, 2)}\n`);
renameSync(`${out}.tmp`, out);
process.stderr.write(`\n${all.length} figures in ${Math.round((Date.now() - started) / 1000)} s → ${out}\n`);
