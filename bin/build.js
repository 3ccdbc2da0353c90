#!/usr/bin/env node
// `npm run build`: the TypeScript sources → dist/ (one ESM file per source file, so lazily imported
// subcommands stay lazy and the sidecar loads only its own import graph). esbuild transpiles; type
// checking is `npm run typecheck`'s job. Assets the code reads beside itself (the core Rego) are copied.
// dist/.build.json records the sources it was built from; `isStale()` compares, so bin/warden.js and
// the tests never run code older than the sources.
//
//   node bin/build.js            build when stale (fast no-op when fresh)
//   node bin/build.js --force    build anyway
//   node bin/build.js --types    also write .d.ts files for the package's entry points (npm pack)
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** Folders compiled into dist/ (tests, benches and deploy tooling are not shipped). */
export const SOURCE_DIRS = ['formats', 'runtime', 'engine', 'proxy-plugin', 'admission', 'cli'];
const dist = join(root, 'dist');
const stampFile = join(dist, '.build.json');

function walk(dir, out = []) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.isFile() && !e.name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

/** Every shipped source file (TypeScript and assets) with its mtime. */
function sources() {
  return SOURCE_DIRS.flatMap((d) => walk(join(root, d))).map((p) => ({ path: relative(root, p), mtime: statSync(p).mtimeMs }));
}

function fingerprint(files) {
  return { files: files.length, newest: Math.max(...files.map((f) => f.mtime)) };
}

/** Why dist/ does not match the sources (missing, a newer or added or removed file), or undefined when fresh. */
export function isStale() {
  if (!existsSync(stampFile)) return 'dist/ has not been built';
  const stamp = JSON.parse(readFileSync(stampFile, 'utf8'));
  const files = sources();
  const now = fingerprint(files);
  if (now.files !== stamp.files) return `the sources have ${now.files} files, dist/ was built from ${stamp.files}`;
  if (now.newest > stamp.newest) return `${files.find((f) => f.mtime === now.newest).path} changed after dist/ was built`;
  return undefined;
}

/**
 * dist/sidecar.js: `warden proxy` / `warden ext-authz` (cli/sidecar.ts) and every npm package they import,
 * in one ESM file. The OPA WASM SDK stays in node_modules: the runtime loads it through createRequire
 * (CommonJS), which a bundler cannot see; bundled CommonJS packages get the same `require` for Node's
 * own modules. Measured in bench/shipping.bench.ts against the per-file dist/.
 */
const SIDECAR_BUNDLE = (outdir) => ({
  entryPoints: [join(root, 'cli', 'sidecar.ts')],
  outfile: join(outdir, 'sidecar.js'),
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning', // no source map: the bundle is not minified, and each module keeps its path in a comment
  banner: { js: "import { createRequire as __wardenCreateRequire } from 'node:module'; const require = __wardenCreateRequire(import.meta.url);" },
});

/** Transpile every source into a fresh dist/ (or `out`; written aside, then swapped in). */
export async function build({ types = false, out = dist } = {}) {
  const { build: esbuild } = await import('esbuild');
  const files = sources();
  const ts = files.filter((f) => f.path.endsWith('.ts')).map((f) => join(root, f.path));
  const next = `${out}.partial-${process.pid}`;
  rmSync(next, { recursive: true, force: true });
  await esbuild({ entryPoints: ts, outdir: next, outbase: root, format: 'esm', platform: 'node', target: 'node20', sourcemap: 'linked', logLevel: 'warning' });
  await esbuild(SIDECAR_BUNDLE(next));
  for (const f of files.filter((x) => !x.path.endsWith('.ts'))) {
    mkdirSync(dirname(join(next, f.path)), { recursive: true });
    cpSync(join(root, f.path), join(next, f.path));
  }
  if (types) {
    const r = spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.types.json'), '--outDir', next], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('tsc could not write the type declarations (see above)');
  }
  writeFileSync(join(next, '.build.json'), `${JSON.stringify({ ...fingerprint(files), types }, null, 2)}\n`);
  rmSync(out, { recursive: true, force: true });
  renameSync(next, out);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const force = process.argv.includes('--force');
  const types = process.argv.includes('--types');
  const stale = isStale();
  if (force || types || stale) {
    const started = Date.now();
    try {
      await build({ types });
    } catch (err) {
      process.stderr.write(`[build] failed: ${err.message}\n`);
      process.exit(1);
    }
    process.stderr.write(`[build] dist/ written in ${Date.now() - started} ms${stale && !force ? ` (${stale})` : ''}\n`);
  }
}
