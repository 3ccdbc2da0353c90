// Child processes of the proxy and MCP benchmarks, one per container of a pod: `upstream` (the application),
// `mcp-server json|sse` (the MCP application: the real SDK server, answering JSON or event streams) and
// `proxies <upstreamPort>` (a pass-through proxy without policy — the sidecar code, as built, with the gate off —
// and a byte pipe; the Warden sidecar itself is `warden proxy`, bench/warden-cli.ts; they are measured
// one after the other, never at once). The byte pipe copies bytes between each client connection and one upstream
// connection of its own without reading them: the least any proxy in its own process adds here.
// Each reports its ports
// over IPC and answers 'cpu' with the process's CPU time, the figure that survives a busy machine.
import http from 'node:http';
import net, { type AddressInfo, type Server } from 'node:net';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { pino } from 'pino';
import { shipped } from './shipped.js';

const listen = async (s: Server) => {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as AddressInfo).port;
};

const [role, ...args] = process.argv.slice(2) as [string, ...string[]];
// What the pass-through held its forwarded calls for (as warden proxy's warden_proxy_held_seconds), so far.
const held = { seconds: 0, calls: 0 };
if (role === 'upstream') {
  const body = JSON.stringify({ id: 42, status: 'open', items: [{ sku: 'A-1', qty: 2 }] });
  const upstream = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
  });
  upstream.keepAliveTimeout = 30_000;
  process.send!({ upstreamPort: await listen(upstream) });
} else if (role === 'mcp-server') {
  // Loaded only here: the fixture module pulls in the compiler, which the other roles never need.
  const { startMcpServer } = await import('../test/support/mcp-fixtures.js');
  const server = await startMcpServer({ json: args[0] === 'json' });
  process.send!({ upstreamPort: Number(new URL(server.url).port) });
} else {
  const [upstreamPort] = args as [string];
  const target = new URL(`http://127.0.0.1:${upstreamPort}`);
  // The sidecar's code as built (dist/), as warden proxy runs it: under tsx the sources would carry
  // esbuild's keepNames wrappers (shipped.ts), and the baseline would be slower than the sidecar it measures.
  const { createSidecar } = await shipped<typeof import('../proxy-plugin/sidecar.js')>('proxy-plugin/sidecar.js');
  const passthroughPort = await listen(createSidecar({ upstream: target, gate: null, logger: pino({ level: 'silent' }), limits: { keepAliveTimeoutMs: 30_000 }, held: (s) => ((held.seconds += s), held.calls++) }));
  const pipe = net.createServer((client) => {
    const upstream = net.connect(Number(upstreamPort), '127.0.0.1');
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) s.setNoDelay(true).on('error', close).on('close', close);
    client.pipe(upstream).pipe(client);
  });
  process.send!({ passthroughPort, pipePort: await listen(pipe) });
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
    process.send!({ cpu: u.user + u.system, loopP99Ms: late(loopDelay.percentile(99)), loopMaxMs: late(loopDelay.max), gcMaxMs, gcTotalMs, heldSeconds: held.seconds, heldCalls: held.calls });
    loopDelay.reset();
    gcMaxMs = 0;
    gcTotalMs = 0;
  }
});
process.on('disconnect', () => process.exit(0));
