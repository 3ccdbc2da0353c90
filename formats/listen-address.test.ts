// One reading of a listen address for the sidecar (which binds it) and the webhook (which checks the
// sidecar's --inbound and --admin flags): a value the sidecar would refuse or read otherwise is never
// taken by coverage for a port.
import { describe, expect, it } from 'vitest';
import { parseInbound } from './interception.js';
import { listenAddress, parseListenAddress } from './listen-address.js';
import { UserError } from './user-error.js';

const cases: Array<[string, { host: string; port: number } | undefined]> = [
  ['[::]:15101', { host: '::', port: 15101 }],
  ['0.0.0.0:15020', { host: '0.0.0.0', port: 15020 }],
  [':8080', { host: '127.0.0.1', port: 8080 }],
  ['8080', { host: '127.0.0.1', port: 8080 }],
  [' 127.0.0.1:0 ', { host: '127.0.0.1', port: 0 }],
  ['1.2.3.4:x:15101', undefined],
  ['::1:15101', undefined],
  ['[::]', undefined],
  ['host:65536', undefined],
  ['host:123456', undefined],
  ['host:-1', undefined],
  ['host:', undefined],
  ['', undefined],
];

describe('listen addresses', () => {
  it.each(cases)('reads %j as %j', (value, expected) => {
    expect(listenAddress(value)).toEqual(expected);
  });

  it('an --inbound listener is taken exactly when the sidecar could bind it, on the same port', () => {
    for (const [value, expected] of cases) {
      const r = parseInbound(`${value}=http://127.0.0.1:8080`);
      expect(typeof r === 'string' ? undefined : r.port).toEqual(expected?.port);
    }
  });

  it('names the flag and the value it refuses, as a UserError', () => {
    expect(() => parseListenAddress('--admin', '1.2.3.4:x:15101')).toThrow(UserError);
    expect(() => parseListenAddress('--admin', '1.2.3.4:x:15101')).toThrow(/--admin "1\.2\.3\.4:x:15101" is not an address/);
  });
});
