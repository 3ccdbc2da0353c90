// The app of the "pod that really runs" test (test/interception.test.ts): it listens where apps do,
// on every address, on its declared port 8080 and an undeclared 7070, TCP and UDP, and prints one JSON
// line per request or datagram it receives, so the test can tell exactly what reached it.
import { createServer } from 'node:http';
import process from 'node:process';
import { createSocket } from 'node:dgram';

const say = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
let listening = 0;
const ready = () => ++listening === 4 && say({ ready: true });
for (const port of [8080, 7070]) {
  // '::' without ipv6Only takes IPv4 and IPv6 alike.
  createServer((req, res) => {
    say({ tcp: port, method: req.method, url: req.url, caller: req.headers['x-warden-caller'] ?? req.headers['x-forwarded-client-cert'] ?? null });
    res.end(`app ${port}\n`);
  }).listen({ port, host: '::' }, ready);
  const udp = createSocket({ type: 'udp6', ipv6Only: false });
  udp.on('message', (m) => say({ udp: port, data: m.toString() }));
  udp.bind(port, '::', ready);
}
