// json.patch: RFC 6902 operations applied the way OPA's edit tree applies them (v1/topdown/json.go):
// paths are JSON pointers or arrays of keys, `-` appends to an array, every operation works on a copy,
// and any failing operation (a missing path, a failed `test`) fails the whole call. It takes exact
// values: a path segment into a set names a member, and a set stays a set.
import { BuiltinError, isObject } from './builtin-operand.js';
import { jsonText, toOpaJson } from './opa-json.js';
import { RegoNumber, RegoObject, RegoSet, type RegoValue } from './rego-value.js';
import { compareValues } from './value-order.js';

type JsonValue = RegoValue;

const BUILTIN = 'json.patch';

type Key = RegoValue;

function fail(message: string): never {
  throw new BuiltinError(BUILTIN, message);
}

function parsePath(path: JsonValue): Key[] {
  if (typeof path === 'string') {
    if (path === '') return [];
    return path
      .replace(/^\/+/, '')
      .split('/')
      .map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'));
  }
  if (Array.isArray(path)) return path;
  return fail('operand 2 must be one of {string, array}: a path is a JSON pointer or an array of keys');
}

// An array index as OPA reads it from a key: a whole number within bounds (`max` allows appending).
function index(key: Key, length: number, max: number): number {
  const n = typeof key === 'number' ? key : typeof key === 'string' && /^(0|[1-9]\d*)$/.test(key) ? Number(key) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > max) fail(`index ${JSON.stringify(key)} is out of range for an array of length ${length}`);
  return n;
}

// A deep copy that keeps sets sets (structuredClone would not); numbers are immutable.
function clone(v: JsonValue): JsonValue {
  if (v === null || typeof v !== 'object' || v instanceof RegoNumber) return v;
  if (Array.isArray(v)) return v.map(clone);
  if (v instanceof RegoSet) return new RegoSet(v.members.map(clone));
  if (v instanceof RegoObject) return new RegoObject(v.entries.map(([k, x]) => [clone(k), clone(x)]));
  const out: { [key: string]: JsonValue } = {};
  for (const [k, x] of Object.entries(v)) out[k] = clone(x);
  return out;
}

const memberAt = (set: RegoSet, key: Key) => set.members.findIndex((m) => compareValues(m, key) === 0);

function child(node: JsonValue, key: Key): JsonValue {
  if (Array.isArray(node)) return node[index(key, node.length, node.length - 1)]!;
  if (isObject(node) && typeof key === 'string' && Object.hasOwn(node, key)) return node[key]!;
  if (node instanceof RegoSet && memberAt(node, key) >= 0) return node.members[memberAt(node, key)]!;
  return fail(`path segment ${JSON.stringify(key)} does not exist`);
}

function render(doc: JsonValue, path: Key[]): JsonValue {
  return path.reduce(child, doc);
}

function insert(doc: JsonValue, path: Key[], value: JsonValue): JsonValue {
  if (path.length === 0) return value;
  const parent = render(doc, path.slice(0, -1));
  const key = path.at(-1)!;
  if (Array.isArray(parent)) {
    if (key === '-') parent.push(value);
    else parent.splice(index(key, parent.length, parent.length), 0, value);
  } else if (isObject(parent)) {
    if (typeof key !== 'string') fail(`object key ${JSON.stringify(key)} is not a string`);
    (parent as Record<string, JsonValue>)[key] = value;
  } else if (parent instanceof RegoSet) {
    // A set member's path segment is the member itself.
    if (!equal(key, value)) fail(`set member ${jsonText(toOpaJson(value))} does not match its path segment`);
    if (memberAt(parent, value) < 0) parent.members.push(value);
  } else fail(`cannot insert into a ${parent === null ? 'null' : typeof parent}`);
  return doc;
}

function remove(doc: JsonValue, path: Key[]): JsonValue {
  if (path.length === 0) return null;
  const parent = render(doc, path.slice(0, -1));
  const key = path.at(-1)!;
  if (Array.isArray(parent)) parent.splice(index(key, parent.length, parent.length - 1), 1);
  else if (isObject(parent) && typeof key === 'string' && Object.hasOwn(parent, key)) delete parent[key];
  else if (parent instanceof RegoSet && memberAt(parent, key) >= 0) parent.members.splice(memberAt(parent, key), 1);
  else fail(`path segment ${JSON.stringify(key)} does not exist`);
  return doc;
}

function equal(a: JsonValue, b: JsonValue): boolean {
  return compareValues(a, b) === 0;
}

/** json.patch(document, operations) (exact values): the patched copy of the document. */
export function jsonPatch(document: JsonValue, operations: JsonValue): JsonValue {
  if (!Array.isArray(operations)) fail('operand 2 must be array');
  let doc = clone(document);
  for (const op of operations) {
    if (!isObject(op)) fail('must be an array of JSON-Patch objects, but at least one element is not an object');
    if (!('path' in op)) fail("missing required attribute 'path'");
    if (!('op' in op)) fail("missing required attribute 'op'");
    if (typeof op.op !== 'string') fail(`attribute 'op' must be a string`);
    const path = parsePath(op.path!);
    const value = (): JsonValue => ('value' in op ? clone(op.value!) : fail("missing required attribute 'value'"));
    const from = (): Key[] => ('from' in op ? parsePath(op.from!) : fail("missing required attribute 'from'"));
    switch (op.op) {
      case 'add':
        doc = insert(doc, path, value());
        break;
      case 'remove':
        doc = remove(doc, path);
        break;
      case 'replace': {
        doc = remove(doc, path);
        doc = insert(doc, path, value());
        break;
      }
      case 'move': {
        const f = from();
        const chunk = render(doc, f);
        doc = remove(doc, f);
        doc = insert(doc, path, chunk);
        break;
      }
      case 'copy': {
        const chunk = clone(render(doc, from()));
        doc = insert(doc, path, chunk);
        break;
      }
      case 'test':
        if (!equal(render(doc, path), value())) fail(`test failed: the value at ${JSON.stringify(op.path)} differs`);
        break;
      default:
        fail(`unrecognized op: '${op.op}'`);
    }
  }
  return doc;
}
