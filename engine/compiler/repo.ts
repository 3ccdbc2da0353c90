// The policy repository as users keep it in Git: warden.yaml, lib/ (shared Rego), workloads/<name>/.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { SchemaError, validator } from '../../formats/schema.js';
import { workloadManifest, workloadPrincipal, type WorkloadManifest } from '../../formats/workload.js';
import { CompileError, type Diagnostic } from './compile-error.js';
import { SourceDoc } from './source-doc.js';

/** Repository-wide settings (warden.yaml). */
export interface RepoConfig {
  apiVersion: 'warden.dev/v1alpha1';
  kind: 'PolicyRepository';
  trustDomain: string;
  /** Principals outside this repository's workloads that grants may name (used to spot typos). */
  principals?: string[];
}

const repoConfig = validator<RepoConfig>({
  type: 'object',
  additionalProperties: false,
  required: ['apiVersion', 'kind', 'trustDomain'],
  properties: {
    apiVersion: { const: 'warden.dev/v1alpha1' },
    kind: { const: 'PolicyRepository' },
    trustDomain: { type: 'string', pattern: '^[a-z0-9.-]+$' },
    principals: { type: 'array', items: { type: 'string', pattern: '^spiffe://' } },
  },
});

/** One workload folder. Paths are absolute; `display` paths are what errors show. */
export interface WorkloadSource {
  manifest: WorkloadManifest;
  principal: string;
  dir: string;
  display: string;
  /** Every file of the folder (relative), for the content hash. */
  files: string[];
  rego: string[];
  tests: string[];
  openapi?: SourceDoc;
  mcp?: SourceDoc;
}

/** The whole repository, loaded and checked for structure (not yet compiled). */
export interface PolicyRepo {
  root: string;
  display: string;
  config: RepoConfig;
  /** lib/ Rego files (relative to lib/) and their tests. */
  lib: { rego: string[]; tests: string[] };
  workloads: WorkloadSource[];
  /** Folders besides workloads/ and lib/ that other compilers own (admission/). */
}

/** Every regular file under dir, relative, sorted; dotfiles and symlinks skipped. */
export function listFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(join(dir, rel)).sort()) {
      if (name.startsWith('.')) continue;
      const r = rel ? `${rel}/${name}` : name;
      const st = statSync(join(dir, r), { throwIfNoEntry: false });
      if (st?.isDirectory()) walk(r);
      else if (st?.isFile()) out.push(r);
    }
  };
  walk('');
  return out;
}

const isTest = (f: string) => f.endsWith('_test.rego');

/** What reading the repository shares: how paths are shown, where problems go, the names seen so far. */
interface RepoReading {
  shown: (p: string) => string;
  diagnostics: Diagnostic[];
  /** Workload name → the manifest that declared it. */
  names: Map<string, string>;
  config: RepoConfig;
}

// warden.yaml, or the defaults when there is none.
function readConfig(abs: string, r: Pick<RepoReading, 'shown' | 'diagnostics'>): RepoConfig {
  const configPath = join(abs, 'warden.yaml');
  const defaults: RepoConfig = { apiVersion: 'warden.dev/v1alpha1', kind: 'PolicyRepository', trustDomain: 'cluster.local' };
  if (!existsSync(configPath)) return defaults;
  const doc = SourceDoc.read(configPath, r.shown(configPath));
  for (const i of repoConfig.check(doc.value)) r.diagnostics.push({ file: doc.file, line: doc.lineOf(i.path.split('.').filter(Boolean)), path: i.path || undefined, message: i.message, severity: 'error' });
  return r.diagnostics.length === 0 ? (doc.value as RepoConfig) : defaults;
}

// A workload folder's workload.yaml, checked against its format and its folder; undefined when unusable.
function readManifest(r: RepoReading, name: string, dir: string): { doc: SourceDoc; manifest: WorkloadManifest } | undefined {
  const manifestPath = join(dir, 'workload.yaml');
  if (!existsSync(manifestPath)) {
    r.diagnostics.push({ file: r.shown(dir), message: 'workload folder has no workload.yaml', severity: 'error' });
    return undefined;
  }
  let doc: SourceDoc;
  try {
    doc = SourceDoc.read(manifestPath, r.shown(manifestPath));
  } catch (err) {
    if (err instanceof CompileError) r.diagnostics.push(...err.diagnostics);
    return undefined;
  }
  let manifest: WorkloadManifest;
  try {
    manifest = workloadManifest.parse(doc.value, doc.file);
  } catch (err) {
    if (!(err instanceof SchemaError)) throw err;
    for (const i of err.issues) {
      const path = i.path.split(/\.|\[(\d+)\]/).filter(Boolean).map((p) => (/^\d+$/.test(p) ? Number(p) : p));
      r.diagnostics.push({ file: doc.file, line: doc.lineOf(path), path: i.path || undefined, message: i.message, severity: 'error' });
    }
    return undefined;
  }
  if (manifest.name !== name) {
    r.diagnostics.push({ file: doc.file, line: doc.lineOf(['name']), path: 'name', message: `workload name "${manifest.name}" must equal its folder name "${name}"`, severity: 'error' });
  }
  if (r.names.has(manifest.name)) r.diagnostics.push({ file: doc.file, message: `workload ${manifest.name} is declared twice`, severity: 'error' });
  // The admission bundle is served under this name (bundles/admission.tar.gz, GET /bundles/admission).
  if (manifest.name === 'admission') r.diagnostics.push({ file: doc.file, line: doc.lineOf(['name']), path: 'name', message: 'workload name "admission" is reserved for the admission bundle', severity: 'error' });
  r.names.set(manifest.name, doc.file);
  return { doc, manifest };
}

// A spec file the manifest names (specs.openapi, specs.mcp): inside the workload folder, present, readable.
function readSpecFile(r: RepoReading, dir: string, doc: SourceDoc, manifest: WorkloadManifest, key: 'openapi' | 'mcp'): SourceDoc | undefined {
  const rel = manifest.specs?.[key];
  if (!rel) return undefined;
  const p = resolve(dir, rel);
  if (relative(dir, p).startsWith('..')) {
    r.diagnostics.push({ file: doc.file, line: doc.lineOf(['specs', key]), path: `specs.${key}`, message: 'spec files must live inside the workload folder', severity: 'error' });
    return undefined;
  }
  if (!existsSync(p)) {
    r.diagnostics.push({ file: doc.file, line: doc.lineOf(['specs', key]), path: `specs.${key}`, message: `file ${rel} does not exist`, severity: 'error' });
    return undefined;
  }
  try {
    return SourceDoc.read(p, r.shown(p));
  } catch (err) {
    if (err instanceof CompileError) r.diagnostics.push(...err.diagnostics);
    return undefined;
  }
}

// One workload folder: its manifest, its spec files and its Rego.
function readWorkload(r: RepoReading, name: string, dir: string): WorkloadSource | undefined {
  const read = readManifest(r, name, dir);
  if (!read) return undefined;
  const { doc, manifest } = read;
  const files = listFiles(dir);
  if (manifest.specs?.mcp && !manifest.mcp) {
    r.diagnostics.push({ file: doc.file, line: doc.lineOf(['specs', 'mcp']), path: 'mcp', message: 'a workload with an MCP tool list must say where its MCP endpoint is (mcp.endpoint)', severity: 'error' });
  }
  const openapi = readSpecFile(r, dir, doc, manifest, 'openapi');
  const mcp = readSpecFile(r, dir, doc, manifest, 'mcp');
  return {
    manifest,
    principal: workloadPrincipal(manifest, r.config.trustDomain),
    dir,
    display: r.shown(dir),
    files,
    rego: files.filter((f) => f.endsWith('.rego') && !isTest(f)),
    tests: files.filter(isTest),
    ...(openapi ? { openapi } : {}),
    ...(mcp ? { mcp } : {}),
  };
}

/** Load the repository at `root`; every structural problem is collected into one CompileError. */
export function loadRepo(root: string, cwd = process.cwd()): PolicyRepo {
  const abs = resolve(root);
  const display = relative(cwd, abs) || '.';
  const shown = (p: string) => relative(cwd, p) || p;
  const diagnostics: Diagnostic[] = [];
  if (!existsSync(abs) || !statSync(abs).isDirectory()) {
    throw new CompileError([{ file: display, message: 'policy repository folder does not exist', severity: 'error' }]);
  }
  const reading: RepoReading = { shown, diagnostics, names: new Map(), config: readConfig(abs, { shown, diagnostics }) };
  const libFiles = listFiles(join(abs, 'lib')).filter((f) => f.endsWith('.rego'));
  const workloadsDir = join(abs, 'workloads');
  const workloads: WorkloadSource[] = [];
  for (const name of existsSync(workloadsDir) ? readdirSync(workloadsDir).sort() : []) {
    const dir = join(workloadsDir, name);
    if (name.startsWith('.') || !statSync(dir).isDirectory()) continue;
    const w = readWorkload(reading, name, dir);
    if (w) workloads.push(w);
  }
  if (diagnostics.some((d) => d.severity === 'error')) throw new CompileError(diagnostics, `the policy repository ${display} has errors`);
  return { root: abs, display, config: reading.config, lib: { rego: libFiles.filter((f) => !isTest(f)), tests: libFiles.filter(isTest) }, workloads };
}
