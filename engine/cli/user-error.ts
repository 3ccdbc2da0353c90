// Errors a user can meet and fix: printed as their message alone, never as a stack trace (the `warden`
// command knows them by name: cli/user-facing.ts).

/** An error whose message already says what was wrong, where, and what to do. */
export class UserError extends Error {
  override name = 'UserError';
}
