// The one builder of what leaves the sidecar: every spelling of a removed field, Connection-named
// fields, Warden's own fields, the configurable list.
import { describe, expect, it } from 'vitest';
import type { Source } from '../formats/input.js';
import { DEFAULT_HEADER_POLICY, headerPolicy, upstreamHeaders } from './upstream-head.js';

const caller: Source = { principal: 'spiffe://td/ns/a/sa/b', authn: 'mtls', claims: {}, address: '10.0.0.1' };
const names = (flat: string[]) => flat.filter((_, i) => i % 2 === 0);

describe('upstreamHeaders', () => {
  it('removes identity, override and x-warden-* fields in any case or underscore spelling, and adds Warden\'s own', () => {
    const raw = ['Host', 'a', 'X_Forwarded_User', 'x', 'x-ORIGINAL-url', '/y', 'X-Warden-Principal', 'forged', 'x_warden_authn', 'mtls', 'X-Http-Method-Override', 'DELETE', 'Accept', 'text/plain'];
    expect(upstreamHeaders(raw, DEFAULT_HEADER_POLICY, { source: caller, decisionId: 'd-1' })).toEqual(['Host', 'a', 'Accept', 'text/plain', 'x-warden-principal', caller.principal, 'x-warden-authn', 'mtls', 'x-warden-decision-id', 'd-1']);
  });

  it('drops hop-by-hop fields and those Connection names; keeps Upgrade only for an admitted upgrade', () => {
    const raw = ['Connection', 'Upgrade, X-Secret', 'X-Secret', '1', 'Upgrade', 'websocket', 'Keep-Alive', 'timeout=5', 'TE', 'trailers', 'Expect', '100-continue', 'X-Kept', '1'];
    expect(names(upstreamHeaders(raw, DEFAULT_HEADER_POLICY, {}))).toEqual(['X-Kept']);
    expect(upstreamHeaders(raw, DEFAULT_HEADER_POLICY, { upgrade: true })).toEqual(['Upgrade', 'websocket', 'X-Kept', '1', 'connection', 'upgrade']);
  });

  it('percent-encodes a principal that is not plain visible ASCII, so it stays one field', () => {
    const out = upstreamHeaders([], DEFAULT_HEADER_POLICY, { source: { ...caller, principal: 'bob\r\nx-warden-authn: mtls', authn: 'jwt' } });
    expect(out.slice(0, 2)).toEqual(['x-warden-principal', 'bob%0D%0Ax-warden-authn%3A%20mtls']);
  });

  it('takes the list from configuration, but never lets x-warden-* through', () => {
    const p = headerPolicy({ remove: ['X_Tenant'], keep: ['x-forwarded-user'] });
    expect(names(upstreamHeaders(['x-tenant', 'a', 'X-Forwarded-User', 'u', 'x-warden-x', 'f'], p, {}))).toEqual(['X-Forwarded-User']);
    expect(() => headerPolicy({ keep: ['X-Warden-Principal'] })).toThrow(/Warden's own/);
  });
});
