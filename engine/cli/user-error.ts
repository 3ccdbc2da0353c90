// Errors a user can meet and fix: printed as their message alone, never as a stack trace.
import { SchemaError } from '../../formats/schema.js';

/** An error whose message already says what was wrong, where, and what to do. */
export class UserError extends Error {
  override name = 'UserError';
}

const userFacingNames = new Set(['UserError', 'RegistryError', 'SchemaError', 'OpaToolError', 'CompileError', 'BundleError', 'SigningError', 'ConfigError']);

/** True for errors whose message is meant for the person at the terminal. */
export function isUserFacing(err: unknown): boolean {
  return err instanceof SchemaError || (err instanceof Error && userFacingNames.has(err.name));
}
