// Real servers and credentials for the proxy plugin's tests: a CA with server and SPIFFE client
// certificates (openssl), an upstream that records what reached it, a JWKS server, built bundles.
import express from 'express';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http, { type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Server as NetServer } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type JWTPayload } from 'jose';
import { buildRepo, type BuildResult } from '../../engine/compiler/build.js';
import type { DecisionEvent } from '../../formats/decision-event.js';
import { copyOfExamplePolicies } from './example-policies.js';

/** Listen on 127.0.0.1:0 and resolve with the port once listening. */
export async function listenLocal(server: NetServer): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

/** Close a server and every connection it holds. */
export async function closeServer(server: NetServer & { closeAllConnections(): void }): Promise<void> {
  await new Promise<void>((r) => {
    server.close(() => r());
    server.closeAllConnections();
  });
}

/** PEM files of a test PKI. */
export interface Pki {
  ca: string;
  serverCert: string;
  serverKey: string;
  client(spiffeId: string): { cert: string; key: string };
  /** A client certificate with a valid-looking SPIFFE ID from an unrelated CA. */
  foreignClient: { cert: string; key: string };
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

function issue(dir: string, name: string, caName: string, san: string): { cert: string; key: string } {
  writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${san}\nbasicConstraints=CA:FALSE\n`);
  openssl(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${caName}.pem`, '-CAkey', `${caName}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`]);
  return { cert: readFileSync(join(dir, `${name}.pem`), 'utf8'), key: readFileSync(join(dir, `${name}.key`), 'utf8') };
}

function makeCa(dir: string, name: string): void {
  openssl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${name}`]);
}

/** A CA, a server certificate for 127.0.0.1, and client certificates on demand. */
export function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), 'warden-pki-'));
  makeCa(dir, 'ca');
  makeCa(dir, 'other-ca');
  const server = issue(dir, 'server', 'ca', 'DNS:localhost,IP:127.0.0.1');
  const foreign = issue(dir, 'foreign', 'other-ca', 'URI:spiffe://cluster.local/ns/shop/sa/storefront');
  let n = 0;
  return {
    ca: readFileSync(join(dir, 'ca.pem'), 'utf8'),
    serverCert: server.cert,
    serverKey: server.key,
    client: (id) => issue(dir, `client${n++}`, 'ca', `URI:${id}`),
    foreignClient: foreign,
  };
}

/** One request as the upstream received it. */
export interface SeenRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** The trailer fields of a chunked body, as received ([name, value, …]). */
  trailers?: string[];
}

/** An upstream service that records every request and answers in a few useful ways. */
export interface Upstream {
  server: Server;
  port: number;
  seen: SeenRequest[];
  /** The bytes GET /stream sends (in chunks, over time). */
  streamBody: Buffer;
}

/** Start the upstream: POST echoes the body, GET /stream streams, GET /events is SSE, upgrades echo. */
export async function startUpstream(): Promise<Upstream> {
  const seen: SeenRequest[] = [];
  const streamBody = Buffer.from(Array.from({ length: 64 * 1024 }, (_, i) => (i * 7919) % 251));
  const server = http.createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body, trailers: req.rawTrailers });
      if (req.url === '/stream') {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        let off = 0;
        const tick = () => {
          if (off >= streamBody.length) return void res.end();
          res.write(streamBody.subarray(off, off + 8192));
          off += 8192;
          setImmediate(tick);
        };
        tick();
      } else if (req.url === '/events') {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        let i = 0;
        const t = setInterval(() => {
          res.write(`id: ${i}\ndata: event ${i}\n\n`);
          if (++i === 3) {
            clearInterval(t);
            res.end();
          }
        }, 10);
      } else if (req.method === 'POST' && req.headers['x-test-reply'] === 'created') {
        // A framed answer of another length than the request body (what a real create endpoint returns).
        const answer = JSON.stringify({ id: '44', status: 'created', received: body.length });
        res.writeHead(201, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(answer) });
        res.end(answer);
      } else if (req.method === 'POST' || req.method === 'PUT') {
        res.writeHead(201, { 'content-type': req.headers['content-type'] ?? 'application/octet-stream', 'x-body-sha256': createHash('sha256').update(body).digest('hex') });
        res.end(body);
      } else {
        res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'yes' });
        res.end(JSON.stringify({ method: req.method, url: req.url }));
      }
    });
  });
  server.on('upgrade', (req: IncomingMessage, socket) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.alloc(0) });
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
    socket.pipe(socket);
  });
  const port = await listenLocal(server);
  return { server, port, seen, streamBody };
}

/** An RSA signing key, its JWKS served over HTTP, and a token minter. */
export interface Issuer {
  jwksUrl: string;
  server: Server;
  issuer: string;
  audience: string;
  sign(claims: JWTPayload, opts?: { expiresIn?: string | number; issuedAt?: number }): Promise<string>;
  publicJwk: Record<string, unknown>;
  /** Requests the JWKS server answered (to see refetches). */
  fetches: number;
}

/** Start a JWKS server for a freshly generated RS256 key. */
export async function startIssuer(): Promise<Issuer> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid: 'test-key-1', alg: 'RS256', use: 'sig' };
  const state = { fetches: 0 };
  const server = http.createServer((_req, res) => {
    state.fetches++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [publicJwk] }));
  });
  const port = await listenLocal(server);
  const issuer = 'https://sso.test.example';
  const audience = 'orders';
  return {
    jwksUrl: `http://127.0.0.1:${port}/jwks.json`,
    server,
    issuer,
    audience,
    publicJwk,
    get fetches() {
      return state.fetches;
    },
    sign: (claims, opts = {}) =>
      new SignJWT(claims)
        .setProtectedHeader({ alg: 'RS256', kid: 'test-key-1' })
        .setIssuer(issuer)
        .setAudience(audience)
        .setIssuedAt(opts.issuedAt)
        .setExpirationTime(opts.expiresIn ?? '5m')
        .sign(privateKey),
  };
}

/** A private copy of the example policy repository, built into signed bundles. */
export interface PolicyCopy {
  dir: string;
  repo: string;
  out: string;
  build(only?: string[], now?: () => Date, generation?: number): Promise<BuildResult>;
}

/**
 * A private copy of policies/ built in a temp folder (bundles for `only`): unedited, a copy of the run's
 * shared build (test/support/example-policies.ts); edited, copied and built there (its own development
 * signing key). Either way `build()` rebuilds the copy.
 */
export async function copyPolicies(only: string[], edit?: (repo: string) => void): Promise<PolicyCopy> {
  let dir: string;
  if (edit) {
    dir = mkdtempSync(join(tmpdir(), 'warden-policies-'));
    cpSync(resolve('policies'), join(dir, 'policies'), { recursive: true });
    edit(join(dir, 'policies'));
  } else {
    dir = (await copyOfExamplePolicies(only)).dir;
  }
  const copy: PolicyCopy = {
    dir,
    repo: join(dir, 'policies'),
    out: join(dir, 'bundles'),
    build: (o = only, now, generation) =>
      buildRepo({ repo: 'policies', out: 'bundles', cwd: dir, only: o, cacheDir: resolve('.warden/cache/opa'), ...(now ? { now } : {}), ...(generation !== undefined ? { generation } : {}) }),
  };
  if (edit) await copy.build();
  return copy;
}

/**
 * A plain collector for decision events, mounted at the engine's `/logs` in place of the audit router
 * (test/audit-e2e.test.ts uses the real one): what it receives lands in `received`.
 */
export function logCollector(received: DecisionEvent[] = []): { router: express.Router; received: DecisionEvent[] } {
  const router = express.Router();
  router.post('/', express.raw({ type: '*/*', limit: '10mb' }), (req, res) => {
    // body-parser inflates gzip bodies itself; gunzip only what still carries the gzip magic.
    const raw = req.body as Buffer;
    const body = raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw) : raw;
    received.push(...(JSON.parse(body.toString('utf8')) as DecisionEvent[]));
    res.status(204).end();
  });
  return { router, received };
}
