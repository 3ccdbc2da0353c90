// A real kube-apiserver backed by a real etcd, both on 127.0.0.1 with their data in a temp dir, for
// end-to-end tests (admission webhooks above all). The binaries come from `node bin/setup.js --test`
// (built from the Go module proxy, see test/kube/); nothing here downloads anything.
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, KubeConfig, KubernetesObjectApi, type KubernetesObject } from '@kubernetes/client-node';
import { createCertificateAuthority } from '../../runtime/certificate-authority.js';

/** How to start the test API server. */
export interface KubeApiServerOptions {
  /** Folder holding `kube-apiserver` and `etcd`; default `.tools/bin` of this clone. */
  binDir?: string;
  /** How long to wait for `/readyz` before giving up; default 90 s (a cold first start is slow). */
  readyTimeoutMs?: number;
  /** `RBAC` (as a real cluster) or `AlwaysAllow`; the admin user is in system:masters either way. */
  authorizationMode?: 'RBAC' | 'AlwaysAllow';
  /** Extra kube-apiserver flags, e.g. `--feature-gates=…`. */
  extraArgs?: string[];
  /**
   * Also run kube-controller-manager (from the same folder) with these controllers, e.g.
   * `['deployment', 'replicaset']`, so that a Deployment becomes a ReplicaSet that becomes Pods.
   * Pods stay Pending: there is no scheduler or kubelet.
   */
  controllers?: string[];
}

/** A running API server; `stop()` ends it and etcd and removes `dataDir`. */
export interface KubeApiServer {
  /** Authenticates as a system:masters admin with a client certificate. */
  kubeConfig: KubeConfig;
  /** `https://127.0.0.1:<port>` */
  url: string;
  /** The CA that signed the API server's serving and client certificates. */
  caPem: string;
  /** Temp dir with certificates, keys and etcd's data. */
  dataDir: string;
  stop(): Promise<void>;
}

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const proxyVariables = ['HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY', 'http_proxy', 'https_proxy', 'all_proxy'];
const stderrLinesKept = 40;
const stopGraceMs = 5_000;
const portAttempts = 3;

/** Starts etcd and kube-apiserver on free loopback ports and resolves once `/readyz` answers 200. */
export async function startKubeApiServer(opts: KubeApiServerOptions = {}): Promise<KubeApiServer> {
  const binDir = opts.binDir ?? join(repoRoot, '.tools', 'bin');
  for (const name of ['kube-apiserver', 'etcd', ...(opts.controllers ? ['kube-controller-manager'] : [])]) {
    if (!existsSync(join(binDir, name))) {
      throw new Error(`${join(binDir, name)} is missing: run \`node bin/setup.js --test\` to build the test tools (the first build takes several minutes).`);
    }
  }
  // Free ports are picked before the servers bind them; another process can take one in between.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(binDir, opts);
    } catch (err) {
      if (!(err instanceof PortTakenError) || attempt >= portAttempts) throw err;
    }
  }
}

class PortTakenError extends Error {}

async function startOnce(binDir: string, opts: KubeApiServerOptions): Promise<KubeApiServer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'warden-kube-'));
  const processes: Supervised[] = [];
  const stop = async (): Promise<void> => {
    // API server first, so it does not log etcd going away; then etcd; then its files.
    for (const p of [...processes].reverse()) await p.stop();
    await rm(dataDir, { recursive: true, force: true });
  };
  try {
    const [etcdClientPort, etcdPeerPort, securePort] = await freePorts(3);
    const files = await writeCredentials(dataDir);
    const etcdUrl = `http://127.0.0.1:${etcdClientPort}`;
    const url = `https://127.0.0.1:${securePort}`;

    processes.push(supervise('etcd', join(binDir, 'etcd'), [
      '--name=warden-test',
      `--data-dir=${join(dataDir, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
      `--initial-cluster=warden-test=http://127.0.0.1:${etcdPeerPort}`,
      // Throwaway data: durability buys nothing and fsync dominates write latency.
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]));
    // Started together with etcd: the API server retries its etcd connection on its own.
    processes.push(supervise('kube-apiserver', join(binDir, 'kube-apiserver'), [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${securePort}`,
      `--cert-dir=${join(dataDir, 'certs')}`,
      `--tls-cert-file=${files.servingCert}`,
      `--tls-private-key-file=${files.servingKey}`,
      `--client-ca-file=${files.caCert}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${files.serviceAccountPub}`,
      `--service-account-signing-key-file=${files.serviceAccountKey}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      `--authorization-mode=${opts.authorizationMode ?? 'RBAC'}`,
      // Nothing routes to a loopback "kubernetes" Service endpoint; Kubernetes' own test server does the same.
      '--endpoint-reconciler-type=none',
      '--profiling=false',
      ...(opts.extraArgs ?? []),
    ]));

    await waitForReady(url, files.tls, processes, opts.readyTimeoutMs ?? 90_000);
    const kubeConfig = kubeConfigFor(url, files.tls);
    if (opts.controllers) {
      // As the admin (system:masters): the test's controller manager needs no RBAC bootstrap of its own.
      const kubeconfigFile = join(dataDir, 'controller-manager.kubeconfig');
      await writeFile(kubeconfigFile, kubeConfig.exportConfig(), { mode: 0o600 });
      processes.push(supervise('kube-controller-manager', join(binDir, 'kube-controller-manager'), [
        `--kubeconfig=${kubeconfigFile}`,
        `--controllers=${opts.controllers.join(',')}`,
        '--leader-elect=false',
        '--secure-port=0',
        '--use-service-account-credentials=false',
        '--profiling=false',
      ]));
    }
    return { kubeConfig, url, caPem: files.tls.ca, dataDir, stop };
  } catch (err) {
    const taken = processes.some((p) => /address already in use/i.test(p.stderrTail()));
    await stop();
    throw taken ? new PortTakenError(String(err)) : err;
  }
}

interface TlsMaterial {
  ca: string;
  cert: string;
  key: string;
}

/** Writes the CA, serving pair and service-account key the API server reads; returns their paths. */
async function writeCredentials(dataDir: string) {
  const ca = await createCertificateAuthority('warden-kube-ca');
  const serving = await ca.issue({
    kind: 'server',
    commonName: 'kube-apiserver',
    dnsNames: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc'],
    ipAddresses: ['127.0.0.1', '10.0.0.1'],
  });
  const admin = await ca.issue({ kind: 'client', commonName: 'warden-test-admin', organizations: ['system:masters'] });
  const serviceAccount = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });

  const pki = join(dataDir, 'pki');
  await mkdir(pki, { mode: 0o700 });
  const files = {
    caCert: join(pki, 'ca.crt'),
    servingCert: join(pki, 'apiserver.crt'),
    servingKey: join(pki, 'apiserver.key'),
    serviceAccountKey: join(pki, 'sa.key'),
    serviceAccountPub: join(pki, 'sa.pub'),
  };
  await Promise.all([
    writeFile(files.caCert, ca.certPem),
    writeFile(files.servingCert, serving.certPem),
    writeFile(files.servingKey, serving.keyPem, { mode: 0o600 }),
    // --service-account-key-file reads only public keys (or RSA/SEC1 private keys), not PKCS#8.
    writeFile(files.serviceAccountKey, serviceAccount.privateKey.export({ format: 'pem', type: 'sec1' }), { mode: 0o600 }),
    writeFile(files.serviceAccountPub, serviceAccount.publicKey.export({ format: 'pem', type: 'spki' })),
  ]);
  return { ...files, tls: { ca: ca.certPem, cert: admin.certPem, key: admin.keyPem } satisfies TlsMaterial };
}

function kubeConfigFor(url: string, tls: TlsMaterial): KubeConfig {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'warden-test', server: url, caData: b64(tls.ca), skipTLSVerify: false }],
    users: [{ name: 'warden-test-admin', certData: b64(tls.cert), keyData: b64(tls.key) }],
    contexts: [{ name: 'warden-test', cluster: 'warden-test', user: 'warden-test-admin' }],
    currentContext: 'warden-test',
  });
  return kc;
}

/** Polls `/readyz` until 200; fails early if a process exits, and at the deadline with what it saw. */
async function waitForReady(url: string, tls: TlsMaterial, processes: Supervised[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  for (;;) {
    const exited = processes.find((p) => p.exitStatus() !== undefined);
    if (exited) throw new Error(`${exited.name} exited (${exited.exitStatus()}) before kube-apiserver was ready.\n${tails(processes)}`);
    try {
      const res = await get(`${url}/readyz?verbose`, tls, 2_000);
      if (res.status === 200) return;
      last = `HTTP ${res.status}: ${res.body.split('\n').filter((l) => l.includes('failed')).join('; ') || res.body.slice(0, 500)}`;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() >= deadline) {
      throw new Error(`kube-apiserver at ${url} was not ready after ${timeoutMs} ms (last /readyz: ${last}).\n${tails(processes)}`);
    }
    // Poll interval between readiness probes, not a guess at when the server is ready.
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function get(url: string, tls: TlsMaterial, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ...tls, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

function tails(processes: Supervised[]): string {
  return processes.map((p) => `--- last stderr of ${p.name} ---\n${p.stderrTail() || '(nothing)'}`).join('\n');
}

/** A child process whose recent stderr is kept for error messages and which is killed with the test process. */
interface Supervised {
  name: string;
  exitStatus(): string | undefined;
  stderrTail(): string;
  stop(): Promise<void>;
}

function supervise(name: string, bin: string, args: string[]): Supervised {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_PROXY: '127.0.0.1,localhost,::1', no_proxy: '127.0.0.1,localhost,::1' };
  // The API server must reach webhooks on 127.0.0.1 directly, never through a proxy from the environment.
  for (const v of proxyVariables) delete env[v];

  const child: ChildProcess = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let partial = '';
  const keep = (chunk: Buffer) => {
    const parts = (partial + chunk.toString('utf8')).split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts);
    if (lines.length > stderrLinesKept) lines.splice(0, lines.length - stderrLinesKept);
  };
  child.stderr?.on('data', keep);
  child.stdout?.on('data', keep);

  let status: string | undefined;
  const exited = new Promise<void>((resolve) => {
    child.on('exit', (code, signal) => {
      status = signal ? `signal ${signal}` : `code ${code}`;
      resolve();
    });
    child.on('error', (err) => {
      status = `could not start: ${err.message}`;
      resolve();
    });
  });
  // If the test process dies without calling stop(), do not leave servers running.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);

  return {
    name,
    exitStatus: () => status,
    stderrTail: () => [...lines, partial].filter(Boolean).join('\n'),
    async stop() {
      process.off('exit', killOnExit);
      if (status !== undefined) return;
      child.kill('SIGTERM');
      const graceful = await Promise.race([exited.then(() => true), delay(stopGraceMs).then(() => false)]);
      if (!graceful) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** Distinct free loopback ports: all are held open together so none is handed out twice. */
/** Ports free on 127.0.0.1 right now, for servers that cannot report the port they bound. */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: count }, () => new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => resolve(s));
  })));
  const ports = servers.map((s) => {
    const address = s.address();
    if (address === null || typeof address === 'string') throw new Error('a TCP server on 127.0.0.1 reported no port');
    return address.port;
  });
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

/**
 * Offer `objects` to the API server in a server-side dry run: Namespaces are created for real first (a
 * dry-run object in a namespace that does not exist is refused), everything else with dryRun=All.
 * Returns the keys (kind/namespace/name) accepted, and each refusal with the server's answer.
 */
export async function dryRunCreate(kubeConfig: KubeConfig, objects: KubernetesObject[]): Promise<{ accepted: string[]; refused: string[] }> {
  const key = (o: KubernetesObject) => `${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const client = KubernetesObjectApi.makeApiClient(kubeConfig);
  for (const ns of objects.filter((o) => o.kind === 'Namespace')) await core.createNamespace({ body: ns as never });
  const accepted: string[] = [];
  const refused: string[] = [];
  for (const o of objects.filter((x) => x.kind !== 'Namespace')) {
    try {
      await client.create(o, undefined, 'All');
      accepted.push(key(o));
    } catch (err) {
      const e = err as { code?: number; body?: string; message?: string };
      refused.push(`${key(o)}: ${e.code ?? ''} ${e.body ?? e.message ?? String(err)}`);
    }
  }
  return { accepted, refused };
}
