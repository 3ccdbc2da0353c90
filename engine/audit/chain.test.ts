// The chain link must be the same bytes whichever way it is computed: sha256(prev digest || UTF-8 text).
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { chainDigest, chainHash, GENESIS_HASH } from './chain.js';

const reference = (prev: Buffer, text: string) => createHash('sha256').update(Buffer.concat([prev, Buffer.from(text, 'utf8')])).digest('hex');

describe('chainDigest', () => {
  const prev = createHash('sha256').update('previous').digest();
  it.each([
    ['empty text', ''],
    ['ASCII JSON', '{"decision_id":"d-1","outcome":"allow"}'],
    ['multi-byte and astral characters', '{"who":"Zoë ✓ 😀"}'],
    ['a lone surrogate (written as U+FFFD)', '{"x":"\ud800"}'],
    ['the longest text the reused buffer takes', 'é'.repeat(Math.floor((64 * 1024 - 32) / 3))],
    ['a text past the reused buffer', '😀'.repeat(40_000)],
  ])('hashes %s as sha256(prev || UTF-8 text)', (_, text) => {
    expect(chainDigest(prev, text).toString('hex')).toBe(reference(prev, text));
  });

  it('returns a digest that stays valid after the next call', () => {
    const a = chainDigest(prev, 'one');
    const b = chainDigest(a, 'two');
    expect(a.toString('hex')).toBe(reference(prev, 'one'));
    expect(b.toString('hex')).toBe(reference(Buffer.from(reference(prev, 'one'), 'hex'), 'two'));
  });

  it('agrees with chainHash from the genesis hash', () => {
    expect(chainHash(GENESIS_HASH, 'x')).toBe(reference(Buffer.alloc(32), 'x'));
  });
});
