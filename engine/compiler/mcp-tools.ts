// MCP tool lists (the `tools/list` result a server returns, plus optional resources and prompts),
// with the standard tool annotations and Warden's `x-warden-authz` extension.
import { AUTHZ_EXTENSION, authzAnnotation, type AuthzAnnotation } from '../../formats/authz.js';
import { toolAnnotationsSchema, type ToolAnnotations } from '../../formats/compiled-spec.js';
import { validator } from '../../formats/schema.js';
import type { Diagnostic } from './compile-error.js';
import { jsonPath, type SourceDoc } from './source-doc.js';

/** A tool, resource or prompt as compiled: what the policy and the proxy know about it. */
export interface McpEntry {
  kind: 'tool' | 'resource' | 'prompt';
  /** Tool/prompt name, or resource URI. */
  name: string;
  description?: string;
  inputSchema?: unknown;
  annotations: ToolAnnotations;
  /** Destructive by MCP's defaults: not read-only, and destructiveHint not false. */
  destructive: boolean;
  readOnly: boolean;
  authz?: AuthzAnnotation;
  file: string;
  line?: number;
  authzLine?: number;
}

interface ToolListFile {
  tools: Array<Record<string, unknown>>;
  resources?: Array<Record<string, unknown>>;
  prompts?: Array<Record<string, unknown>>;
}

// The shape of a tools/list result, strict about what Warden reads and open to the rest (title, icons, _meta …).
const toolListFile = validator<ToolListFile>({
  type: 'object',
  required: ['tools'],
  additionalProperties: false,
  properties: {
    tools: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name', 'inputSchema'],
        properties: {
          name: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,128}$' },
          description: { type: 'string' },
          inputSchema: { type: 'object', required: ['type'], properties: { type: { const: 'object' } } },
          annotations: toolAnnotationsSchema,
        },
      },
    },
    resources: {
      type: 'array',
      items: { type: 'object', required: ['uri', 'name'], properties: { uri: { type: 'string', minLength: 1 }, name: { type: 'string' } } },
    },
    prompts: {
      type: 'array',
      items: { type: 'object', required: ['name'], properties: { name: { type: 'string', minLength: 1 } } },
    },
    nextCursor: { type: 'string' },
  },
});

function pathOf(i: { path: string }): Array<string | number> {
  return i.path ? i.path.split(/\.|\[(\d+)\]/).filter(Boolean).map((p) => (/^\d+$/.test(p) ? Number(p) : p)) : [];
}

/** Read a tool list file; problems are returned as diagnostics. */
export function readMcpTools(doc: SourceDoc): { entries: McpEntry[]; diagnostics: Diagnostic[] } {
  const diagnostics: Diagnostic[] = [];
  const err = (path: Array<string | number>, message: string, severity: 'error' | 'warning' = 'error') =>
    diagnostics.push({ file: doc.file, line: doc.lineOf(path), path: jsonPath(path) || undefined, message, severity });
  const issues = toolListFile.check(doc.value);
  if (issues.length > 0) {
    for (const i of issues) err(pathOf(i), i.message);
    return { entries: [], diagnostics };
  }
  const file = doc.value as ToolListFile;
  const entries: McpEntry[] = [];
  const seen = new Set<string>();
  const lists: Array<[McpEntry['kind'], 'tools' | 'resources' | 'prompts']> = [['tool', 'tools'], ['resource', 'resources'], ['prompt', 'prompts']];
  for (const [kind, key] of lists) {
    (file[key] ?? []).forEach((raw, index) => {
      const at: Array<string | number> = [key, index];
      const name = String(kind === 'resource' ? raw.uri : raw.name);
      if (seen.has(`${kind}:${name}`)) err(at, `${kind} "${name}" is listed twice`);
      seen.add(`${kind}:${name}`);
      let authz: AuthzAnnotation | undefined;
      if (raw[AUTHZ_EXTENSION] !== undefined) {
        const found = authzAnnotation.check(raw[AUTHZ_EXTENSION]);
        for (const i of found) err([...at, AUTHZ_EXTENSION, ...pathOf(i)], i.message);
        if (found.length === 0) authz = raw[AUTHZ_EXTENSION] as AuthzAnnotation;
        // An MCP call has no path parameters: such an entry would mask nothing.
        (authz?.sensitive ?? []).forEach((entry, si) => {
          if (entry.startsWith('path:')) err([...at, AUTHZ_EXTENSION, 'sensitive', si], `${entry}: a ${kind} has no path parameters (path: names one of an OpenAPI operation's); name an argument as a dotted field`);
        });
      } else {
        err(at, `${kind} ${name} has no ${AUTHZ_EXTENSION}; no caller is granted it by the spec (default deny)`, 'warning');
      }
      const annotations = (raw.annotations ?? {}) as ToolAnnotations;
      const readOnly = kind !== 'tool' || annotations.readOnlyHint === true;
      const destructive = kind === 'tool' && !readOnly && annotations.destructiveHint !== false;
      if (destructive && authz?.allow) {
        authz.allow.forEach((g, gi) => {
          if (g.destructive !== true && !authz?.public) {
            err([...at, AUTHZ_EXTENSION, 'allow', gi], `tool ${name} is destructive (MCP: not readOnlyHint, destructiveHint not false); this grant does not say "destructive: true", so it grants nothing`, 'warning');
          }
        });
      }
      if (destructive && authz?.public) err([...at, AUTHZ_EXTENSION, 'public'], `tool ${name} is destructive and cannot be public`);
      entries.push({
        kind,
        name,
        ...(typeof raw.description === 'string' ? { description: raw.description } : {}),
        ...(raw.inputSchema !== undefined ? { inputSchema: raw.inputSchema } : {}),
        annotations,
        destructive,
        readOnly,
        ...(authz ? { authz } : {}),
        file: doc.file,
        line: doc.lineOf(at),
        authzLine: doc.lineOf([...at, AUTHZ_EXTENSION]),
      });
    });
  }
  return { entries, diagnostics };
}
