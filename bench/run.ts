// `npm run bench`: runs every bench/*.bench.ts (or those named on the command line), prints one
// table, writes bench/results/latest.json. Figures only — benchmarks never pass or fail.
import { mkdirSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { printTable, type Benchmark, type Figure } from './figure.js';

const here = dirname(fileURLToPath(import.meta.url));
const only = process.argv.slice(2);
const files = readdirSync(here)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => only.length === 0 || only.some((o) => f.startsWith(o)))
  .sort();

const all: Figure[] = [];
const started = Date.now();
for (const f of files) {
  process.stderr.write(`bench: ${f} …\n`);
  const mod = (await import(pathToFileURL(join(here, f)).href)) as { run?: Benchmark };
  if (typeof mod.run !== 'function') throw new Error(`${f} does not export run()`);
  const figures = await mod.run();
  printTable(figures);
  all.push(...figures);
}
const machine = { cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version };
const out = join(here, 'results', 'latest.json');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(`${out}.tmp`, `${JSON.stringify({ date: new Date().toISOString(), machine, seconds: Math.round((Date.now() - started) / 1000), figures: all }, null, 2)}\n`);
renameSync(`${out}.tmp`, out);
process.stderr.write(`\n${all.length} figures in ${Math.round((Date.now() - started) / 1000)} s → ${out}\n`);
