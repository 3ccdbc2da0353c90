// What Warden reads of a request's body before it decides, shared by the sidecar (which reads it as it
// arrives) and `warden ext-authz` (which reads the body Envoy sends with the check, `with_request_body`): a
// JSON body the policy reads, checked whole; a POST's form, or a body Laravel reads as JSON, read for a
// `_method` field or member. Each refusal is logged as a decision, with the form that made it.
import type { EventSource } from '../formats/decision-event.js';
import type { Gate, Prepared } from './admit.js';
import type { Verdict } from './decide.js';
import { formReader, type FieldReader, type NameCheck } from './form-fields.js';
import { buildInput } from './input.js';
import { asciiCharset, foreignEncoding, isJson, jsonNamesMethod, MAX_JSON_DEPTH, memberKey } from './json-body.js';
import { METHOD_PARAMETER } from './normalize.js';
import { checkJsonText } from '../runtime/json-text.js';

/** A call normalized and identified, not yet decided. */
export type Ready = Extract<Prepared, { ok: true }>;

/** Refuse a prepared call before policy, logged like any decision (`upgrade`: the protocol an upgrade asked for). */
export function refusal(gate: Gate, p: Ready, reason: string, status: number, opts: { upgrade?: string; via?: EventSource } = {}): Verdict {
  const extra = opts.upgrade === undefined ? undefined : { upgrade: opts.upgrade };
  return gate.pipeline.refuse(buildInput(p.source, gate.pipeline.destination, p.request, extra), { kind: 'http', via: opts.via ?? 'proxy', bundle: p.bundle }, reason, status);
}

/** True when a body of this type is read whole into `input.request.body` (--json-body above 0). */
export const readsJsonBody = (jsonBodyBytes: number, contentType: string | undefined): boolean => jsonBodyBytes > 0 && isJson(contentType);

/**
 * A JSON body the app would decode otherwise than Warden reads it (foreignEncoding) is refused (415) where
 * Warden reads it, before it is read.
 */
export function undecodedBody(gate: Gate, p: Ready, via?: EventSource): { refused: Verdict } | undefined {
  const why = foreignEncoding(p.request.headers['content-type'], p.request.headers['content-encoding']);
  return why === undefined ? undefined : { refused: refusal(gate, p, `request refused: ${why}`, 415, { via }) };
}

/**
 * The check of a body's field names against the query keys the policy reads (InputSelection.queryKeys):
 * Laravel's `input()`, PHP's `$_REQUEST` and ASP.NET Core's binding take a POST's form fields over the
 * query's (Rails' `params` keeps the query's), so a field named as such a key, in any of the ways those apps read a name
 * (appQueryNames), is what the app reads where the policy read the query. Laravel's `input()` reads a JSON
 * body's top-level members so, whatever the method, and takes their keys as written (`json`: the key itself
 * in any case, no other reading). Applied to forms and JSON as they stream and to the top level of a JSON
 * body read whole; undefined when the policy reads no query key.
 */
export function queryOverride(p: Ready, json = false): NameCheck | undefined {
  if (!checksQueryKeys(p)) return undefined;
  const inputs = p.bundle!.policy.bundle.inputs;
  return (name) => {
    const key = json ? inputs.queryKeyNamed(name) : inputs.queryKeyOf(name);
    return key === undefined ? undefined : `request refused: the body's field ${JSON.stringify(name.slice(0, 64))} is the query key ${JSON.stringify(key)} the policy reads, to apps that read a body's fields over the query's (${json ? 'Laravel input()' : 'Laravel input(), PHP $_REQUEST, ASP.NET Core binding'})`;
  };
}

/** True when the policy of the call's bundle reads a query key: then a body's field names are checked (queryOverride). */
export const checksQueryKeys = (p: Ready): boolean => p.bundle?.policy.bundle.inputs.queryKeys() !== undefined;

/** A JSON body read whole: its bytes and value, or the refusal of one that is unreadable. */
export function checkedJsonBody(gate: Gate, p: Ready, bytes: Buffer, via?: EventSource): { bytes: Buffer; value?: unknown } | { refused: Verdict } {
  if (bytes.length === 0) return { bytes };
  // Checked without building its value: a body the policy does not read is never parsed (runtime/json-text.ts).
  const value = checkJsonText(bytes.toString('utf8'), MAX_JSON_DEPTH);
  // The upstream would have to guess what an unparseable JSON body means: refuse it.
  if (value === 'invalid') return { refused: refusal(gate, p, 'request refused: the body is not valid JSON', 400, { via }) };
  if (value === 'too-deep') return { refused: refusal(gate, p, `request refused: the JSON body nests deeper than ${MAX_JSON_DEPTH} levels`, 400, { via }) };
  if (p.request.method === 'POST' && jsonNamesMethod(value.text, value.members)) return { refused: refusal(gate, p, `request refused: ${METHOD_PARAMETER}`, 400, { via }) };
  const why = value.members && jsonQueryOverride(p, value.text, value.members);
  if (why) return { refused: refusal(gate, p, why, 400, { via }) };
  return { bytes, value };
}

// The one value the query gives `name` (as sent), if it gives exactly one.
function onlyQueryValue(p: Ready, name: string): string | undefined {
  const sent = p.request.query[name];
  return sent?.length === 1 ? sent[0] : undefined;
}

// Why a JSON body read whole is refused for a top-level member named as a query key the policy reads
// (queryOverride), if it is: unless the member is a string the query gives that key as its only value, so
// that the app reads what the policy read (`?tenant=acme` with `{"tenant": "acme"}`), or the policy reads
// that member of the body too (`input.request.body.tenant`), so that it decides on what the app reads.
function jsonQueryOverride(p: Ready, text: string, members: readonly number[]): string | undefined {
  const overrides = queryOverride(p, true);
  if (!overrides) return undefined;
  const inputs = p.bundle!.policy.bundle.inputs;
  for (let m = 0; m < members.length; m += 4) {
    const name = memberKey(text, members, m);
    const why = overrides(name);
    if (why === undefined || inputs.readsBodyMember(name)) continue;
    const sent = onlyQueryValue(p, name);
    if (sent !== undefined && text[members[m + 2]!] === '"' && JSON.parse(text.slice(members[m + 2], members[m + 3])) === sent) continue;
    return why;
  }
  return undefined;
}

/**
 * The reader of a POST's form, or of a body Laravel reads as JSON that is not read whole, for a `_method`
 * field or member, and of any method's form or such JSON for names the policy reads in the query
 * (queryOverride; form-fields.ts); the refusal of one that cannot be read (415 for an encoded body or one
 * in a charset that does not write ASCII as ASCII: the reader reads bytes; 400 for a multipart type with no
 * boundary to read it by); undefined for any other request.
 */
export function bodyFieldReader(gate: Gate, p: Ready, via?: EventSource): { refusal: Verdict } | { reader: FieldReader } | undefined {
  const type = p.request.headers['content-type'];
  const reader = formReader(p.request.method, type, queryOverride(p), { onName: queryOverride(p, true), queryValue: (name) => onlyQueryValue(p, name) });
  if (!reader) return undefined;
  const coding = p.request.headers['content-encoding'];
  // The readers read bytes, as PHP does (json_decode and the form parser ignore the charset): any charset
  // that writes ASCII as ASCII spells `_method` in the same bytes.
  const foreign = !asciiCharset(type) ? `a body read for "_method" must be in a charset that writes ASCII as ASCII (${JSON.stringify(type!.slice(0, 80))})` : foreignEncoding(undefined, coding);
  if (foreign) return { refusal: refusal(gate, p, `request refused: ${foreign}`, 415, { via }) };
  if ('refused' in reader) return { refusal: refusal(gate, p, `request refused: ${reader.refused}`, 400, { via }) };
  return { reader };
}
