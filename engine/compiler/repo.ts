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

/** Load the repository at `root`; every structural problem is collected into one CompileError. */
export function loadRepo(root: string, cwd = process.cwd()): PolicyRepo {
  const abs = resolve(root);
  const display = relative(cwd, abs) || '.';
  const shown = (p: string) => relative(cwd, p) || p;
  const diagnostics: Diagnostic[] = [];
  if (!existsSync(abs) || !statSync(abs).isDirectory()) {
    throw new CompileError([{ file: display, message: 'policy repository folder does not exist', severity: 'error' }]);
  }
  const configPath = join(abs, 'warden.yaml');
  let config: RepoConfig = { apiVersion: 'warden.dev/v1alpha1', kind: 'PolicyRepository', trustDomain: 'cluster.local' };
  if (existsSync(configPath)) {
    const doc = SourceDoc.read(configPath, shown(configPath));
    for (const i of repoConfig.check(doc.value)) diagnostics.push({ file: doc.file, line: doc.lineOf(i.path.split('.').filter(Boolean)), path: i.path || undefined, message: i.message, severity: 'error' });
    if (diagnostics.length === 0) config = doc.value as RepoConfig;
  }
  const libFiles = listFiles(join(abs, 'lib')).filter((f) => f.endsWith('.rego'));
  const workloadsDir = join(abs, 'workloads');
  const workloads: WorkloadSource[] = [];
  const names = new Map<string, string>();
  for (const name of existsSync(workloadsDir) ? readdirSync(workloadsDir).sort() : []) {
    const dir = join(workloadsDir, name);
    if (name.startsWith('.') || !statSync(dir).isDirectory()) continue;
    const manifestPath = join(dir, 'workload.yaml');
    if (!existsSync(manifestPath)) {
      diagnostics.push({ file: shown(dir), message: 'workload folder has no workload.yaml', severity: 'error' });
      continue;
    }
    let doc: SourceDoc;
    try {
      doc = SourceDoc.read(manifestPath, shown(manifestPath));
    } catch (err) {
      if (err instanceof CompileError) diagnostics.push(...err.diagnostics);
      continue;
    }
    let manifest: WorkloadManifest;
    try {
      manifest = workloadManifest.parse(doc.value, doc.file);
    } catch (err) {
      if (!(err instanceof SchemaError)) throw err;
      for (const i of err.issues) {
        const path = i.path.split(/\.|\[(\d+)\]/).filter(Boolean).map((p) => (/^\d+$/.test(p) ? Number(p) : p));
        diagnostics.push({ file: doc.file, line: doc.lineOf(path), path: i.path || undefined, message: i.message, severity: 'error' });
      }
      continue;
    }
    if (manifest.name !== name) {
      diagnostics.push({ file: doc.file, line: doc.lineOf(['name']), path: 'name', message: `workload name "${manifest.name}" must equal its folder name "${name}"`, severity: 'error' });
    }
    if (names.has(manifest.name)) diagnostics.push({ file: doc.file, message: `workload ${manifest.name} is declared twice`, severity: 'error' });
    // The admission bundle is served under this name (bundles/admission.tar.gz, GET /bundles/admission).
    if (manifest.name === 'admission') diagnostics.push({ file: doc.file, line: doc.lineOf(['name']), path: 'name', message: 'workload name "admission" is reserved for the admission bundle', severity: 'error' });
    names.set(manifest.name, doc.file);
    const files = listFiles(dir);
    const spec = (key: 'openapi' | 'mcp'): SourceDoc | undefined => {
      const rel = manifest.specs?.[key];
      if (!rel) return undefined;
      const p = resolve(dir, rel);
      if (relative(dir, p).startsWith('..')) {
        diagnostics.push({ file: doc.file, line: doc.lineOf(['specs', key]), path: `specs.${key}`, message: 'spec files must live inside the workload folder', severity: 'error' });
        return undefined;
      }
      if (!existsSync(p)) {
        diagnostics.push({ file: doc.file, line: doc.lineOf(['specs', key]), path: `specs.${key}`, message: `file ${rel} does not exist`, severity: 'error' });
        return undefined;
      }
      try {
        return SourceDoc.read(p, shown(p));
      } catch (err) {
        if (err instanceof CompileError) diagnostics.push(...err.diagnostics);
        return undefined;
      }
    };
    if (manifest.specs?.mcp && !manifest.mcp) {
      diagnostics.push({ file: doc.file, line: doc.lineOf(['specs', 'mcp']), path: 'mcp', message: 'a workload with an MCP tool list must say where its MCP endpoint is (mcp.endpoint)', severity: 'error' });
    }
    const openapi = spec('openapi');
    const mcp = spec('mcp');
    workloads.push({
      manifest,
      principal: workloadPrincipal(manifest, config.trustDomain),
      dir,
      display: shown(dir),
      files,
      rego: files.filter((f) => f.endsWith('.rego') && !isTest(f)),
      tests: files.filter(isTest),
      ...(openapi ? { openapi } : {}),
      ...(mcp ? { mcp } : {}),
    });
  }
  if (diagnostics.some((d) => d.severity === 'error')) throw new CompileError(diagnostics, `the policy repository ${display} has errors`);
  return { root: abs, display, config, lib: { rego: libFiles.filter((f) => !isTest(f)), tests: libFiles.filter(isTest) }, workloads };
}
