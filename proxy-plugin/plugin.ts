// One plugin instance wired from its configuration: bundle source, decision log, metrics and the
// pipeline, shared by whichever front ends (sidecar, ext_authz, middleware) the pod runs.
import { createPublicKey, type KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import type { SigningAlgorithm, TrustPolicy } from '../runtime/signature.js';
import type { Gate } from './admit.js';
import { BundleSource, type BundleEvent } from './bundle-source.js';
import { DecisionPipeline } from './decide.js';
import { DecisionLog } from './decision-log.js';
import type { IdentityConfig } from './identity.js';
import { PluginMetrics } from './metrics.js';

/** Everything one plugin instance needs. */
export interface PluginConfig {
  workload: string;
  /** Used until a bundle names them (bundle metadata wins). */
  namespace?: string;
  principal?: string;
  /** Engine base URL: bundles are pulled from it and decision events shipped to it. */
  engine?: string;
  /** A local bundle file loaded at start (alone, or as the first bundle before the engine answers). */
  bundleFile?: string;
  /** PEM public key bundles must be signed with. */
  verificationKey: string | KeyObject;
  verificationAlgorithm?: SigningAlgorithm;
  keyId?: string;
  scope?: string;
  identity: IdentityConfig;
  logger: Logger;
  spillFile?: string;
  instance?: string;
  longPollSeconds?: number;
  pollIntervalMs?: number;
  logFlushIntervalMs?: number;
}

/** A running plugin instance. */
export interface Plugin {
  gate: Gate;
  source: BundleSource;
  log: DecisionLog;
  metrics: PluginMetrics;
  /** A bundle is loaded (readiness). */
  ready(): boolean;
  close(): Promise<void>;
}

/** The JWS algorithm a public key verifies with by default. */
export function defaultAlgorithm(key: KeyObject): SigningAlgorithm {
  if (key.asymmetricKeyType === 'rsa') return 'RS256';
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (curve === 'secp384r1') return 'ES384';
  if (curve === 'secp521r1') return 'ES512';
  return 'ES256';
}

/** The trust policy for bundles: exactly the configured key, whatever `kid` a bundle claims. */
export function trustPolicy(cfg: Pick<PluginConfig, 'verificationKey' | 'verificationAlgorithm' | 'keyId' | 'scope'>): TrustPolicy {
  const key = typeof cfg.verificationKey === 'string' ? createPublicKey(cfg.verificationKey) : cfg.verificationKey;
  const id = cfg.keyId ?? 'configured';
  return { keys: [{ id, algorithm: cfg.verificationAlgorithm ?? defaultAlgorithm(key), key }], keyId: id, ...(cfg.scope ? { scope: cfg.scope } : {}) };
}

/** Wire a plugin; call `start` on the result's source (done here) before serving. */
export async function startPlugin(cfg: PluginConfig): Promise<Plugin> {
  const metrics = new PluginMetrics();
  const logger = cfg.logger;
  const onEvent = (e: BundleEvent) => {
    if (e.type === 'loaded') {
      metrics.bundleLoads.inc({ result: 'loaded' });
      const b = source.current!;
      metrics.bundleLoaded(b.revision, b.builtAt, b.loadedAt);
      logger.info({ revision: e.revision, origin: e.origin, mode: b.mode }, 'bundle loaded');
    } else {
      metrics.bundleLoads.inc({ result: e.type });
      logger.warn({ origin: e.origin, reason: e.reason, keeping: source.current?.revision ?? null }, e.type === 'rejected' ? 'bundle rejected' : 'bundle server unreachable');
    }
  };
  const source = new BundleSource({
    workload: cfg.workload,
    trust: trustPolicy(cfg),
    ...(cfg.engine ? { engine: cfg.engine } : {}),
    ...(cfg.longPollSeconds !== undefined ? { longPollSeconds: cfg.longPollSeconds } : {}),
    ...(cfg.pollIntervalMs !== undefined ? { pollIntervalMs: cfg.pollIntervalMs } : {}),
    onEvent,
  });
  const log = new DecisionLog({
    logger,
    metrics,
    ...(cfg.engine ? { engine: cfg.engine } : {}),
    ...(cfg.spillFile ? { spillFile: cfg.spillFile } : {}),
    ...(cfg.logFlushIntervalMs ? { flushIntervalMs: cfg.logFlushIntervalMs } : {}),
  });
  const pipeline = new DecisionPipeline({
    destination: { workload: cfg.workload, namespace: cfg.namespace ?? 'unknown', principal: cfg.principal ?? '' },
    source,
    log,
    metrics,
    ...(cfg.instance ? { instance: cfg.instance } : {}),
  });
  if (cfg.bundleFile) await source.loadFile(cfg.bundleFile).catch(() => undefined); // reported by onEvent; deny-all until one loads
  if (cfg.engine) await source.start();
  return {
    gate: { pipeline, identity: cfg.identity },
    source,
    log,
    metrics,
    ready: () => source.current !== undefined,
    async close() {
      await source.stop().catch(() => undefined);
      await log.close();
    },
  };
}
