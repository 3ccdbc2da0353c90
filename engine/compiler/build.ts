// `warden build`: the policy repository → one signed WASM bundle per workload.
// Per workload: read specs → generate Rego + data → stage → opa check --strict → opa test →
// opa build -t wasm → load with Warden's runtime (proves it evaluates) → manifest → sign.
// Content-addressed: the staged files' hash keys a cache of OPA's output, so an unchanged workload
// does no OPA work. Outputs are written only when every workload built (no partial output).
import { createHash } from 'node:crypto';
import { cpus } from 'node:os';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import type { BundleManifest, BundleMetadata } from '../../formats/bundle-manifest.js';
import { DECISION_ENTRYPOINT, VISIBLE_TOOLS_ENTRYPOINT } from '../../formats/decision.js';
import { readArchive, writeArchive, BundleError } from '../../runtime/archive.js';
import { openBundle } from '../../runtime/bundle.js';
import { SIDECAR_LIMITS, withLimits } from '../../runtime/evaluation-limits.js';
import { Policy } from '../../runtime/policy.js';
import { signBundle, type SigningAlgorithm } from '../../runtime/signature.js';
import { OPA_VERSION, runOpa } from '../toolchain/opa.js';
import { repoRoot } from '../toolchain/paths.js';
import { CompileError, type Diagnostic } from './compile-error.js';
import { generate } from './generate.js';
import { INPUT_PATHS_VERSION, inputReadOf, type InputRead } from './input-paths.js';
import { policyVersion } from './generation.js';
import { readMcpTools, type McpEntry } from './mcp-tools.js';
import { readOpenApi, type HttpOperation } from './openapi.js';
import { lookalikes } from './lookalike.js';
import { loadRepo, type PolicyRepo, type WorkloadSource } from './repo.js';
import { generateDevelopmentKey, loadSigningKey, SigningError, type SigningKey } from './signing-key.js';
// Admission target (issue 5): policies/admission/ → bundles/admission.tar.gz, built after the workloads.
import { ADMISSION_BUNDLE, buildAdmission, type AdmissionBuild } from './admission.js';

const WARDEN_VERSION = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
const CORE_FILES = ['core.rego', 'entrypoints.rego'];
/** What a pod evaluates in a workload's bundle: the entrypoints it is built with and the roots of its input analysis. */
const WORKLOAD_ENTRYPOINTS = [DECISION_ENTRYPOINT, VISIBLE_TOOLS_ENTRYPOINT];
const coreDir = join(dirname(new URL(import.meta.url).pathname), 'rego');

/** Where the development signing key lives when none is given. */
export const DEV_KEY_PATH = '.warden/keys/signing-key.pem';

/** Options of one build. */
export interface BuildOptions {
  repo: string;
  out: string;
  /** PEM private key; when absent, a development key at DEV_KEY_PATH is used (created if missing). */
  signingKey?: string;
  algorithm?: SigningAlgorithm;
  keyId?: string;
  scope?: string;
  cacheDir?: string;
  concurrency?: number;
  /** Build only these workloads (others keep their current bundles). */
  only?: string[];
  /** The generation to record (e.g. the CI run number); default: the policy commit's commit count. */
  generation?: number;
  cwd?: string;
  onProgress?: (e: BuildProgress) => void;
  now?: () => Date;
}

/** Progress events, for a TTY display or logs. */
export type BuildProgress =
  | { type: 'start'; workload: string }
  | { type: 'step'; workload: string; step: 'check' | 'test' | 'build' | 'sign' }
  | { type: 'done'; workload: string; status: WorkloadStatus; ms: number };

/** built: OPA ran; resigned: OPA output reused from the cache, bundle re-signed; unchanged: nothing to do. */
export type WorkloadStatus = 'built' | 'resigned' | 'unchanged';

/** What was built for one workload. */
export interface WorkloadBuild {
  workload: string;
  namespace: string;
  revision: string;
  /** Place in the policy history that pods order bundles by (engine/compiler/generation.ts). */
  generation: number;
  contentHash: string;
  status: WorkloadStatus;
  bundle: string;
  generated: string;
  ms: number;
}

/** The outcome of a whole build. */
export interface BuildResult {
  workloads: WorkloadBuild[];
  warnings: Diagnostic[];
  keyId: string;
  verificationKey: string;
  usedDevelopmentKey: boolean;
  /** The admission bundle, when the repository has policies/admission/ (and `only` was not given). */
  admission?: AdmissionBuild;
}

/** Written next to each bundle: what it was built from, so the next build can skip it. */
interface BuildRecord {
  workload: string;
  revision: string;
  /** Absent in records written before generations. */
  generation?: number;
  contentHash: string;
  keyId: string;
  bundleSha256: string;
}

const sha256 = (b: string | Uint8Array) => createHash('sha256').update(b).digest('hex');

function atomicWrite(path: string, data: string | Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

async function resolveSigningKey(opts: BuildOptions, cwd: string): Promise<{ key: SigningKey; dev: boolean }> {
  if (opts.signingKey) return { key: await loadSigningKey(resolve(cwd, opts.signingKey), opts), dev: false };
  const envKey = process.env.WARDEN_SIGNING_KEY;
  if (envKey) return { key: await loadSigningKey(resolve(cwd, envKey), opts), dev: false };
  const dev = resolve(cwd, DEV_KEY_PATH);
  if (!existsSync(dev)) generateDevelopmentKey(dev);
  return { key: await loadSigningKey(dev, opts), dev: true };
}

// Reserved packages: the core and the generated module; user Rego must stay in its own namespace.
const PACKAGE_RULES: Record<'lib' | 'workload', RegExp> = {
  lib: /^warden\.lib(\.|$)/,
  workload: /^warden\.workload(\.|$)/,
};

function checkPackages(files: Array<{ abs: string; display: string; kind: 'lib' | 'workload'; test: boolean }>): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const f of files) {
    const text = readFileSync(f.abs, 'utf8');
    const lines = text.split('\n');
    const idx = lines.findIndex((l) => /^\s*package\s+/.test(l));
    if (idx < 0) continue; // opa check reports it
    const pkg = lines[idx]!.replace(/^\s*package\s+/, '').replace(/#.*/, '').trim();
    if (f.test) {
      if (/^warden(\.core|\.generated)?$/.test(pkg) || /^warden\.(core|generated)\./.test(pkg)) {
        out.push({ file: f.display, line: idx + 1, message: `package ${pkg} is reserved for Warden; tests belong in a package of their own (e.g. ${f.kind === 'lib' ? 'warden.lib.x_test' : 'warden.workload_test'})`, severity: 'error' });
      }
    } else if (!PACKAGE_RULES[f.kind].test(pkg)) {
      const want = f.kind === 'lib' ? 'warden.lib (or warden.lib.<name>)' : 'warden.workload (or below it)';
      out.push({ file: f.display, line: idx + 1, message: `package ${pkg} is not allowed here: ${f.kind === 'lib' ? 'shared library' : 'workload'} Rego must be in package ${want}`, severity: 'error' });
    }
  }
  return out;
}

interface Prepared {
  source: WorkloadSource;
  ops: HttpOperation[];
  mcp: McpEntry[];
  /** Staged bundle files (path in bundle → content) and test files. */
  bundleFiles: Map<string, string>;
  testFiles: Map<string, string>;
  /** Staged path → path the user knows, to rewrite OPA's messages. */
  displayOf: Map<string, string>;
  generatedRego: string;
  contentHash: string;
}

function prepare(repo: PolicyRepo, w: WorkloadSource, diagnostics: Diagnostic[], cwd: string): Prepared | undefined {
  const before = diagnostics.filter((d) => d.severity === 'error').length;
  let ops: HttpOperation[] = [];
  let mcp: McpEntry[] = [];
  if (w.openapi) {
    const r = readOpenApi(w.openapi);
    ops = r.operations;
    diagnostics.push(...r.diagnostics);
  }
  if (w.mcp) {
    const r = readMcpTools(w.mcp);
    mcp = r.entries;
    diagnostics.push(...r.diagnostics);
  }
  const rel = (p: string) => relative(cwd, p) || p;
  diagnostics.push(
    ...checkPackages([
      ...repo.lib.rego.map((f) => ({ abs: join(repo.root, 'lib', f), display: rel(join(repo.root, 'lib', f)), kind: 'lib' as const, test: false })),
      ...repo.lib.tests.map((f) => ({ abs: join(repo.root, 'lib', f), display: rel(join(repo.root, 'lib', f)), kind: 'lib' as const, test: true })),
      ...w.rego.map((f) => ({ abs: join(w.dir, f), display: rel(join(w.dir, f)), kind: 'workload' as const, test: false })),
      ...w.tests.map((f) => ({ abs: join(w.dir, f), display: rel(join(w.dir, f)), kind: 'workload' as const, test: true })),
    ]).filter((d) => !diagnostics.some((x) => x.file === d.file && x.message === d.message)),
  );
  if (diagnostics.filter((d) => d.severity === 'error').length > before) return undefined;
  const sources = [w.openapi?.file, w.mcp?.file].filter((s): s is string => !!s);
  const gen = generate(w.manifest, sources, ops, mcp);
  const bundleFiles = new Map<string, string>();
  const testFiles = new Map<string, string>();
  const displayOf = new Map<string, string>();
  for (const f of CORE_FILES) bundleFiles.set(`warden/${f}`, readFileSync(join(coreDir, f), 'utf8'));
  bundleFiles.set('warden/generated.rego', gen.rego);
  displayOf.set('warden/generated.rego', `${w.display}/(generated from ${sources.join(', ') || 'workload.yaml'})`);
  for (const f of repo.lib.rego) {
    bundleFiles.set(`lib/${f}`, readFileSync(join(repo.root, 'lib', f), 'utf8'));
    displayOf.set(`lib/${f}`, rel(join(repo.root, 'lib', f)));
  }
  for (const f of repo.lib.tests) {
    testFiles.set(`tests/lib/${f}`, readFileSync(join(repo.root, 'lib', f), 'utf8'));
    displayOf.set(`tests/lib/${f}`, rel(join(repo.root, 'lib', f)));
  }
  for (const f of w.rego) {
    bundleFiles.set(`workload/${f}`, readFileSync(join(w.dir, f), 'utf8'));
    displayOf.set(`workload/${f}`, rel(join(w.dir, f)));
  }
  for (const f of w.tests) {
    testFiles.set(`tests/workload/${f}`, readFileSync(join(w.dir, f), 'utf8'));
    displayOf.set(`tests/workload/${f}`, rel(join(w.dir, f)));
  }
  bundleFiles.set('data.json', JSON.stringify({ warden: { spec: gen.spec } }));
  const h = createHash('sha256').update(`warden ${WARDEN_VERSION}\0opa ${OPA_VERSION}\0`);
  h.update(JSON.stringify(w.manifest));
  for (const m of [bundleFiles, testFiles]) for (const k of [...m.keys()].sort()) h.update(`\0${k}\0`).update(m.get(k)!);
  return { source: w, ops, mcp, bundleFiles, testFiles, displayOf, generatedRego: gen.rego, contentHash: h.digest('hex') };
}

// Principals and namespaces in grants that are one or two edits away from a known one.
function typoWarnings(repo: PolicyRepo, prepared: Prepared[]): Diagnostic[] {
  const known = new Set([...repo.workloads.map((w) => w.principal), ...(repo.config.principals ?? [])]);
  const namespaces = new Set(repo.workloads.map((w) => w.manifest.namespace));
  for (const p of known) {
    const m = /^spiffe:\/\/[^/]+\/ns\/([^/]+)\//.exec(p);
    if (m) namespaces.add(m[1]!);
  }
  const out: Diagnostic[] = [];
  const check = (file: string, line: number | undefined, grants: Array<{ principal?: string; namespace?: string }>) => {
    for (const g of grants) {
      if (g.principal && !g.principal.includes('*') && !known.has(g.principal)) {
        const near = lookalikes(g.principal, known);
        if (near) out.push({ file, line, message: `principal ${g.principal} is not a workload of this repository nor listed in warden.yaml principals; did you mean ${near}?`, severity: 'warning' });
      }
      if (g.namespace && !namespaces.has(g.namespace)) {
        const near = lookalikes(g.namespace, namespaces);
        if (near) out.push({ file, line, message: `namespace ${g.namespace} is not used by any known principal; did you mean ${near}?`, severity: 'warning' });
      }
    }
  };
  for (const p of prepared) {
    for (const op of p.ops) check(op.file, op.authzLine, op.authz?.allow ?? []);
    for (const e of p.mcp) check(e.file, e.authzLine, e.authz?.allow ?? []);
  }
  return out;
}

function rewritePaths(text: string, stage: string, displayOf: Map<string, string>): string {
  let out = text.split(`${stage}/bundle/`).join('').split(`${stage}/`).join('');
  for (const [staged, shown] of [...displayOf.entries()].sort((a, b) => b[0].length - a[0].length)) out = out.split(staged).join(shown);
  return out.trim();
}

async function runPool<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (next < items.length && failed === undefined) {
      const i = next++;
      try {
        results[i] = await fn(items[i]!);
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failed !== undefined) throw failed;
  return results;
}

// OPA's own work for one workload: check, test, build. Returns the unsigned bundle archive.
async function compileWithOpa(p: Prepared, onStep: (s: 'check' | 'test' | 'build') => void): Promise<Buffer> {
  const stage = mkdtempSync(join(tmpdir(), `warden-${p.source.manifest.name}-`));
  try {
    for (const [f, content] of p.bundleFiles) atomicWrite(join(stage, 'bundle', f), content);
    for (const [f, content] of p.testFiles) atomicWrite(join(stage, f), content);
    const where = p.source.display;
    const dirs = ['bundle', ...(p.testFiles.size ? ['tests'] : [])];
    onStep('check');
    const check = await runOpa(['check', '--strict', ...dirs], { cwd: stage });
    if (check.code !== 0) throw new CompileError([], `${where}: Rego does not pass \`opa check --strict\`:\n${rewritePaths(check.stderr || check.stdout, stage, p.displayOf)}`);
    if (p.testFiles.size) {
      onStep('test');
      const test = await runOpa(['test', ...dirs], { cwd: stage });
      if (test.code !== 0) {
        throw new CompileError([], `${where}: Rego tests fail (\`opa test\`):\n${rewritePaths(`${test.stdout}\n${test.stderr}`, stage, p.displayOf)}`);
      }
      if (p.source.manifest.strictBuiltinErrors) {
        // `opa test` has no strict mode; evaluating every test package with `opa eval --strict-builtin-errors`
        // runs the same test rules the way the pod will, and fails on the first builtin error.
        const packages = [...new Set([...p.testFiles.values()].flatMap((t) => /^package\s+([\w.]+)/m.exec(t)?.[1] ?? []))];
        const strict = await runOpa(['eval', '--strict-builtin-errors', '--fail', '-d', 'bundle', '-d', 'tests', `[${packages.map((pkg) => `data.${pkg}`).join(', ')}]`], { cwd: stage });
        if (strict.code !== 0) {
          throw new CompileError([], `${where}: Rego tests hit a builtin error, and the workload sets strictBuiltinErrors (a pod would deny that call):\n${rewritePaths(`${strict.stdout}\n${strict.stderr}`, stage, p.displayOf)}`);
        }
      }
    }
    onStep('build');
    atomicWrite(join(stage, 'bundle', '.manifest'), JSON.stringify({ roots: ['warden'], revision: p.contentHash.slice(0, 12) }));
    const build = await runOpa(
      ['build', '-t', 'wasm', ...WORKLOAD_ENTRYPOINTS.flatMap((e) => ['-e', e]), '-b', '.', '-o', join(stage, 'out.tar.gz')],
      { cwd: join(stage, 'bundle') },
    );
    if (build.code !== 0) throw new CompileError([], `${where}: \`opa build -t wasm\` failed:\n${rewritePaths(build.stderr || build.stdout, stage, p.displayOf)}`);
    return readFileSync(join(stage, 'out.tar.gz'));
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

/** What every workload's build shares: the repository, where outputs and the OPA cache go, the key. */
interface BuildRun {
  opts: BuildOptions;
  repo: PolicyRepo;
  out: string;
  cacheDir: string;
  key: SigningKey;
  now: () => Date;
}

/** One workload built and signed in memory, written only once every workload has built. */
interface StagedBuild {
  build: WorkloadBuild;
  /** Output path → content. */
  files: Map<string, Uint8Array>;
  record: BuildRecord;
}

// The record next to the bundle says it was built from this very revision and generation, signed with
// this key, and the bundle is still the one it was.
function upToDate(recordPath: string, bundlePath: string, record: Omit<BuildRecord, 'workload' | 'contentHash' | 'bundleSha256'>): boolean {
  if (!existsSync(recordPath) || !existsSync(bundlePath)) return false;
  const prev = JSON.parse(readFileSync(recordPath, 'utf8')) as BuildRecord;
  return prev.revision === record.revision && prev.generation === record.generation && prev.keyId === record.keyId && prev.bundleSha256 === sha256(readFileSync(bundlePath));
}

// OPA's output for the workload's content: from the cache (the bundle is only re-signed), else compiled.
async function opaOutput(p: Prepared, run: BuildRun): Promise<{ opaOut: Buffer; status: 'built' | 'resigned'; cached: string }> {
  const cached = join(run.cacheDir, `${p.contentHash}.tar.gz`);
  if (existsSync(cached)) return { opaOut: readFileSync(cached), status: 'resigned', cached };
  const opaOut = await compileWithOpa(p, (step) => run.opts.onProgress?.({ type: 'step', workload: p.source.manifest.name, step }));
  return { opaOut, status: 'built', cached };
}

// `opa build -t wasm` reformats the Rego it packs (dropping comments, and mangling rules that only
// alias another rule); ship the exact sources that were checked, tested and compiled instead.
function restoreSources(files: Map<string, Uint8Array>, p: Prepared): void {
  for (const name of [...files.keys()]) {
    if (!name.endsWith('.rego')) continue;
    const source = p.bundleFiles.get(name);
    if (source === undefined) throw new CompileError([], `${p.source.display}: opa build produced an unexpected module ${name}`);
    files.set(name, Buffer.from(source));
  }
}

// Warden's `.manifest` over OPA's: the revision, and the workload facts pods and the engine read.
function stampManifest(files: Map<string, Uint8Array>, p: Prepared, run: BuildRun, version: { revision: string; commit: string; generation: number }, read: InputRead): BundleMetadata {
  const opaManifest = JSON.parse(Buffer.from(files.get('.manifest')!).toString('utf8')) as BundleManifest;
  const metadata: BundleMetadata = {
    workload: p.source.manifest.name,
    namespace: p.source.manifest.namespace,
    principal: p.source.principal,
    mode: p.source.manifest.mode,
    commit: version.commit,
    generation: version.generation,
    contentHash: p.contentHash,
    builtAt: run.now().toISOString(),
    warden: WARDEN_VERSION,
    ...(p.source.manifest.strictBuiltinErrors ? { strictBuiltinErrors: true } : {}),
    ...(p.source.manifest.limits ? { limits: p.source.manifest.limits } : {}),
    inputPaths: read.paths,
    inputKeys: read.keys,
  };
  const manifest: BundleManifest = { revision: version.revision, roots: ['warden'], wasm: opaManifest.wasm ?? [], rego_version: 1, metadata: { ...metadata } };
  files.set('.manifest', Buffer.from(JSON.stringify(manifest)));
  return metadata;
}

// The input paths the Rego reads and the keys it names, content-addressed like OPA's output (one `opa parse` per module).
async function inputPathsFor(p: Prepared, run: BuildRun): Promise<InputRead> {
  const pathsCache = join(run.cacheDir, `${p.contentHash}.input-paths-v${INPUT_PATHS_VERSION}.json`);
  if (existsSync(pathsCache)) return JSON.parse(readFileSync(pathsCache, 'utf8')) as InputRead;
  const read = await inputReadOf(p.bundleFiles, p.source.display, WORKLOAD_ENTRYPOINTS);
  atomicWrite(pathsCache, JSON.stringify(read));
  return read;
}

// Prove the bundle opens (its compiled spec included), loads and decides with the runtime pods use,
// before anyone receives it.
async function proveLoads(files: Map<string, Uint8Array>, p: Prepared, metadata: BundleMetadata): Promise<void> {
  try {
    const bundle = await openBundle(writeArchive(files), 'unsigned-ok');
    await Policy.load(bundle, { limits: withLimits(SIDECAR_LIMITS, metadata.limits, `${p.source.display}/workload.yaml`) });
  } catch (err) {
    if (err instanceof BundleError) throw new CompileError([], `${p.source.display}: ${err.message}`);
    throw err;
  }
}

/** Build one workload: nothing when its bundle is up to date, else OPA's output (cached or compiled), stamped, proven to load, signed. */
async function buildWorkload(p: Prepared, run: BuildRun): Promise<StagedBuild | undefined> {
  const { opts, out, key } = run;
  const name = p.source.manifest.name;
  const started = performance.now();
  opts.onProgress?.({ type: 'start', workload: name });
  const { commit, generation } = await policyVersion(run.repo.root, [p.source.dir, join(run.repo.root, 'lib'), join(run.repo.root, 'warden.yaml')], opts.generation);
  const revision = `${commit.slice(0, 12)}-${p.contentHash.slice(0, 12)}`;
  const bundlePath = join(out, `${name}.tar.gz`);
  const generatedPath = join(out, `${name}.generated.rego`);
  const result = (status: WorkloadStatus): WorkloadBuild => ({
    workload: name,
    namespace: p.source.manifest.namespace,
    revision,
    generation,
    contentHash: p.contentHash,
    status,
    bundle: bundlePath,
    generated: generatedPath,
    ms: Math.round(performance.now() - started),
  });
  if (upToDate(join(out, `${name}.build.json`), bundlePath, { revision, generation, keyId: key.keyId })) {
    opts.onProgress?.({ type: 'done', workload: name, status: 'unchanged', ms: result('unchanged').ms });
    return undefined;
  }
  const { opaOut, status, cached } = await opaOutput(p, run);
  opts.onProgress?.({ type: 'step', workload: name, step: 'sign' });
  const files = await readArchive(opaOut);
  restoreSources(files, p);
  const metadata = stampManifest(files, p, run, { revision, commit, generation }, await inputPathsFor(p, run));
  await proveLoads(files, p, metadata);
  if (status === 'built') atomicWrite(cached, opaOut);
  const signatures = await signBundle(files, { key: key.key, algorithm: key.algorithm, keyId: key.keyId, ...(opts.scope ? { scope: opts.scope } : {}) }, () => run.now().getTime());
  files.set('.signatures.json', signatures);
  const archive = writeArchive(files);
  opts.onProgress?.({ type: 'done', workload: name, status, ms: Math.round(performance.now() - started) });
  return {
    build: result(status),
    files: new Map([
      [bundlePath, archive],
      [generatedPath, Buffer.from(p.generatedRego)],
    ]),
    record: { workload: name, revision, generation, contentHash: p.contentHash, keyId: key.keyId, bundleSha256: sha256(archive) },
  };
}

// A workload left as it was: its build as its record tells it.
function unchangedBuild(p: Prepared, out: string): WorkloadBuild {
  const rec = JSON.parse(readFileSync(join(out, `${p.source.manifest.name}.build.json`), 'utf8')) as BuildRecord;
  return {
    workload: rec.workload,
    namespace: p.source.manifest.namespace,
    revision: rec.revision,
    generation: rec.generation ?? 0,
    contentHash: rec.contentHash,
    status: 'unchanged',
    bundle: join(out, `${rec.workload}.tar.gz`),
    generated: join(out, `${rec.workload}.generated.rego`),
    ms: 0,
  };
}

/** Build every workload of the repository (or `only` some); throws CompileError/SigningError with everything wrong. */
export async function buildRepo(opts: BuildOptions): Promise<BuildResult> {
  const cwd = opts.cwd ?? process.cwd();
  const repo = loadRepo(resolve(cwd, opts.repo), cwd);
  const { key, dev } = await resolveSigningKey(opts, cwd);
  const run: BuildRun = { opts, repo, out: resolve(cwd, opts.out), cacheDir: resolve(cwd, opts.cacheDir ?? '.warden/cache/opa'), key, now: opts.now ?? (() => new Date()) };
  const { out } = run;
  const diagnostics: Diagnostic[] = [];
  const selected = repo.workloads.filter((w) => !opts.only || opts.only.includes(w.manifest.name));
  for (const name of opts.only ?? []) {
    if (!repo.workloads.some((w) => w.manifest.name === name)) throw new CompileError([{ file: repo.display, message: `no workload named ${name} (have: ${repo.workloads.map((w) => w.manifest.name).join(', ')})`, severity: 'error' }]);
  }
  const prepared = selected.map((w) => prepare(repo, w, diagnostics, cwd)).filter((p): p is Prepared => !!p);
  diagnostics.push(...typoWarnings(repo, prepared));
  const errors = diagnostics.filter((d) => d.severity === 'error');
  if (errors.length > 0) throw new CompileError(diagnostics, `the policy repository ${repo.display} does not compile`);

  const staged: StagedBuild[] = [];
  await runPool(prepared, opts.concurrency ?? Math.max(1, cpus().length), async (p) => {
    const s = await buildWorkload(p, run);
    if (s) staged.push(s);
  });

  // Every workload built: now write, each file atomically.
  const verificationKey = join(out, 'verification-key.pem');
  for (const s of staged) {
    for (const [path, data] of s.files) atomicWrite(path, data);
    atomicWrite(join(out, `${s.build.workload}.build.json`), `${JSON.stringify(s.record, null, 2)}\n`);
  }
  atomicWrite(verificationKey, key.publicKey.export({ type: 'spki', format: 'pem' }) as string);
  const all = prepared.map((p) => staged.find((x) => x.build.workload === p.source.manifest.name)?.build ?? unchangedBuild(p, out));
  // The workload bundles are served as soon as they are written, whatever becomes of the admission rules.
  writeIndex(out, key.keyId, key.algorithm);
  // The admission bundle is not a workload: index.json lists it apart. `--only` builds workloads alone.
  const admission = opts.only
    ? undefined
    : await buildAdmission({ root: repo.root, out, key, ...(await policyVersion(repo.root, [join(repo.root, 'admission')], opts.generation)), warden: WARDEN_VERSION, now: run.now, ...(opts.scope ? { scope: opts.scope } : {}) });
  if (admission?.status === 'built') writeIndex(out, key.keyId, key.algorithm);
  return { workloads: all, warnings: diagnostics.filter((d) => d.severity === 'warning'), keyId: key.keyId, verificationKey, usedDevelopmentKey: dev, ...(admission ? { admission } : {}) };
}

/**
 * `index.json` in the output folder: every workload bundle there with its revision, and the admission
 * bundle apart (`admission`), as the bundle server serves them. Only a bundle that matches its record.
 */
function writeIndex(out: string, keyId: string, algorithm: SigningAlgorithm): void {
  const bundles: Record<string, { revision: string; generation: number; sha256: string }> = {};
  for (const name of listRecords(out)) {
    const rec = JSON.parse(readFileSync(join(out, name), 'utf8')) as BuildRecord;
    if (existsSync(join(out, `${rec.workload}.tar.gz`))) bundles[rec.workload] = { revision: rec.revision, generation: rec.generation ?? 0, sha256: rec.bundleSha256 };
  }
  const admission = admissionEntry(out);
  atomicWrite(join(out, 'index.json'), `${JSON.stringify({ keyId, algorithm, bundles, ...(admission ? { admission } : {}) }, null, 2)}\n`);
}

function admissionEntry(out: string): { revision: string; sha256: string } | undefined {
  const bundle = join(out, `${ADMISSION_BUNDLE}.tar.gz`);
  const record = join(out, `${ADMISSION_BUNDLE}.record.json`);
  if (!existsSync(bundle) || !existsSync(record)) return undefined;
  const rec = JSON.parse(readFileSync(record, 'utf8')) as { revision: string; sha256: string };
  return createHash('sha256').update(readFileSync(bundle)).digest('hex') === rec.sha256 ? { revision: rec.revision, sha256: rec.sha256 } : undefined;
}

function listRecords(out: string): string[] {
  try {
    return readdirSync(out).filter((f) => f.endsWith('.build.json')).sort();
  } catch {
    return [];
  }
}

export { SigningError };
