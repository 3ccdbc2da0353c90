// Everything `warden up` runs, started in this process on 127.0.0.1 from the project's real modules:
// the engine service (HTTPS, client CA, SQLite audit store), the admission webhook (HTTPS, decisions
// shipped to the engine as the admission identity), and each example workload behind its own sidecar
// pulling its signed bundle from the engine over mTLS. Like main.ts, this file is a composition root:
// cli/ is the one folder that wires engine/, proxy-plugin/ and admission/ together (engine/ imports neither).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo, Server } from 'node:net';
import { join, resolve } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { pino, type Logger } from 'pino';
import { generateCertificates } from '../admission/certs.js';
import { resolveConfig } from '../admission/config.js';
import { startWebhookServer, type WebhookServer } from '../admission/server.js';
import { createWebhook, trustFromPem } from '../admission/webhook.js';
import { loadJwks } from '../proxy-plugin/identity.js';
import { mcpCallHandler } from '../proxy-plugin/mcp/call-adapter.js';
import { httpUpstream } from '../proxy-plugin/mcp/upstream.js';
import { startPlugin, type Plugin } from '../proxy-plugin/plugin.js';
import { createSidecar, type SidecarServer } from '../proxy-plugin/sidecar.js';
import { DecisionLog } from '../runtime/decision-log.js';
import { EngineConnection, type EngineTls } from '../runtime/engine-connection.js';
import { loadCheckpointSigner } from '../engine/audit/chain.js';
import { createLocalCa, type Issued, type LocalCa } from '../engine/local-ca.js';
import { startEngineService, type EngineService } from '../engine/service.js';
import { startOpsMcpApp, startOrdersApp, startStorefrontApp, type App } from './up-apps.js';

const td = 'cluster.local';
/** The identities of this demo: the three workloads, the callers outside it, the control plane's own. */
export const ID = {
  orders: `spiffe://${td}/ns/shop/sa/orders`,
  storefront: `spiffe://${td}/ns/shop/sa/storefront`,
  opsMcp: `spiffe://${td}/ns/agents/sa/ops-mcp`,
  invoicer: `spiffe://${td}/ns/billing/sa/invoicer`,
  admission: `spiffe://${td}/ns/warden/sa/admission`,
  auditor: `spiffe://${td}/ns/warden/sa/auditor`,
} as const;
export type Who = keyof typeof ID;

/** The local JWT issuer (people and agents); sidecars verify its tokens against a JWKS file. */
export const ISSUER = 'https://issuer.warden.local';

/** The sidecar image the local injector writes into Pods (`warden up` shows injection; it runs no image). */
export const UP_PROXY_IMAGE = `ghcr.io/warden-dev/warden@sha256:${'0'.repeat(64)}`;

/** Where and how to start. */
export interface StackOptions {
  bundlesDir: string;
  stateDir: string;
  enginePort: number;
  webhookPort: number;
  /** Audit store URL (default: SQLite in stateDir); tests run the system on PostgreSQL too. */
  storeUrl?: string;
  logger?: Logger;
}

/** One workload: its service and the sidecar in front of it. */
export interface RunningWorkload {
  name: string;
  app: App;
  plugin: Plugin;
  sidecar: SidecarServer;
  /** Sidecar URL callers use. */
  url: string;
}

/** The running system. */
export interface Stack {
  ca: LocalCa;
  certs: Record<Who, Issued>;
  engine: EngineService;
  webhook: WebhookServer;
  /** CA of the webhook's serving certificate (the caBundle the API server would trust). */
  webhookCa: string;
  admissionLog: DecisionLog;
  workloads: Record<'orders' | 'storefront' | 'ops-mcp', RunningWorkload>;
  /** Names of the MCP tools that actually ran on the ops-mcp server. */
  mcpRan: string[];
  /** Files written for exploring from another terminal. */
  files: { ca: string; auditorCert: string; auditorKey: string; jwks: string; store: string };
  token(sub: string, audience: string, claims: Record<string, unknown>): Promise<string>;
  /** Ship every queued decision event to the engine now. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

async function listenLoopback(server: Server, port = 0): Promise<string> {
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', fail);
      ok();
    });
  });
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

// Readiness by waiting, bounded: poll a condition until it holds or the deadline passes.
export async function waitFor(what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

// Coverage answers from the engine's bundle server, over the webhook's own mTLS connection.
/** Start everything; on failure, stop what was started and rethrow. */
export async function startStack(opts: StackOptions): Promise<Stack> {
  const logger = opts.logger ?? pino({ name: 'warden-up', level: 'warn' }, pino.destination(2));
  const closers: Array<() => Promise<void> | void> = [];
  const close = async () => {
    for (const c of closers.splice(0).reverse()) await Promise.resolve(c()).catch((err: unknown) => logger.warn({ err }, 'shutdown step failed'));
  };
  try {
    const upDir = resolve(opts.stateDir, 'up');
    mkdirSync(upDir, { recursive: true });
    const ca = await createLocalCa('Warden up local CA');
    const serving = await ca.server('127.0.0.1');
    const certs = Object.fromEntries(await Promise.all((Object.keys(ID) as Who[]).map(async (k) => [k, await ca.client(ID[k])] as const))) as Record<Who, Issued>;
    const files = {
      ca: join(upDir, 'ca.pem'),
      auditorCert: join(upDir, 'auditor.pem'),
      auditorKey: join(upDir, 'auditor-key.pem'),
      jwks: join(upDir, 'jwks.json'),
      store: opts.storeUrl ?? `sqlite:${join(resolve(opts.stateDir), 'audit.db')}`,
    };
    writeFileSync(files.ca, ca.cert);
    writeFileSync(files.auditorCert, certs.auditor.cert);
    writeFileSync(files.auditorKey, certs.auditor.key, { mode: 0o600 });

    // A local token issuer for people and agents (ES256), published as a JWKS file.
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    writeFileSync(files.jwks, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), alg: 'ES256', use: 'sig', kid: 'warden-up' }] }));
    const token = (sub: string, audience: string, claims: Record<string, unknown>) =>
      new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'warden-up' }).setSubject(sub).setIssuer(ISSUER).setAudience(audience).setIssuedAt().setExpirationTime('10m').sign(privateKey);

    // The engine: bundles for everyone, decision logs and audit queries over mTLS.
    const signer = (await loadCheckpointSigner(join(resolve(opts.stateDir), 'audit-checkpoint.jwk'), { create: true })).signer;
    const engine = await startEngineService({
      bundlesDir: opts.bundlesDir,
      host: '127.0.0.1',
      port: opts.enginePort,
      rescanMs: 1_000,
      storeUrl: files.store,
      revisionsDir: join(resolve(opts.stateDir), 'revisions'),
      tls: { cert: serving.cert, key: serving.key, clientCa: ca.cert },
      readers: [ID.auditor],
      admissionPrincipals: [ID.admission],
      checkpoints: { signer, everyMs: 60_000 },
      logger,
    });
    closers.push(() => engine.close());
    const engineTls = (who: Who): EngineTls => ({ ca: ca.cert, cert: certs[who].cert, key: certs[who].key });
    const verificationKey = readFileSync(join(opts.bundlesDir, 'verification-key.pem'), 'utf8');
    const jwks = await loadJwks(files.jwks);
    const jwt = (audience: string) => ({ keys: jwks, issuer: ISSUER, audience, algorithms: ['ES256'], clockToleranceSec: 30 });

    const plugin = async (workload: string, who: Who, audience: string) => {
      const p = await startPlugin({
        workload,
        engine: engine.url,
        engineTls: engineTls(who),
        verificationKey,
        identity: { jwt: jwt(audience) },
        logger,
        spillFile: join(upDir, `${workload}.spill.ndjson`),
        logFlushIntervalMs: 200,
        // As a pod's hostname names it in a cluster: its events and its drop counter say which "pod" decided.
        instance: `${workload}-up`,
      });
      closers.push(() => p.close());
      await waitFor(`the ${workload} bundle from the engine`, () => p.ready());
      return p;
    };
    const sidecar = async (name: string, app: App, p: Plugin, tls: boolean, handlers = false): Promise<RunningWorkload> => {
      const server = createSidecar({
        upstream: new URL(app.url),
        gate: p.gate,
        handlers: handlers ? [mcpCallHandler({ upstream: httpUpstream(app.url), recordDrift: (e) => p.log.record(e) })] : [],
        logger,
        jsonBodyBytes: 64 * 1024,
        ...(tls ? { tls: { cert: serving.cert, key: serving.key, ca: ca.cert } } : {}),
      });
      const addr = await listenLoopback(server);
      closers.push(
        () =>
          new Promise<void>((ok) => {
            server.close(() => ok());
            server.closeAllConnections();
          }),
      );
      return { name, app, plugin: p, sidecar: server, url: `${tls ? 'https' : 'http'}://${addr}` };
    };

    // orders first: the other two call it.
    const ordersApp = await startOrdersApp();
    closers.push(() => ordersApp.close());
    const orders = await sidecar('orders', ordersApp, await plugin('orders', 'orders', 'orders'), true);
    const storefrontApp = await startStorefrontApp({ url: orders.url, as: { svid: certs.storefront, ca: ca.cert } });
    closers.push(() => storefrontApp.close());
    const storefront = await sidecar('storefront', storefrontApp, await plugin('storefront', 'storefront', 'storefront'), true);
    const opsApp = await startOpsMcpApp({ url: orders.url, as: { svid: certs.opsMcp, ca: ca.cert } });
    closers.push(() => opsApp.close());
    // Agents present JWTs; the MCP relay speaks plain HTTP to the server inside the "pod".
    const ops = await sidecar('ops-mcp', opsApp, await plugin('ops-mcp', 'opsMcp', 'ops-mcp'), false, true);

    // The admission webhook: its serving certificate from its own generated CA, as `warden admission serve`.
    const conn = new EngineConnection(engine.url, engineTls('admission'));
    const admissionLog = new DecisionLog({ engine: conn, logger, spillFile: join(upDir, 'admission.spill.ndjson'), flushIntervalMs: 200 });
    closers.push(async () => {
      await admissionLog.close();
      conn.close();
    });
    // The injector's sidecar: a digest-pinned image as in a cluster (nothing is pulled here), pointed at this engine.
    const config = resolveConfig({ injection: { proxyImage: UP_PROXY_IMAGE, engineUrl: engine.url } });
    const trust = trustFromPem(verificationKey);
    const hook = await createWebhook({
      config,
      sink: admissionLog,
      // As in a cluster: the admission bundle and the coverage checks come from the engine, over mTLS.
      sources: { admissionBundle: { engine: conn }, workloads: { engine: conn }, trust },
    });
    const loaded = await hook.reload();
    if (loaded.error) throw new Error(loaded.error);
    const webhookCerts = await generateCertificates({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], days: 1 });
    const webhook = await startWebhookServer(hook.deps, { certPem: webhookCerts.certPem, keyPem: webhookCerts.keyPem, host: '127.0.0.1', port: opts.webhookPort });
    closers.push(() => webhook.close());

    const stack: Stack = {
      ca,
      certs,
      engine,
      webhook,
      webhookCa: webhookCerts.caPem,
      admissionLog,
      workloads: { orders, storefront, 'ops-mcp': ops },
      mcpRan: opsApp.ran,
      files,
      token,
      flush: async () => {
        await Promise.all([orders, storefront, ops].map((w) => w.plugin.log.flush()));
        await admissionLog.flush();
      },
      close,
    };
    return stack;
  } catch (err) {
    await close();
    throw err;
  }
}
