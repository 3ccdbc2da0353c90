// Masking: secrets are replaced in a copy of the policy input before a decision event is queued, so
// they never leave the pod. Like OPA's decision-log mask rules (plugins/logs/mask.go), what to mask is
// a list of JSON pointers under /input: the secret headers and query parameters always, plus the pointers the compiled spec
// lists for the operation, tool, resource or prompt the call addressed. A pointer whose path the input
// does not have masks nothing (and is not listed in the event's `masked`); the value at a pointer that
// resolves is replaced whatever its type, a whole object included.
//
// This runs for every decision, so the input is copied on write: only the objects and arrays on the
// path to a masked value are copied, and an input with nothing to mask is returned as it is.
import { formatPointer, parsePointer } from '../formats/json-pointer.js';
import { JsonText } from './json-text.js';

// Headers whose values never leave the pod: credentials by standard (authorization, cookie,
// proxy-authorization) and by wide convention (x-api-key).
const SECRET_HEADERS = ['authorization', 'cookie', 'proxy-authorization', 'x-api-key'];
// Query parameters that carry credentials by standard: a bearer token in the URI (RFC 6750 §2.3).
const SECRET_QUERY = ['access_token'];
/** What a masked value is replaced by. */
export const MASK = '**masked**';

// The pointers masked in every event: the secret headers and query parameters.
const SECRET_POINTERS: readonly string[] = [
  ...SECRET_HEADERS.map((h) => formatPointer(['input', 'request', 'headers', h])),
  ...SECRET_QUERY.map((q) => formatPointer(['input', 'request', 'query', q])),
];
const SECRET_POINTER_SET: ReadonlySet<string> = new Set(SECRET_POINTERS);

type Container = Record<string, unknown> | unknown[];

const isContainer = (v: unknown): v is Container => typeof v === 'object' && v !== null;

// An array index as RFC 6901 writes it: digits without a leading zero, within bounds ("-" is past the end).
function arrayIndex(key: string, length: number): number | undefined {
  if (!/^(0|[1-9]\d*)$/.test(key)) return undefined;
  const i = Number(key);
  return i < length ? i : undefined;
}

// Own properties only: `constructor` or `__proto__` must not resolve through the prototype.
function has(node: Container, key: string): boolean {
  return Array.isArray(node) ? arrayIndex(key, node.length) !== undefined : Object.hasOwn(node, key);
}

// A body the sidecar kept as its text (JsonText) is walked, and copied on write, as its parsed value.
function child(node: Container, key: string): unknown {
  let value: unknown;
  if (Array.isArray(node)) {
    const i = arrayIndex(key, node.length);
    value = i === undefined ? undefined : node[i];
  } else value = Object.hasOwn(node, key) ? node[key] : undefined;
  return value instanceof JsonText ? value.value() : value;
}

// Only keys the node has are put (`has` above), so an own `__proto__` key of a parsed body is
// overwritten as a plain value, never taken for the prototype.
function put(node: Container, key: string, value: unknown): void {
  if (Array.isArray(node)) node[arrayIndex(key, node.length)!] = value;
  else node[key] = value;
}

// Parsed pointers (keys under /input), kept across calls: a spec's lists are few and reused on every
// call. Bounded, so that pointers from many bundle revisions cannot grow it without end.
const parsed = new Map<string, string[] | null>();
const PARSED_MAX = 4096;

function keysOf(pointer: string): string[] | null {
  let keys = parsed.get(pointer);
  if (keys === undefined) {
    const all = parsePointer(pointer);
    keys = all && all.length >= 2 && all[0] === 'input' ? all.slice(1) : null;
    if (parsed.size >= PARSED_MAX) parsed.clear();
    parsed.set(pointer, keys);
  }
  return keys;
}

/**
 * Mask secrets in a copy of a policy input: the secret headers and query parameters, and the values at `pointers` (JSON
 * pointers under /input, from the compiled spec's `mask` lists). Returns the input (copied on write,
 * never changed in place) and the pointers it masked, in order, each once.
 */
export function maskInput(input: Record<string, unknown>, pointers: readonly string[]): { input: Record<string, unknown>; masked: string[] } {
  // The copies made so far (a handful: the objects on the paths to masked values).
  const copies: object[] = [];
  const own = <T extends Container>(node: T): T => {
    if (copies.includes(node)) return node;
    const copy = (Array.isArray(node) ? [...node] : { ...node }) as T;
    copies.push(copy);
    return copy;
  };
  let root: Record<string, unknown> = input;
  const masked: string[] = [];
  const mask = (pointer: string): void => {
    const keys = keysOf(pointer);
    if (!keys) return;
    const last = keys.length - 1;
    // Look first, copy after: a pointer the input does not have copies nothing.
    let node: unknown = root;
    for (let i = 0; i < last; i++) node = isContainer(node) ? child(node, keys[i]!) : undefined;
    if (!isContainer(node) || !has(node, keys[last]!)) return;
    root = own(root);
    let parent: Container = root;
    for (let i = 0; i < last; i++) {
      const next: Container = own(child(parent, keys[i]!) as Container);
      put(parent, keys[i]!, next);
      parent = next;
    }
    put(parent, keys[last]!, MASK);
    masked.push(pointer);
  };
  // The secret pointers, then the spec's; each masked and listed once (no set built per call).
  for (const pointer of SECRET_POINTERS) mask(pointer);
  for (const pointer of pointers) if (!SECRET_POINTER_SET.has(pointer) && !masked.includes(pointer)) mask(pointer);
  maskPathSegments(root, masked);
  // A path the input holds unsplit (a target refused before it could be parsed: admit.ts) cannot be
  // masked part by part: a segment asked for masks all of it.
  if (unsplit(root) && pointers.some(isSegmentPointer)) mask(PATH_POINTER);
  return { input: root, masked };
}

// True for an input whose request has a path other than `/` and no segments: the target was not split.
function unsplit(root: Record<string, unknown>): boolean {
  const r = root.request as { path?: unknown; segments?: unknown } | undefined;
  return Array.isArray(r?.segments) && r.segments.length === 0 && typeof r.path === 'string' && r.path !== '/';
}

// A path segment masked (`/input/request/segments/1`, a `path:` entry) is masked in the path as well: the
// path is its segments joined by `/` (normalize.ts), one for one, so segment i is the path's part i + 1.
// The request is already a copy here (the segment's pointer went through it); the path is listed once.
const SEGMENT_POINTER = /^\/input\/request\/segments\/(0|[1-9]\d*)$/;
/** True for a pointer to one segment of the path (`/input/request/segments/<i>`: a `path:` entry). */
export const isSegmentPointer = (pointer: string): boolean => SEGMENT_POINTER.test(pointer);
function maskPathSegments(root: Record<string, unknown>, masked: string[]): void {
  let parts: string[] | undefined;
  for (const pointer of masked) {
    const m = SEGMENT_POINTER.exec(pointer);
    if (!m) continue;
    const request = root.request as { path?: unknown };
    if (typeof request.path !== 'string') return;
    parts ??= request.path.split('/');
    const at = Number(m[1]) + 1;
    if (at < parts.length) parts[at] = MASK;
  }
  if (!parts) return;
  (root.request as { path: string }).path = parts.join('/');
  masked.push(PATH_POINTER);
}
/** The pointer maskInput lists when it masked a segment of the path in the path itself. */
export const PATH_POINTER = formatPointer(['input', 'request', 'path']);

/**
 * A copy of `value` (a decision's result, an error message) with every quote of the call's path replaced
 * by the path as masked, when maskInput masked a segment of it (`masked`, its output): a reason such as
 * "no rule grants anonymous GET /orders/k-s3cret" quotes the path, secret segment and all. The path is
 * looked for as the input holds it and as its segments decoded and joined; a policy that quotes a
 * segment alone, or in another form, is not followed. Values are copied only where a string changes.
 */
export function withoutPathQuotes<T>(value: T, input: { request?: unknown }, masked: { request?: unknown }): T {
  const before = input.request as { path?: unknown; segments?: unknown } | undefined;
  const after = (masked.request as { path?: unknown } | undefined)?.path;
  if (typeof before?.path !== 'string' || typeof after !== 'string' || before.path === after) return value;
  const quotes = [before.path];
  if (Array.isArray(before.segments) && before.segments.length > 0 && before.segments.every((x) => typeof x === 'string')) quotes.push(`/${(before.segments as string[]).join('/')}`);
  // The longer first: one quote may hold the other.
  quotes.sort((a, b) => b.length - a.length);
  const replace = (v: unknown): unknown => {
    if (typeof v === 'string') return quotes.reduce((t, q) => (t.includes(q) ? t.split(q).join(after) : t), v);
    if (Array.isArray(v)) {
      const out = v.map(replace);
      return out.some((x, i) => x !== v[i]) ? out : v;
    }
    if (v && typeof v === 'object' && !(v instanceof JsonText)) {
      let out: Record<string, unknown> | undefined;
      for (const [k, x] of Object.entries(v)) {
        const y = replace(x);
        if (y === x) continue;
        out ??= { ...(v as Record<string, unknown>) };
        Object.defineProperty(out, k, { value: y, enumerable: true, writable: true, configurable: true });
      }
      return out ?? v;
    }
    return v;
  };
  return replace(value) as T;
}
