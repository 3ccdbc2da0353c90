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

type Report = (path: Array<string | number>, message: string, severity?: 'error' | 'warning') => void;

// The document's header: the OpenAPI version and info Warden relies on; false when it has no paths to read.
function checkHeader(spec: Record<string, unknown>, err: Report): spec is Record<string, unknown> & { paths: Record<string, unknown> } {
  if (typeof spec.openapi !== 'string' || !/^3\.[01]\.\d+$/.test(spec.openapi)) {
    err(['openapi'], `must be an OpenAPI 3.0.x or 3.1.x version string (found ${JSON.stringify(spec.openapi ?? null)})`);
  }
  if (!isObject(spec.info) || typeof spec.info.title !== 'string' || typeof spec.info.version !== 'string') {
    err(['info'], 'must be an object with string "title" and "version"');
  }
  if (!isObject(spec.paths)) {
    err(['paths'], 'must be an object mapping paths to path items');
    return false;
  }
  return true;
}

// The operation's x-warden-authz, checked against its format (each problem at its own path); undefined when absent or wrong.
function readAuthz(op: Record<string, unknown>, opAt: Array<string | number>, id: string, err: Report): AuthzAnnotation | undefined {
  if (op[AUTHZ_EXTENSION] === undefined) {
    err(opAt, `operation ${id} has no ${AUTHZ_EXTENSION}; no caller is granted it by the spec (default deny)`, 'warning');
    return undefined;
  }
  const issues = authzAnnotation.check(op[AUTHZ_EXTENSION]);
  for (const i of issues) {
    const sub = i.path ? i.path.split(/\.|\[(\d+)\]/).filter(Boolean).map((p) => (/^\d+$/.test(p) ? Number(p) : p)) : [];
    err([...opAt, AUTHZ_EXTENSION, ...sub], i.message);
  }
  return issues.length === 0 ? (op[AUTHZ_EXTENSION] as AuthzAnnotation) : undefined;
}

// A `path:` entry of `sensitive` must name a parameter of the operation's template: a name that matches
// none would mask nothing, and the secret it was meant to hide would be logged.
function checkSensitivePath(authz: AuthzAnnotation | undefined, segments: RouteSegment[], template: string, at: Array<string | number>, err: Report): void {
  const params = segments.flatMap((s) => (typeof s === 'string' ? [] : [s.param]));
  (authz?.sensitive ?? []).forEach((entry, i) => {
    if (!entry.startsWith('path:') || params.includes(entry.slice('path:'.length))) return;
    err([...at, i], `${entry} names no path parameter of ${template} (${params.length > 0 ? `it has ${params.map((p) => `{${p}}`).join(', ')}` : 'it has none'}): nothing would be masked`);
  });
}

/** What reading one document keeps across its path items. */
interface Reading {
  doc: SourceDoc;
  err: Report;
  base: string;
  /** operationId → where it was first seen, and request shape → operationId: both must be unique. */
  ids: Map<string, string>;
  shapes: Map<string, string>;
  operations: HttpOperation[];
}

// One path item: its fields, then each of its operations.
function readPathItem(r: Reading, rawPath: string, item: unknown): void {
  const { err } = r;
  const at: Array<string | number> = ['paths', rawPath];
  const segments = parseTemplate(r.base + rawPath);
  if (typeof segments === 'string') return err(at, segments);
  if (!isObject(item)) return err(at, 'a path item must be an object');
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
    if (r.ids.has(id)) err([...opAt, 'operationId'], `operationId "${id}" is also used by ${r.ids.get(id)}`);
    r.ids.set(id, `${method.toUpperCase()} ${rawPath}`);
    const shape = `${method} ${segments.map((s) => (typeof s === 'string' ? s : '{}')).join('/')}`;
    if (r.shapes.has(shape)) err(at, `${method.toUpperCase()} ${rawPath} matches exactly the same requests as operation ${r.shapes.get(shape)}; a router could not tell them apart`);
    r.shapes.set(shape, id);
    const authz = readAuthz(op, opAt, id, err);
    checkSensitivePath(authz, segments, r.base + rawPath, [...opAt, AUTHZ_EXTENSION, 'sensitive'], err);
    r.operations.push({
      id,
      method: method.toUpperCase(),
      template: r.base + rawPath,
      segments,
      rank: segments.map((s) => (typeof s === 'string' ? '1' : '0')).join(''),
      ...(authz ? { authz } : {}),
      file: r.doc.file,
      line: r.doc.lineOf(opAt),
      authzLine: r.doc.lineOf([...opAt, AUTHZ_EXTENSION]),
      ...(typeof op.summary === 'string' ? { summary: op.summary } : {}),
    });
  }
}

/** Read the operations of an OpenAPI document. Problems are returned as diagnostics, never thrown. */
export function readOpenApi(doc: SourceDoc): { operations: HttpOperation[]; diagnostics: Diagnostic[] } {
  const diagnostics: Diagnostic[] = [];
  const err: Report = (path, message, severity = 'error') =>
    diagnostics.push({ file: doc.file, line: doc.lineOf(path), path: jsonPath(path) || undefined, message, severity });
  const spec = doc.value;
  const operations: HttpOperation[] = [];
  if (!isObject(spec)) {
    err([], 'an OpenAPI document must be an object');
    return { operations, diagnostics };
  }
  if (!checkHeader(spec, err)) return { operations, diagnostics };
  const reading: Reading = { doc, err, base: basePath(spec), ids: new Map(), shapes: new Map(), operations };
  for (const [rawPath, item] of Object.entries(spec.paths)) readPathItem(reading, rawPath, item);
  return { operations, diagnostics };
}
