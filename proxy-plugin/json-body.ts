// What Warden accepts of a JSON body it reads (a JSON request body the policy reads, an MCP message): its
// type, its encoding, the `_method` member Laravel reads, and how deep it nests.

/** Deepest nesting Warden accepts in a body it reads (JSON-RPC messages, JSON request bodies). */
export const MAX_JSON_DEPTH = 64;

/**
 * True when a Content-Type names JSON as the frameworks an app runs on read it: `application/json` and any
 * `application/…+json` (Spring, ASP.NET Core, express), `text/json` (ASP.NET Core), `text/x-json` and
 * `application/jsonrequest` (Rails), `application/x-json`, also before a ',' (Rails reads the type up to the
 * first ';' or ','). A body of such a type is read into
 * `input.request.body` (--json-body): a type the app reads as JSON but the sidecar did not would leave the
 * policy without the body the app acts on.
 */
export const isJson = (contentType: string | undefined): boolean => !!contentType && JSON_TYPE.test(contentType);
const JSON_TYPE = /^\s*(?:application\/(?:[\w.+-]*\+)?json|text\/(?:x-)?json|application\/(?:x-json|jsonrequest))\s*(?:[;,]|$)/i;

/**
 * True when a JSON object's members (JsonText's offsets into `text`) include `_method` in any case, however
 * its key is escaped: Laravel reads a POST's JSON body as its form, `_method` included.
 */
export function jsonNamesMethod(text: string, members: readonly number[] | undefined): boolean {
  if (!members) return false;
  for (let m = 0; m < members.length; m += 4) {
    if (members[m + 1]! - members[m]! >= 9 && isMethodKey(memberKey(text, members, m))) return true;
  }
  return false;
}

/** The key of the member at `m` of JsonText's `members` (offsets into `text`, four per member), unescaped. */
export function memberKey(text: string, members: readonly number[], m: number): string {
  const key = text.slice(members[m]!, members[m + 1]!);
  return key.includes('\\') ? (JSON.parse(key) as string) : key.slice(1, -1);
}

/** A JSON member named `_method`, in any case: the request body's top level and an MCP message alike. */
export const isMethodKey = (key: string): boolean => key.length === 7 && key.toLowerCase() === '_method';

/** True when a parsed JSON object holds a `_method` member (isMethodKey): an MCP message, a body the app parsed. */
export const holdsMethodKey = (o: object): boolean => Object.keys(o).some(isMethodKey);

// Charsets in which every ASCII character is the byte it is in UTF-8: the bytes of `tools` or `_method` spell them.
const ASCII_CHARSETS = /^(?:utf-?8|us-ascii|ascii|iso-?8859-\d{1,2}|latin-?1|(?:windows|cp)-?125\d)$/i;

/**
 * True when a Content-Type names no charset, or one that reads ASCII as UTF-8 does. A reader that decodes
 * a body by its charset (UTF-16, UTF-7, EBCDIC, …) may read words in it that its bytes do not spell, so a
 * filter that reads the bytes (the MCP tool-list filter, the form reader) cannot vouch for it.
 */
export function asciiCharset(ct: string | undefined): boolean {
  if (!ct || !ct.includes(';')) return true;
  for (const p of ct.split(';').slice(1)) {
    const eq = p.indexOf('=');
    if (eq < 0 || p.slice(0, eq).trim().toLowerCase() !== 'charset') continue;
    if (!ASCII_CHARSETS.test(p.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1'))) return false;
  }
  return true;
}

/**
 * Why the app could decode the bytes of a body Warden reads otherwise than Warden reads them (as UTF-8, RFC
 * 8259 §8.1 for JSON), if it could: a declared charset other than UTF-8 (express's json parser and the MCP SDK's transport decode
 * by the charset; every charset parameter counts, as a parser may keep the last of two), or a
 * Content-Encoding other than identity (the app would inflate the bytes Warden read). Such a body is refused
 * (415) before it is read.
 */
export function foreignEncoding(contentType: string | undefined, contentEncoding: string | undefined): string | undefined {
  const quoted = (s: string) => JSON.stringify(s.slice(0, 40)).slice(1, -1);
  if (contentType?.includes(';')) {
    for (const m of contentType.matchAll(/;\s*charset\s*=\s*(?:"([^"]*)"|([^;\s]*))/gi)) {
      const charset = (m[1] ?? m[2] ?? '').toLowerCase();
      if (charset !== 'utf-8' && charset !== 'utf8') return `a body the sidecar reads must be UTF-8 (charset=${quoted(charset)})`;
    }
  }
  if (isEncoded(contentEncoding)) return `a body the sidecar reads must not be content-encoded (content-encoding: ${quoted(contentEncoding!)})`;
  return undefined;
}

/**
 * True for a Content-Encoding other than identity (an empty one is none, as body-parser reads it): whoever
 * reads such a body decodes it first (an app inflates a request's; fetch a response's, unasked), so bytes
 * read as they came are not what it reads.
 */
export const isEncoded = (contentEncoding: string | undefined): boolean => contentEncoding !== undefined && !/^\s*(?:identity)?\s*$/i.test(contentEncoding);

// How deep a parsed JSON value nests, measured without recursion: everything after parsing (masking,
// size checks, the policy input's serialization) walks values recursively, so a body nested 100,000
// levels deep must be refused before any of it runs.

/** True when `value` nests objects and arrays deeper than `max` levels (a scalar is depth 0). */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth + 1 > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v as Record<string, unknown>)) if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
  }
  return false;
}
