// tools/list answers known by their text. A server answers every tools/list with the same bytes but for
// the request's id, and the filter's work on one (parse, drift check, filter, re-encode: ~70 µs warm of a
// tools/list's ~200 in the sidecar) gives the same text each time, the id aside. So an answer that was
// filtered once is remembered as the text around its id, with the filtered text around the id per view
// of the caller; an answer that is that text with another id in the same place is answered from memory,
// with what the filter reported of the list (its drift, a block lifted) reported again. What can come
// back from memory is exactly what the filter would write: only the id's own characters may differ, the
// id must be one whose text JSON writes back as it came (an integer or a plain string), and anything else
// (another byte anywhere, an escape, a second `id`) is filtered as before.
import { rememberAtMost } from '../../runtime/bounded-map.js';
import type { JsonRpcId, JsonRpcResponse } from './jsonrpc.js';
import { copyDrift, hasDrift, type DriftRecord } from './drift.js';
import type { McpSpec } from './spec.js';
import { filterToolsJson, holdsToolList, listsTools, type ToolsView } from './tools-filter.js';
import { checkJsonText, JsonText } from '../../runtime/json-text.js';
import { MAX_JSON_DEPTH } from '../json-body.js';

/** Answers remembered per spec: a server lists one set of tools, a few while it changes. */
const MAX_ANSWERS = 8;
/** Views remembered per answer: callers who may see different tools. */
const MAX_VIEWS = 16;
/** Longer answers are filtered every time. */
const MAX_ANSWER_CHARS = 256 * 1024;
/**
 * What one spec's memory holds at most, in characters of answers and filtered texts together: the oldest
 * answers, then the oldest views of the newest, are forgotten first. A server that lists large, changing
 * lists to many callers with different views costs the sidecar 2 Mi characters here, no more.
 */
const MAX_SPEC_CHARS = 2 * 1024 * 1024;

// An id whose text JSON.stringify of its value gives back unchanged: an integer below 2^53 without a
// leading zero or a sign on zero (`-0` writes `0`, `1.0` writes `1`), or a string of plain characters
// (no escape, no character JSON.stringify would escape).
const PLAIN_ID = /^(?:0|-?[1-9][0-9]{0,14}|"[A-Za-z0-9._:~-]{0,128}")$/;

// What the filter wrote for one view, around the id, and what it reported of the list (onList): its
// record, and whether it was a whole list. The filter reports drift (onDrift) when the record holds any.
interface Filtered {
  before: string;
  after: string;
  record: DriftRecord;
  full: boolean;
}

// A remembered answer: its text before and after its id, and what it became per view.
interface Answer {
  before: string;
  after: string;
  views: Map<string, Filtered>;
}

const answers = new WeakMap<McpSpec, Answer[]>();

// The view's key: the tools it shows, unambiguously (a tool name may hold any character). A view lives
// for one call, so its key is written at each lookup (a few names).
const viewKey = (view: ToolsView): string => JSON.stringify([...view.visible]);

/**
 * The filtered text of `text`, a single JSON-RPC answer, when an answer that differs from it in its id
 * alone was filtered for the same tools (`view.visible`) against the same spec: what the filter reported
 * of that list is reported again (`view.onList`, and `view.onDrift` for drift), as the filter would.
 * Undefined when none was.
 */
export function knownListAnswer(text: string, view: ToolsView): string | undefined {
  const list = answers.get(view.spec);
  if (!list) return undefined;
  for (let i = list.length - 1; i >= 0; i--) {
    const a = list[i]!;
    if (text.length < a.before.length + a.after.length || !text.startsWith(a.before) || !text.endsWith(a.after)) continue;
    const id = text.slice(a.before.length, text.length - a.after.length);
    if (!PLAIN_ID.test(id)) return undefined;
    const f = a.views.get(viewKey(view));
    if (!f) return undefined;
    view.onList?.(f.record, f.full);
    if (hasDrift(f.record)) view.onDrift?.(copyDrift(f.record));
    return f.before + id + f.after;
  }
  return undefined;
}

/**
 * Remember that `text` (a single answer with a tool list, which parsed) was filtered for `view` into
 * `filtered` (its value before encoding) and `out` (its text), reporting `shown` of the list (onList). Not
 * remembered when the
 * text is long, or its id is not one place that can be swapped (see `idSpan`), or the filtered text does
 * not hold the same id once (`out` must be exactly its text around the id).
 */
function rememberListAnswer(text: string, filtered: { id?: unknown }, out: string, view: ToolsView, shown: { record: DriftRecord; full: boolean }): void {
  if (text.length > MAX_ANSWER_CHARS) return;
  const span = idSpan(text);
  if (!span) return;
  const id = text.slice(span[0], span[1]);
  if (!PLAIN_ID.test(id) || JSON.stringify(filtered.id) !== id) return;
  // Where the id sits in the filtered text: written again with a marker in its place, found once.
  const marked = JSON.stringify({ ...filtered, id: MARKER });
  const mark = marked.indexOf(MARKER_TEXT);
  if (mark < 0 || marked.indexOf(MARKER_TEXT, mark + 1) >= 0) return;
  const f: Filtered = { before: marked.slice(0, mark), after: marked.slice(mark + MARKER_TEXT.length), record: frozen(copyDrift(shown.record)), full: shown.full };
  if (f.before + id + f.after !== out) return;
  let list = answers.get(view.spec);
  if (!list) answers.set(view.spec, (list = []));
  const before = text.slice(0, span[0]);
  const after = text.slice(span[1]);
  // The answer touched last is the newest, and so is its view just filtered.
  const found = list.findIndex((x) => x.before === before && x.after === after);
  const a = found >= 0 ? list.splice(found, 1)[0]! : { before, after, views: new Map<string, Filtered>() };
  if (found < 0 && list.length >= MAX_ANSWERS) list.shift();
  list.push(a);
  const key = viewKey(view);
  a.views.delete(key);
  rememberAtMost(a.views, key, f, MAX_VIEWS);
  let total = list.reduce((n, x) => n + charsOf(x), 0);
  while (total > MAX_SPEC_CHARS && list.length > 1) total -= charsOf(list.shift()!);
  for (const [k, v] of a.views) {
    if (total <= MAX_SPEC_CHARS || a.views.size === 1) break;
    total -= v.before.length + v.after.length;
    a.views.delete(k);
  }
}

// The characters an answer holds: its text and what it became for each view.
function charsOf(a: Answer): number {
  let n = a.before.length + a.after.length;
  for (const v of a.views.values()) n += v.before.length + v.after.length;
  return n;
}

/**
 * The text a client gets for `doc`, a parsed answer (its text `text`: a JSON body, or one event's data) that
 * may hold a tool list: re-encoded, every tool list filtered for the caller (`ids`: the tools/list
 * requests the body sent). A single answer to a tools/list that holds a list is remembered with what it
 * became, for `knownListAnswer`.
 */
export function rewrittenAnswer(text: string, doc: unknown, ids: ReadonlySet<JsonRpcId>, view: () => ToolsView): string {
  if (ids.size === 0 && !holdsToolList(doc)) return JSON.stringify(doc);
  const v = view();
  if (ids.size === 0 || !doc || typeof doc !== 'object' || Array.isArray(doc) || !listsTools(doc as JsonRpcResponse)) return JSON.stringify(filterToolsJson(doc, ids, v));
  // What the filter reports of the list, as it reports it (remembered as a copy, once the receivers ran).
  let shown: { record: DriftRecord; full: boolean } | undefined;
  const seen: ToolsView = {
    ...v,
    onList: (record, full) => {
      shown = { record, full };
      v.onList?.(record, full);
    },
  };
  const filtered = filterToolsJson(doc, ids, seen) as { id?: unknown };
  const out = JSON.stringify(filtered);
  if (shown) rememberListAnswer(text, filtered, out, v, shown);
  return out;
}

// A remembered record, handed as it is to every `onList` (which only reads it): frozen, so that a receiver
// that wrote to it would throw rather than change what later answers report. `onDrift` gets a copy.
function frozen(r: DriftRecord): DriftRecord {
  for (const c of r.changed) Object.freeze(Object.freeze(c).fields);
  Object.freeze(r.added);
  Object.freeze(r.removed);
  Object.freeze(r.changed);
  return Object.freeze(r);
}

const MARKER = '\u0001warden-id\u0001';
const MARKER_TEXT = JSON.stringify(MARKER);

/**
 * Where the value of the top-level `id` member sits in `text`, a JSON object: [start, end) of its token,
 * from the member offsets the project's JSON text checker records (checkJsonText). Undefined when the text
 * is not one JSON object, names `id` twice (JSON.parse keeps the last, other readers the first), or has a
 * top-level key written with an escape (`"i\u0064"` is `id` too): then there is no one place to swap.
 */
export function idSpan(text: string): [number, number] | undefined {
  const checked = checkJsonText(text, MAX_JSON_DEPTH);
  const members = checked instanceof JsonText ? checked.members : undefined;
  if (!members) return undefined;
  let span: [number, number] | undefined;
  for (let m = 0; m < members.length; m += 4) {
    const key = text.slice(members[m]!, members[m + 1]!);
    if (key.includes('\\')) return undefined;
    if (key !== '"id"') continue;
    if (span) return undefined;
    span = [members[m + 2]!, members[m + 3]!];
  }
  return span;
}
