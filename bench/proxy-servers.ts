// Child processes of the proxy benchmark, one per container of a pod: `upstream` (the application) and
// `proxies <upstreamPort>` (the Warden sidecar and a pass-through proxy without policy, the same sidecar
// code with the gate off; they are measured one after the other, never at once). Each reports its ports
// over IPC and answers 'cpu' with the process's CPU time, the figure that survives a busy machine.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo, Server } from 'node:net';
import { pino } from 'pino';
import { bufferedLogStream } from '../runtime/log-stream.js';
import { startPlugin } from '../proxy-plugin/plugin.js';
import { createSidecar } from '../proxy-plugin/sidecar.js';

const listen = async (s: Server) => {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as AddressInfo).port;
};

const [role, ...args] = process.argv.slice(2) as [string, ...string[]];
if (role === 'upstream') {
  const body = JSON.stringify({ id: 42, status: 'open', items: [{ sku: 'A-1', qty: 2 }] });
  const upstream = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
  });
  upstream.keepAliveTimeout = 30_000;
  process.send!({ upstreamPort: await listen(upstream) });
} else {
  const [upstreamPort, bundleFile, keyFile] = args as [string, string, string];
  // Decision lines go to /dev/null through the same buffered stream `warden proxy` writes stdout with:
  // their serialization cost is measured, not a terminal's speed.
  const logger = pino({ level: 'info' }, bufferedLogStream('/dev/null').stream);
  const plugin = await startPlugin({
    workload: 'orders',
    bundleFile,
    verificationKey: readFileSync(keyFile, 'utf8'),
    identity: { trustedHeader: { name: 'x-forwarded-client-cert', peers: ['127.0.0.1'] } },
    logger,
  });
  const target = new URL(`http://127.0.0.1:${upstreamPort}`);
  const limits = { keepAliveTimeoutMs: 30_000 };
  const sidecarPort = await listen(createSidecar({ upstream: target, gate: plugin.gate, logger, limits }));
  const passthroughPort = await listen(createSidecar({ upstream: target, gate: null, logger, limits }));
  process.send!({ sidecarPort, passthroughPort });
}
process.on('message', (m) => {
  if (m === 'cpu') {
    const u = process.cpuUsage();
    process.send!({ cpu: u.user + u.system });
  }
});
process.on('disconnect', () => process.exit(0));
