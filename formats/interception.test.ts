// The interception plan's arguments, read back strictly: coverage trusts an init container only when
// its arguments say exactly what the injector writes, so every malformed or looping plan is refused.
import { describe, expect, it } from 'vitest';
import { interceptionArgs, parseInbound, parseInterceptionArgs, planFor } from './interception.js';

describe('interception plan', () => {
  it('round-trips what the injector writes, with a sidecar listener per app port that skips ports in use', () => {
    const plan = planFor([8080, 15101, 9090]);
    expect(plan).toEqual({ redirects: [{ appPort: 8080, proxyPort: 15102 }, { appPort: 9090, proxyPort: 15103 }, { appPort: 15101, proxyPort: 15104 }], adminPort: 15020 });
    expect(parseInterceptionArgs(interceptionArgs(plan))).toEqual(plan);
  });

  const refused: Array<[string, string[], RegExp]> = [
    ['no admin port', ['--redirect', '8080=15101'], /--admin-port is missing/],
    ['a flag without a value', ['--admin-port'], /has no value/],
    ['an unknown flag', ['--exclude', '22', '--admin-port', '15020'], /unknown argument "--exclude"/],
    ['a port out of range', ['--redirect', '8080=70000', '--admin-port', '15020'], /is not <app port>=<sidecar port>/],
    ['a redirect onto the admin port', ['--redirect', '8080=15020', '--admin-port', '15020'], /share a sidecar port/],
    ['an app port that is a sidecar port (a loop)', ['--redirect', '8080=15101', '--redirect', '15101=15102', '--admin-port', '15020'], /app port 15101 is also one of the sidecar's ports/],
    ['an app port redirected twice', ['--redirect', '8080=15101', '--redirect', '8080=15102', '--admin-port', '15020'], /redirected twice/],
    ['two app ports onto one listener', ['--redirect', '8080=15101', '--redirect', '9090=15101', '--admin-port', '15020'], /share a sidecar port/],
  ];
  for (const [what, args, why] of refused) {
    it(`refuses ${what}`, () => expect(parseInterceptionArgs(args)).toMatch(why));
  }

  it('reads an --inbound listener and its upstream, and refuses other shapes', () => {
    expect(parseInbound('[::]:15101=http://127.0.0.1:8080')).toMatchObject({ listen: '[::]:15101', port: 15101, upstream: new URL('http://127.0.0.1:8080') });
    expect(parseInbound('15101')).toMatch(/is not <listen address>=<upstream url>/);
    expect(parseInbound('[::]:15101=not a url')).toMatch(/is not a URL/);
    expect(parseInbound('[::]=http://127.0.0.1:8080')).toMatch(/is not host:port/);
  });
});
