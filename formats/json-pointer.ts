// JSON Pointer (RFC 6901), the way decision logs name fields (`masked`, the compiled spec's `mask`
// lists): `/` separates keys, `~1` stands for a `/` inside a key and `~0` for a `~`.

/** A pointer from its keys, each escaped (`a/b` → `a~1b`, `~` → `~0`). */
export function formatPointer(keys: readonly string[]): string {
  return keys.map((k) => `/${k.replaceAll('~', '~0').replaceAll('/', '~1')}`).join('');
}

/**
 * The keys of a pointer, unescaped; undefined for text that is not a pointer: one that does not start
 * with `/` (other than the whole-document pointer ""), or a `~` not followed by 0 or 1.
 */
export function parsePointer(pointer: string): string[] | undefined {
  if (pointer === '') return [];
  if (!pointer.startsWith('/') || /~(?![01])/.test(pointer)) return undefined;
  // ~1 first: "~01" is the key "~1", never "/".
  return pointer
    .slice(1)
    .split('/')
    .map((k) => k.replaceAll('~1', '/').replaceAll('~0', '~'));
}

/** The text pattern of a valid non-empty pointer, for JSON Schemas. */
export const POINTER_PATTERN = '^(/([^~/]|~[01])*)+$';
