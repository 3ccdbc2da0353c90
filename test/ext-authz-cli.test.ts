// `warden ext-authz` stopping as a pod stops it: SIGTERM, then SIGKILL after the grace period. Started
// through the CLI as an operator starts it, answering checks as Envoy's HTTP ext_authz filter sends them.
// A check Envoy began before the signal is still answered (Envoy would otherwise fail it, open or closed as
// configured, for a call the policy allowed); new connections are refused; idle keep-alive connections are
// closed; what is still open after --drain-seconds is cut, so the process exits before SIGKILL; the decision
// of the check answered while draining reaches the log.
import type { ChildProcess } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tillsPolicies } from './support/tills-workload.js';
import { refusedSoon, startWarden, stopWardens } from './support/warden-process.js';

const children: ChildProcess[] = [];
let args: string[];

beforeAll(async () => {
  const policies = await tillsPolicies();
  args = ['ext-authz', '--workload', 'tills', '--listen', '127.0.0.1:0', '--bundle', join(policies.out, 'tills.tar.gz'), '--verification-key', join(policies.out, 'verification-key.pem'), '--json-body', '4096'];
});

afterAll(() => stopWardens(children));

// A check whose head (with `Expect: 100-continue`) the server has read, its body not yet sent: resolves once
// the server said 100 Continue, so the check is in flight on its side. `finish` sends the body; `answer`
// settles with the status and text, or with the error the connection ended in.
async function checkInFlight(port: number, body: string): Promise<{ finish: () => void; answer: Promise<{ status: number; text: string } | { error: string }> }> {
  const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/pay', agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-envoy-auth-partial-body': 'false', expect: '100-continue' } });
  const answer = new Promise<{ status: number; text: string } | { error: string }>((resolve) => {
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => resolve({ status: res.statusCode!, text }));
    });
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
  });
  req.flushHeaders();
  await new Promise<void>((resolve, reject) => {
    req.once('continue', resolve);
    void answer.then((a) => reject(new Error(`the check ended before 100 Continue: ${JSON.stringify(a)}`)));
  });
  return { finish: () => req.end(body), answer };
}

// An idle keep-alive connection that has had one check answered: resolves with a promise that settles when the server closes it.
async function idleConnection(port: number): Promise<Promise<void>> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((r) => socket.once('connect', r));
  let seen = '';
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  await new Promise<void>((resolve) => {
    socket.on('data', (d: Buffer) => {
      seen += d.toString('latin1');
      if (/\r\n\r\n/.test(seen)) resolve();
    });
    socket.write('GET /health HTTP/1.1\r\nhost: x\r\n\r\n');
  });
  expect(seen).toMatch(/^HTTP\/1\.1 \d{3} /);
  return closed;
}

describe('warden ext-authz on SIGTERM', () => {
  it('answers the check in flight, refuses new connections, closes idle ones, logs the decision and exits 0', async () => {
    const m = await startWarden([...args, '--drain-seconds', '600'], /warden ext-authz: tills on 127\.0\.0\.1:(\d+)/, children);
    const child = children.at(-1)!;
    const port = Number(m[1]);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const idleClosed = await idleConnection(port);
    const inFlight = await checkInFlight(port, '{"amount": 500}');
    child.kill('SIGTERM');
    expect(await refusedSoon(port)).toBe(true);
    await idleClosed;
    // The check begun before the signal: decided on its body and answered in full while the server drains.
    expect(child.exitCode).toBe(null);
    inFlight.finish();
    const answer = await inFlight.answer;
    expect(answer).toEqual({ status: 403, text: expect.stringContaining('amount above 100') });
    const id = /"decision_id":"([^"]+)"/.exec((answer as { text: string }).text)?.[1];
    expect(id).toMatch(/\S/);
    expect(await exited).toBe(0);
    // No engine: the local decision lines are the record, and this check's is among them.
    expect(out).toContain(id);
  });

  it('cuts a check still open after --drain-seconds and exits 0 before any SIGKILL; a second signal cuts at once', async () => {
    for (const [drain, second] of [['1', false], ['600', true]] as const) {
      const m = await startWarden([...args, '--drain-seconds', drain], /warden ext-authz: tills on 127\.0\.0\.1:(\d+)/, children);
      const child = children.at(-1)!;
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      const inFlight = await checkInFlight(Number(m[1]), '{"amount": 5}');
      child.kill('SIGTERM');
      expect(await refusedSoon(Number(m[1]))).toBe(true);
      if (second) {
        expect(child.exitCode).toBe(null);
        child.kill('SIGTERM');
      }
      // Never finished by the caller: cut by the server, not answered.
      expect(await inFlight.answer).toEqual({ error: expect.stringMatching(/ECONNRESET|socket hang up/) });
      expect(await exited).toBe(0);
    }
  });
});
