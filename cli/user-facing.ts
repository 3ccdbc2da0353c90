// Which errors the `warden` command prints as their message alone (never a stack trace): those whose
// message already says what was wrong, where and what to do. Every part throws formats/user-error.ts's
// UserError, or a class of its own that extends it (a schema, bundle, registry, compile error).
import { UserError } from '../formats/user-error.js';

/** True for errors whose message is meant for the person at the terminal. */
export function isUserFacing(err: unknown): err is UserError {
  return err instanceof UserError;
}
