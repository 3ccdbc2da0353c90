// The real OPA binary for tests: evaluate Rego with Go's evaluator, or compile it to WASM.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import * as tar from 'tar';

const run = promisify(execFile);

/** The pinned OPA binary that `node bin/setup.js` links into the clone. */
export const opaBinary = resolve(import.meta.dirname, '../../.tools/bin/opa');

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
    const out = JSON.parse(stdout) as { result?: { expressions: { value: unknown }[] }[] };
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
