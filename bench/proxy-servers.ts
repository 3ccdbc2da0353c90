// Child processes of the proxy benchmark, one per container of a pod: `upstream` (the application) and
// `proxies <upstreamPort> <bundle> <key> <engine>` (the Warden sidecar, a pass-through proxy without
// policy — the same sidecar code with the gate off — and a byte pipe; they are measured one after the
// other, never at once). The byte pipe copies bytes between each client connection and one upstream
// connection of its own without reading them: the least any proxy in its own process adds here.
// The sidecar's plugin is wired as in a cluster: it long-polls the engine for its bundle and ships every
// decision event to the engine's POST /logs. Each reports its ports
// over IPC and answers 'cpu' with the process's CPU time, the figure that survives a busy machine.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo, type Server } from 'node:net';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { pino } from 'pino';
import { bufferedLogStream } from '../runtime/log-stream.js';
import { startPlugin } from '../proxy-plugin/plugin.js';
import { createSidecar } from '../proxy-plugin/sidecar.js';

const listen = async (s: Server) => {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as AddressInfo).port;
};

const [role, ...args] = process.argv.slice(2) as [string, ...string[]];
let plugin: Awaited<ReturnType<typeof startPlugin>> | undefined;
if (role === 'upstream') {
  const body = JSON.stringify({ id: 42, status: 'open', items: [{ sku: 'A-1', qty: 2 }] });
  const upstream = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
  });
  upstream.keepAliveTimeout = 30_000;
  process.send!({ upstreamPort: await listen(upstream) });
} else {
  const [upstreamPort, bundleFile, keyFile, engine] = args as [string, string, string, string];
  // Decision lines go to /dev/null through the same buffered stream `warden proxy` writes stdout with:
  // their serialization cost is measured, not a terminal's speed.
  const logger = pino({ level: 'info' }, bufferedLogStream('/dev/null').stream);
  plugin = await startPlugin({
    workload: 'orders',
    engine,
    bundleFile,
    verificationKey: readFileSync(keyFile, 'utf8'),
    identity: { trustedHeader: { name: 'x-forwarded-client-cert', peers: ['127.0.0.1'] } },
    logger,
  });
  const target = new URL(`http://127.0.0.1:${upstreamPort}`);
  const limits = { keepAliveTimeoutMs: 30_000 };
  const sidecarPort = await listen(createSidecar({ upstream: target, gate: plugin.gate, logger, limits }));
  const passthroughPort = await listen(createSidecar({ upstream: target, gate: null, logger, limits }));
  const pipe = net.createServer((client) => {
    const upstream = net.connect(Number(upstreamPort), '127.0.0.1');
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) s.setNoDelay(true).on('error', close).on('close', close);
    client.pipe(upstream).pipe(client);
  });
  process.send!({ sidecarPort, passthroughPort, pipePort: await listen(pipe) });
}
// How late the event loop ran (sampled every ms) and how long GC paused it since the last 'cpu' message:
// a tail made inside this process shows here, one made by the machine's scheduler does not.
const LOOP_RESOLUTION_MS = 10; // coarse: 1 ms sampling would wake the proxy 1,000 times a second
const loopDelay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
loopDelay.enable();
let gcMaxMs = 0;
let gcTotalMs = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    gcMaxMs = Math.max(gcMaxMs, e.duration);
    gcTotalMs += e.duration;
  }
}).observe({ entryTypes: ['gc'] });
process.on('message', (m) => {
  if (m === 'cpu') {
    const u = process.cpuUsage();
    // The histogram holds whole sampling intervals: how late a tick came is the interval less the resolution.
    const late = (ns: number) => Math.max(0, ns / 1e6 - LOOP_RESOLUTION_MS);
    const log = plugin?.log;
    process.send!({ cpu: u.user + u.system, loopP99Ms: late(loopDelay.percentile(99)), loopMaxMs: late(loopDelay.max), gcMaxMs, gcTotalMs, logShipped: log?.shipped ?? 0, logDropped: log?.dropped ?? 0, logQueued: log?.depth ?? 0 });
    loopDelay.reset();
    gcMaxMs = 0;
    gcTotalMs = 0;
  }
});
process.on('disconnect', () => process.exit(0));
