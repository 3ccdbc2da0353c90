// One plugin instance wired from its configuration: bundle source, decision log, metrics and the
// pipeline, shared by whichever front ends (sidecar, ext_authz, middleware) the pod runs.
import { createPublicKey, type KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import { DecisionLog, type DecisionLines } from '../runtime/decision-log.js';
import { EngineConnection, type EngineTls } from '../runtime/engine-connection.js';
import { defaultAlgorithm, type SigningAlgorithm, type TrustPolicy } from '../runtime/signature.js';
import type { Gate } from './admit.js';
import { parseOciReference, RegistryClient, type OciReference } from '../runtime/oci-registry.js';
import { BundleSource, type BundleEvent } from './bundle-source.js';
import { DecisionPipeline } from './decide.js';
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
  /** This workload's SVID and the engine's CA: both the bundle puller and the log shipper present it. */
  engineTls?: EngineTls;
  /** A local bundle file loaded at start (alone, or as the first bundle before the engine answers). */
  bundleFile?: string;
  /** Pull bundles from this OCI artifact (oci://registry/repo:tag) instead of the engine. */
  bundleUrl?: string;
  /** docker-config file with the registry's credentials (default $DOCKER_CONFIG/config.json). */
  registryConfig?: string;
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
  /** Which decisions also get a local log line (default `all`; fewer only with an engine). */
  decisionLines?: DecisionLines;
}

/** A running plugin instance. */
export interface Plugin {
  gate: Gate;
  source: BundleSource;
  log: DecisionLog;
  metrics: PluginMetrics;
  /** The connection to the engine (bundles and decision events), when there is one. */
  engine: EngineConnection | undefined;
  /** A bundle is loaded (readiness). */
  ready(): boolean;
  close(): Promise<void>;
}


/** The trust policy for bundles: exactly the configured key, whatever `kid` a bundle claims. */
export function trustPolicy(cfg: Pick<PluginConfig, 'verificationKey' | 'verificationAlgorithm' | 'keyId' | 'scope'>): TrustPolicy {
  const key = typeof cfg.verificationKey === 'string' ? createPublicKey(cfg.verificationKey) : cfg.verificationKey;
  const id = cfg.keyId ?? 'configured';
  return { keys: [{ id, algorithm: cfg.verificationAlgorithm ?? defaultAlgorithm(key), key }], keyId: id, ...(cfg.scope ? { scope: cfg.scope } : {}) };
}

/** The registry a `--bundle-url oci://…` names, with the docker-config credentials for it. */
function registrySource(url: string, configFile: string | undefined): { reference: OciReference; client: RegistryClient } {
  const reference = parseOciReference(url);
  return { reference, client: RegistryClient.for(reference, configFile) };
}

/** Wire a plugin; call `start` on the result's source (done here) before serving. */
export async function startPlugin(cfg: PluginConfig): Promise<Plugin> {
  const metrics = new PluginMetrics();
  const logger = cfg.logger;
  // One connection, one identity: the engine accepts this pod's events because of the same
  // certificate it presents when pulling its bundle.
  const engine = cfg.engine ? new EngineConnection(cfg.engine, cfg.engineTls) : undefined;
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
  const registry = cfg.bundleUrl ? registrySource(cfg.bundleUrl, cfg.registryConfig) : undefined;
  const source = new BundleSource({
    workload: cfg.workload,
    trust: trustPolicy(cfg),
    ...(engine ? { engine } : {}),
    ...(registry ? { registry } : {}),
    ...(cfg.longPollSeconds !== undefined ? { longPollSeconds: cfg.longPollSeconds } : {}),
    ...(cfg.pollIntervalMs !== undefined ? { pollIntervalMs: cfg.pollIntervalMs } : {}),
    onEvent,
  });
  const log = new DecisionLog({
    logger,
    metrics,
    ...(engine ? { engine } : {}),
    ...(cfg.spillFile ? { spillFile: cfg.spillFile } : {}),
    ...(cfg.logFlushIntervalMs ? { flushIntervalMs: cfg.logFlushIntervalMs } : {}),
    ...(cfg.decisionLines ? { lines: cfg.decisionLines } : {}),
  });
  const pipeline = new DecisionPipeline({
    destination: { workload: cfg.workload, namespace: cfg.namespace ?? 'unknown', principal: cfg.principal ?? '' },
    source,
    log,
    metrics,
    ...(cfg.instance ? { instance: cfg.instance } : {}),
  });
  if (cfg.bundleFile) await source.loadFile(cfg.bundleFile).catch(() => undefined); // reported by onEvent; deny-all until one loads
  if (engine || registry) await source.start();
  return {
    gate: { pipeline, identity: cfg.identity },
    source,
    log,
    metrics,
    engine,
    ready: () => source.current !== undefined,
    async close() {
      await source.stop().catch(() => undefined);
      await log.close();
      engine?.close();
    },
  };
}
