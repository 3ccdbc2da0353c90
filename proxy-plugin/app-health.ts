// The sidecar's answers to the kubelet's rewritten probes (formats/app-probes.ts): GET
// /app-health/<container>/<kind> on the admin port makes that one configured probe, to 127.0.0.1 only,
// and answers with its outcome. Nothing of the caller's request (path beyond the exact key, query,
// headers, method) reaches the app, and the body is fixed, so the admin port is no way to the app.
// Concurrent callers of one path share the probe in flight: hammering the admin port costs the app
// at most one probe per path at a time.
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import type { AppProbe } from '../formats/app-probes.js';

/** The status the admin server answers for one probe outcome: the app's status, 200 for 3xx, 503 for anything outside 200–599. */
function statusFor(appStatus: number): number {
  if (appStatus < 200 || appStatus > 599) return 503;
  return appStatus >= 300 && appStatus < 400 ? 200 : appStatus;
}

function probeHttp(p: Extract<AppProbe, { kind: 'http' }>): Promise<number> {
  return new Promise((resolve) => {
    const headers: Record<string, string> = { 'user-agent': 'kube-probe/warden', accept: '*/*' };
    for (const h of p.headers) headers[h.name.toLowerCase()] = h.value;
    const options = { host: '127.0.0.1', port: p.port, path: p.path, method: 'GET', headers, agent: false, signal: AbortSignal.timeout(p.timeoutSeconds * 1000) } as const;
    // The kubelet does not verify an HTTPS probe's certificate either.
    const req = p.scheme === 'HTTPS' ? httpsRequest({ ...options, rejectUnauthorized: false }) : httpRequest(options);
    req.on('response', (res) => {
      res.resume();
      resolve(statusFor(res.statusCode ?? 503));
      req.destroy();
    });
    req.on('error', () => resolve(503));
    req.end();
  });
}

function probeTcp(p: Extract<AppProbe, { kind: 'tcp' }>): Promise<number> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port: p.port, timeout: p.timeoutSeconds * 1000 });
    const done = (status: number) => {
      socket.destroy();
      resolve(status);
    };
    socket.once('connect', () => done(200));
    socket.once('timeout', () => done(503));
    socket.once('error', () => done(503));
  });
}

/** An admin-path handler for the configured probes: the status for a configured path, undefined for any other. */
export function appHealth(probes: ReadonlyMap<string, AppProbe>): (path: string) => Promise<number> | undefined {
  const inFlight = new Map<string, Promise<number>>();
  return (path) => {
    const probe = probes.get(path);
    if (!probe) return undefined;
    let pending = inFlight.get(path);
    if (!pending) {
      pending = (probe.kind === 'http' ? probeHttp(probe) : probeTcp(probe)).finally(() => inFlight.delete(path));
      inFlight.set(path, pending);
    }
    return pending;
  };
}
