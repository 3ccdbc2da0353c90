// A mistake in a process's configuration (a flag, a file it names), written for the operator. Any
// Warden command prints its message alone, without a stack trace (cli/user-facing.ts knows it
// by name), so the proxy plugin, the webhook and the engine can share checks that throw it.

/** A configuration mistake; the message says what is wrong, where, and what to give instead. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}
