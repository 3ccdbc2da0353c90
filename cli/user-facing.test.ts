// The errors the `warden` command prints as their message alone are known by class, not by name: every
// part's error for the user extends the one UserError, and an error that merely calls itself one is not.
import { describe, expect, it } from 'vitest';
import { SchemaError } from '../formats/schema.js';
import { UserError } from '../formats/user-error.js';
import { CompileError } from '../engine/compiler/compile-error.js';
import { SigningError } from '../engine/compiler/signing-key.js';
import { OpaToolError } from '../engine/toolchain/opa.js';
import { BundleError } from '../runtime/archive.js';
import { RegistryError } from '../runtime/oci-registry.js';
import { isUserFacing } from './user-facing.js';

describe('isUserFacing', () => {
  it('knows every part\'s error for the user by its class', () => {
    const errors = [
      new UserError('--listen: not an address'),
      new SchemaError('workload.yaml', [{ path: '/name', message: 'must be string' }]),
      new CompileError([], 'policies/shop: does not compile'),
      new SigningError('no signing key'),
      new OpaToolError('opa is not installed'),
      new BundleError('not a bundle'),
      new RegistryError('no such repository', false),
    ];
    expect(errors.map((e) => [e.name, isUserFacing(e)])).toEqual(errors.map((e) => [e.name, true]));
  });

  it('does not take an error for a user-facing one because of its name', () => {
    for (const name of ['UserError', 'ConfigError', 'SchemaError']) {
      const err = new Error(`internal: ${name}`);
      err.name = name;
      expect(isUserFacing(err)).toBe(false);
    }
    expect(isUserFacing(new TypeError('x is undefined'))).toBe(false);
    expect(isUserFacing({ name: 'UserError', message: 'not an Error at all' })).toBe(false);
  });
});
