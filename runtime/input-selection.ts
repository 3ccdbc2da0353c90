// The policy input as the bundle's Rego reads it: only the `input` paths the compiler found the Rego can
// reach (manifest `metadata.inputPaths`, engine/compiler/input-paths.ts) are serialized for the WASM, so
// a request body no rule reads is never parsed nor copied. Pruning never changes a decision: a part
// the Rego cannot name cannot change what it computes. Fail closed: a bundle without the list, or with
// one that is malformed, gets the whole input (never an empty one).
import type { BundleManifest } from '../formats/bundle-manifest.js';
import { CALLER_JSON } from '../formats/input.js';
import { firstInObjects, foldKey, JsonText, meantBy, readKeys, type FoldedKeys } from './json-text.js';
import { jsonText } from './opa-json.js';
import type { OpaJson } from './rego-value.js';

/**
 * The caller's own JSON (a request body, an MCP message) holds a key that differs only by case from a
 * key the policy reads there, and not that key (`Amount` where the policy reads `amount`). A reader that
 * matches keys regardless of case (Go's encoding/json, ASP.NET) would take it for that key, so the policy
 * would decide on a value missing where the app reads one: the call is refused instead. The same holds
 * for other readings of a key the policy reads: a query key as PHP or Rack reads it, a header as a CGI
 * variable, a body key given twice.
 */
export class CaseVariantInput extends Error {}

/**
 * The names PHP, Rack, Spring and ASP.NET Core read for a query key (percent-decoded) other than the key
 * itself, if any. PHP drops
 * leading spaces, cuts the name at a NUL, ends it at a `[` that a `]` closes later (reading an unclosed `[`
 * as `_`) and reads ' ' and '.' before it as '_'; Rack 2 takes the first run of characters that are not
 * brackets, after any leading ones; Rack 3 the part before the first `[`. So `tenant[]`, `tenant[x]`,
 * `[tenant]` and ` tenant` are all `tenant` to one of them, and `user.role` is `user_role` to PHP.
 */
export function appQueryNames(key: string): string[] {
  if (!/[[\] .\0!]/.test(key)) return [];
  let php = key.replace(/^ +/, '');
  if (php.includes('\0')) php = php.slice(0, php.indexOf('\0'));
  const open = php.indexOf('[');
  const head = (open < 0 ? php : php.slice(0, open)).replace(/[ .]/g, '_');
  const names = [open < 0 || php.includes(']', open + 1) ? head : `${head}_${php.slice(open + 1)}`, /^[[\]]*([^[\]]+)/.exec(key)?.[1] ?? ''];
  if (key.indexOf('[') > 0) names.push(key.slice(0, key.indexOf('[')));
  // Spring's data binder: `!tenant` is tenant's default value (its `_tenant` field marker only resets an
  // absent field, and `_token` is on every Laravel form: not read so); Spring and ASP.NET Core bind
  // `order.tenant`, `order[tenant]` and `orders[0].tenant` to a property `tenant` of a model, where a
  // simple `tenant` parameter is also read.
  if (key.startsWith('!')) names.push(key.slice(1));
  const last = /[.\]]([^.[\]]+)$/.exec(key)?.[1];
  if (last) names.push(last);
  const bracketed = /\[([^[\]]+)\]$/.exec(key)?.[1];
  if (bracketed && !/^\d+$/.test(bracketed)) names.push(bracketed);
  return [...new Set(names)].filter((n) => n !== '' && n !== key);
}

/** An input document already serialized as JSON text, handed to the policy as is (runtime/policy.ts). */
export class InputJson {
  constructor(readonly text: string) {}
}

// What to keep under one input node: all of it, or only the named members.
type Selection = true | Map<string, Selection>;

const WHOLE = true;

// The selection tree of a path list; undefined when the list is not one (the caller takes the whole input).
function selectionOf(paths: unknown): Selection | undefined {
  if (!Array.isArray(paths) || paths.length === 0) return undefined;
  const root = new Map<string, Selection>();
  for (const path of paths) {
    if (!Array.isArray(path) || !path.every((p) => typeof p === 'string')) return undefined;
    if (path.length === 0) return WHOLE;
    let node: Map<string, Selection> = root;
    for (let i = 0; i < path.length; i++) {
      const key = path[i] as string;
      const next = node.get(key);
      if (next === WHOLE) break;
      if (i === path.length - 1) {
        node.set(key, WHOLE);
        break;
      }
      if (next === undefined) node.set(key, new Map());
      node = node.get(key) as Map<string, Selection>;
    }
  }
  return root;
}

/** The parts of the input one bundle's policy reads, and the serializer that keeps only those. */
export class InputSelection {
  /**
   * Worked out once, when the bundle loads: the query keys and header names the policy reads (keysReadIn),
   * and the top-level members of the body it reads by name (readsBodyMember).
   */
  private readonly queryRead: FoldedKeys | undefined;
  /** The query is kept whole and the bundle lists no strings of its Rego: any key may be read. */
  private readonly queryWholeUnnamed: boolean;
  private readonly headersRead: FoldedKeys | undefined;
  private readonly bodyMembers: ReadonlySet<string>;
  /** False when no query key can be read at all (readsQueryKey is then false for every name). */
  readonly readsQuery: boolean;

  private constructor(
    private readonly root: Selection,
    private readonly named?: NamedKeys,
  ) {
    this.queryRead = keysReadIn('query', root, named);
    this.queryWholeUnnamed = !named && selectionAt(root, ['request', 'query']) === WHOLE;
    this.readsQuery = this.queryRead !== undefined || this.queryWholeUnnamed;
    this.headersRead = keysReadIn('headers', root, named);
    const body = selectionAt(root, ['request', 'body']);
    this.bodyMembers = new Set(body === undefined || body === WHOLE ? [] : body.keys());
  }

  /** Everything: what a bundle without (or with a malformed) path list gets. */
  static readonly whole = new InputSelection(WHOLE);

  /** The selection a manifest records; the whole input when it records none or a malformed one. */
  static fromManifest(manifest: Pick<BundleManifest, 'metadata'>): InputSelection {
    const root = selectionOf(manifest.metadata?.inputPaths);
    const named = namedKeysOf(manifest.metadata?.inputKeys);
    if (root === undefined || root === WHOLE) return named ? new InputSelection(WHOLE, named) : InputSelection.whole;
    return new InputSelection(root, named);
  }

  /** True when the policy may read all of the input. */
  get isWhole(): boolean {
    return this.root === WHOLE;
  }

  /**
   * The query keys the policy reads, folded: by name where it reads them so, the strings its Rego holds
   * where it keeps the query (or the request, or the input) whole. Undefined when it reads no query, or
   * when it keeps it whole and the bundle lists no strings (built before 2026-12-06).
   */
  queryKeys(): FoldedKeys | undefined {
    return this.queryRead;
  }

  /**
   * The query key the policy reads that an app reads `name` as (itself in any case, or one of its
   * appQueryNames readings), as the policy spells it; undefined when there is none.
   */
  queryKeyOf(name: string): string | undefined {
    return this.queryRead && keyAmong([name, ...appQueryNames(name)], this.queryRead);
  }

  /**
   * True when the policy may read the query key `name` (in any case): by name, where its Rego holds the
   * string and keeps the query whole, or wherever the query is kept whole and the bundle lists no strings.
   */
  readsQueryKey(name: string): boolean {
    return this.queryRead ? this.queryKeyNamed(name) !== undefined : this.queryWholeUnnamed;
  }

  /**
   * The query key the policy reads that `name` is, in any case, with no other reading: a JSON key, which
   * apps take as written (Laravel's input() reads a JSON body's members over the query).
   */
  queryKeyNamed(name: string): string | undefined {
    return this.queryRead && keyAmong([name], this.queryRead);
  }

  /**
   * The header the policy reads that an app reads `name` (lower case) as: itself, or its CGI spelling
   * (appHeaderNames); undefined when there is none.
   */
  headerKeyOf(name: string): string | undefined {
    return this.headersRead && keyAmong([name, ...appHeaderNames(name)], this.headersRead);
  }

  /**
   * True when the policy reads the request body's top-level member `key` by name, whole or in part
   * (`input.request.body.tenant`, `input.request.body.order.desk`): it decides on what the member holds.
   * False where the body is kept whole or not read, since then no rule is known to read it.
   */
  readsBodyMember(key: string): boolean {
    return this.bodyMembers.has(key);
  }

  /** The input's JSON text with only the selected parts. */
  json(input: unknown): InputJson {
    if (this.queryRead) this.refuseCookieReadings(input);
    return new InputJson(serialize(input, this.root, this.named, 0, CALLER_ROOTS) ?? 'null');
  }

  // Refuse a cookie an app reads as a query key the policy reads (queryKeyOf), unless it is the value the
  // query gives that key as its one value. PHP's $_REQUEST holds cookies over the query and the form when
  // php.ini sets no request_order (PHP's official images ship none), and classic ASP.NET's Request[…] reads
  // a cookie where the query lacks the key: `?tenant=acme` with `Cookie: tenant=evil` is `evil` to them. A
  // cookie's name is read as PHP reads it (not percent-decoded: appQueryNames' readings), its value
  // raw-url-decoded (`%XX`, `+` kept), as PHP decodes it.
  private refuseCookieReadings(input: unknown): void {
    const request = (input as { request?: { headers?: Record<string, string>; query?: Record<string, string[]> } } | null)?.request;
    const cookie = request?.headers?.cookie;
    if (typeof cookie !== 'string') return;
    for (const pair of cookie.split(';')) {
      const eq = pair.indexOf('=');
      const name = (eq < 0 ? pair : pair.slice(0, eq)).replace(/^\s+/, '');
      const meant = name === '' ? undefined : this.queryKeyOf(name);
      if (meant === undefined) continue;
      const sent = request!.query?.[meant];
      // Only the key itself holds the value as such (`tenant[]` is an array to PHP).
      if (name === meant && sent?.length === 1 && eq >= 0 && rawUrlDecode(pair.slice(eq + 1)) === sent[0]) continue;
      throw new CaseVariantInput(`the cookie ${JSON.stringify(name.slice(0, 64))} is the query key ${JSON.stringify(meant)} the policy reads, to apps that read cookies as request parameters (PHP's $_REQUEST without request_order, classic ASP.NET's Request[]): send it in the query only`);
    }
  }
}

// `%XX` decoded where it spells a byte (as UTF-8), anything else as written: PHP's rawurldecode.
function rawUrlDecode(text: string): string {
  if (!text.includes('%')) return text;
  try {
    return decodeURIComponent(text.replace(/%(?![0-9a-fA-F]{2})/g, '%25'));
  } catch {
    return text;
  }
}

// The key of `keys` that one of `names` folds onto, as the policy spells it.
function keyAmong(names: readonly string[], keys: FoldedKeys): string | undefined {
  for (const n of names) {
    const meant = keys.byFold.get(foldKey(n));
    if (meant) return meant[0];
  }
  return undefined;
}

// The keys of the request's query or headers a selection reads: by name, or the strings its Rego holds
// where it keeps that part (or what holds it) whole (InputSelection.queryKeys, headerKeyOf).
function keysReadIn(member: 'query' | 'headers', root: Selection, named: NamedKeys | undefined): FoldedKeys | undefined {
  const sel = selectionAt(root, ['request', member]);
  return sel === undefined ? undefined : sel === WHOLE ? named : shapeOf(sel).folded;
}

// What the selection keeps at `path`: WHOLE when it keeps that value or what holds it whole, undefined
// when it keeps none of it.
function selectionAt(root: Selection, path: readonly string[]): Selection | undefined {
  let sel: Selection | undefined = root;
  for (const part of path) {
    if (sel === WHOLE) return WHOLE;
    sel = sel.get(part);
    if (sel === undefined) return undefined;
  }
  return sel;
}

// The keys a bundle's Rego names (manifest `metadata.inputKeys`), folded (readKeys).
type NamedKeys = FoldedKeys;

function namedKeysOf(keys: unknown): NamedKeys | undefined {
  if (!Array.isArray(keys) || keys.length === 0 || !keys.every((k) => typeof k === 'string')) return undefined;
  return readKeys(keys as string[]);
}

// Refuse `key` of the caller's JSON when it differs only by case from one of `keys`: those the selection
// names where it is partial (`reads`), those the Rego names where it keeps a part whole (`names`). The
// policy may read that key there, and a case-insensitive app this one (CaseVariantInput).
function refuseVariant(key: string, keys: FoldedKeys, verb: 'reads' | 'names'): void {
  const meant = meantBy(key, keys);
  if (meant) throw new CaseVariantInput(`the key ${JSON.stringify(key.slice(0, 64))} differs only by case from ${JSON.stringify(meant[0])}, which the policy ${verb}: readers differ on which one counts`);
}
const refuseNamedVariant = (key: string, named: NamedKeys): void => refuseVariant(key, named, 'names');

/**
 * The names apps that read headers through CGI-style variables (PHP, Rack servers, WSGI: `HTTP_X_TENANT`)
 * give a header name as well as its own: `-` and `_` alike become `_`, so `x_tenant` and `x-tenant` are one
 * header to them, and whichever comes last may stand. Both ways: the policy may read either spelling.
 */
export function appHeaderNames(name: string): string[] {
  if (!name.includes('_') && !name.includes('-')) return [];
  return [name.replace(/_/g, '-'), name.replace(/-/g, '_')].filter((n) => n !== name);
}

// Two parts of the request whose keys apps read otherwise than as sent: the query (appQueryNames) and the
// headers (appHeaderNames), with what the refusal says of them.
const READINGS: ReadonlyMap<string, { names: (key: string) => string[]; what: string; who: string }> = new Map([
  ['query', { names: appQueryNames, what: 'query key', who: 'PHP or Rack apps' }],
  ['headers', { names: appHeaderNames, what: 'header', who: 'apps that read headers as CGI variables (PHP, Rack, WSGI)' }],
]);

// Refuse a key of the query or the headers (`part`) that an app reads as a key of `keys` while the policy
// reads it as another, or none: `tenant[]=evil` is `tenant` to a PHP or Rails app and no tenant to a rule on
// `tenant`; an `x_tenant` header is `HTTP_X_TENANT` to PHP, as `x-tenant` is.
function refuseReadings(part: string, value: unknown, keys: FoldedKeys, verb: 'reads' | 'names'): void {
  const reading = READINGS.get(part)!;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return;
  for (const k of Object.keys(value)) {
    if (keys.byFold.get(foldKey(k))?.includes(k)) continue;
    const meant = keyAmong(reading.names(k), keys);
    if (meant) throw new CaseVariantInput(`the ${reading.what} ${JSON.stringify(k.slice(0, 64))} is ${JSON.stringify(meant)} to ${reading.who}, and the policy ${verb} ${JSON.stringify(meant)}: readers differ on which one counts`);
  }
}

// True for a member of the request (`caller` its place among CALLER_ROOTS) whose keys refuseReadings reads.
const readsOtherwise = (caller: CallerRoots | undefined, key: string): boolean => caller === REQUEST_ROOTS && READINGS.has(key);

// Every key of a value kept whole, at any depth (depth bounded: the body or message was checked).
function refuseNamedVariantsIn(value: unknown, named: NamedKeys): void {
  firstInObjects(value, (keys) => {
    for (const k of keys) refuseNamedVariant(k, named);
    return undefined;
  });
}

// Every key of the caller's JSON in `value`, kept whole, against the names: `value` is that JSON (`true`)
// or lies above it (the whole input, `r := input.request`, `m := input.mcp`), with no body text below.
function refuseCallerVariants(value: unknown, caller: CallerRoots, named: NamedKeys): void {
  if (caller === true) return refuseNamedVariantsIn(value, named);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return;
  for (const [key, below] of caller) {
    if (!Object.hasOwn(value, key)) continue;
    refuseCallerVariants((value as Record<string, unknown>)[key], below, named);
  }
  if (caller === REQUEST_ROOTS) for (const part of READINGS.keys()) if (Object.hasOwn(value, part)) refuseReadings(part, (value as Record<string, unknown>)[part], named, 'names');
}

// CALLER_JSON as a tree: `true` where the caller's own JSON begins.
type CallerRoots = true | ReadonlyMap<string, CallerRoots>;
const CALLER_ROOTS: CallerRoots = (() => {
  const root = new Map<string, CallerRoots>();
  for (const path of CALLER_JSON) {
    let node = root;
    path.forEach((part, i) => {
      if (i === path.length - 1) node.set(part, true);
      else node = (node.get(part) as Map<string, CallerRoots> | undefined) ?? (node.set(part, new Map()).get(part) as Map<string, CallerRoots>);
    });
  }
  return root;
})();
const REQUEST_ROOTS = (CALLER_ROOTS as ReadonlyMap<string, CallerRoots>).get('request');

// Where a request body kept as its text (JsonText) sits in the input: the only place one can be.
const BODY_PATH = ['request', 'body'];

// `along`: how far `value` lies along BODY_PATH (-1 off it). A whole object goes to jsonText (JSON.stringify,
// integers beyond 2^53 given as bigint written exactly) in
// one call unless the body's text lies below it: JSON.stringify would go through the body's value
// (rounding its large integers), so the object is written member by member down to the body.
// `caller`: where `value` lies against CALLER_JSON: `true` inside the caller's own JSON, whose keys a
// case-insensitive app may read (CaseVariantInput); the roots below it otherwise (none: undefined).
// `named`: the keys the bundle's Rego names, checked against every key of the caller's JSON kept whole.
function serialize(value: unknown, sel: Selection, named: NamedKeys | undefined, along: number, caller: CallerRoots | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (value instanceof JsonText) return projectText(value, sel, named);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    if (caller === true && named && Array.isArray(value)) refuseNamedVariantsIn(value, named);
    return jsonText(value as OpaJson);
  }
  const toBody = along >= 0 && along < BODY_PATH.length && Object.hasOwn(value, BODY_PATH[along]!);
  if (sel === WHOLE && !toBody) {
    if (caller !== undefined && named) refuseCallerVariants(value, caller, named);
    return jsonText(value as OpaJson);
  }
  if (caller === true && sel !== WHOLE) for (const k of Object.keys(value)) if (!sel.has(k)) refuseSelectedVariant(k, sel);
  let out = '';
  const write = (key: string, child: Selection, member: string) => {
    if (readsOtherwise(caller, key)) {
      const part = (value as Record<string, unknown>)[key];
      if (child !== WHOLE) refuseReadings(key, part, shapeOf(child).folded, 'reads');
      else if (named) refuseReadings(key, part, named, 'names');
    }
    const text = serialize((value as Record<string, unknown>)[key], child, named, toBody && key === BODY_PATH[along] ? along + 1 : -1, caller === true || caller === undefined ? caller : caller.get(key));
    if (text !== undefined) out += `${out ? ',' : ''}${member}${text}`;
  };
  for (const [key, child, member, replacement] of sel === WHOLE ? Object.entries(value).map(([k]): Member => [k, WHOLE, `${JSON.stringify(k)}:`, false]) : shapeOf(sel).members) {
    if (!replacement) {
      if (Object.hasOwn(value, key)) write(key, child, member);
    } else for (const k of Object.keys(value)) if (k.toWellFormed() === key) write(k, child, `${JSON.stringify(k)}:`);
  }
  return `{${out}}`;
}

// A selected member: its key, what is selected under it, its `"key":` text (written on every call), and
// whether the key holds U+FFFD. Such a key also names every key of the value that differs from it only by
// lone surrogates where it has U+FFFD: the JSON text carries those as escapes and OPA reads each as U+FFFD
// (wellFormedJson), so they are written, in the value's order, as the whole input would have them.
type Member = [key: string, child: Selection, text: string, replacement: boolean];

// What one partial selection writes and checks, worked out once per selection (a bundle's, kept while it
// is): its members with their key text, and its keys folded.
interface Shape {
  members: Member[];
  folded: FoldedKeys;
}
const shapes = new WeakMap<Map<string, Selection>, Shape>();

function shapeOf(sel: Map<string, Selection>): Shape {
  let shape = shapes.get(sel);
  if (!shape) shapes.set(sel, (shape = { members: [...sel].map(([k, child]): Member => [k, child, `${JSON.stringify(k)}:`, k.includes('\ufffd')]), folded: readKeys(sel.keys()) }));
  return shape;
}

// Refuse `key`, which the selection does not name, when it folds onto a key the selection names.
const refuseSelectedVariant = (key: string, sel: Map<string, Selection>): void => refuseVariant(key, shapeOf(sel).folded, 'reads');

// The selected parts of a JSON text, taken from the text itself, never through JSON.parse's value: its
// numbers reach the policy as written (2^53 + 1 stays exact, 1e400 is not null), as OPA's decoder reads
// them. Where the text must be written anew, it is, in place: an object that repeats a key keeps the
// last one (as JSON.parse does, so the policy sees the member the app sees), and a string that escapes a
// UTF-16 surrogate is written well-formed (a lone one as U+FFFD, as OPA's decoder reads it).
function projectText(body: JsonText, sel: Selection, named: NamedKeys | undefined): string {
  return sel !== WHOLE && body.members ? projectMembers(body, body.members, sel, named) : new TextProjector(body.text, 0, body.escapesSurrogates, named).project(sel);
}

// The selected members of a text that is an object, found through the offsets the check recorded: a
// policy that reads one field of a large body reads it without a scan of the rest.
function projectMembers(body: JsonText, members: readonly number[], sel: Map<string, Selection>, named: NamedKeys | undefined): string {
  const { text } = body;
  const kept = new Map<string, string>();
  for (let m = 0; m < members.length; m += 4) {
    const key = keyOf(text.slice(members[m]! + 1, members[m + 1]! - 1));
    const child = sel.get(key);
    if (child === undefined) refuseSelectedVariant(key, sel);
    else {
      if (kept.has(key)) refuseRepeated(key);
      kept.set(key, new TextProjector(text, members[m + 2]!, body.escapesSurrogates, named).value(child));
    }
  }
  return objectText(kept);
}

// A key the policy reads (or, in a part kept whole, a key its Rego names), given twice in one object of the
// caller's JSON text: OPA and most readers keep the last, some keep the first (Go's gjson and jsonparser,
// simdjson's on-demand API), so an app could act on the value the policy never decided on
// (`{"amount": 500, "amount": 5}`).
function refuseRepeated(key: string): never {
  throw new CaseVariantInput(`the key ${JSON.stringify(key.slice(0, 64))}, which the policy reads, is given twice in one object: readers differ on which one counts`);
}

// True when the Rego names `key` itself (not only a case variant of it).
const namesKey = (named: NamedKeys, key: string): boolean => named.byFold.get(foldKey(key))?.includes(key) ?? false;

// An object's kept members as text.
function objectText(kept: ReadonlyMap<string, string>): string {
  let out = '';
  for (const [k, value] of kept) out += `${out ? ',' : ''}${JSON.stringify(k)}:${value}`;
  return `{${out}}`;
}

// An object key as it stands between its quotes, decoded, as OPA reads it: a lone surrogate is U+FFFD
// (so `input.body["\ufffd"]` in Rego names it, and two keys that differ only there are one key).
const keyOf = (raw: string): string => (raw.includes('\\') ? (JSON.parse(`"${raw}"`) as string).toWellFormed() : raw);

// Whether the text at i (just after a backslash) is a `u` escape of a UTF-16 surrogate (\uD800–\uDFFF).
function surrogateEscape(s: string, i: number): boolean {
  if (s.charCodeAt(i) !== 117) return false;
  const d = s.charCodeAt(i + 1) | 32;
  const x = s.charCodeAt(i + 2) | 32;
  return d === 100 && ((x >= 56 && x <= 57) || (x >= 97 && x <= 102));
}

// Walks a text that checkJsonText accepted (so nesting is bounded and the grammar need not be re-checked).
class TextProjector {
  constructor(
    private readonly s: string,
    private i: number,
    /** The text escapes a surrogate somewhere (JsonText.escapesSurrogates): strings are looked into for one. */
    private readonly surrogates: boolean,
    /** The keys the Rego names: every key of a part copied whole is checked against them (refuseNamedVariant). */
    private readonly named: NamedKeys | undefined,
  ) {}

  /** The projection of the whole text. */
  project(sel: Selection): string {
    this.space();
    return this.value(sel);
  }

  private space(): void {
    const s = this.s;
    let i = this.i;
    for (let c = s.charCodeAt(i); c === 32 || c === 10 || c === 13 || c === 9; c = s.charCodeAt(++i));
    this.i = i;
  }

  /**
   * One value at i: an object under a partial selection, its selected members; anything else whole, as it
   * stands when it can be copied (see `copy`), else written anew member by member.
   */
  value(sel: Selection): string {
    const s = this.s;
    const start = this.i;
    const c = s.charCodeAt(start);
    if (sel === WHOLE || c !== 123) {
      if (this.copy()) return s.slice(start, this.i);
      this.i = start;
    }
    if (c === 123) return this.members(sel);
    if (c === 91) return this.elements();
    // A string that escapes a surrogate (nothing else fails to copy).
    this.skipString();
    return JSON.stringify((JSON.parse(s.slice(start, this.i)) as string).toWellFormed());
  }

  // An object at i: the members `sel` selects (all of them for WHOLE), a repeated key's last one.
  private members(sel: Selection): string {
    this.i++;
    const kept = new Map<string, string>();
    for (;;) {
      this.space();
      if (this.s.charCodeAt(this.i) === 125) break;
      const key = this.key();
      this.space();
      this.i++; // colon
      this.space();
      if (sel === WHOLE && this.named) refuseNamedVariant(key, this.named);
      const child = sel === WHOLE ? WHOLE : sel.get(key);
      if (child === undefined) {
        refuseSelectedVariant(key, sel as Map<string, Selection>);
        this.skip();
      }
      else {
        // A repeated key: the last one wins, as in JSON.parse; one the policy reads is refused (refuseRepeated).
        if (kept.has(key) && (sel !== WHOLE || (this.named && namesKey(this.named, key)))) refuseRepeated(key);
        kept.set(key, this.value(child));
      }
      this.space();
      if (this.s.charCodeAt(this.i) === 44) this.i++;
    }
    this.i++;
    return objectText(kept);
  }

  // An array at i, each element whole.
  private elements(): string {
    this.i++;
    let out = '';
    for (let first = true; ; first = false) {
      this.space();
      if (this.s.charCodeAt(this.i) === 93) break;
      out += `${first ? '' : ','}${this.value(WHOLE)}`;
      this.space();
      if (this.s.charCodeAt(this.i) === 44) this.i++;
    }
    this.i++;
    return `[${out}]`;
  }

  // An object key at i, decoded.
  private key(): string {
    const start = this.i;
    this.skipString();
    return keyOf(this.s.slice(start + 1, this.i - 1));
  }

  // Step over a string at i; true when it escapes a surrogate (looked for only in a text that has one).
  private skipString(): boolean {
    const s = this.s;
    const look = this.surrogates;
    let escapes = false;
    let i = this.i + 1;
    for (let c = s.charCodeAt(i); c !== 34; c = s.charCodeAt(i)) {
      if (c !== 92) i++;
      else {
        if (look && surrogateEscape(s, i + 1)) escapes = true;
        i += 2;
      }
    }
    this.i = i + 1;
    return escapes;
  }

  // Step over one value without looking inside strings' contents.
  private skip(): void {
    const s = this.s;
    let depth = 0;
    for (;;) {
      const c = s.charCodeAt(this.i);
      if (c === 34) {
        this.skipString();
        if (depth === 0) return;
      } else if (c === 123 || c === 91) {
        depth++;
        this.i++;
      } else if (c === 125 || c === 93) {
        if (depth === 0) return;
        depth--;
        this.i++;
        if (depth === 0) return;
      } else if (depth === 0 && (c === 44 || c === 32 || c === 10 || c === 13 || c === 9 || Number.isNaN(c))) return;
      else this.i++;
    }
  }

  // Step over one value that is copied whole as it stands; false when it must be written anew: an object
  // in it repeats a key, or a string in it (a key too) escapes a surrogate.
  private copy(): boolean {
    const c = this.s.charCodeAt(this.i);
    if (c === 34) return !this.skipString();
    if (c === 123) {
      this.i++;
      const keys = new Set<string>();
      for (;;) {
        this.space();
        if (this.s.charCodeAt(this.i) === 125) break;
        const start = this.i;
        if (this.skipString()) return false;
        const key = keyOf(this.s.slice(start + 1, this.i - 1));
        if (keys.has(key)) {
          // A key the Rego names, given twice in a part kept whole: refused (refuseRepeated). Any other is
          // written anew below, its last value kept.
          if (this.named && namesKey(this.named, key)) refuseRepeated(key);
          return false;
        }
        if (this.named) refuseNamedVariant(key, this.named);
        keys.add(key);
        this.space();
        this.i++; // colon
        this.space();
        if (!this.copy()) return false;
        this.space();
        if (this.s.charCodeAt(this.i) === 44) this.i++;
      }
      this.i++;
      return true;
    }
    if (c === 91) {
      this.i++;
      for (;;) {
        this.space();
        if (this.s.charCodeAt(this.i) === 93) break;
        if (!this.copy()) return false;
        this.space();
        if (this.s.charCodeAt(this.i) === 44) this.i++;
      }
      this.i++;
      return true;
    }
    this.skip();
    return true;
  }
}
