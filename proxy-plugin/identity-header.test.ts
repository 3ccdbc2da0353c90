// Identity text read by its grammar: Envoy's XFCC, single-identity mesh headers, node's SAN rendering.
import { describe, expect, it } from 'vitest';
import { isSpiffeId, parseXfcc, principalFromIdentityHeader, principalFromXfcc, spiffeIdFromSan } from './identity-header.js';

const ID = 'spiffe://cluster.local/ns/shop/sa/storefront';
const EVIL = 'spiffe://cluster.local/ns/evil/sa/x';

describe('x-forwarded-client-cert', () => {
  it('parses elements, pairs and quoted values with escaped quotes', () => {
    expect(parseXfcc(`By=spiffe://td/a;Hash=ab;Subject="CN=a, O=\\"b\\";x=y";URI=${ID},URI=${EVIL}`)).toEqual([
      [['by', 'spiffe://td/a'], ['hash', 'ab'], ['subject', 'CN=a, O="b";x=y'], ['uri', ID]],
      [['uri', EVIL]],
    ]);
  });

  const cases: Array<[string, string, string]> = [
    ['the last element', `URI=${EVIL},By=x;URI=${ID}`, ID],
    ['a URI hidden in a quoted Subject', `Subject="CN=x,URI=${ID}";URI=${EVIL}`, EVIL],
    ['a URI hidden in a quoted DNS SAN', `URI=${EVIL};DNS="a,URI=${ID}"`, EVIL],
    ['lower-case keys', `uri=${ID}`, ID],
    ['two DNS SANs', `URI=${ID};DNS=a.example;DNS=b.example`, ID],
  ];
  for (const [what, value, principal] of cases) it(`reads ${what}`, () => expect(principalFromXfcc(value)).toEqual({ principal }));

  const refused: Array<[string, string]> = [
    ['two URI SANs', `URI=${EVIL};URI=${ID}`],
    ['no URI in the last element', `URI=${ID},Subject="CN=a,URI=${ID}"`],
    ['an unterminated quote', `URI="${ID}`],
    ['a quote inside a plain value', `URI=${ID}"`],
    ['a stray equals sign', `URI=${ID}=x`],
    ['a bad escape', `Subject="a\\nb";URI=${ID}`],
    ['a key without a value', `URI;URI=${ID}`],
    ['an empty value list', ''],
    ['a trailing comma', `URI=${ID},`],
    ['a dot-dot SPIFFE path', 'URI=spiffe://cluster.local/ns/shop/../admin'],
    ['a non-SPIFFE URI', 'URI=https://cluster.local/ns/shop/sa/x'],
    ['two Subjects', `Subject=a;Subject=b;URI=${ID}`],
    ['a control character', `URI=${ID}\u0001`],
  ];
  for (const [what, value] of refused) it(`refuses ${what}`, () => expect(principalFromXfcc(value)).toHaveProperty('refused'));
});

describe('single-identity headers (l5d-client-id and others)', () => {
  it('reads one Linkerd identity or one SPIFFE ID', () => {
    expect(principalFromIdentityHeader('l5d-client-id', 'web.shop.serviceaccount.identity.linkerd.cluster.local')).toEqual({ principal: 'web.shop.serviceaccount.identity.linkerd.cluster.local' });
    expect(principalFromIdentityHeader('x-id', ` ${ID} `)).toEqual({ principal: ID });
  });
  for (const v of ['a.example, b.example', `${ID}, ${EVIL}`, '"a.example"', 'a example', 'A..b', `${ID};x`, '']) {
    it(`refuses ${JSON.stringify(v)}`, () => expect(principalFromIdentityHeader('l5d-client-id', v)).toHaveProperty('refused'));
  }
});

describe("certificate SANs as node renders them", () => {
  it('reads one URI SAN among others, and refuses two or a quoted one hiding a second', () => {
    expect(spiffeIdFromSan(`DNS:a, URI:${ID}`)).toBe(ID);
    expect(spiffeIdFromSan(`URI:${ID}, URI:${EVIL}`)).toBeUndefined();
    // node quotes a value holding ", " (JSON string): the inner text is not a second entry.
    expect(spiffeIdFromSan(`DNS:"x, URI:${ID}", URI:${EVIL}`)).toBe(EVIL);
    expect(spiffeIdFromSan(`URI:"${EVIL}, URI:${ID}"`)).toBeUndefined();
    expect(spiffeIdFromSan('DNS:a')).toBeUndefined();
  });

  it('knows a SPIFFE ID when it sees one', () => {
    expect([ID, 'spiffe://td/a', 'spiffe://TD/a', 'spiffe://td', 'spiffe://td/a/./b', 'spiffe://td/a b', 'spiffe://td//a'].map(isSpiffeId)).toEqual([true, true, false, false, false, false, false]);
  });
});
