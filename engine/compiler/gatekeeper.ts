// Gatekeeper ConstraintTemplates → WASM, one module per template, by the real OPA. Templates are Rego
// v0 (`violation[{"msg": msg}] { … }`), so each is built on its own with `--v0-compatible` and its
// `libs`; the module's entrypoint is `<package>/violation`.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { constraint as constraintFormat, constraintTemplate as templateFormat, type Constraint, type ConstraintTemplate } from '../../formats/gatekeeper.js';
import { readArchive } from '../../runtime/archive.js';
import { runOpa } from '../toolchain/opa.js';
import { CompileError } from './compile-error.js';

/** The admission target Gatekeeper's templates are written for. */
export const GATEKEEPER_TARGET = 'admission.k8s.gatekeeper.sh';

/** The Rego (and libs) of a template's admission target, wherever the template version keeps it. */
export function templateRego(t: ConstraintTemplate): { rego: string; libs: string[] } | undefined {
  const target = t.spec.targets.find((x) => x.target === GATEKEEPER_TARGET);
  if (!target) return undefined;
  if (target.rego) return { rego: target.rego, libs: target.libs ?? [] };
  const code = target.code?.find((c) => c.engine === 'Rego');
  if (code?.source.rego) return { rego: code.source.rego, libs: code.source.libs ?? [] };
  return undefined;
}

/** The package a Rego module declares (`package a.b` → `a.b`). */
export function regoPackage(rego: string): string | undefined {
  return /^\s*package\s+([A-Za-z_][\w.]*)/m.exec(rego)?.[1];
}

/** One template compiled: its kind, entrypoint and WASM bytes. */
export interface TemplateBuild {
  name: string;
  kind: string;
  entrypoint: string;
  wasm: Buffer;
}

/** Compile one template with `opa build -t wasm --v0-compatible`; `where` names it in errors. */
export async function compileTemplate(t: ConstraintTemplate, where: string): Promise<TemplateBuild> {
  const src = templateRego(t);
  if (!src) throw new CompileError([{ file: where, message: `template ${t.metadata.name} has no Rego for target ${GATEKEEPER_TARGET} (CEL-only templates are not supported)`, severity: 'error' }]);
  const pkg = regoPackage(src.rego);
  if (!pkg) throw new CompileError([{ file: where, message: `template ${t.metadata.name}: its Rego has no package clause`, severity: 'error' }]);
  const entrypoint = `${pkg.replace(/\./g, '/')}/violation`;
  const stage = mkdtempSync(join(tmpdir(), `warden-gk-${t.metadata.name}-`));
  try {
    writeFileSync(join(stage, 'template.rego'), src.rego);
    src.libs.forEach((lib, i) => writeFileSync(join(stage, `lib${i}.rego`), lib));
    const files = ['template.rego', ...src.libs.map((_, i) => `lib${i}.rego`)];
    const build = await runOpa(['build', '-t', 'wasm', '--v0-compatible', '-e', entrypoint, '-o', 'out.tar.gz', ...files], { cwd: stage });
    if (build.code !== 0) {
      throw new CompileError([{ file: where, message: `template ${t.metadata.name}: \`opa build -t wasm --v0-compatible\` failed:\n${(build.stderr || build.stdout).split(`${stage}/`).join('').trim()}`, severity: 'error' }]);
    }
    const out = await readArchive(readFileSync(join(stage, 'out.tar.gz')));
    const wasm = out.get('policy.wasm');
    if (!wasm) throw new CompileError([{ file: where, message: `template ${t.metadata.name}: opa build produced no policy.wasm`, severity: 'error' }]);
    return { name: t.metadata.name, kind: t.spec.crd.spec.names.kind, entrypoint, wasm };
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

/** Templates and constraints found in YAML text (any number of documents; other kinds ignored). */
export interface GatekeeperDocs {
  templates: Array<{ template: ConstraintTemplate; file: string }>;
  constraints: Array<{ constraint: Constraint; file: string }>;
}

// Go's YAML parser (what Kubernetes and Gatekeeper read templates with) accepts a multi-line
// double-quoted scalar whose continuation lines are indented like its key; the `yaml` package does
// not. Used only as a retry after a failed parse: indent such continuation lines one level deeper.
function indentQuotedContinuations(text: string): string {
  const lines = text.split('\n');
  const closes = (s: string) => /(^|[^\\])"/.test(s.replace(/\\\\/g, ''));
  let open = false;
  for (let i = 0; i < lines.length; i++) {
    if (open) {
      if (closes(lines[i]!)) open = false;
      lines[i] = `  ${lines[i]}`;
      continue;
    }
    const m = /^\s*(?:- )?[\w.-]+:\s+"(.*)$/.exec(lines[i]!);
    if (m && !closes(m[1]!)) open = true;
  }
  return lines.join('\n');
}

/** Split YAML documents into ConstraintTemplates and Constraints, validating each. */
export function readGatekeeperDocs(text: string, file: string, into: GatekeeperDocs = { templates: [], constraints: [] }): GatekeeperDocs {
  let docs = parseAllDocuments(text);
  if (docs.some((d) => d.errors.length > 0)) {
    const relaxed = parseAllDocuments(indentQuotedContinuations(text));
    if (relaxed.every((d) => d.errors.length === 0)) docs = relaxed;
  }
  for (const doc of docs) {
    if (doc.errors.length > 0) throw new CompileError([{ file, message: `not valid YAML: ${doc.errors[0]!.message}`, severity: 'error' }]);
    const value = doc.toJS() as { apiVersion?: string; kind?: string } | null;
    if (!value || typeof value !== 'object') continue;
    if (value.kind === 'ConstraintTemplate') into.templates.push({ template: templateFormat.parse(value, file), file });
    else if (value.apiVersion?.startsWith('constraints.gatekeeper.sh/')) into.constraints.push({ constraint: constraintFormat.parse(value, file), file });
  }
  return into;
}
