// The builtins OPA's WASM target leaves to the host, implemented with the semantics of OPA's Go
// evaluator, because Warden's WASM decisions are compared with `opa eval` (and with OPA's own
// conformance suite, test/opa-conformance.test.ts). Each builtin takes plain JSON values (sets as
// arrays, numbers as doubles: the cheap path) unless it is marked `exact`, then RegoValues (sets as
// RegoSet, integers beyond 2^53 and float spellings as RegoNumber; wasm-abi.ts), and returns a value,
// which may hold sets. Larger families live in their own modules (jwt, cidr, json-patch, json-schema,
// graph, uuid); this file assembles them.
//
// A builtin error leaves the expression undefined (OPA's default), or fails the evaluation when the
// workload sets strictBuiltinErrors. Known differences from Go (pinned in builtins.test.ts, listed in
// docs/opa-conformance.md): builtins not marked exact see integral floats (1.0) as integers and
// integers beyond 2^53 rounded (exact builtins see both as written).
// time.parse_ns rejects zone abbreviations (MST); time.* zones come from the host's
// ICU data; regexes follow re2.ts (which refuses what it cannot translate, failing closed).
import { createHash, createHmac, randomBytes as nodeRandomBytes, timingSafeEqual } from 'node:crypto';
import { BuiltinError, bigNumber, exact, isJsonText, isObject, str, takesExactValues, typeName, type HostResult } from './builtin-operand.js';
import { systemClock, type Clock } from './clock.js';
import { parseAllDocuments, stringify as stringifyYaml } from 'yaml';
import { signAwsRequest } from './aws-signature.js';
import { cidrContainsMatches, cidrExpand, cidrIsValid, cidrMerge } from './cidr.js';
import { marshalWithOptions } from './go-json.js';
import { reachablePaths } from './graph.js';
import { graphqlBuiltins } from './graphql.js';
import { jsonPatch } from './json-patch.js';
import { matchSchema, verifySchema } from './json-schema.js';
import { jwtBuiltins } from './jwt.js';
import { compileRe2 } from './re2.js';
import { isValidUri, parseUri } from './uri.js';
import { parseUuid } from './uuid.js';
import { parseCertificates, parseKeypair, parsePrivateKeyJwk } from './x509.js';
import { parseAndVerifyCertificates } from './certificate-chain.js';
import { parseCertificateRequest } from './certificate-request.js';
import { parsePrivateKeys } from './private-key.js';
import { formatTime } from './time-format.js';
import { globsMatch } from './glob-intersection.js';
import { renderTemplate } from './go-template.js';
import { RegoNumber, RegoSet, type RegoValue } from './rego-value.js';
import { compareCodePoints, sprintf, type JsonValue } from './sprintf.js';
import { compareValues, sortedSet } from './value-order.js';

export { BuiltinError, type HostResult } from './builtin-operand.js';


/** One host builtin: synchronous, JSON in, JSON out (undefined: no value); throws when OPA would report an error. */
export type HostBuiltin = (...args: any[]) => HostResult; // eslint-disable-line @typescript-eslint/no-explicit-any

/** What the builtins depend on: the evaluation's clock and a source of randomness. */
export interface HostBuiltinDeps {
  clock: Clock;
  randomBytes?: (size: number) => Uint8Array;
  /**
   * OPA's `--strict-builtin-errors`: a builtin error fails the whole evaluation (the call is denied).
   * Off by default, as in `opa eval` and `opa test`: the failing expression is undefined instead.
   */
  strictBuiltinErrors?: boolean;
}

/** The host builtins plus the per-evaluation state OPA requires (stable uuid.rfc4122 per key). */
export interface HostBuiltinSet {
  readonly functions: Readonly<Record<string, HostBuiltin>>;
  /** Forgets per-evaluation memos; call before each evaluate (with EvaluationInstant.begin()). */
  beginEvaluation(): void;
}


const NS_PER_MS = 1_000_000n;
const MIN_NS = -(2n ** 63n);
const MAX_NS = 2n ** 63n - 1n;

/**
 * Host builtins whose result depends on more than their operands: the clock (`time.now_ns`, and the
 * checks of a token's or certificate's validity against now), randomness (`uuid.rfc4122`, `rand.intn`,
 * ECDSA signing). A module that imports none decides the same input the same way every time, so its
 * results may be reused (Policy). Any builtin added above that reads `deps` belongs here.
 */
export const NOT_PURE_BUILTINS: ReadonlySet<string> = new Set(['time.now_ns', 'uuid.rfc4122', 'rand.intn', 'io.jwt.decode_verify', 'io.jwt.encode_sign', 'io.jwt.encode_sign_raw', 'crypto.x509.parse_and_verify_certificates']);

/** Builds the host builtins over the given clock. */
export function createHostBuiltins(deps: HostBuiltinDeps): HostBuiltinSet {
  const random = deps.randomBytes ?? ((n: number) => new Uint8Array(nodeRandomBytes(n)));
  let uuids = new Map<string, string>();
  let randoms = new Map<string, number>();
  const functions: Record<string, HostBuiltin> = {
    sprintf: exact((format: string, args: RegoValue[]) => sprintf(format, args)),

    'strings.any_prefix_match': (search: JsonValue, base: JsonValue) =>
      anyMatch('strings.any_prefix_match', search, base, (s, b) => s.startsWith(b)),
    'strings.any_suffix_match': (search: JsonValue, base: JsonValue) =>
      anyMatch('strings.any_suffix_match', search, base, (s, b) => s.endsWith(b)),

    'time.now_ns': () => bigNumber(deps.clock.nowNs()),
    'time.parse_rfc3339_ns': (value: string) => bigNumber(parseRfc3339(str('time.parse_rfc3339_ns', value))),
    'time.parse_ns': (layout: string, value: string) =>
      bigNumber(parseLayout(namedLayout(str('time.parse_ns', layout)), str('time.parse_ns', value))),
    'time.parse_duration_ns': (value: string) => bigNumber(parseDuration(str('time.parse_duration_ns', value))),
    'time.date': (x: JsonValue) => {
      const t = civil('time.date', x);
      return [t.year, t.month, t.day];
    },
    'time.clock': (x: JsonValue) => {
      const t = civil('time.clock', x);
      return [t.hour, t.minute, t.second];
    },
    'time.weekday': (x: JsonValue) => WEEKDAYS[civil('time.weekday', x).weekday] ?? '',
    'time.add_date': exact((ns: RegoValue, years: RegoValue, months: RegoValue, days: RegoValue) => addDate(ns, years, months, days)),
    'time.diff': (a: JsonValue, b: JsonValue) => timeDiff(civil('time.diff', a), civil('time.diff', b)),
    // Exact: its nanoseconds are often beyond 2^53 (time.now_ns()), and Go formats every digit.
    'time.format': exact((x: RegoValue) => formatTime(x)),

    'units.parse': (x: string) => parseUnits(str('units.parse', x)),
    'units.parse_bytes': (x: string) => bigNumber(parseBytes(str('units.parse_bytes', x))),

    'semver.is_valid': (x: JsonValue) => typeof x === 'string' && parseSemver(x) !== undefined,
    'semver.compare': (a: string, b: string) => compareSemver(a, b),

    'regex.replace': (s: string, pattern: string, value: string) =>
      regexReplace(str('regex.replace', s), str('regex.replace', pattern), str('regex.replace', value)),
    'regex.find_n': (pattern: string, s: string, n: number) => regexFindAll(pattern, s, n).map((m) => m[0]),
    'regex.template_match': (template: string, s: string, start: string, end: string) =>
      templateMatch(template, s, start, end),
    'regex.globs_match': (a: JsonValue, b: JsonValue) => globsMatch(a, b),

    'object.subset': exact((sup: RegoValue, sub: RegoValue) => isSubset(sup, sub)),

    'urlquery.encode': (s: string) => queryEscape(str('urlquery.encode', s)),
    'urlquery.decode': (s: string) => queryUnescape(str('urlquery.decode', s)),
    'urlquery.encode_object': (obj: Record<string, JsonValue>) => encodeObject(obj),
    'urlquery.decode_object': (s: string) => decodeObject(str('urlquery.decode_object', s)),

    'hex.encode': (s: string) => Buffer.from(str('hex.encode', s), 'utf8').toString('hex'),
    'hex.decode': (s: string) => hexDecode(str('hex.decode', s)),

    'crypto.md5': (s: string) => digest('md5', s),
    'crypto.sha1': (s: string) => digest('sha1', s),
    'crypto.sha256': (s: string) => digest('sha256', s),
    'crypto.hmac.md5': (s: string, key: string) => hmac('md5', s, key),
    'crypto.hmac.sha1': (s: string, key: string) => hmac('sha1', s, key),
    'crypto.hmac.sha256': (s: string, key: string) => hmac('sha256', s, key),
    'crypto.hmac.sha512': (s: string, key: string) => hmac('sha512', s, key),
    'crypto.hmac.equal': (a: string, b: string) => {
      const x = Buffer.from(str('crypto.hmac.equal', a), 'utf8');
      const y = Buffer.from(str('crypto.hmac.equal', b), 'utf8');
      return x.length === y.length && timingSafeEqual(x, y);
    },

    'uuid.rfc4122': (key: string) => {
      const k = str('uuid.rfc4122', key);
      let id = uuids.get(k);
      if (id === undefined) {
        id = uuidV4(random(16));
        uuids.set(k, id);
      }
      return id;
    },

    // One value per (key, |n|) for the whole evaluation, as OPA caches it per query.
    'rand.intn': (key: JsonValue, nIn: JsonValue) => {
      const k = str('rand.intn', key);
      const n = Math.abs(integerOperand('rand.intn', nIn, 2));
      if (n === 0) return 0;
      const memo = `${k}-${n}`;
      let v = randoms.get(memo);
      if (v === undefined) {
        v = Number(Buffer.from(random(8)).readBigUInt64BE() % BigInt(n));
        randoms.set(memo, v);
      }
      return v;
    },
    ...jwtBuiltins(() => deps.clock.nowNs()),
    ...graphqlBuiltins,

    'strings.render_template': (template: JsonValue, vars: JsonValue) => renderTemplate(template, vars),
    'strings.count': (search: JsonValue, substring: JsonValue) => countSubstrings(str('strings.count', search), str('strings.count', substring)),
    // gobwas/glob's QuoteMeta: its special characters are * ? \\ [ ] { }
    'graph.reachable_paths': (g: JsonValue, initial: JsonValue) => reachablePaths(g, initial),
    'crypto.x509.parse_certificates': (x: JsonValue) => parseCertificates(x),
    'crypto.x509.parse_rsa_private_key': (x: JsonValue) => parsePrivateKeyJwk(x),
    'crypto.x509.parse_and_verify_certificates': (x: JsonValue) => parseAndVerifyCertificates(x, Number(deps.clock.nowNs() / 1_000_000n)),
    'crypto.x509.parse_certificate_request': (x: JsonValue) => parseCertificateRequest(x),
    'crypto.x509.parse_keypair': (cert: JsonValue, key: JsonValue) => parseKeypair(cert, key),
    'crypto.parse_private_keys': (x: JsonValue) => parsePrivateKeys(x),
    'uri.parse': (x: JsonValue) => parseUri(x),
    'uri.is_valid': (x: JsonValue) => isValidUri(x),
    'providers.aws.sign_req': exact((request: RegoValue, config: RegoValue, timeNs: RegoValue) => signAwsRequest(request, config, timeNs)),
    'uuid.parse': (x: JsonValue) => parseUuid(x),
    'strings.split_n': (x: JsonValue, d: JsonValue, n: JsonValue) => splitN(str('strings.split_n', x), str('strings.split_n', d), integerOperand('strings.split_n', n, 3)),
    indexof_n: (base: JsonValue, search: JsonValue) => indexOfN(str('indexof_n', base), str('indexof_n', search)),
    // Deprecated casts (Rego v0): each passes its own type through and refuses any other.
    cast_array: (x: JsonValue) => (Array.isArray(x) ? x : castError('cast_array', 'array', x)),
    cast_boolean: (x: JsonValue) => (typeof x === 'boolean' ? x : castError('cast_boolean', 'boolean', x)),
    cast_null: (x: JsonValue) => (x === null ? x : castError('cast_null', 'null', x)),
    cast_object: (x: JsonValue) => (isObject(x) ? x : castError('cast_object', 'object', x)),
    cast_set: exact((x: RegoValue) => (x instanceof RegoSet ? x : Array.isArray(x) ? new RegoSet(sortedSet(x)) : castError('cast_set', 'set', x))),
    cast_string: (x: JsonValue) => (typeof x === 'string' ? x : castError('cast_string', 'string', x)),
    'glob.quote_meta': (pattern: JsonValue) => str('glob.quote_meta', pattern).replace(/[*?\\[\]{}]/g, '\\$&'),
    'base64url.encode_no_pad': (x: JsonValue) => Buffer.from(str('base64url.encode_no_pad', x), 'utf8').toString('base64url'),
    'net.cidr_is_valid': (x: JsonValue) => cidrIsValid(x),
    'net.cidr_expand': (x: JsonValue) => cidrExpand(x),
    'net.cidr_contains_matches': exact((a: RegoValue, b: RegoValue) => cidrContainsMatches(a, b)),
    'net.cidr_merge': (x: JsonValue) => cidrMerge(x),
    'json.verify_schema': (schema: JsonValue) => verifySchema(schema),
    'json.match_schema': (doc: JsonValue, schema: JsonValue) => matchSchema(doc, schema),
    'json.marshal_with_options': (x: JsonValue, options: JsonValue) => marshalWithOptions(x, options),
    'json.patch': exact((doc: RegoValue, ops: RegoValue) => jsonPatch(doc, ops)),
    'numbers.range_step': (a: JsonValue, b: JsonValue, step: JsonValue) => rangeStep(a, b, step),

    // OPA's WASM leaves these to the host too (the SDK once supplied JavaScript versions): Go's regex
    // split and YAML 1.1 as Go's yaml.v2 reads it, honouring the strict setting.
    'json.is_valid': (x: JsonValue) => typeof x === 'string' && isJsonText(x),
    'regex.split': (pattern: JsonValue, s: JsonValue) => regexSplit(str('regex.split', pattern), str('regex.split', s)),
    'yaml.is_valid': (x: JsonValue) => typeof x === 'string' && yamlDocument('yaml.is_valid', x, false) !== undefined,
    'yaml.unmarshal': (x: JsonValue) => yamlDocument('yaml.unmarshal', str('yaml.unmarshal', x), true),
    'yaml.marshal': (x: JsonValue) => stringifyYaml(x, { version: '1.1', indentSeq: false, sortMapEntries: true }),
  };
  return {
    functions: Object.freeze(deps.strictBuiltinErrors ? functions : nonStrict(functions)),
    beginEvaluation: () => {
      uuids = new Map();
      randoms = new Map();
    },
  };
}

// OPA's default (non-strict) mode: an expression whose builtin fails is undefined, and evaluation goes
// on; the instance turns a host's `undefined` into "no value". Only the errors OPA would report are swallowed
// (a BuiltinError, or a TypeError from an operand of the wrong type); anything else (a regex re2.ts
// cannot translate, where OPA would have an answer; memory exhaustion) still fails the evaluation closed.
function nonStrict(functions: Record<string, HostBuiltin>): Record<string, HostBuiltin> {
  const out: Record<string, HostBuiltin> = {};
  for (const [name, f] of Object.entries(functions)) {
    const safe: HostBuiltin = (...args) => {
      try {
        return f(...args);
      } catch (err) {
        if (err instanceof BuiltinError || err instanceof TypeError) return undefined;
        throw err;
      }
    };
    out[name] = takesExactValues(f) ? exact(safe) : safe;
  }
  return out;
}

/** The host builtins over the system clock (uuid memo never reset: prefer createHostBuiltins). */
export const hostBuiltins: Readonly<Record<string, HostBuiltin>> = createHostBuiltins({ clock: systemClock }).functions;

/** The builtins a policy needs that `provided` (default: Warden's host builtins) lacks, sorted. */
export function missingBuiltins(required: Iterable<string>, provided: Readonly<Record<string, unknown>> = hostBuiltins): string[] {
  const missing = new Set<string>();
  for (const name of required) if (!Object.hasOwn(provided, name)) missing.add(name);
  return [...missing].sort();
}

// ---- helpers shared by several builtins


function stringsOf(builtin: string, x: JsonValue): string[] {
  if (typeof x === 'string') return [x];
  if (Array.isArray(x)) {
    return x.map((e) => {
      if (typeof e !== 'string') throw new BuiltinError(builtin, `element must be string, got ${typeName(e)}`);
      return e;
    });
  }
  throw new BuiltinError(builtin, `operand must be one of {string, array, set}, got ${typeName(x)}`);
}

function anyMatch(builtin: string, search: JsonValue, base: JsonValue, match: (s: string, b: string) => boolean): boolean {
  const ss = stringsOf(builtin, search);
  const bs = stringsOf(builtin, base);
  return ss.some((s) => bs.some((b) => match(s, b)));
}

// ---- time

const WEEKDAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

function checkRange(builtin: string, ns: bigint): bigint {
  if (ns < MIN_NS || ns > MAX_NS) throw new BuiltinError(builtin, 'time outside of valid range');
  return ns;
}

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

function epochNs(builtin: string, y: number, mo: number, d: number, h: number, mi: number, s: number, frac: bigint, offsetSec: number): bigint {
  if (mo < 1 || mo > 12) throw new BuiltinError(builtin, 'month out of range');
  if (d < 1 || d > daysInMonth(y, mo)) throw new BuiltinError(builtin, 'day out of range');
  if (h > 23 || mi > 59 || s > 59) throw new BuiltinError(builtin, 'time of day out of range');
  const date = new Date(0);
  date.setUTCFullYear(y, mo - 1, d);
  date.setUTCHours(h, mi, s, 0);
  return checkRange(builtin, BigInt(date.getTime()) * NS_PER_MS + frac - BigInt(offsetSec) * 1_000_000_000n);
}

function fracNs(digits: string): bigint {
  return BigInt(digits.slice(0, 9).padEnd(9, '0'));
}

function parseRfc3339(s: string): bigint {
  const m = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/.exec(s);
  if (!m) throw new BuiltinError('time.parse_rfc3339_ns', `parsing time ${JSON.stringify(s)} as RFC 3339 failed`);
  const offset = m[8] ? 0 : (m[9] === '-' ? -1 : 1) * (Number(m[10]) * 3600 + Number(m[11]) * 60);
  if (Number(m[10] ?? 0) > 23 || Number(m[11] ?? 0) > 59) throw new BuiltinError('time.parse_rfc3339_ns', 'time zone offset out of range');
  return epochNs('time.parse_rfc3339_ns', Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]), fracNs(m[7] ?? ''), offset);
}

// The layout names OPA accepts for Go's layout constants (topdown/time.go's acceptedTimeFormats).
const NAMED_LAYOUTS: Record<string, string> = {
  ANSIC: 'Mon Jan _2 15:04:05 2006', UnixDate: 'Mon Jan _2 15:04:05 MST 2006', RubyDate: 'Mon Jan 02 15:04:05 -0700 2006',
  RFC822: '02 Jan 06 15:04 MST', RFC822Z: '02 Jan 06 15:04 -0700', RFC850: 'Monday, 02-Jan-06 15:04:05 MST',
  RFC1123: 'Mon, 02 Jan 2006 15:04:05 MST', RFC1123Z: 'Mon, 02 Jan 2006 15:04:05 -0700',
  RFC3339: '2006-01-02T15:04:05Z07:00', RFC3339Nano: '2006-01-02T15:04:05.999999999Z07:00',
};

function namedLayout(layout: string): string {
  return Object.hasOwn(NAMED_LAYOUTS, layout) ? NAMED_LAYOUTS[layout]! : layout;
}

// Go reference-time layouts: the tokens time.Parse recognises, longest first where they share a prefix.
const LAYOUT_TOKENS = [
  'January', 'Jan', 'Monday', 'Mon', 'MST',
  '2006', '-070000', '-07:00:00', '-0700', '-07:00', '-07',
  'Z070000', 'Z07:00:00', 'Z0700', 'Z07:00', 'Z07',
  '002', '01', '02', '03', '04', '05', '06', '_2', '15', '1', '2', '3', '4', '5', 'PM', 'pm',
];

function parseLayout(layout: string, value: string): bigint {
  const fail = (why: string): never => {
    throw new BuiltinError('time.parse_ns', `parsing time ${JSON.stringify(value)} as ${JSON.stringify(layout)}: ${why}`);
  };
  let year = 1, month = 1, day = 1, hour = 0, minute = 0, second = 0, frac = 0n, offset = 0, pm: boolean | undefined, yday = -1;
  let v = value;
  const num = (min: number, max: number, what: string): number => {
    const m = new RegExp(`^\\d{${min},${max}}`).exec(v);
    if (!m) return fail(`cannot parse ${JSON.stringify(v)} as ${what}`);
    v = v.slice(m[0].length);
    return Number(m[0]);
  };
  const word = (names: string[], len: number | undefined, what: string): number => {
    const k = names.findIndex((n) => v.toLowerCase().startsWith((len ? n.slice(0, len) : n).toLowerCase()));
    if (k < 0) return fail(`cannot parse ${JSON.stringify(v)} as ${what}`);
    v = v.slice(len ?? (names[k] ?? '').length);
    return k;
  };
  let l = layout;
  while (l.length > 0) {
    // Fractional seconds: `.000`/`,999` in the layout, or digits after seconds even when not in the layout.
    const fracLayout = /^[.,](0+|9+)/.exec(l);
    if (fracLayout) {
      l = l.slice(fracLayout[0].length);
      const m = /^[.,](\d+)/.exec(v);
      if (fracLayout[1]?.startsWith('0')) {
        if (!m || m[1]?.length !== fracLayout[1].length) fail('cannot parse fractional seconds');
      }
      if (m) {
        frac = fracNs(m[1] ?? '');
        v = v.slice(m[0].length);
      }
      continue;
    }
    const token = LAYOUT_TOKENS.find((t) => l.startsWith(t));
    if (!token) {
      if (v[0] !== l[0]) fail(`cannot parse ${JSON.stringify(v)} as ${JSON.stringify(l)}`);
      v = v.slice(1);
      l = l.slice(1);
      continue;
    }
    l = l.slice(token.length);
    switch (token) {
      case '2006': year = num(4, 4, 'year'); break;
      case '06': { const y = num(2, 2, 'year'); year = y >= 69 ? 1900 + y : 2000 + y; break; }
      case 'January': month = word(MONTHS, undefined, 'month') + 1; break;
      case 'Jan': month = word(MONTHS, 3, 'month') + 1; break;
      case 'Monday': word(WEEKDAYS, undefined, 'day'); break;
      case 'Mon': word(WEEKDAYS, 3, 'day'); break;
      case '01': month = num(2, 2, 'month'); break;
      case '1': month = num(1, 2, 'month'); break;
      case '02': day = num(2, 2, 'day'); break;
      case '2': day = num(1, 2, 'day'); break;
      case '_2': if (v[0] === ' ') v = v.slice(1); day = num(1, 2, 'day'); break;
      case '002': yday = num(3, 3, 'day of year'); break;
      case '15': hour = num(1, 2, 'hour'); break;
      case '03': hour = num(2, 2, 'hour'); break;
      case '3': hour = num(1, 2, 'hour'); break;
      case '04': minute = num(2, 2, 'minute'); break;
      case '4': minute = num(1, 2, 'minute'); break;
      case '05': case '5': {
        second = token === '05' ? num(2, 2, 'second') : num(1, 2, 'second');
        const m = /^[.,](\d+)/.exec(v);
        if (m && !/^[.,][09]/.test(l)) {
          frac = fracNs(m[1] ?? '');
          v = v.slice(m[0].length);
        }
        break;
      }
      case 'PM': case 'pm': {
        const m = /^(AM|PM)/i.exec(v);
        if (!m) fail('cannot parse AM/PM');
        pm = (m?.[1] ?? '').toUpperCase() === 'PM';
        v = v.slice(2);
        break;
      }
      case 'MST': return fail('time zone abbreviations are not supported by Warden');
      default: {
        if (token.startsWith('Z') && /^[Zz]/.test(v)) {
          v = v.slice(1);
          offset = 0;
          break;
        }
        const colon = token.includes(':');
        const parts = token.replace(/^Z/, '-').replace(/:/g, '').length === 3 ? 1 : token.replace(/:/g, '').length <= 5 ? 2 : 3;
        const re = new RegExp(`^([+-])(\\d{2})${parts > 1 ? `${colon ? ':' : ''}(\\d{2})` : ''}${parts > 2 ? `${colon ? ':' : ''}(\\d{2})` : ''}`);
        const m = re.exec(v);
        if (!m) return fail('cannot parse time zone offset');
        v = v.slice(m[0].length);
        offset = (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 3600 + Number(m[3] ?? 0) * 60 + Number(m[4] ?? 0));
      }
    }
  }
  if (v.length > 0) fail(`extra text: ${JSON.stringify(v)}`);
  if (pm !== undefined) {
    if (hour > 12) fail('hour out of range');
    if (pm && hour < 12) hour += 12;
    else if (!pm && hour === 12) hour = 0;
  }
  if (yday >= 0) {
    const date = new Date(Date.UTC(2000, 0, yday));
    date.setUTCFullYear(year);
    month = date.getUTCMonth() + 1;
    day = date.getUTCDate();
  }
  return epochNs('time.parse_ns', year, month, day, hour, minute, second, frac, offset);
}

const DURATION_UNITS: Record<string, bigint> = {
  ns: 1n, us: 1_000n, 'µs': 1_000n, 'μs': 1_000n, ms: 1_000_000n, s: 1_000_000_000n, m: 60_000_000_000n, h: 3_600_000_000_000n,
  // OPA extends Go's units with days, weeks and (365-day) years.
  d: 86_400_000_000_000n, w: 604_800_000_000_000n, y: 31_536_000_000_000_000n,
};

function parseDuration(s: string): bigint {
  const fail = (): never => {
    throw new BuiltinError('time.parse_duration_ns', `time: invalid duration ${JSON.stringify(s)}`);
  };
  let rest = s;
  let neg = false;
  if (rest[0] === '-' || rest[0] === '+') {
    neg = rest[0] === '-';
    rest = rest.slice(1);
  }
  if (rest === '0') return 0n;
  if (rest === '') fail();
  let total = 0n;
  while (rest.length > 0) {
    const m = /^(\d*)(?:\.(\d*))?([^\d.]+)/.exec(rest);
    if (!m || (m[1] === '' && (m[2] ?? '') === '')) return fail();
    const unit = DURATION_UNITS[m[3] ?? ''];
    if (unit === undefined) {
      throw new BuiltinError('time.parse_duration_ns', `time: unknown unit ${JSON.stringify(m[3])} in duration ${JSON.stringify(s)}`);
    }
    const whole = BigInt(m[1] || '0') * unit;
    const fracDigits = m[2] ?? '';
    // Go truncates the fractional part's contribution towards zero.
    const fracPart = fracDigits === '' ? 0n : (BigInt(fracDigits) * unit) / 10n ** BigInt(fracDigits.length);
    total += whole + fracPart;
    if (total > MAX_NS + (neg ? 1n : 0n)) fail();
    rest = rest.slice(m[0].length);
  }
  return neg ? -total : total;
}

interface Civil {
  year: number; month: number; day: number; hour: number; minute: number; second: number; weekday: number; zone: string; ns: bigint;
}

function civil(builtin: string, x: JsonValue): Civil {
  let ns: number;
  let zone = 'UTC';
  if (typeof x === 'number') ns = x;
  else if (Array.isArray(x) && x.length === 2 && typeof x[0] === 'number' && typeof x[1] === 'string') {
    ns = x[0];
    zone = x[1] === '' ? 'UTC' : x[1] === 'Local' ? Intl.DateTimeFormat().resolvedOptions().timeZone : x[1];
  } else throw new BuiltinError(builtin, 'operand must be number or [number, string]');
  if (!Number.isFinite(ns)) throw new BuiltinError(builtin, 'timestamp too big');
  const big = BigInt(Math.trunc(ns));
  // Go reads the operand as an int64 of nanoseconds: anything beyond is an error, not a wrapped date.
  if (big < MIN_NS || big > MAX_NS) throw new BuiltinError(builtin, 'timestamp too big');
  const ms = Number(floorDiv(big, NS_PER_MS));
  let parts: Intl.DateTimeFormatPart[];
  try {
    parts = new Intl.DateTimeFormat('en-US', {
      timeZone: zone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric',
      hour: 'numeric', minute: 'numeric', second: 'numeric', weekday: 'long', era: 'short',
    }).formatToParts(new Date(ms));
  } catch {
    throw new BuiltinError(builtin, `unknown time zone ${zone}`);
  }
  const get = (t: string): string => parts.find((p) => p.type === t)?.value ?? '';
  const bc = get('era') === 'BC';
  const year = bc ? 1 - Number(get('year')) : Number(get('year'));
  return {
    year, month: Number(get('month')), day: Number(get('day')), hour: Number(get('hour')), minute: Number(get('minute')),
    second: Number(get('second')), weekday: WEEKDAYS.indexOf(get('weekday')), zone, ns: big,
  };
}

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && (a < 0n) !== (b < 0n) ? q - 1n : q;
}

// A number operand's integer part, exact when it arrives as an exact value (integers beyond 2^53).
function wholeNumber(builtin: string, x: RegoValue): bigint {
  if (typeof x === 'number' && Number.isFinite(x)) return BigInt(Math.trunc(x));
  if (x instanceof RegoNumber) return x.isInteger ? BigInt(x.text) : wholeNumber(builtin, Number(x.text));
  throw new BuiltinError(builtin, 'operands must be numbers');
}

// Takes exact values: the nanoseconds keep every digit.
function addDate(nsIn: RegoValue, yearsIn: RegoValue, monthsIn: RegoValue, daysIn: RegoValue): HostResult {
  const [big, years, months, days] = [nsIn, yearsIn, monthsIn, daysIn].map((x) => wholeNumber('time.add_date', x)) as [bigint, bigint, bigint, bigint];
  const ms = floorDiv(big, NS_PER_MS);
  const subMs = big - ms * NS_PER_MS;
  const d = new Date(Number(ms));
  // Date normalises overflowing months and days the same way Go's time.AddDate does.
  d.setUTCFullYear(d.getUTCFullYear() + Number(years), d.getUTCMonth() + Number(months), d.getUTCDate() + Number(days));
  return bigNumber(checkRange('time.add_date', BigInt(d.getTime()) * NS_PER_MS + subMs));
}

function timeDiff(a: Civil, b: Civil): number[] {
  // Both instants are read in the first one's zone, the earlier one first (OPA follows icza/gox).
  let t1 = a;
  let t2 = b.zone === a.zone ? b : civil('time.diff', [Number(b.ns), a.zone]);
  if (t1.ns > t2.ns) [t1, t2] = [t2, t1];
  let year = t2.year - t1.year;
  let month = t2.month - t1.month;
  let day = t2.day - t1.day;
  let hour = t2.hour - t1.hour;
  let min = t2.minute - t1.minute;
  let sec = t2.second - t1.second;
  if (sec < 0) { sec += 60; min--; }
  if (min < 0) { min += 60; hour--; }
  if (hour < 0) { hour += 24; day--; }
  if (day < 0) { day += daysInMonth(t1.year, t1.month); month--; }
  if (month < 0) { month += 12; year--; }
  return [year, month, day, hour, min, sec];
}

// ---- units

// OPA's extractNumAndUnit: digits, '.', signs and an exponent (at most 6 digits) make the amount;
// the first other character starts the unit.
function numAndUnit(builtin: string, s: string): [string, string] {
  const isDigit = (c: string | undefined) => c !== undefined && c >= '0' && c <= '9';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (!isDigit(c) && c !== '.' && c !== 'e' && c !== 'E' && c !== '+' && c !== '-') return [s.slice(0, i), s.slice(i)];
    if (c === 'e' || c === 'E') {
      const next = s[i + 1];
      if (next === undefined || (!isDigit(next) && next !== '+' && next !== '-')) return [s.slice(0, i), s.slice(i)];
      if (next === '+' || next === '-') i++;
      let end = i + 1;
      while (isDigit(s[end])) end++;
      if (end - (i + 1) > 6) throw new BuiltinError(builtin, 'exponent too large');
    }
  }
  return [s, ''];
}

/** An exact decimal amount: numerator / denominator. */
interface Ratio {
  num: bigint;
  den: bigint;
}

// Go's big.Rat SetString for a decimal with an optional sign and exponent. Exponents beyond ±4000
// are refused: OPA would build numbers no JSON reader here can hold, and a hostile one costs memory.
function parseAmount(builtin: string, text: string): Ratio {
  const m = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (!m || (m[2] === '' && (m[3] ?? '') === '')) throw new BuiltinError(builtin, 'could not parse amount to a number');
  const exp = Number(m[4] ?? '0') - (m[3] ?? '').length;
  if (Math.abs(exp) > 4000) throw new BuiltinError(builtin, 'exponent too large');
  let num = BigInt(`${m[2] || '0'}${m[3] ?? ''}`) * (m[1] === '-' ? -1n : 1n);
  let den = 1n;
  if (exp >= 0) num *= 10n ** BigInt(exp);
  else den = 10n ** BigInt(-exp);
  return { num, den };
}

const DECIMAL_UNITS: Record<string, bigint> = { k: 10n ** 3n, m: 10n ** 6n, g: 10n ** 9n, t: 10n ** 12n, p: 10n ** 15n, e: 10n ** 18n };
const BINARY_UNITS: Record<string, bigint> = { ki: 1n << 10n, mi: 1n << 20n, gi: 1n << 30n, ti: 1n << 40n, pi: 1n << 50n, ei: 1n << 60n };

// big.Rat's FloatString(10): rounded to ten decimals, halves away from zero.
function tenDecimals(r: Ratio): number {
  const neg = r.num < 0n !== r.den < 0n;
  const n = r.num < 0n ? -r.num : r.num;
  const d = r.den < 0n ? -r.den : r.den;
  const scaled = (n * 10n ** 10n * 2n + d) / (2n * d);
  const digits = scaled.toString().padStart(11, '0');
  return Number(`${neg ? '-' : ''}${digits.slice(0, -10)}.${digits.slice(-10)}`);
}

function parseUnits(raw: string): HostResult {
  const builtin = 'units.parse';
  const s = raw.replaceAll('"', '');
  if (s.includes(' ')) throw new BuiltinError(builtin, 'spaces not allowed in resource strings');
  const [num, unitRaw] = numAndUnit(builtin, s);
  if (num === '') throw new BuiltinError(builtin, 'no amount provided');
  // Only letters after the first are lowercased, so that m (milli) and M (mega) stay distinct.
  const unit = unitRaw.length > 1 ? unitRaw[0] + unitRaw.slice(1).toLowerCase() : unitRaw;
  let factor: Ratio;
  if (unit === '') factor = { num: 1n, den: 1n };
  else if (unit === 'm') factor = { num: 1n, den: 1000n };
  else if (/^[kKMgGtTpPeE]$/.test(unit)) factor = { num: DECIMAL_UNITS[unit.toLowerCase()]!, den: 1n };
  else if (/^[kmgtpe]i$/i.test(unit)) factor = { num: BINARY_UNITS[unit.toLowerCase()]!, den: 1n };
  else throw new BuiltinError(builtin, `unit ${unit} not recognized`);
  const amount = parseAmount(builtin, num);
  const product = { num: amount.num * factor.num, den: amount.den * factor.den };
  if (product.num % product.den === 0n) return bigNumber(product.num / product.den);
  return tenDecimals(product);
}

function parseBytes(raw: string): bigint {
  const builtin = 'units.parse_bytes';
  const s = raw.replaceAll('"', '').toLowerCase();
  if (s.includes(' ')) throw new BuiltinError(builtin, 'spaces not allowed in resource strings');
  const [num, unit] = numAndUnit(builtin, s);
  if (num === '') throw new BuiltinError(builtin, 'no byte amount provided');
  let mult: bigint;
  if (unit === '') mult = 1n;
  else if (/^[kmgtpe]b?$/.test(unit)) mult = DECIMAL_UNITS[unit[0] ?? '']!;
  else if (/^[kmgtpe]ib?$/.test(unit)) mult = BINARY_UNITS[unit.slice(0, 2)]!;
  else throw new BuiltinError(builtin, `byte unit ${unit} not recognized`);
  // Exact arithmetic, then truncation toward zero, as OPA's big.Float → Int.
  const amount = parseAmount(builtin, num);
  return (amount.num * mult) / amount.den;
}

// ---- semver

interface Semver { major: bigint; minor: bigint; patch: bigint; pre: string[] }

const SEMVER = /^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$/;

function parseSemver(s: string): Semver | undefined {
  const m = SEMVER.exec(s);
  if (!m) return undefined;
  return { major: BigInt(m[1] ?? 0), minor: BigInt(m[2] ?? 0), patch: BigInt(m[3] ?? 0), pre: m[4] ? m[4].split('.') : [] };
}

function compareSemver(a: string, b: string): number {
  const x = parseSemver(str('semver.compare', a));
  const y = parseSemver(str('semver.compare', b));
  if (!x) throw new BuiltinError('semver.compare', `operand 1: string ${JSON.stringify(a)} is not a valid SemVer`);
  if (!y) throw new BuiltinError('semver.compare', `operand 2: string ${JSON.stringify(b)} is not a valid SemVer`);
  const cmp = (p: bigint, q: bigint): number => (p < q ? -1 : p > q ? 1 : 0);
  const core = cmp(x.major, y.major) || cmp(x.minor, y.minor) || cmp(x.patch, y.patch);
  if (core !== 0) return core;
  if (x.pre.length === 0 || y.pre.length === 0) return y.pre.length - x.pre.length === 0 ? 0 : x.pre.length === 0 ? 1 : -1;
  for (let k = 0; k < Math.min(x.pre.length, y.pre.length); k++) {
    const p = x.pre[k] ?? '';
    const q = y.pre[k] ?? '';
    const pn = /^\d+$/.test(p);
    const qn = /^\d+$/.test(q);
    let c: number;
    if (pn && qn) c = cmp(BigInt(p), BigInt(q));
    else if (pn !== qn) c = pn ? -1 : 1;
    else c = p < q ? -1 : p > q ? 1 : 0;
    if (c !== 0) return c;
  }
  return Math.sign(x.pre.length - y.pre.length);
}

// ---- regex

function nextPos(s: string, pos: number): number {
  const cp = s.codePointAt(pos);
  return pos + (cp !== undefined && cp > 0xffff ? 2 : 1);
}

/** Go's Regexp.FindAllStringSubmatchIndex loop: an empty match right after a match is skipped. */
function regexFindAll(pattern: string, s: string, n: number): RegExpExecArray[] {
  const re = compileRe2(str('regex.find_n', pattern));
  str('regex.find_n', s);
  if (typeof n !== 'number') throw new BuiltinError('regex.find_n', 'operand 3 must be number');
  const limit = n < 0 ? s.length + 1 : n;
  const out: RegExpExecArray[] = [];
  let prevEnd = -1;
  for (let pos = 0; out.length < limit && pos <= s.length; ) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m) break;
    const end = m.index + m[0].length;
    let accept = true;
    if (end === pos) {
      if (m.index === prevEnd) accept = false;
      pos = pos >= s.length ? s.length + 1 : nextPos(s, pos);
    } else {
      pos = end;
    }
    prevEnd = end;
    if (accept) out.push(m);
  }
  return out;
}

function regexReplace(s: string, pattern: string, template: string): string {
  const re = compileRe2(pattern);
  let out = '';
  let lastEnd = 0;
  for (let pos = 0; pos <= s.length; ) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m) break;
    const end = m.index + m[0].length;
    out += s.slice(lastEnd, m.index);
    if (end > lastEnd || m.index === 0) out += expand(template, m);
    lastEnd = end;
    const width = pos < s.length ? nextPos(s, pos) - pos : 1;
    pos = pos + width > end ? pos + width : end;
  }
  return out + s.slice(lastEnd);
}

/** Go's Regexp.Expand: $1, ${1}, $name, ${name}, $$; a name takes as many word characters as it can. */
function expand(template: string, m: RegExpExecArray): string {
  let out = '';
  for (let k = 0; k < template.length; ) {
    const c = template[k];
    if (c !== '$') {
      out += c;
      k++;
      continue;
    }
    const rest = template.slice(k + 1);
    if (rest[0] === '$') {
      out += '$';
      k += 2;
      continue;
    }
    const ref = /^\{([A-Za-z0-9_]+)\}/.exec(rest) ?? /^([A-Za-z0-9_]+)/.exec(rest);
    if (!ref) {
      out += '$';
      k++;
      continue;
    }
    const name = ref[1] ?? '';
    k += 1 + ref[0].length;
    if (/^\d+$/.test(name)) out += m[Number(name)] ?? '';
    else out += m.groups?.[name] ?? '';
  }
  return out;
}

function templateMatch(template: string, s: string, start: string, end: string): boolean {
  for (const x of [template, s, start, end]) str('regex.template_match', x);
  if (start.length !== 1 || end.length !== 1) throw new BuiltinError('regex.template_match', 'delimiters must be single characters');
  let pattern = '';
  let level = 0;
  let from = 0;
  let idxStart = 0;
  for (let k = 0; k < template.length; k++) {
    const c = template[k];
    if (c === start) {
      if (level === 0) {
        pattern += quoteMeta(template.slice(from, k));
        idxStart = k + 1;
      }
      level++;
    } else if (c === end) {
      level--;
      if (level < 0) throw new BuiltinError('regex.template_match', `unbalanced braces in ${JSON.stringify(template)}`);
      if (level === 0) {
        pattern += `(?:${template.slice(idxStart, k)})`;
        from = k + 1;
      }
    }
  }
  if (level !== 0) throw new BuiltinError('regex.template_match', `unbalanced braces in ${JSON.stringify(template)}`);
  pattern = `^${pattern}${quoteMeta(template.slice(from))}$`;
  const re = compileRe2(pattern);
  return re.test(s);
}

function quoteMeta(s: string): string {
  return s.replace(/[\\.+*?()|[\]{}^$]/g, '\\$&');
}

// ---- objects

// OPA's object.subset (topdown/subset.go): objects key by key (recursing into objects, sets and
// arrays), sets by membership, arrays as a contiguous run, a set within an array by membership.
function isSubset(sup: RegoValue, sub: RegoValue): boolean {
  if (isObject(sup) && isObject(sub)) return objectSubset(sup, sub);
  if (sup instanceof RegoSet && sub instanceof RegoSet) return setSubset(sup, sub);
  if (Array.isArray(sup) && Array.isArray(sub)) return arraySubset(sup, sub);
  if (Array.isArray(sup) && sub instanceof RegoSet) return arraySetSubset(sup, sub);
  throw new BuiltinError('object.subset', 'both arguments object.subset must be of the same type or array and set');
}

const equalValues = (a: RegoValue, b: RegoValue) => compareValues(a, b) === 0;

function objectSubset(sup: { [key: string]: RegoValue }, sub: { [key: string]: RegoValue }): boolean {
  return Object.keys(sub).every((k) => {
    if (!Object.hasOwn(sup, k)) return false;
    const a = sup[k]!;
    const b = sub[k]!;
    if (equalValues(a, b)) return true;
    if (isObject(a) && isObject(b)) return objectSubset(a, b);
    if (a instanceof RegoSet && b instanceof RegoSet) return setSubset(a, b);
    if (Array.isArray(a) && Array.isArray(b)) return arraySubset(a, b);
    return false;
  });
}

function setSubset(sup: RegoSet, sub: RegoSet): boolean {
  return sub.members.every((x) => sup.members.some((y) => equalValues(x, y)));
}

function arraySubset(sup: RegoValue[], sub: RegoValue[]): boolean {
  if (sub.length > sup.length) return false;
  for (let k = 0; k + sub.length <= sup.length; k++) if (sub.every((x, j) => equalValues(sup[k + j]!, x))) return true;
  return false;
}

// Go stops at the array element that matches the set's last unmatched member, so an empty set is
// within any non-empty array but not within an empty one.
function arraySetSubset(sup: RegoValue[], sub: RegoSet): boolean {
  let unmatched = sub.members.length;
  for (const x of sup) {
    if (sub.members.some((y) => equalValues(x, y))) unmatched--;
    if (unmatched === 0) return true;
  }
  return false;
}

// ---- url queries (Go's net/url)

function queryEscape(s: string): string {
  let out = '';
  for (const byte of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(byte);
    if (/[A-Za-z0-9\-_.~]/.test(c)) out += c;
    else if (c === ' ') out += '+';
    else out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function queryUnescape(s: string): string {
  const bytes: number[] = [];
  const src = Buffer.from(s, 'utf8');
  for (let k = 0; k < src.length; k++) {
    const b = src[k] ?? 0;
    if (b === 0x25) {
      const h = src.subarray(k + 1, k + 3).toString('latin1');
      if (!/^[0-9A-Fa-f]{2}$/.test(h)) {
        throw new BuiltinError('urlquery.decode', `invalid URL escape ${JSON.stringify(src.subarray(k, k + 3).toString('latin1'))}`);
      }
      bytes.push(parseInt(h, 16));
      k += 2;
    } else bytes.push(b === 0x2b ? 0x20 : b);
  }
  return Buffer.from(bytes).toString('utf8');
}

function encodeObject(obj: Record<string, JsonValue>): string {
  if (!isObject(obj)) throw new BuiltinError('urlquery.encode_object', 'operand must be object');
  const parts: string[] = [];
  for (const key of Object.keys(obj).sort(compareCodePoints)) {
    const v = obj[key];
    const values = typeof v === 'string' ? [v] : Array.isArray(v) ? v : undefined;
    if (!values || values.some((x) => typeof x !== 'string')) {
      throw new BuiltinError('urlquery.encode_object', 'values must be strings, arrays of strings or sets of strings');
    }
    for (const x of values) parts.push(`${queryEscape(key)}=${queryEscape(x as string)}`);
  }
  return parts.join('&');
}

function decodeObject(s: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const pair of s.split('&')) {
    if (pair === '') continue;
    if (pair.includes(';')) throw new BuiltinError('urlquery.decode_object', 'invalid semicolon separator in query');
    const eq = pair.indexOf('=');
    const key = queryUnescape(eq < 0 ? pair : pair.slice(0, eq));
    const value = queryUnescape(eq < 0 ? '' : pair.slice(eq + 1));
    (out[key] ??= []).push(value);
  }
  return out;
}

// ---- encodings and hashes

function hexDecode(s: string): string {
  if (s.length % 2 !== 0 || !/^[0-9A-Fa-f]*$/.test(s)) throw new BuiltinError('hex.decode', `invalid hex string ${JSON.stringify(s)}`);
  return Buffer.from(s, 'hex').toString('utf8');
}

function digest(algorithm: string, s: string): string {
  return createHash(algorithm).update(str(`crypto.${algorithm}`, s), 'utf8').digest('hex');
}

function hmac(algorithm: string, s: string, key: string): string {
  const name = `crypto.hmac.${algorithm}`;
  return createHmac(algorithm, Buffer.from(str(name, key), 'utf8')).update(str(name, s), 'utf8').digest('hex');
}

function uuidV4(bytes: Uint8Array): string {
  const b = Uint8Array.from(bytes.subarray(0, 16));
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x40;
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80;
  const h = Buffer.from(b).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// Go's strings.Count: non-overlapping occurrences; an empty substring counts every rune boundary.
function countSubstrings(s: string, sub: string): number {
  if (sub === '') return [...s].length + 1;
  let n = 0;
  for (let i = s.indexOf(sub); i !== -1; i = s.indexOf(sub, i + sub.length)) n++;
  return n;
}

function integerOperand(builtin: string, x: JsonValue, pos: number): number {
  if (typeof x !== 'number' || !Number.isInteger(x)) throw new BuiltinError(builtin, `operand ${pos} must be integer number but got ${typeof x === 'number' ? 'floating-point number' : typeName(x)}`);
  return x;
}

const MAX_RANGE = 10_000_000;

// numbers.range_step: from a to b inclusive, by a positive step, counting down when b < a.
function rangeStep(a: JsonValue, b: JsonValue, stepIn: JsonValue): JsonValue {
  const builtin = 'numbers.range_step';
  const x = integerOperand(builtin, a, 1);
  const y = integerOperand(builtin, b, 2);
  const step = integerOperand(builtin, stepIn, 3);
  if (step <= 0) throw new BuiltinError(builtin, 'step must be a positive integer');
  // A pod evaluates synchronously: a range from hostile input must not exhaust its memory first.
  if (Math.abs(y - x) / step >= MAX_RANGE) throw new BuiltinError(builtin, `the range would hold more than ${MAX_RANGE} numbers`);
  const out: number[] = [];
  if (x <= y) for (let i = x; i <= y; i += step) out.push(i);
  else for (let i = x; i >= y; i -= step) out.push(i);
  return out;
}

// Go's Regexp.Split(s, -1).
function regexSplit(pattern: string, s: string): string[] {
  if (s === '' && pattern !== '') return [''];
  const out: string[] = [];
  let beg = 0;
  let end = 0;
  for (const m of regexFindAll(pattern, s, -1)) {
    end = m.index;
    if (m.index + m[0].length !== 0) out.push(s.slice(beg, end));
    beg = m.index + m[0].length;
  }
  if (end !== s.length) out.push(s.slice(beg));
  return out;
}

// The first YAML document (YAML 1.1, as Go's yaml.v2 that OPA uses reads it); undefined (or a
// BuiltinError when `strict`) for text that does not parse.
function yamlDocument(builtin: string, text: string, strict: boolean): JsonValue | undefined {
  const docs = parseAllDocuments(text, { version: '1.1', uniqueKeys: false });
  const list = Array.isArray(docs) ? docs : [];
  const bad = list.find((d) => d.errors.length > 0);
  if (bad || !Array.isArray(docs)) {
    if (strict) throw new BuiltinError(builtin, bad ? bad.errors[0]!.message : 'not YAML');
    return undefined;
  }
  return list.length === 0 ? null : ((list[0]!.toJS({ maxAliasCount: 1000 }) as JsonValue | undefined) ?? null);
}

function castError(builtin: string, want: string, x: unknown): never {
  throw new BuiltinError(builtin, `operand 1 must be ${want}, got ${typeName(x)}`);
}

// Go's strings.Split: an empty separator splits between code points.
function goSplit(s: string, sep: string): string[] {
  if (sep === '') return [...s];
  return s.split(sep);
}

// strings.split_n: the first n fields, or the last -n when n is negative.
function splitN(s: string, sep: string, n: number): string[] {
  const parts = goSplit(s, sep);
  return n >= 0 ? parts.slice(0, n) : parts.slice(Math.max(parts.length + n, 0));
}

// indexof_n: every (overlapping) match position, counted in code points as OPA counts runes.
function indexOfN(base: string, search: string): number[] {
  if (search === '') throw new BuiltinError('indexof_n', 'empty search character');
  const b = [...base];
  const q = [...search];
  const out: number[] = [];
  for (let i = 0; i + q.length <= b.length; i++) if (q.every((c, j) => b[i + j] === c)) out.push(i);
  return out;
}
