// uuid.parse: what OPA's internal/uuid reads from a UUID through google/uuid (version, variant, and
// for versions 1 and 2 the time, node, clock sequence, and the DCE id and domain).
import { bigNumber, str, type HostResult } from './builtin-operand.js';

// 100-ns intervals between the Gregorian epoch (1582-10-15) and the Unix epoch.
const GREGORIAN_OFFSET = 122192928000000000n;

// google/uuid's Parse: 36 characters with dashes, in braces (any two characters, unchecked), after
// `urn:uuid:` (any case), or 32 hex digits.
function uuidBytes(input: string): Buffer | undefined {
  let s = input;
  if (s.length === 45) {
    if (s.slice(0, 9).toLowerCase() !== 'urn:uuid:') return undefined;
    s = s.slice(9);
  } else if (s.length === 38) s = s.slice(1, 37);
  else if (s.length === 32) return /^[0-9a-fA-F]{32}$/.test(s) ? Buffer.from(s, 'hex') : undefined;
  if (s.length !== 36 || s[8] !== '-' || s[13] !== '-' || s[18] !== '-' || s[23] !== '-') return undefined;
  const hex = s.slice(0, 8) + s.slice(9, 13) + s.slice(14, 18) + s.slice(19, 23) + s.slice(24);
  return /^[0-9a-fA-F]{32}$/.test(hex) ? Buffer.from(hex, 'hex') : undefined;
}

function variant(b: number): string {
  if ((b & 0xc0) === 0x80) return 'RFC4122';
  if ((b & 0xe0) === 0xc0) return 'Microsoft';
  if ((b & 0xe0) === 0xe0) return 'Future';
  return 'Reserved';
}

function macVariables(b: number): string {
  if ((b & 0b11) === 0b11) return 'local:multicast';
  if ((b & 0b01) === 0b01) return 'global:multicast';
  if ((b & 0b10) === 0b10) return 'local:unicast';
  return 'global:unicast';
}

const DOMAINS = ['Person', 'Group', 'Org'];

/** uuid.parse: the UUID's decoded fields; undefined (not an error, as in OPA) for text that is no UUID. */
export function parseUuid(x: unknown): HostResult {
  const u = uuidBytes(str('uuid.parse', x));
  if (!u) return undefined;
  const version = u[6]! >> 4;
  const out: Record<string, string | number> = { version, variant: variant(u[8]!) };
  if (version !== 1 && version !== 2) return out;
  const ticks = BigInt(u.readUInt32BE(0)) | (BigInt(u.readUInt16BE(4)) << 32n) | (BigInt(u.readUInt16BE(6) & 0xfff) << 48n);
  const since = ticks - GREGORIAN_OFFSET;
  // Go: seconds and nanoseconds by truncating division, then recombined.
  const ns = (since / 10_000_000n) * 1_000_000_000n + (since % 10_000_000n) * 100n;
  const time = bigNumber(ns);
  out.nodeid = [...u.subarray(10, 16)].map((b) => b.toString(16).padStart(2, '0')).join('-');
  out.macvariables = macVariables(u[10]!);
  out.clocksequence = u.readUInt16BE(8) & 0x3fff;
  if (version === 2) {
    out.id = u.readUInt32BE(0);
    out.domain = DOMAINS[u[9]!] ?? `Domain${u[9]!}`;
  }
  if (typeof time === 'number') return { ...out, time };
  // Beyond 2^53 the time goes back as JSON text, so that no digit is lost.
  const json = JSON.stringify(out).slice(0, -1) + `,"time":${ns}}`;
  const bytes = new TextEncoder().encode(json);
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}
