// CONNECT asks the sidecar for a tunnel, which it never opens: `warden proxy` in front of a workload whose
// Rego allows every call, so that only the sidecar's own refusal stands between a CONNECT and the app.
import { describe, expect, it } from 'vitest';
import { exchange, statuses } from './support/raw-http.js';
import { servedWorkload } from './support/rego-workload.js';

const WORKLOAD = `apiVersion: warden.dev/v1alpha1
kind: Workload
name: lobby
namespace: shop
serviceAccount: lobby
mode: enforce
`;

const POLICY = `# Every call is allowed: what is refused here is refused by the sidecar itself.
package warden.workload

import rego.v1

allow if true
`;

const served = servedWorkload('lobby', { 'workload.yaml': WORKLOAD, 'policy.rego': POLICY }, []);

describe('CONNECT through warden proxy', () => {
  it.each([
    ['an origin-form target naming a protocol', ['CONNECT /ws HTTP/1.1', 'Host: lobby', 'Connection: Upgrade', 'Upgrade: websocket']],
    ['an origin-form target', ['CONNECT /ws HTTP/1.1', 'Host: lobby']],
    ['an authority-form target', ['CONNECT 127.0.0.1:22 HTTP/1.1', 'Host: 127.0.0.1:22', 'Connection: Upgrade', 'Upgrade: websocket']],
  ])('refuses CONNECT with %s (400) and never sends it to the app, even where the policy allows every call', async (_, lines) => {
    const connects: string[] = [];
    const record = (req: { url?: string }, socket: { destroy(): void }) => {
      connects.push(req.url ?? '');
      socket.destroy();
    };
    served.upstream.server.on('connect', record);
    try {
      const out = await exchange(Number(new URL(served.proxyUrl).port), `${lines.join('\r\n')}\r\n\r\n`);
      expect(connects).toEqual([]);
      expect(statuses(out)).toEqual([400]);
      expect(out).toMatch(/x-warden-decision-id: /i);
    } finally {
      served.upstream.server.off('connect', record);
    }
  });

  it('lets the same path through as a GET', async () => {
    expect((await fetch(`${served.proxyUrl}/ws`)).status).toBe(200);
  });
});
