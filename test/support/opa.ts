// The real OPA binary for tests: evaluate Rego with Go's evaluator, or compile it to WASM.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import * as tar from 'tar';
import type { PolicyInput } from '../../formats/input.js';
import { readArchive } from '../../runtime/archive.js';
import { readValueText } from '../../runtime/opa-json.js';

const run = promisify(execFile);

/** The pinned OPA binary that `node bin/setup.js` links into the clone. */
export const opaBinary = resolve(import.meta.dirname, '../../.tools/bin/opa');

/** The same OPA built with its WASM engine (build tag opa_wasm, tools.json), to activate bundles' policy.wasm as stock OPA users do. */
export const opaWasmBinary = resolve(import.meta.dirname, '../../.tools/bin/opa-wasm');

async function inTempDir<T>(work: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'warden-opa-'));
  try {
    return await work(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Evaluates `query` against one Rego module with `opa eval` and returns the query's value. */
export async function opaEval(module: string, query: string): Promise<unknown> {
  return inTempDir(async (dir) => {
    await writeFile(join(dir, 'policy.rego'), module);
    const { stdout } = await run(opaBinary, ['eval', '--format', 'json', '-d', join(dir, 'policy.rego'), query], { maxBuffer: 64 << 20 });
    // Read exactly, as Warden's runtime reads results: integers beyond 2^53 keep their digits (bigint).
    const out = readValueText(stdout) as { result?: { expressions: { value: unknown }[] }[] };
    return out.result?.[0]?.expressions[0]?.value;
  });
}

/** Compiles one Rego module with `opa build -t wasm` and returns `/policy.wasm` from the bundle. */
export async function buildWasm(module: string, entrypoints: readonly string[]): Promise<Buffer> {
  return inTempDir(async (dir) => {
    await writeFile(join(dir, 'policy.rego'), module);
    const bundle = join(dir, 'bundle.tar.gz');
    const args = ['build', '-t', 'wasm', ...entrypoints.flatMap((e) => ['-e', e]), '-o', bundle, join(dir, 'policy.rego')];
    await run(opaBinary, args, { maxBuffer: 64 << 20 });
    await tar.x({ file: bundle, cwd: dir, filter: (path) => path.replace(/^\//, '') === 'policy.wasm' });
    return readFile(join(dir, 'policy.wasm'));
  });
}

/** JSON with object keys sorted, so equal values print equally whatever the key order. */
export function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1))) : x,
  );
}

/** Writes a bundle's Rego and data.json under `dir` (as OPA lays them out), for `opa eval` or `opa build -t plan`. */
export async function extractPolicy(bundle: Uint8Array, dir: string): Promise<void> {
  for (const [name, bytes] of await readArchive(bundle)) {
    if (!name.endsWith('.rego') && name !== 'data.json') continue;
    await mkdir(join(dir, name, '..'), { recursive: true });
    await writeFile(join(dir, name), bytes);
  }
}

/** OPA's Go evaluator over a bundle's Rego and data: warden/decision and warden/visible_tools for every input, in one `opa eval`. */
export async function opaDecisions(bundle: Uint8Array, inputs: PolicyInput[], dir: string): Promise<{ decisions: unknown[]; visible: unknown[] }> {
  await extractPolicy(bundle, join(dir, 'policy'));
  await mkdir(join(dir, 'inputs', 'difftest'), { recursive: true });
  await writeFile(join(dir, 'inputs', 'difftest', 'data.json'), JSON.stringify({ inputs }));
  const query =
    '{"decisions": [d | some x in data.difftest.inputs; d := data.warden.decision with input as x], "visible": [v | some x in data.difftest.inputs; v := data.warden.visible_tools with input as x]}';
  const { stdout } = await run(opaBinary, ['eval', '--format', 'json', '-d', join(dir, 'policy'), '-d', join(dir, 'inputs'), query], { maxBuffer: 512 * 1024 * 1024 });
  return (JSON.parse(stdout) as { result: Array<{ expressions: Array<{ value: { decisions: unknown[]; visible: unknown[] } }> }> }).result[0]!.expressions[0]!.value;
}
