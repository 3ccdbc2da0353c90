// time.format: an instant (nanoseconds since the epoch, optionally with a time zone and a layout) as
// text, the way Go's Time.Format writes it with OPA's named layouts (RFC3339Nano by default). The
// nanoseconds are read exactly when they arrive as a bigint; a JavaScript number beyond 2^53 has
// already lost its last digits before it gets here (see docs/opa-conformance.md).
//
// Zones come from the host's ICU data, as for the other time.* builtins. The `MST` token prints the
// zone's abbreviation: ICU's English one in the zone's region where it has one (EST, CET, IST, AEST),
// else the numeric form tzdata (and so Go) uses for zones without one (+04, +0530). ICU lacks some that
// tzdata has (JST, WAT: printed +09, +01 here): a known difference, listed in docs/opa-conformance.md.
import { BuiltinError, typeName } from './builtin-operand.js';
import { RegoNumber } from './rego-value.js';

const BUILTIN = 'time.format';
const MIN_NS = -(2n ** 63n);
const MAX_NS = 2n ** 63n - 1n;

const WEEKDAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

// OPA's named layouts (topdown/time.go acceptedTimeFormats), as Go's time package spells them.
const NAMED_LAYOUTS: Record<string, string> = {
  ANSIC: 'Mon Jan _2 15:04:05 2006',
  UnixDate: 'Mon Jan _2 15:04:05 MST 2006',
  RubyDate: 'Mon Jan 02 15:04:05 -0700 2006',
  RFC822: '02 Jan 06 15:04 MST',
  RFC822Z: '02 Jan 06 15:04 -0700',
  RFC850: 'Monday, 02-Jan-06 15:04:05 MST',
  RFC1123: 'Mon, 02 Jan 2006 15:04:05 MST',
  RFC1123Z: 'Mon, 02 Jan 2006 15:04:05 -0700',
  RFC3339: '2006-01-02T15:04:05Z07:00',
  RFC3339Nano: '2006-01-02T15:04:05.999999999Z07:00',
};

/** The wall clock of an instant in a zone, with what Go's layouts can print. */
export interface WallClock {
  year: number;
  month: number;
  day: number;
  yearDay: number;
  hour: number;
  minute: number;
  second: number;
  nanosecond: number;
  weekday: number;
  /** Seconds east of UTC. */
  offset: number;
  /** The zone's abbreviation ('' when it has none: Go then prints the offset). */
  abbreviation: string;
}

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && (a < 0n) !== (b < 0n) ? q - 1n : q;
}

const ABBREVIATION_LOCALES: Array<[string, string]> = [['America/', 'en-US'], ['US/', 'en-US'], ['Europe/', 'en-GB'], ['Asia/Kolkata', 'en-IN'], ['Asia/Calcutta', 'en-IN'], ['Australia/', 'en-AU']];

function abbreviation(zone: string, date: Date, offset: number): string {
  if (zone === 'UTC') return 'UTC';
  // ICU names a zone's abbreviation only in the locale of its region (EDT in en-US, CEST in en-GB,
  // IST in en-IN); elsewhere, and for regions without a locale here, it is left numeric.
  const locale = ABBREVIATION_LOCALES.find(([prefix]) => zone.startsWith(prefix))?.[1];
  if (locale) {
    const name = new Intl.DateTimeFormat(locale, { timeZone: zone, timeZoneName: 'short' }).formatToParts(date).find((p) => p.type === 'timeZoneName')?.value ?? '';
    if (/^[A-Z]{2,5}$/.test(name)) return name;
  }
  // tzdata's numeric abbreviation for zones without a name: +HH, or +HHMM when minutes are not zero.
  const abs = Math.abs(offset) / 60;
  const hh = String(Math.floor(abs / 60)).padStart(2, '0');
  const mm = abs % 60 === 0 ? '' : String(abs % 60).padStart(2, '0');
  return `${offset < 0 ? '-' : '+'}${hh}${mm}`;
}

/** The wall clock of `ns` (nanoseconds since the epoch) in an IANA zone; throws a BuiltinError for an unknown zone. */
export function wallClock(builtin: string, ns: bigint, zone: string): WallClock {
  const seconds = floorDiv(ns, 1_000_000_000n);
  const date = new Date(Number(seconds) * 1000);
  let parts: Intl.DateTimeFormatPart[];
  try {
    parts = new Intl.DateTimeFormat('en-US', {
      timeZone: zone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric',
      hour: 'numeric', minute: 'numeric', second: 'numeric', weekday: 'long', era: 'short',
    }).formatToParts(date);
  } catch {
    throw new BuiltinError(builtin, `unknown time zone ${zone}`);
  }
  const get = (t: string): string => parts.find((p) => p.type === t)?.value ?? '';
  const year = get('era') === 'BC' ? 1 - Number(get('year')) : Number(get('year'));
  const [month, day, hour, minute, second] = ['month', 'day', 'hour', 'minute', 'second'].map((t) => Number(get(t))) as [number, number, number, number, number];
  const wall = new Date(0);
  wall.setUTCFullYear(year, month - 1, day);
  wall.setUTCHours(hour, minute, second, 0);
  const offset = (wall.getTime() - date.getTime()) / 1000;
  const startOfYear = new Date(0);
  startOfYear.setUTCFullYear(year, 0, 1);
  const yearDay = Math.round((wall.getTime() - startOfYear.getTime()) / 86_400_000 - (hour * 3600 + minute * 60 + second) / 86_400) + 1;
  return {
    year, month, day, yearDay, hour, minute, second, offset,
    nanosecond: Number(ns - seconds * 1_000_000_000n),
    weekday: WEEKDAYS.indexOf(get('weekday')),
    abbreviation: abbreviation(zone, date, offset),
  };
}

// The layout's next element, as Go's nextStdChunk finds it: a std token, a fractional second, or one literal character.
type Chunk = { std: string } | { frac: { sep: string; digits: number; trim: boolean } } | { literal: string };

const STD_TOKENS = [
  'January', 'Jan', 'Monday', 'Mon', 'MST',
  '2006', '-07:00:00', '-070000', '-07:00', '-0700', '-07',
  'Z07:00:00', 'Z070000', 'Z07:00', 'Z0700', 'Z07',
  '__2', '_2006', '_2', '002', '01', '02', '03', '04', '05', '06', '15', '1', '2', '3', '4', '5', 'PM', 'pm',
];

function nextChunk(layout: string): [Chunk, number] {
  const c = layout[0];
  if ((c === '.' || c === ',') && (layout[1] === '0' || layout[1] === '9')) {
    let j = 1;
    while (layout[j] === layout[1]) j++;
    if (!/[0-9]/.test(layout[j] ?? '')) return [{ frac: { sep: c, digits: j - 1, trim: layout[1] === '9' } }, j];
  }
  // Go reads "Mon" and "Jan" only when no lower-case letter follows ("Month" is literal).
  const token = STD_TOKENS.find((t) => layout.startsWith(t) && !((t === 'Mon' || t === 'Jan') && /^[a-z]/.test(layout.slice(3))));
  if (token === '_2006') return [{ literal: '_' }, 1]; // Go: "_" then the year
  if (token) return [{ std: token }, token.length];
  return [{ literal: layout.slice(0, 1) }, 1];
}

function pad(n: number, width: number, fill = '0'): string {
  const s = String(Math.abs(n)).padStart(width, fill);
  return n < 0 ? `-${s}` : s;
}

function zoneText(std: string, t: WallClock): string {
  if (std.startsWith('Z') && t.offset === 0) return 'Z';
  const abs = Math.abs(t.offset);
  const sign = t.offset < 0 ? '-' : '+';
  const hh = pad(Math.floor(abs / 3600), 2);
  const mm = pad(Math.floor(abs / 60) % 60, 2);
  const ss = pad(abs % 60, 2);
  const form = std.slice(1); // without the Z or -
  if (form === '07') return `${sign}${hh}`;
  if (form === '0700') return `${sign}${hh}${mm}`;
  if (form === '07:00') return `${sign}${hh}:${mm}`;
  if (form === '070000') return `${sign}${hh}${mm}${ss}`;
  return `${sign}${hh}:${mm}:${ss}`;
}

/** Go's Time.Format of a wall clock over a layout. */
export function formatWallClock(t: WallClock, layout: string): string {
  let out = '';
  for (let rest = layout; rest.length > 0; ) {
    const [chunk, length] = nextChunk(rest);
    rest = rest.slice(length);
    if ('literal' in chunk) {
      out += chunk.literal;
      continue;
    }
    if ('frac' in chunk) {
      let digits = pad(t.nanosecond, 9).slice(0, chunk.frac.digits);
      if (chunk.frac.trim) digits = digits.replace(/0+$/, '');
      if (digits !== '') out += chunk.frac.sep + digits;
      continue;
    }
    const hour12 = t.hour % 12 === 0 ? 12 : t.hour % 12;
    switch (chunk.std) {
      case 'January': out += MONTHS[t.month - 1]; break;
      case 'Jan': out += MONTHS[t.month - 1]!.slice(0, 3); break;
      case 'Monday': out += WEEKDAYS[t.weekday]; break;
      case 'Mon': out += WEEKDAYS[t.weekday]!.slice(0, 3); break;
      case 'MST': out += t.abbreviation || zoneText('-0700', t); break;
      case '2006': out += pad(t.year, 4); break;
      case '06': out += pad(t.year % 100, 2); break;
      case '01': out += pad(t.month, 2); break;
      case '1': out += t.month; break;
      case '02': out += pad(t.day, 2); break;
      case '_2': out += pad(t.day, 2, ' '); break;
      case '2': out += t.day; break;
      case '__2': out += pad(t.yearDay, 3, ' '); break;
      case '002': out += pad(t.yearDay, 3); break;
      case '15': out += pad(t.hour, 2); break;
      case '03': out += pad(hour12, 2); break;
      case '3': out += hour12; break;
      case '04': out += pad(t.minute, 2); break;
      case '4': out += t.minute; break;
      case '05': out += pad(t.second, 2); break;
      case '5': out += t.second; break;
      case 'PM': out += t.hour >= 12 ? 'PM' : 'AM'; break;
      case 'pm': out += t.hour >= 12 ? 'pm' : 'am'; break;
      default: out += zoneText(chunk.std, t);
    }
  }
  return out;
}

/** An integral nanosecond operand as an exact bigint (Go's NumberOperand, then big.Float.Int64 exactness). */
export function nanosecondOperand(builtin: string, x: unknown): bigint {
  let ns: bigint;
  // An exact operand (builtins marked `exact`): an integer spelling keeps every digit.
  if (x instanceof RegoNumber) x = x.isInteger ? BigInt(x.text) : Number(x.text);
  if (typeof x === 'bigint') ns = x;
  else if (typeof x === 'number') {
    // Go reads a fraction or anything beyond int64 as an inexact conversion: "timestamp too big".
    if (!Number.isInteger(x)) throw new BuiltinError(builtin, 'timestamp too big');
    ns = BigInt(x);
  } else throw new BuiltinError(builtin, `operand 1 must be number, got ${typeName(x)}`);
  if (ns < MIN_NS || ns > MAX_NS) throw new BuiltinError(builtin, 'timestamp too big');
  return ns;
}

/** time.format(x): x is ns, [ns, tz] or [ns, tz, layout]; tz "" or "UTC" is UTC, "Local" the pod's zone. */
export function formatTime(x: unknown): string {
  let nsOperand: unknown = x;
  let zone = 'UTC';
  let layout = '';
  if (Array.isArray(x)) {
    if (x.length === 0) throw new BuiltinError(BUILTIN, 'operand 1 must be either number (ns) or [number (ns), string (tz)]');
    nsOperand = x[0];
    if (x.length > 1) {
      if (typeof x[1] !== 'string') throw new BuiltinError(BUILTIN, `operand 1 must be string, got ${typeName(x[1])}`);
      zone = x[1] === '' || x[1] === 'UTC' ? 'UTC' : x[1] === 'Local' ? Intl.DateTimeFormat().resolvedOptions().timeZone : x[1];
    }
    if (x.length > 2) {
      if (typeof x[2] !== 'string') throw new BuiltinError(BUILTIN, `operand 1 must be string, got ${typeName(x[2])}`);
      layout = x[2];
    }
  } else if (typeof x !== 'number' && typeof x !== 'bigint' && !(x instanceof RegoNumber)) {
    throw new BuiltinError(BUILTIN, `operand 1 must be either number (ns) or [number (ns), string (tz)], got ${typeName(x)}`);
  }
  const ns = nanosecondOperand(BUILTIN, nsOperand);
  const t = wallClock(BUILTIN, ns, zone);
  return formatWallClock(t, layout === '' ? NAMED_LAYOUTS.RFC3339Nano! : (NAMED_LAYOUTS[layout] ?? layout));
}
