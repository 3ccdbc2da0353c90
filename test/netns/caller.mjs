// The caller of the "pod that really runs" test: run in the peer network namespace, it makes each
// attempt in argv[2] (JSON) in order and prints one JSON result per attempt.
import { request as https } from 'node:https';
import { request as http } from 'node:http';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import process from 'node:process';

const attempts = JSON.parse(process.argv[2]);
const pem = (p) => (p ? readFileSync(p, 'utf8') : undefined);

function call(a) {
  return new Promise((resolve) => {
    const tls = a.scheme === 'https';
    const opts = {
      host: a.host, port: a.port, path: a.path ?? '/', method: a.method ?? 'GET', headers: a.headers ?? {}, timeout: 3000,
      ...(tls ? { ca: pem(a.ca), cert: pem(a.cert), key: pem(a.key), checkServerIdentity: () => undefined } : {}),
    };
    const req = (tls ? https : http)(opts, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode, body: body.slice(0, 300) }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ error: e.code ?? e.message }));
    req.end();
  });
}

function datagram(a) {
  return new Promise((resolve) => {
    const s = createSocket(a.host.includes(':') ? 'udp6' : 'udp4');
    s.send(a.data ?? 'hello', a.port, a.host, (err) => {
      s.close();
      resolve(err ? { error: err.code } : { sent: true });
    });
  });
}

for (const a of attempts) {
  const r = a.udp ? await datagram(a) : await call(a);
  process.stdout.write(`${JSON.stringify({ name: a.name, ...r })}\n`);
}
