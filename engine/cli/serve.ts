// `warden serve`: the engine's control-plane service — bundles for the proxy plugins and, over mTLS,
// the decision-log ingestion and audit queries (engine/service.ts does the wiring).
import type { Command } from 'commander';
import { existsSync, mkdirSync } from 'node:fs';
import { Server as HttpsServer } from 'node:https';
import { dirname } from 'node:path';
import { pino } from 'pino';
import { readPem, reloadIntervalMs, reloadOnRotation } from '../../runtime/pem-files.js';
import { trustFromPem } from '../../runtime/signature.js';
import { loadCheckpointSigner, publicKeyPath } from '../audit/chain.js';
import { parseDuration, FilterError } from '../audit/query.js';
import { StoreUrlError } from '../audit/open-store.js';
import { auditUnavailableReason, startEngineService, type EngineServerTls } from '../service.js';
import { DEFAULT_KEY, DEFAULT_STORE } from './audit.js';
import { DEFAULT_REVISIONS } from './explain.js';
import { isKeyUrl, parseClaim, type ConsoleOidc } from '../console/access.js';
import { parseListenAddress } from '../../formats/listen-address.js';
import { UserError } from '../../formats/user-error.js';

interface ServeFlags {
  bundles: string;
  bundlesFrom?: string;
  registryConfig?: string;
  verificationKey?: string;
  bundlesPoll: string;
  listen: string;
  maxWait: string;
  store: string;
  tlsCert?: string;
  tlsKey?: string;
  clientCa?: string;
  certReload: string;
  reader: string[];
  admissionPrincipal: string[];
  checkpointKey: string;
  checkpointEvery: string;
  retentionMaxAge?: string;
  retentionMaxRows?: string;
  retentionEvery: string;
  revisions: string;
  consoleOidcIssuer?: string;
  consoleOidcJwks?: string;
  consoleOidcAudience?: string;
  consoleOidcClaim?: string;
}

const repeatable = (v: string, acc: string[]) => [...acc, v];

// The console's OIDC access: all of issuer, keys and claim, or none of them.
function consoleOidc(f: ServeFlags): ConsoleOidc | undefined {
  const given = [f.consoleOidcIssuer, f.consoleOidcJwks, f.consoleOidcClaim, f.consoleOidcAudience].some((v) => v !== undefined);
  if (!given) return undefined;
  if (!f.consoleOidcIssuer || !f.consoleOidcJwks || !f.consoleOidcClaim) throw new UserError('console OIDC access needs --console-oidc-issuer, --console-oidc-jwks and --console-oidc-claim together');
  const claim = parseClaim(f.consoleOidcClaim);
  if (!claim) throw new UserError(`--console-oidc-claim: "${f.consoleOidcClaim}" is not name=value (e.g. groups=warden-auditors)`);
  if (!isKeyUrl(f.consoleOidcJwks) && !existsSync(f.consoleOidcJwks)) throw new UserError(`--console-oidc-jwks: ${f.consoleOidcJwks} is neither an https URL nor an existing JWKS file (plain http is refused: keys fetched in the clear could be swapped)`);
  return { issuer: f.consoleOidcIssuer, jwks: f.consoleOidcJwks, ...claim, ...(f.consoleOidcAudience ? { audience: f.consoleOidcAudience } : {}) };
}

function duration(flag: string, value: string): number {
  try {
    return parseDuration(value, flag.replace(/^--/, ''));
  } catch (err) {
    throw new UserError(err instanceof FilterError ? `${flag}: ${err.message}` : String(err));
  }
}

function spiffeIds(flag: string, values: string[]): string[] {
  const ids = values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
  const bad = ids.find((id) => !/^spiffe:\/\/[^/]+\/./.test(id));
  if (bad) throw new UserError(`${flag} ${JSON.stringify(bad)} is not a SPIFFE ID (spiffe://<trust domain>/<path>, e.g. spiffe://cluster.local/ns/warden/sa/admission)`);
  return ids;
}

function tlsFrom(f: ServeFlags): EngineServerTls | undefined {
  if ((f.tlsCert === undefined) !== (f.tlsKey === undefined)) throw new UserError('--tls-cert and --tls-key go together');
  if (f.clientCa && !f.tlsCert) throw new UserError('--client-ca needs --tls-cert/--tls-key (client certificates need TLS)');
  if (!f.tlsCert || !f.tlsKey) return undefined;
  return { cert: readPem('--tls-cert', f.tlsCert), key: readPem('--tls-key', f.tlsKey), ...(f.clientCa ? { clientCa: readPem('--client-ca', f.clientCa) } : {}) };
}

// Engine replicas that serve what CI published: the bundles folder follows the registry's index.
async function startMirror(f: ServeFlags) {
  const poll = Number(f.bundlesPoll);
  if (!(poll >= 1 && poll <= 86_400)) throw new UserError(`--bundles-poll ${JSON.stringify(f.bundlesPoll)} must be a number of seconds from 1 to 86400`);
  if (!f.verificationKey) throw new UserError('--bundles-from needs --verification-key <pem>: the bundles a registry holds are served only when signed with that key');
  const trust = trustFromPem(readPem('--verification-key', f.verificationKey));
  const { parseOciReference, RegistryClient, RegistryError } = await import('../../runtime/oci-registry.js');
  const { followRegistry } = await import('../publish.js');
  try {
    const ref = parseOciReference(f.bundlesFrom!);
    mkdirSync(f.bundles, { recursive: true });
    const mirror = followRegistry(ref, RegistryClient.for(ref, f.registryConfig), f.bundles, trust, poll * 1000, pino({ name: 'warden-engine' }));
    await mirror.first;
    return mirror;
  } catch (err) {
    throw err instanceof RegistryError ? new UserError(`--bundles-from: ${err.message}`) : err;
  }
}

/** Register `warden serve`. */
export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the engine: bundles for proxy plugins (GET /bundles/<workload>) and, over mTLS, decision-log ingestion (POST /logs) and audit queries (GET /audit/*)')
    .option('--bundles <dir>', 'folder written by warden build', 'bundles')
    .option('--bundles-from <oci://…>', 'serve what CI published: mirror the index `warden push` wrote at this reference (and every bundle it names) into --bundles, without building')
    .option('--registry-config <file>', 'docker-config JSON with the registry credentials (default $DOCKER_CONFIG/config.json, else ~/.docker/config.json)')
    .option('--bundles-poll <seconds>', 'how often --bundles-from is checked for a new index', '30')
    .option('--verification-key <pem>', 'public key the bundles from --bundles-from must be signed with (the registry is not trusted)')
    .option('--listen <addr>', 'address to listen on', '127.0.0.1:8181')
    .option('--max-wait <seconds>', 'longest long poll a client may ask for', '60')
    .option('--tls-cert <pem>', "the engine's serving certificate (enables HTTPS)")
    .option('--tls-key <pem>', 'private key of --tls-cert')
    .option('--client-ca <pem>', 'CA that issues workload SVIDs: client certificates are verified against it (needed for /logs and /audit)')
    .option('--cert-reload <seconds>', 'how often the certificate, key and client CA files are re-read, so rotated ones are used without a restart (0: never)', '10')
    .option('--store <url>', 'audit store: sqlite:<file> or postgres://user@host:port/db', DEFAULT_STORE)
    .option('--reader <spiffe-id>', 'principal that may query /audit/* (repeatable or comma-separated)', repeatable, [] as string[])
    .option('--admission-principal <spiffe-id>', "the admission webhook's identity; it logs events as workload \"admission\" (repeatable)", repeatable, [] as string[])
    .option('--checkpoint-key <file>', 'private JWK that signs audit checkpoints (created if missing, public part next to it)', DEFAULT_KEY)
    .option('--checkpoint-every <duration>', 'how often the chain head is signed', '1m')
    .option('--retention-max-age <duration>', 'delete audit events older than this (e.g. 30d)')
    .option('--retention-max-rows <n>', 'keep at most this many audit events')
    .option('--retention-every <duration>', 'how often retention runs', '5m')
    .option('--console-oidc-issuer <url>', 'also let people with a bearer token from this OIDC issuer open the console at /ui')
    .option('--console-oidc-jwks <url|file>', "the issuer's signing keys: its jwks_uri (https) or a JWKS file")
    .option('--console-oidc-audience <aud>', 'the audience console tokens must name')
    .option('--console-oidc-claim <name=value>', 'the claim that grants console access, e.g. groups=warden-auditors')
    .option('--revisions <dir>', 'a revision archive folder an earlier Warden kept: imported into the audit store at start (the archive now lives there)', DEFAULT_REVISIONS)
    .action(async (f: ServeFlags) => {
      const mirror = f.bundlesFrom ? await startMirror(f) : undefined;
      if (!existsSync(f.bundles)) throw new UserError(`--bundles ${f.bundles} does not exist; run \`warden build --out ${f.bundles}\` first (or give --bundles-from oci://…)`);
      const addr = parseListenAddress('--listen', f.listen);
      const maxWait = Number(f.maxWait);
      if (!Number.isInteger(maxWait) || maxWait < 0) throw new UserError(`--max-wait: "${f.maxWait}" must be a whole number of seconds`);
      const certReloadMs = reloadIntervalMs(f.certReload);
      const tls = tlsFrom(f);
      const readers = spiffeIds('--reader', f.reader);
      const admissionPrincipals = spiffeIds('--admission-principal', f.admissionPrincipal);
      const checkpointEveryMs = duration('--checkpoint-every', f.checkpointEvery);
      const retentionEveryMs = duration('--retention-every', f.retentionEvery);
      const maxAgeMs = f.retentionMaxAge !== undefined ? duration('--retention-max-age', f.retentionMaxAge) : undefined;
      const maxRows = f.retentionMaxRows !== undefined ? Number(f.retentionMaxRows) : undefined;
      if (maxRows !== undefined && (!Number.isInteger(maxRows) || maxRows < 1)) throw new UserError(`--retention-max-rows: "${f.retentionMaxRows}" must be a whole number ≥ 1`);
      const auditOn = auditUnavailableReason(tls) === undefined;
      const oidc = consoleOidc(f);

      let checkpoints;
      if (auditOn) {
        if (f.store.startsWith('sqlite:')) mkdirSync(dirname(f.store.slice('sqlite:'.length)), { recursive: true });
        try {
          const loaded = await loadCheckpointSigner(f.checkpointKey, { create: true });
          if (loaded.created) process.stderr.write(`warden serve: created checkpoint key ${f.checkpointKey} (public part: ${publicKeyPath(f.checkpointKey)}); keep the public part where verifiers can trust it\n`);
          checkpoints = { signer: loaded.signer, everyMs: checkpointEveryMs };
        } catch (err) {
          throw new UserError(`--checkpoint-key ${f.checkpointKey}: ${(err as Error).message}`);
        }
      }
      const retention = maxAgeMs !== undefined || maxRows !== undefined ? { policy: { ...(maxAgeMs !== undefined ? { maxAgeMs } : {}), ...(maxRows !== undefined ? { maxRows } : {}) }, everyMs: retentionEveryMs } : undefined;

      const logger = pino({ name: 'warden-engine' });
      let service;
      try {
        service = await startEngineService({
          bundlesDir: f.bundles,
          host: addr.host,
          port: addr.port,
          maxWaitSeconds: maxWait || 60,
          storeUrl: f.store,
          revisionsDir: f.revisions,
          ...(oidc ? { console: { oidc } } : {}),
          readers,
          admissionPrincipals,
          logger,
          ...(tls ? { tls } : {}),
          ...(checkpoints ? { checkpoints } : {}),
          ...(retention ? { retention } : {}),
        });
      } catch (err) {
        if (err instanceof StoreUrlError) throw new UserError(`--store: ${err.message}`);
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') throw new UserError(`cannot listen on ${f.listen}: ${(err as Error).message}`);
        throw new UserError(`cannot start the engine: ${(err as Error).message}`);
      }
      const audit = service.store ? `; audit log in ${f.store.replace(/\/\/[^@/]*@/, '//')} (POST /logs from ${Object.keys(service.writers()).length} identities, ${readers.length} readers)` : `; ${auditUnavailableReason(tls)}`;
      process.stdout.write(`warden serve: bundles from ${f.bundles}/ on ${service.url}${audit}\n`);
      // New connections get a rotated serving certificate and client CA; open ones keep theirs.
      const server = service.server;
      const rotation =
        tls && server instanceof HttpsServer
          ? reloadOnRotation('engine serving certificate', { cert: f.tlsCert, key: f.tlsKey, ca: f.clientCa }, { cert: tls.cert, key: tls.key, ...(tls.clientCa ? { ca: tls.clientCa } : {}) }, (p) => server.setSecureContext(p), logger, certReloadMs)
          : undefined;
      await new Promise<void>((resolve) => {
        const stop = () => {
          rotation?.close();
          void Promise.all([service.close(), mirror?.stop()]).then(() => resolve());
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });
}
