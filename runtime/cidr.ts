// net.cidr_* builtins the WASM module leaves to the host, with Go's net package semantics as OPA uses
// them (v1/topdown/cidr.go): addresses as big integers, IPv4 and IPv6 kept apart.
import { isIPv4, isIPv6 } from 'node:net';
import { BuiltinError, str } from './builtin-operand.js';
import { RegoNumber, RegoObject, RegoSet, type RegoValue } from './rego-value.js';
import type { JsonValue } from './sprintf.js';
import { sortedSet } from './value-order.js';

/** A network: its (possibly unmasked) address, prefix length, and family width in bits. */
interface Network {
  addr: bigint;
  prefix: number;
  bits: 32 | 128;
}

/** The most addresses net.cidr_expand lists: a pod evaluates synchronously, within its memory. */
const MAX_EXPAND = 1 << 20;

function ipv4(s: string): bigint | undefined {
  // Go refuses leading zeros (they used to mean octal).
  if (!isIPv4(s) || s.split('.').some((o) => o.length > 1 && o.startsWith('0'))) return undefined;
  return s.split('.').reduce((acc, o) => (acc << 8n) | BigInt(o), 0n);
}

function ipv6(s: string): bigint | undefined {
  if (!isIPv6(s) || s.includes('%')) return undefined;
  let text = s;
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (tail) {
    const v4 = ipv4(tail[1]!);
    if (v4 === undefined) return undefined;
    text = `${text.slice(0, -tail[1]!.length)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const left = head ? head.split(':') : [];
  const right = rest !== undefined && rest !== '' ? rest.split(':') : [];
  const groups = rest === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(`0x${g}`), 0n);
}

/** Go's net.ParseIP: an IPv4 or IPv6 address. */
function parseIp(s: string): { addr: bigint; bits: 32 | 128 } | undefined {
  const v4 = ipv4(s);
  if (v4 !== undefined) return { addr: v4, bits: 32 };
  const v6 = ipv6(s);
  return v6 === undefined ? undefined : { addr: v6, bits: 128 };
}

/** Go's net.ParseCIDR: the network, its address masked. */
function parseCidr(s: string): Network | undefined {
  const slash = s.indexOf('/');
  if (slash < 0) return undefined;
  const ip = parseIp(s.slice(0, slash));
  const len = s.slice(slash + 1);
  if (!ip || !/^\d{1,3}$/.test(len) || Number(len) > ip.bits) return undefined;
  const prefix = Number(len);
  return { addr: ip.addr & mask(prefix, ip.bits), prefix, bits: ip.bits };
}

function mask(prefix: number, bits: number): bigint {
  return ((1n << BigInt(prefix)) - 1n) << BigInt(bits - prefix);
}

function last(n: Network): bigint {
  return (n.addr & mask(n.prefix, n.bits)) | ((1n << BigInt(n.bits - n.prefix)) - 1n);
}

function ipText(addr: bigint, bits: number): string {
  if (bits === 32) return [24n, 16n, 8n, 0n].map((s) => String((addr >> s) & 0xffn)).join('.');
  const groups = Array.from({ length: 8 }, (_, i) => Number((addr >> BigInt(112 - 16 * i)) & 0xffffn));
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) return `::ffff:${ipText(addr & 0xffffffffn, 32)}`;
  // The longest run of two or more zero groups becomes `::` (the first, when tied), as Go writes it.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

function cidrText(n: Network): string {
  return `${ipText(n.addr, n.bits)}/${n.prefix}`;
}

/** net.cidr_is_valid: whether the operand is a string Go's net.ParseCIDR accepts. */
export function cidrIsValid(x: JsonValue): boolean {
  return typeof x === 'string' && parseCidr(x) !== undefined;
}

/** net.cidr_expand: the set of every address of the network, as strings. */
export function cidrExpand(x: JsonValue): RegoSet {
  const n = parseCidr(str('net.cidr_expand', x));
  if (!n) throw new BuiltinError('net.cidr_expand', `invalid CIDR address: ${x as string}`);
  const size = 1n << BigInt(n.bits - n.prefix);
  if (size > BigInt(MAX_EXPAND)) throw new BuiltinError('net.cidr_expand', `the network holds ${size} addresses, more than the ${MAX_EXPAND} this runtime lists`);
  const out: string[] = [];
  for (let a = n.addr; a <= last(n); a++) out.push(ipText(a, n.bits));
  return new RegoSet(sortedSet(out));
}

// A CIDR, or a lone IP as the one-address network (net.cidr_contains's second operand).
function networkOrIp(builtin: string, s: string): Network {
  const n = parseCidr(s);
  if (n) return n;
  const ip = parseIp(s);
  if (!ip) throw new BuiltinError(builtin, `invalid CIDR address or IP: ${s}`);
  return { addr: ip.addr, prefix: ip.bits, bits: ip.bits };
}

function contains(builtin: string, a: string, b: string): boolean {
  const outer = parseCidr(a);
  if (!outer) throw new BuiltinError(builtin, `invalid CIDR address: ${a}`);
  const inner = networkOrIp(builtin, b);
  if (outer.bits !== inner.bits) return false;
  return outer.prefix <= inner.prefix && (inner.addr & mask(outer.prefix, outer.bits)) === outer.addr;
}

// The (cidr, key) pairs of one operand: a string is its own key; arrays key by index, objects by key,
// sets by the element itself; an element may be a CIDR string or an array whose first element is one.
function entries(builtin: string, operand: number, x: RegoValue): Array<[string, RegoValue]> {
  const cidrOf = (e: RegoValue): string => {
    const c = Array.isArray(e) ? e[0] : e;
    if (typeof c !== 'string') throw new BuiltinError(builtin, `operand ${operand}: element must be string or non-empty array`);
    return c;
  };
  if (typeof x === 'string') return [[x, x]];
  if (Array.isArray(x)) return x.map((e, i) => [cidrOf(e), i]);
  if (x instanceof RegoSet) return x.members.map((e) => [cidrOf(e), e]);
  if (x instanceof RegoObject) return x.entries.map(([k, v]) => [cidrOf(v), k]);
  if (x instanceof RegoNumber) return [];
  if (x !== null && typeof x === 'object') return Object.entries(x).map(([k, v]) => [cidrOf(v), k]);
  return [];
}

/** net.cidr_contains_matches (exact values): the [key1, key2] pairs whose CIDR (or IP) in the second lies in the first's. */
export function cidrContainsMatches(a: RegoValue, b: RegoValue): RegoSet {
  const builtin = 'net.cidr_contains_matches';
  const out: RegoValue[] = [];
  for (const [c1, k1] of entries(builtin, 1, a)) for (const [c2, k2] of entries(builtin, 2, b)) if (contains(builtin, c1, c2)) out.push([k1, k2]);
  return new RegoSet(sortedSet(out));
}

// Go's IP.DefaultMask: the classful prefix of an IPv4 address.
function classfulPrefix(addr: bigint): number {
  const first = Number(addr >> 24n);
  return first < 0x80 ? 8 : first < 0xc0 ? 16 : 24;
}

/** net.cidr_merge: the fewest networks covering exactly the given networks and IPv4 addresses. */
export function cidrMerge(x: JsonValue): RegoSet {
  const builtin = 'net.cidr_merge';
  if (!Array.isArray(x)) throw new BuiltinError(builtin, 'operand must be an array');
  const ranges = x.map((e) => {
    if (typeof e !== 'string') throw new BuiltinError(builtin, 'element must be string');
    const ip = parseIp(e);
    let n: Network;
    if (ip) {
      if (ip.bits === 128) throw new BuiltinError(builtin, 'IPv6 invalid: needs prefix length');
      n = { addr: ip.addr, prefix: classfulPrefix(ip.addr), bits: 32 };
    } else {
      const c = parseCidr(e);
      if (!c) throw new BuiltinError(builtin, `invalid CIDR address: ${e}`);
      n = c;
    }
    return { first: n.addr & mask(n.prefix, n.bits), last: last(n), bits: n.bits, network: n as Network | undefined };
  });
  // OPA sorts by last address, then first (IPv4 and IPv6 apart: their byte strings differ in length).
  ranges.sort((p, q) => p.bits - q.bits || (p.last < q.last ? -1 : p.last > q.last ? 1 : p.first < q.first ? -1 : p.first > q.first ? 1 : 0));
  for (let i = ranges.length - 1; i > 0; i--) {
    const cur = ranges[i]!;
    const prev = ranges[i - 1]!;
    if (cur.bits === prev.bits && cur.first - 1n <= prev.last) {
      ranges[i - 1] = { first: prev.first < cur.first ? prev.first : cur.first, last: cur.last, bits: cur.bits, network: undefined };
      ranges.splice(i, 1);
    }
  }
  const out: string[] = [];
  for (const r of ranges) {
    if (r.network) out.push(cidrText(r.network));
    else for (const n of rangeToCidrs(r.first, r.last, r.bits)) out.push(cidrText(n));
  }
  return new RegoSet(sortedSet(out));
}

// The aligned blocks covering first..last, largest first.
function rangeToCidrs(first: bigint, lastAddr: bigint, bits: 32 | 128): Network[] {
  const out: Network[] = [];
  let start = first;
  while (start <= lastAddr) {
    let size = 0;
    while (size < bits && (start & ((1n << BigInt(size + 1)) - 1n)) === 0n && start + (1n << BigInt(size + 1)) - 1n <= lastAddr) size++;
    out.push({ addr: start, prefix: bits - size, bits });
    start += 1n << BigInt(size);
  }
  return out;
}
