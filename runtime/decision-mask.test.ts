import { describe, expect, it } from 'vitest';
import { maskInput } from './decision-mask.js';

describe('maskInput', () => {
  it('masks secret headers and sensitive fields without touching the original input', () => {
    const input = { request: { headers: { authorization: 'Bearer x', 'x-a': '1' }, body: { payment: { cvc: '123' } } }, mcp: { arguments: { password: 'p' } } };
    const { input: out, masked } = maskInput(input, ['payment.cvc', 'password']);
    expect(out).toEqual({ request: { headers: { authorization: '**masked**', 'x-a': '1' }, body: { payment: { cvc: '**masked**' } } }, mcp: { arguments: { password: '**masked**' } } });
    expect(masked).toEqual(['/input/request/headers/authorization', '/input/request/body/payment/cvc', '/input/mcp/arguments/password']);
    expect(input.request.headers.authorization).toBe('Bearer x');
  });
});
