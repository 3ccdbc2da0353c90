// `warden admission certs|manifests|serve` as an operator runs them: real processes, real files, the
// served webhook answering over HTTPS with the CA the certs command wrote.
import { spawn, execFile, type ChildProcessByStdio } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { request } from 'node:https';
import type { Readable } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../engine/toolchain/paths.js';
import { createEngineApp } from '../engine/bundle-server.js';
import { startEngineService } from '../engine/service.js';
import { createCertificateAuthority } from '../runtime/certificate-authority.js';
import { createCa, rotate, serialOf, servedSerial } from './support/tls.js';
import { until } from './support/until.js';
import { readyOnStderr } from './support/warden-process.js';
import { closeServer, listenLocal, logCollector } from './support/proxy-fixtures.js';
import { admissionReview, buildExamplePolicies, deployment, podOf, type BuiltPolicies } from './support/admission-fixture.js';

const execFileP = promisify(execFile);
const warden = join(repoRoot, 'bin', 'warden.js');
let built: BuiltPolicies;

beforeAll(async () => {
  built = await buildExamplePolicies();
}, 240_000);
afterAll(() => built?.cleanup());

describe('warden admission CLI', () => {
  it('certs then manifests prints the webhook objects with the CA as caBundle', async () => {
    const certs = join(built.dir, 'certs');
    await execFileP(process.execPath, [warden, 'admission', 'certs', '--out', certs], { cwd: built.dir });
    const { stdout } = await execFileP(process.execPath, [warden, 'admission', 'manifests', '--certs', certs, '--namespace', 'warden-system'], { cwd: built.dir });
    const docs = parseAllDocuments(stdout).map((d) => d.toJS() as { kind: string; webhooks?: Array<{ clientConfig: { caBundle: string; service: { name: string } } }> });
    expect(docs.map((d) => d.kind)).toEqual(['Namespace', 'Secret', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Deployment', 'Service', 'MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']);
    const hook = docs.at(-1)!.webhooks![0]!;
    expect(Buffer.from(hook.clientConfig.caBundle, 'base64').toString()).toBe(readFileSync(join(certs, 'ca.crt'), 'utf8'));
    expect(hook.clientConfig.service.name).toBe('warden-admission');
  });

  it('refuses a --verification-key or --engine-ca file that is not there, naming the flag, with no stack trace', async () => {
    const missing = join(built.dir, 'no-such.pem');
    for (const args of [['--verification-key', missing], ['--engine', 'https://127.0.0.1:1', '--engine-ca', missing]]) {
      const r = (await execFileP(process.execPath, [warden, 'admission', 'serve', '--bundles', built.bundles, ...args], { cwd: built.dir }).catch((e: unknown) => e)) as { code?: number; stderr?: string };
      expect([r.code, r.stderr]).toEqual([1, `warden: ${args.at(-2)} ${missing}: no such file; give the path of a PEM file\n`]);
    }
  });

  it('serve answers AdmissionReviews over HTTPS with certificates from certs', async () => {
    const certs = join(built.dir, 'local-certs');
    await execFileP(process.execPath, [warden, 'admission', 'certs', '--out', certs, '--ip', '127.0.0.1'], { cwd: built.dir });
    const served = await serve(['--certs', certs, '--bundles', built.bundles]);
    try {
      const answer = await review(served.url, readFileSync(join(certs, 'ca.crt'), 'utf8'));
      expect(answer.response.allowed).toBe(false);
      expect(answer.response.status?.message).toContain('[coverage/proxy-plugin]');
    } finally {
      served.child.kill('SIGTERM');
    }
  });

  it('serve takes a renewed serving certificate from --certs without a restart', async () => {
    const ca = await createCa('Webhook CA');
    const [first, second] = [await ca.server('127.0.0.1'), await ca.server('127.0.0.1')];
    const certs = mkdtempSync(join(tmpdir(), 'warden-admission-rotate-'));
    rotate(certs, { 'tls.crt': first.cert, 'tls.key': first.key });
    const served = await serve(['--certs', certs, '--bundles', built.bundles, '--cert-reload', '1']);
    try {
      const address = new URL(served.url).host;
      expect(await servedSerial(address, ca.cert)).toBe(serialOf(first.cert));
      rotate(certs, { 'tls.crt': second.cert, 'tls.key': second.key });
      // Bounded wait for the next re-read (every second): new connections then get the renewed certificate.
      await until(() => `the renewed certificate to be served: ${served.stderr()}`, async () => ((await servedSerial(address, ca.cert)) === serialOf(second.cert) ? true : undefined));
      expect((await review(served.url, ca.cert)).response.allowed).toBe(false);
    } finally {
      served.child.kill('SIGTERM');
    }
  });

  it('with an mTLS engine, pulls the admission bundle from it and checks coverage over the same connection', async () => {
    const ca = await createCertificateAuthority('engine-test-ca');
    const engineCert = await ca.issue({ kind: 'server', commonName: 'localhost', ipAddresses: ['127.0.0.1'] });
    const webhookId = 'spiffe://cluster.local/ns/warden-system/sa/warden-admission';
    const client = await ca.issue({ kind: 'client', uris: [webhookId] });
    const pems = mkdtempSync(join(tmpdir(), 'warden-admission-engine-'));
    const file = (name: string, pem: string) => {
      writeFileSync(join(pems, name), pem);
      return join(pems, name);
    };
    const engine = await startEngineService({
      bundlesDir: built.bundles,
      host: '127.0.0.1',
      port: 0,
      storeUrl: `sqlite:${join(pems, 'audit.db')}`,
      tls: { cert: engineCert.certPem, key: engineCert.keyPem, clientCa: ca.certPem },
      admissionPrincipals: [webhookId],
      logger: pino({ level: 'silent' }),
    });
    try {
      // No --admission-bundle and a working folder without bundles: the only admission bundle is the engine's.
      const served = await serve(
        ['--engine', engine.url, '--engine-ca', file('ca.crt', ca.certPem), '--engine-cert', file('tls.crt', client.certPem), '--engine-key', file('tls.key', client.keyPem), '--spill', join(pems, 'spill.ndjson')],
        { cwd: pems, localBundle: false },
      );
      try {
        // Admitted: the admission bundle loaded, and the engine said orders has a signed bundle.
        const ok = await review(served.url, undefined, deployment({ name: 'orders' }));
        expect(ok.response).toMatchObject({ allowed: true });
        // Refused by a guardrail of the engine's admission bundle.
        const privileged = await review(served.url, undefined, deployment({ name: 'orders', app: { securityContext: { privileged: true } } }));
        expect(privileged.response.allowed).toBe(false);
        expect(privileged.response.status?.message).toMatch(/privileged/);
        expect(served.stderr()).not.toMatch(/every review is refused/);
      } finally {
        const exited = new Promise((r) => served.child.once('exit', r));
        served.child.kill('SIGTERM');
        await exited;
      }
      // Its decisions reached the engine's audit log over the same mTLS connection, as the workload `admission`.
      expect((await engine.store!.bounds())?.count).toBe(2);
    } finally {
      await engine.close();
    }
  });

  it('ships its last decisions to the engine when stopped with SIGTERM (before the flush interval)', async () => {
    const { router, received } = logCollector();
    const engine = createEngineApp({ bundlesDir: built.bundles, mounts: [{ path: '/logs', router }] });
    const engineServer = http.createServer(engine.app);
    const engineUrl = `http://127.0.0.1:${await listenLocal(engineServer)}`;
    const spill = join(built.dir, 'shutdown.spill.ndjson');
    try {
      const served = await serve(['--engine', engineUrl, '--spill', spill]);
      const answer = await review(served.url);
      expect(answer.response.allowed).toBe(false);
      expect(received).toHaveLength(0); // still queued: the log ships on its interval or at shutdown
      const exited = new Promise<number | null>((resolve) => served.child.once('exit', (code) => resolve(code)));
      served.child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(received.map((e) => e.kind)).toEqual(['admission']);
      expect(existsSync(spill) ? readFileSync(spill, 'utf8').trim() : '').toBe('');
    } finally {
      await closeServer(engineServer);
      engine.close();
    }
  });
});

// `warden admission serve` as a child process on a free port; resolves once it listens. By default it
// runs in the built policies' folder with their admission bundle given as a file.
async function serve(args: string[], opts: { cwd?: string; localBundle?: boolean } = {}): Promise<{ child: ChildProcessByStdio<null, null, Readable>; url: string; stderr: () => string }> {
  const local = opts.localBundle === false ? [] : ['--admission-bundle', join(built.bundles, 'admission.tar.gz')];
  const child = spawn(process.execPath, [warden, 'admission', 'serve', '--host', '127.0.0.1', '--port', '0', ...local, '--verification-key', join(built.bundles, 'verification-key.pem'), ...args], { cwd: opts.cwd ?? built.dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ready = readyOnStderr(child, /listening on (https:\/\/\S+)/);
  const url = await ready.url;
  return { child, url, stderr: ready.text };
}

// One AdmissionReview, by default for a bare Pod without the Warden sidecar (refused by coverage).
function review(url: string, ca?: string, object: Parameters<typeof admissionReview>[0] = podOf(deployment({ name: 'orders', inject: false }))): Promise<{ response: { allowed: boolean; status?: { message?: string } } }> {
  const body = JSON.stringify(admissionReview(object, 'shop'));
  return new Promise((resolve, reject) => {
    // Without a CA the webhook's in-memory certificate is accepted for this loopback call only.
    const req = request(url, { method: 'POST', ...(ca ? { ca } : { rejectUnauthorized: false }), headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve(JSON.parse(text) as never));
    });
    req.on('error', reject);
    req.end(body);
  });
}
