// OpenAPI 3.0/3.1 specs: the operations a workload serves, their route templates and their
// `x-warden-authz` annotations, checked for what Warden relies on (with file:line on every error).
import { AUTHZ_EXTENSION, authzAnnotation, type AuthzAnnotation } from '../../formats/authz.js';
import type { RouteSegment } from '../../formats/compiled-spec.js';
import type { Diagnostic } from './compile-error.js';
import { jsonPath, type SourceDoc } from './source-doc.js';

/** An operation as the router sees it. */
export interface HttpOperation {
  id: string;
  method: string;
  /** Full template including the server base path, e.g. /api/orders/{id}. */
  template: string;
  segments: RouteSegment[];
  /** Literal (1) / param (0) per segment: among matching routes the highest rank wins, as in OpenAPI. */
  rank: string;
  authz?: AuthzAnnotation;
  /** Where it came from, for generated-code comments and reviews. */
  file: string;
  line?: number;
  authzLine?: number;
  summary?: string;
}

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;
const PATH_ITEM_KEYS = new Set<string>([...METHODS, 'summary', 'description', 'servers', 'parameters']);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Split a template into segments; errors for templates a router could not match exactly. */
export function parseTemplate(template: string): RouteSegment[] | string {
  if (!template.startsWith('/')) return 'a path must start with "/"';
  if (template === '/') return [];
  const parts = template.slice(1).split('/');
  const out: RouteSegment[] = [];
  const seen = new Set<string>();
  for (const part of parts) {
    if (part === '') return 'a path must not contain empty segments ("//") or end with "/"';
    if (part === '.' || part === '..') return 'a path must not contain "." or ".." segments';
    const m = /^\{([A-Za-z0-9_.-]+)\}$/.exec(part);
    if (m) {
      if (seen.has(m[1]!)) return `path parameter {${m[1]}} appears twice`;
      seen.add(m[1]!);
      out.push({ param: m[1]! });
    } else if (/[{}]/.test(part)) {
      return `segment "${part}" mixes a template with literal text; Warden matches whole-segment parameters only`;
    } else {
      out.push(part);
    }
  }
  return out;
}

function basePath(spec: Record<string, unknown>): string {
  const servers = spec.servers;
  if (!Array.isArray(servers) || !isObject(servers[0]) || typeof servers[0].url !== 'string') return '';
  const url = servers[0].url;
  const path = /^[a-z]+:\/\//i.test(url) ? new URL(url.replace(/\{[^}]*\}/g, 'x')).pathname : url;
  return path.replace(/\/+$/, '');
}

/** Read the operations of an OpenAPI document. Problems are returned as diagnostics, never thrown. */
export function readOpenApi(doc: SourceDoc): { operations: HttpOperation[]; diagnostics: Diagnostic[] } {
  const diagnostics: Diagnostic[] = [];
  const err = (path: Array<string | number>, message: string, severity: 'error' | 'warning' = 'error') =>
    diagnostics.push({ file: doc.file, line: doc.lineOf(path), path: jsonPath(path) || undefined, message, severity });
  const spec = doc.value;
  const operations: HttpOperation[] = [];
  if (!isObject(spec)) {
    err([], 'an OpenAPI document must be an object');
    return { operations, diagnostics };
  }
  if (typeof spec.openapi !== 'string' || !/^3\.[01]\.\d+$/.test(spec.openapi)) {
    err(['openapi'], `must be an OpenAPI 3.0.x or 3.1.x version string (found ${JSON.stringify(spec.openapi ?? null)})`);
  }
  if (!isObject(spec.info) || typeof spec.info.title !== 'string' || typeof spec.info.version !== 'string') {
    err(['info'], 'must be an object with string "title" and "version"');
  }
  if (!isObject(spec.paths)) {
    err(['paths'], 'must be an object mapping paths to path items');
    return { operations, diagnostics };
  }
  const base = basePath(spec);
  const ids = new Map<string, string>();
  const shapes = new Map<string, string>();
  for (const [rawPath, item] of Object.entries(spec.paths)) {
    const at: Array<string | number> = ['paths', rawPath];
    const segments = parseTemplate(base + rawPath);
    if (typeof segments === 'string') {
      err(at, segments);
      continue;
    }
    if (!isObject(item)) {
      err(at, 'a path item must be an object');
      continue;
    }
    for (const key of Object.keys(item)) {
      if (!PATH_ITEM_KEYS.has(key) && !key.startsWith('x-')) {
        err([...at, key], key === '$ref' ? '$ref path items are not supported; inline the operations' : `unknown path item field "${key}"`);
      }
    }
    for (const method of METHODS) {
      const op = item[method];
      if (op === undefined) continue;
      const opAt = [...at, method];
      if (!isObject(op)) {
        err(opAt, 'an operation must be an object');
        continue;
      }
      if (typeof op.operationId !== 'string' || op.operationId === '') {
        err(opAt, 'operation has no operationId; Warden names decisions and audit records by it');
        continue;
      }
      const id = op.operationId;
      if (ids.has(id)) err([...opAt, 'operationId'], `operationId "${id}" is also used by ${ids.get(id)}`);
      ids.set(id, `${method.toUpperCase()} ${rawPath}`);
      const shape = `${method} ${segments.map((s) => (typeof s === 'string' ? s : '{}')).join('/')}`;
      if (shapes.has(shape)) err(at, `${method.toUpperCase()} ${rawPath} matches exactly the same requests as operation ${shapes.get(shape)}; a router could not tell them apart`);
      shapes.set(shape, id);
      let authz: AuthzAnnotation | undefined;
      if (op[AUTHZ_EXTENSION] !== undefined) {
        const issues = authzAnnotation.check(op[AUTHZ_EXTENSION]);
        for (const i of issues) {
          const sub = i.path ? i.path.split(/\.|\[(\d+)\]/).filter(Boolean).map((p) => (/^\d+$/.test(p) ? Number(p) : p)) : [];
          err([...opAt, AUTHZ_EXTENSION, ...sub], i.message);
        }
        if (issues.length === 0) authz = op[AUTHZ_EXTENSION] as AuthzAnnotation;
      } else {
        err(opAt, `operation ${id} has no ${AUTHZ_EXTENSION}; no caller is granted it by the spec (default deny)`, 'warning');
      }
      operations.push({
        id,
        method: method.toUpperCase(),
        template: base + rawPath,
        segments,
        rank: segments.map((s) => (typeof s === 'string' ? '1' : '0')).join(''),
        ...(authz ? { authz } : {}),
        file: doc.file,
        line: doc.lineOf(opAt),
        authzLine: doc.lineOf([...opAt, AUTHZ_EXTENSION]),
        ...(typeof op.summary === 'string' ? { summary: op.summary } : {}),
      });
    }
  }
  return { operations, diagnostics };
}
