// Which errors the `warden` command prints as their message alone (never a stack trace): those whose
// message already says what was wrong, where and what to do. Known by name, so this module imports
// nothing and every part (engine, proxy plugin, webhook, runtime) can throw its own.
const userFacingNames = new Set(['UserError', 'RegistryError', 'SchemaError', 'OpaToolError', 'CompileError', 'BundleError', 'SigningError', 'ConfigError']);

/** True for errors whose message is meant for the person at the terminal. */
export function isUserFacing(err: unknown): boolean {
  return err instanceof Error && userFacingNames.has(err.name);
}
