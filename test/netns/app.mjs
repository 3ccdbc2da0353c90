// The app of the "pod that really runs" test (test/interception.test.ts): it listens where apps do,
// on every address, on its declared port 8080 and an undeclared 7070, TCP and UDP, and prints one JSON
// line per request or datagram it receives, so the test can tell exactly what reached it. /healthz
// is its kubelet probe target.
import { createServer } from 'node:http';
import process from 'node:process';
import { createSocket } from 'node:dgram';
import { existsSync } from 'node:fs';

// GET /healthz answers 200, or 500 once the file named by argv[2] exists (the app says it is unhealthy).
const sickFile = process.argv[2];

const say = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
let listening = 0;
const ready = () => ++listening === 4 && say({ ready: true });
for (const port of [8080, 7070]) {
  // '::' without ipv6Only takes IPv4 and IPv6 alike.
  createServer((req, res) => {
    say({ tcp: port, method: req.method, url: req.url, caller: req.headers['x-warden-caller'] ?? req.headers['x-forwarded-client-cert'] ?? null, probe: req.headers['x-probe'] ?? null });
    if (req.url === '/healthz' && sickFile && existsSync(sickFile)) res.writeHead(500);
    res.end(`app ${port}\n`);
  }).listen({ port, host: '::' }, ready);
  const udp = createSocket({ type: 'udp6', ipv6Only: false });
  udp.on('message', (m) => say({ udp: port, data: m.toString() }));
  udp.bind(port, '::', ready);
}
