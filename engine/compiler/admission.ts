// The admission target of `warden build`: policies/admission/ → bundles/admission.tar.gz, one signed
// OPA bundle holding the guardrails (Rego v1, package warden.admission, gated by opa check --strict and
// opa test, entrypoint warden/admission/violations) and one WASM module per Gatekeeper template found
// in policies/admission/gatekeeper/ (Rego v0), with the Constraints as data.gatekeeper.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { ADMISSION_ENTRYPOINT } from '../../formats/admission-review.js';
import type { BundleManifest } from '../../formats/bundle-manifest.js';
import type { CompiledTemplate, GatekeeperData } from '../../formats/gatekeeper.js';
import { readArchive, writeArchive } from '../../runtime/archive.js';
import { signBundle } from '../../runtime/signature.js';
import { OPA_VERSION, runOpa } from '../toolchain/opa.js';
import { CompileError, type Diagnostic } from './compile-error.js';
import { compileTemplate, readGatekeeperDocs, type GatekeeperDocs } from './gatekeeper.js';
import { listFiles } from './repo.js';
import type { SigningKey } from './signing-key.js';

/** Name of the admission bundle in the output folder and on the bundle server (not a workload: index.json lists it apart). */
export const ADMISSION_BUNDLE = 'admission';

/** Where the admission bundle carries its guardrails' Rego as written (path in bundle, + file + `.src`). */
export const ADMISSION_SOURCES = 'sources/admission/';

/** What was built. */
export interface AdmissionBuild {
  bundle: string;
  revision: string;
  status: 'built' | 'unchanged';
  rules: { guardrails: boolean; templates: number; constraints: number };
}

const sha256 = (b: string | Uint8Array) => createHash('sha256').update(b).digest('hex');

function write(path: string, data: string | Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

/**
 * Build the admission bundle if policies/admission/ exists (returns undefined otherwise).
 * `commit` is the repository's last commit for the folder and `generation` its place in the history
 * (engine/compiler/generation.ts); outputs are skipped when unchanged.
 */
export async function buildAdmission(opts: { root: string; out: string; key: SigningKey; commit: string; generation: number; warden: string; now: () => Date; scope?: string }): Promise<AdmissionBuild | undefined> {
  const dir = join(opts.root, 'admission');
  if (!existsSync(dir)) return undefined;
  const files = listFiles(dir);
  const rego = files.filter((f) => f.endsWith('.rego') && !f.startsWith('gatekeeper/') && !f.endsWith('_test.rego'));
  const tests = files.filter((f) => f.endsWith('_test.rego') && !f.startsWith('gatekeeper/'));
  const gkFiles = files.filter((f) => f.startsWith('gatekeeper/') && /\.ya?ml$/.test(f));
  const shown = (f: string) => relative(process.cwd(), join(dir, f)) || f;

  const h = createHash('sha256').update(`warden ${opts.warden}\0opa ${OPA_VERSION}\0key ${opts.key.keyId}\0`);
  for (const f of files) h.update(`\0${f}\0`).update(readFileSync(join(dir, f)));
  const contentHash = h.digest('hex');
  const revision = `${opts.commit.slice(0, 12)}-${contentHash.slice(0, 12)}`;
  const bundlePath = join(opts.out, `${ADMISSION_BUNDLE}.tar.gz`);
  const recordPath = join(opts.out, `${ADMISSION_BUNDLE}.record.json`);
  const docs: GatekeeperDocs = { templates: [], constraints: [] };
  for (const f of gkFiles) readGatekeeperDocs(readFileSync(join(dir, f), 'utf8'), shown(f), docs);
  const rules = { guardrails: rego.length > 0, templates: docs.templates.length, constraints: docs.constraints.length };
  if (existsSync(recordPath) && existsSync(bundlePath)) {
    const rec = JSON.parse(readFileSync(recordPath, 'utf8')) as { revision: string; generation?: number; sha256: string };
    if (rec.revision === revision && rec.generation === opts.generation && rec.sha256 === sha256(readFileSync(bundlePath))) return { bundle: bundlePath, revision, status: 'unchanged', rules };
  }

  const diagnostics = admissionProblems(dir, rego, docs, shown);
  if (diagnostics.length > 0) throw new CompileError(diagnostics, 'the admission rules do not compile');

  const bundleFiles = await admissionFiles(dir, rego, tests, docs, shown, { ...opts, revision, contentHash });
  const signatures = await signBundle(bundleFiles, { key: opts.key.key, algorithm: opts.key.algorithm, keyId: opts.key.keyId, ...(opts.scope ? { scope: opts.scope } : {}) }, () => opts.now().getTime());
  bundleFiles.set('.signatures.json', signatures);
  const archive = writeArchive(bundleFiles);
  write(bundlePath, archive);
  write(recordPath, `${JSON.stringify({ revision, generation: opts.generation, contentHash, sha256: sha256(archive) }, null, 2)}\n`);
  return { bundle: bundlePath, revision, status: 'built', rules };
}

// Every Constraint must have its template; every template a distinct kind; guardrail Rego in its package.
function admissionProblems(dir: string, rego: string[], docs: GatekeeperDocs, shown: (f: string) => string): Diagnostic[] {
  const diagnostics: Diagnostic[] = [];
  const kinds = new Map<string, string>();
  for (const t of docs.templates) {
    const kind = t.template.spec.crd.spec.names.kind;
    if (kinds.has(kind)) diagnostics.push({ file: t.file, message: `ConstraintTemplate kind ${kind} is also defined in ${kinds.get(kind)}`, severity: 'error' });
    kinds.set(kind, t.file);
  }
  for (const c of docs.constraints) {
    if (!kinds.has(c.constraint.kind)) diagnostics.push({ file: c.file, message: `Constraint ${c.constraint.metadata.name} is of kind ${c.constraint.kind}, which no ConstraintTemplate in ${shown('gatekeeper')} defines`, severity: 'error' });
  }
  // Guardrail Rego lives in warden.admission (the entrypoint's package) or below; tests anywhere else.
  for (const f of rego) {
    const text = readFileSync(join(dir, f), 'utf8');
    const lines = text.split('\n');
    const idx = lines.findIndex((l) => /^\s*package\s+/.test(l));
    const pkg = idx < 0 ? undefined : lines[idx]!.replace(/^\s*package\s+/, '').replace(/#.*/, '').trim();
    if (pkg !== undefined && !/^warden\.admission(\.|$)/.test(pkg)) {
      diagnostics.push({ file: shown(f), line: idx + 1, message: `package ${pkg} is not allowed here: admission guardrails must be in package warden.admission (or below it)`, severity: 'error' });
    }
  }
  return diagnostics;
}

// The bundle's files: the guardrails' WASM and sources, one module per Gatekeeper template, the
// Constraints as data, and the manifest (unsigned yet).
async function admissionFiles(
  dir: string,
  rego: string[],
  tests: string[],
  docs: GatekeeperDocs,
  shown: (f: string) => string,
  opts: { commit: string; generation: number; warden: string; now: () => Date; revision: string; contentHash: string },
): Promise<Map<string, Uint8Array>> {
  const { revision, contentHash } = opts;
  const bundleFiles = new Map<string, Uint8Array>();
  const wasm: Array<{ entrypoint: string; module: string }> = [];
  const [guardrails, templates] = await Promise.all([
    rego.length > 0 ? compileGuardrails(dir, rego, tests, shown) : Promise.resolve(undefined),
    Promise.all(docs.templates.map((t) => compileTemplate(t.template, t.file))),
  ]);
  if (guardrails) {
    for (const [name, bytes] of guardrails) if (name !== '.manifest') bundleFiles.set(name, bytes);
    wasm.push({ entrypoint: ADMISSION_ENTRYPOINT, module: '/policy.wasm' });
  }
  const compiled: CompiledTemplate[] = templates.map((t) => ({ name: t.name, kind: t.kind, entrypoint: t.entrypoint, module: `/gatekeeper/${t.name}.wasm` }));
  templates.forEach((t, i) => {
    bundleFiles.set(compiled[i]!.module.slice(1), t.wasm);
    wasm.push({ entrypoint: t.entrypoint, module: compiled[i]!.module });
  });
  const gk: GatekeeperData = { templates: compiled, constraints: docs.constraints.map((c) => c.constraint) };
  bundleFiles.set('gatekeeper/data.json', Buffer.from(JSON.stringify(gk)));
  // Roots: the whole namespace, because Gatekeeper packages are named by their authors (not under warden/).
  const manifest: BundleManifest = {
    revision,
    roots: [''],
    wasm,
    rego_version: 1,
    metadata: { kind: 'admission', commit: opts.commit, generation: opts.generation, contentHash, builtAt: opts.now().toISOString(), warden: opts.warden },
  };
  bundleFiles.set('.manifest', Buffer.from(JSON.stringify(manifest)));
  return bundleFiles;
}

// Guardrails: stage (Rego under admission/, data.json at warden/admission_config), check, test, build.
async function compileGuardrails(dir: string, rego: string[], tests: string[], shown: (f: string) => string): Promise<Map<string, Buffer>> {
  const stage = mkdtempSync(join(tmpdir(), 'warden-admission-'));
  const clean = (text: string) => text.split(`${stage}/bundle/admission/`).join(shown('')).split(`${stage}/tests/`).join(shown('')).split(`${stage}/`).join('').trim();
  try {
    for (const f of rego) write(join(stage, 'bundle', 'admission', f), readFileSync(join(dir, f)));
    for (const f of tests) write(join(stage, 'tests', f), readFileSync(join(dir, f)));
    if (existsSync(join(dir, 'data.json'))) write(join(stage, 'bundle', 'warden', 'admission_config', 'data.json'), readFileSync(join(dir, 'data.json')));
    const dirs = ['bundle', ...(tests.length ? ['tests'] : [])];
    const check = await runOpa(['check', '--strict', ...dirs], { cwd: stage });
    if (check.code !== 0) throw new CompileError([], `${shown('')}: admission Rego does not pass \`opa check --strict\`:\n${clean(check.stderr || check.stdout)}`);
    if (tests.length) {
      const test = await runOpa(['test', ...dirs], { cwd: stage });
      if (test.code !== 0) throw new CompileError([], `${shown('')}: admission Rego tests fail (\`opa test\`):\n${clean(`${test.stdout}\n${test.stderr}`)}`);
    }
    write(join(stage, 'bundle', '.manifest'), JSON.stringify({ roots: ['warden'], revision: 'admission' }));
    const build = await runOpa(['build', '-t', 'wasm', '-e', ADMISSION_ENTRYPOINT, '-b', '.', '-o', join(stage, 'out.tar.gz')], { cwd: join(stage, 'bundle') });
    if (build.code !== 0) throw new CompileError([], `${shown('')}: \`opa build -t wasm\` failed:\n${clean(build.stderr || build.stdout)}`);
    const files = await readArchive(readFileSync(join(stage, 'out.tar.gz')));
    // opa build -t wasm keeps only what the WASM does not already hold, so the violation rules' source is
    // gone from the bundle; ship it as inert text (OPA loads no .src file) for `warden explain` to cite.
    for (const f of rego) files.set(`${ADMISSION_SOURCES}${f}.src`, readFileSync(join(dir, f)));
    return files;
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}
