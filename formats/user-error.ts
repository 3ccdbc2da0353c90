// Errors a user can meet and fix: the `warden` command prints them as their message alone, never as a
// stack trace (cli/user-facing.ts). The class lives in formats/, the layer every part may import, so
// the engine, the runtime, the proxy plugin and the webhook all throw the same class (and extend it
// for errors of their own: a schema, a bundle, a registry, a compile error) and the command knows them
// with `instanceof`, not by name.

/** An error whose message already says what was wrong, where, and what to do. */
export class UserError extends Error {
  override name = 'UserError';
}
