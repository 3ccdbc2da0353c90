// Problems found while compiling the policy repository, each with the file and line it comes from.
import { UserError } from '../../formats/user-error.js';

/** One problem in the policy repository. */
export interface Diagnostic {
  file: string;
  line?: number;
  /** JSON path inside the file (e.g. paths./orders/{id}.post.x-warden-authz.allow[0].scopes). */
  path?: string;
  message: string;
  severity: 'error' | 'warning';
}

/** Format as `file:line: path: message`, the way editors and CI logs link it. */
export function formatDiagnostic(d: Diagnostic): string {
  const where = d.line ? `${d.file}:${d.line}` : d.file;
  return `${where}: ${d.severity === 'warning' ? 'warning: ' : ''}${d.path ? `${d.path}: ` : ''}${d.message}`;
}

/** Thrown when the repository does not compile; carries every error found, not just the first. */
export class CompileError extends UserError {
  override name = 'CompileError';
  constructor(
    readonly diagnostics: Diagnostic[],
    summary?: string,
  ) {
    super([summary ?? `${diagnostics.length} error(s) in the policy repository`, ...diagnostics.map((d) => `  ${formatDiagnostic(d)}`)].join('\n'));
  }
}
