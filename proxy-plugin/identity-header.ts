// Identities written as text by someone else — a mesh proxy's header (Envoy's x-forwarded-client-cert,
// Linkerd's l5d-client-id) or node's rendering of a certificate's subjectAltName — read by their
// grammar, never by splitting on commas. Anything two readers could understand differently (bad
// quoting, two URI SANs, a value that is not one well-formed identity) is refused, never guessed.

/** A principal read from a header or a certificate, or why none could be read. */
export type HeaderIdentity = { principal: string } | { refused: string };

// SPIFFE ID (SPIFFE-ID spec §2): spiffe://<trust domain>/<path>, trust domain of [a-z0-9._-], path
// segments of [A-Za-z0-9._-], none empty, "." or "..". Nothing else — no quote, comma, space or escape.
const SPIFFE_ID = /^spiffe:\/\/[a-z0-9._-]+(\/[A-Za-z0-9._-]+)+$/;

/** True for a well-formed SPIFFE ID with a path (a workload, not a bare trust domain). */
export function isSpiffeId(v: string): boolean {
  return v.length <= 2048 && SPIFFE_ID.test(v) && !/\/\.\.?(\/|$)/.test(v);
}

/** True when a text looks like a SPIFFE ID in any spelling (a bearer token's `sub` must never). */
export const looksLikeSpiffe = (v: string): boolean => /^\s*spiffe:/i.test(v);

/** One XFCC element: its key=value pairs in order (keys lower case, values unquoted). */
type XfccElement = Array<[string, string]>;

/**
 * Parse an x-forwarded-client-cert value by Envoy's grammar: elements separated by "," outside
 * quotes; in each, key=value pairs separated by ";"; a value containing "," ";" or "=" is
 * double-quoted, with `\"` for a quote inside it. Returns the elements, or why the value is malformed.
 */
export function parseXfcc(value: string): XfccElement[] | string {
  const elements: XfccElement[] = [];
  let pairs: XfccElement = [];
  let i = 0;
  const n = value.length;
  for (;;) {
    // key
    const keyStart = i;
    while (i < n && /[A-Za-z]/.test(value[i]!)) i++;
    const key = value.slice(keyStart, i).toLowerCase();
    if (key === '' || value[i] !== '=') return `malformed key at offset ${keyStart}`;
    i++;
    // value: quoted or plain
    let v = '';
    if (value[i] === '"') {
      i++;
      for (;;) {
        if (i >= n) return 'unterminated quoted value';
        const ch = value[i]!;
        if (ch === '\\') {
          const next = value[i + 1];
          if (next !== '"' && next !== '\\') return `bad escape at offset ${i}`;
          v += next;
          i += 2;
          continue;
        }
        if (ch === '"') {
          i++;
          break;
        }
        v += ch;
        i++;
      }
    } else {
      const start = i;
      while (i < n && value[i] !== ';' && value[i] !== ',') {
        if (value[i] === '"' || value[i] === '=' || value[i] === '\\') return `unquoted ${JSON.stringify(value[i])} at offset ${i}`;
        i++;
      }
      v = value.slice(start, i);
    }
    // eslint-disable-next-line no-control-regex
    if (/[\x00-\x1f\x7f]/.test(v)) return `control character in the ${key} value`;
    pairs.push([key, v]);
    if (i >= n) break;
    if (value[i] === ';') {
      i++;
      continue;
    }
    if (value[i] === ',') {
      elements.push(pairs);
      pairs = [];
      i++;
      while (value[i] === ' ') i++; // joined header lines are ", "-separated
      continue;
    }
    return `unexpected ${JSON.stringify(value[i])} at offset ${i}`;
  }
  elements.push(pairs);
  return elements;
}

/**
 * The caller of an XFCC header: the URI SAN of the element the trusted proxy appended (the last one).
 * Exactly one URI in it, and a well-formed SPIFFE ID; anything else is refused.
 */
export function principalFromXfcc(value: string): HeaderIdentity {
  const parsed = parseXfcc(value);
  if (typeof parsed === 'string') return { refused: `x-forwarded-client-cert is malformed (${parsed})` };
  const last = parsed.at(-1)!;
  const uris = last.filter(([k]) => k === 'uri').map(([, v]) => v);
  if (uris.length !== 1) return { refused: `x-forwarded-client-cert: the last element holds ${uris.length} URI SANs (exactly one SPIFFE ID is needed)` };
  for (const key of ['by', 'hash', 'subject', 'cert', 'chain']) {
    if (last.filter(([k]) => k === key).length > 1) return { refused: `x-forwarded-client-cert: the last element holds ${key} twice` };
  }
  if (!isSpiffeId(uris[0]!)) return { refused: 'x-forwarded-client-cert: the URI SAN is not a well-formed SPIFFE ID' };
  return { principal: uris[0]! };
}

// A Linkerd identity (`<sa>.<ns>.serviceaccount.identity.linkerd.<domain>`, a DNS name) or a SPIFFE ID.
const DNS_NAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** The caller of a single-identity header (l5d-client-id or any other): one DNS name or one SPIFFE ID, nothing more. */
export function principalFromIdentityHeader(name: string, value: string): HeaderIdentity {
  const v = value.trim();
  if (isSpiffeId(v) || DNS_NAME.test(v)) return { principal: v };
  return { refused: `${name} is not one identity (a DNS name or a SPIFFE ID; a list, quotes or spaces are refused)` };
}

/**
 * The SPIFFE ID of a certificate from its `subjectaltname` as node renders it: "TYPE:value" entries
 * separated by ", ", where a value holding special characters is a JSON string. Exactly one URI SAN,
 * a well-formed SPIFFE ID (the X.509-SVID rule); undefined otherwise.
 */
export function spiffeIdFromSan(san: string | undefined): string | undefined {
  if (!san) return undefined;
  const uris: string[] = [];
  let i = 0;
  while (i < san.length) {
    const colon = san.indexOf(':', i);
    if (colon < 0) return undefined;
    const type = san.slice(i, colon);
    let value: string;
    let end: number;
    if (san[colon + 1] === '"') {
      // A JSON string: find its closing quote, honouring escapes.
      let j = colon + 2;
      while (j < san.length && san[j] !== '"') j += san[j] === '\\' ? 2 : 1;
      if (j >= san.length) return undefined;
      try {
        value = JSON.parse(san.slice(colon + 1, j + 1)) as string;
      } catch {
        return undefined;
      }
      end = j + 1;
    } else {
      end = san.indexOf(', ', colon);
      if (end < 0) end = san.length;
      value = san.slice(colon + 1, end);
    }
    if (type === 'URI') uris.push(value);
    if (end < san.length && !san.startsWith(', ', end)) return undefined;
    i = end + 2;
  }
  return uris.length === 1 && isSpiffeId(uris[0]!) ? uris[0] : undefined;
}
