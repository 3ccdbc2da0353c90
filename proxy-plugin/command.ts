// `warden proxy` and `warden ext-authz`: run a plugin instance in one of its network forms.
// Lives in proxy-plugin/ so the engine's code never imports the plugin; only the CLI entry wires it in.
import type { Command } from 'commander';
import type { AddressInfo, Server as NetServer } from 'node:net';

/** A listener that can also close its idle keep-alive connections (http.Server and the sidecar). */
type Server = NetServer & { closeIdleConnections(): void; closeAllConnections(): void };
import { hostname } from 'node:os';
import { pino } from 'pino';
import { bufferedLogStream } from '../runtime/log-stream.js';
import { DECISION_LINES, type DecisionLines } from '../runtime/decision-log.js';
import { EngineConnectionError, type EngineTls } from '../runtime/engine-connection.js';
import { RegistryError } from '../runtime/oci-registry.js';
import { UserError } from '../formats/user-error.js';
import { parseListenAddress } from '../formats/listen-address.js';
import { readPem, reloadIntervalMs, reloadOnRotation, type PemWatch } from '../runtime/pem-files.js';
import { SIGNING_ALGORITHMS, type SigningAlgorithm } from '../runtime/signature.js';
import { createExtAuthzServer } from './ext-authz.js';
import { ASYMMETRIC_ALGORITHMS, loadJwks, type IdentityConfig } from './identity.js';
import { createAdminServer } from './metrics.js';
import { appHealth } from './app-health.js';
import { parseAppProbes, type AppProbe } from '../formats/app-probes.js';
import { startPlugin, type Plugin } from './plugin.js';
import { createSidecar } from './sidecar.js';
import { isHeaderName } from './http1.js';
import { headerKey, headerPolicy, WARDEN_PREFIX, type HeaderPolicy } from './upstream-head.js';
import { mcpCallHandler } from './mcp/call-adapter.js';
import { httpUpstream } from './mcp/upstream.js';
import { DEFAULT_DRAIN_SECONDS, parseInbound } from '../formats/interception.js';

interface PluginFlags {
  workload: string;
  namespace?: string;
  listen: string;
  engine?: string;
  engineCert?: string;
  engineKey?: string;
  engineCa?: string;
  bundle?: string;
  bundleUrl?: string;
  registryConfig?: string;
  bundlePoll?: string;
  verificationKey: string;
  verificationAlg?: string;
  keyId?: string;
  scope?: string;
  jwks?: string;
  issuer?: string;
  audience?: string;
  jwtAlgs: string;
  clockSkew: string;
  jwtCache: string;
  jwtCacheSeconds: string;
  trustHeader?: string;
  trustPeer: string[];
  admin?: string;
  spill?: string;
  /** Unset: `denied` with --engine (the shipped events are the record), `all` without. */
  decisionLines?: string;
  certReload: string;
  drainSeconds: string;
  // proxy only
  upstream?: string;
  appProbes?: string;
  inbound: string[];
  tlsCert?: string;
  tlsKey?: string;
  clientCa?: string;
  maxHeaderBytes: string;
  maxBodyBytes: string;
  headersTimeout: string;
  requestTimeout: string;
  jsonBody: string;
  removeHeader: string[];
  keepHeader: string[];
  // ext-authz only
  pathPrefix?: string;
}

// A whole number flag, refused with its name when it is not one.
function whole(flag: string, value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) throw new UserError(`${flag} ${JSON.stringify(value)} is not a whole number`);
  return n;
}

async function identityFrom(f: PluginFlags): Promise<IdentityConfig> {
  const cfg: IdentityConfig = {};
  if (f.jwks) {
    if (!f.issuer || !f.audience) throw new UserError('--jwks needs --issuer and --audience (tokens for other issuers or services must not be accepted)');
    const algorithms = f.jwtAlgs.split(',').map((a) => a.trim());
    const bad = algorithms.filter((a) => !ASYMMETRIC_ALGORITHMS.includes(a));
    if (bad.length) throw new UserError(`--jwt-algs ${bad.join(',')}: only asymmetric algorithms are accepted (${ASYMMETRIC_ALGORITHMS.join(', ')})`);
    const cacheSize = whole('--jwt-cache', f.jwtCache);
    cfg.jwt = {
      keys: await loadJwks(f.jwks),
      issuer: f.issuer,
      audience: f.audience,
      algorithms,
      clockToleranceSec: whole('--clock-skew', f.clockSkew),
      cache: cacheSize > 0 ? { maxEntries: cacheSize, maxAgeSec: whole('--jwt-cache-seconds', f.jwtCacheSeconds) } : false,
    };
  }
  if (f.trustHeader) {
    if (f.trustPeer.length === 0) throw new UserError('--trust-header needs --trust-peer <address> (the local mesh proxy it is accepted from)');
    cfg.trustedHeader = { name: f.trustHeader.toLowerCase(), peers: f.trustPeer };
  }
  return cfg;
}

// The workload's SVID and the engine's CA, for both bundle pulls and decision-log posts.
function engineTlsFrom(f: PluginFlags): EngineTls | undefined {
  const given = f.engineCert !== undefined || f.engineKey !== undefined || f.engineCa !== undefined;
  if (!given) return undefined;
  if (!f.engine) throw new UserError('--engine-cert/--engine-key/--engine-ca need --engine <https url>');
  if ((f.engineCert === undefined) !== (f.engineKey === undefined)) throw new UserError('--engine-cert and --engine-key go together (the workload certificate and its private key)');
  if (!f.engine.startsWith('https://')) throw new UserError(`--engine ${f.engine}: the engine credentials need an https:// URL`);
  return {
    ...(f.engineCa ? { ca: readPem('--engine-ca', f.engineCa) } : {}),
    ...(f.engineCert ? { cert: readPem('--engine-cert', f.engineCert) } : {}),
    ...(f.engineKey ? { key: readPem('--engine-key', f.engineKey) } : {}),
  };
}

// The caller-sent fields removed before forwarding: the defaults, --remove-header, minus --keep-header.
function headerPolicyFrom(f: PluginFlags): HeaderPolicy {
  for (const n of [...f.removeHeader, ...f.keepHeader]) if (!isHeaderName(n)) throw new UserError(`--remove-header/--keep-header ${JSON.stringify(n)} is not a header field name`);
  const warden = f.keepHeader.find((n) => headerKey(n).startsWith(WARDEN_PREFIX));
  if (warden) throw new UserError(`--keep-header ${warden}: x-warden-* fields are Warden's own; a caller's copy is always removed`);
  return headerPolicy({ remove: f.removeHeader, keep: f.keepHeader });
}

// One decision line per call goes to stdout, buffered (runtime/log-stream.ts); flushed at exit.
const stdout = bufferedLogStream(1);
const processLogger = pino({ name: 'warden-proxy' }, stdout.stream);

async function startFromFlags(f: PluginFlags): Promise<{ plugin: Plugin; rotations: PemWatch[]; reloadMs: number }> {
  if (!f.engine && !f.bundle && !f.bundleUrl) throw new UserError('give --engine <url> or --bundle-url oci://… (pull bundles), or --bundle <file> (a local bundle)');
  const pollSeconds = Number(f.bundlePoll);
  if (!(pollSeconds >= 1 && pollSeconds <= 3600)) throw new UserError(`--bundle-poll ${JSON.stringify(f.bundlePoll)} must be a number of seconds from 1 to 3600`);
  const engineTls = engineTlsFrom(f);
  const reloadMs = reloadIntervalMs(f.certReload);
  if (f.verificationAlg && !SIGNING_ALGORITHMS.includes(f.verificationAlg as SigningAlgorithm)) throw new UserError(`--verification-alg ${f.verificationAlg} is not one of ${SIGNING_ALGORITHMS.join(', ')}`);
  // With an engine the events are shipped and the line for an allowed call only repeats one (OPA's own
  // default: decision logs to the service, console off); without one the lines are the only record.
  const decisionLines = (f.decisionLines ?? (f.engine ? 'denied' : 'all')) as DecisionLines;
  if (!DECISION_LINES.includes(decisionLines)) throw new UserError(`--decision-lines ${JSON.stringify(f.decisionLines)} is not one of ${DECISION_LINES.join(', ')}`);
  if (decisionLines !== 'all' && !f.engine) throw new UserError(`--decision-lines ${decisionLines} needs --engine: without one the local lines are the only record of decisions`);
  const logger = processLogger.child({ workload: f.workload });
  const starting = startPlugin({
    workload: f.workload,
    ...(f.namespace ? { namespace: f.namespace } : {}),
    ...(f.engine ? { engine: f.engine } : {}),
    ...(engineTls ? { engineTls } : {}),
    ...(f.bundle ? { bundleFile: f.bundle } : {}),
    ...(f.bundleUrl ? { bundleUrl: f.bundleUrl, pollIntervalMs: pollSeconds * 1000 } : {}),
    ...(f.registryConfig ? { registryConfig: f.registryConfig } : {}),
    verificationKey: readPem('--verification-key', f.verificationKey),
    ...(f.verificationAlg ? { verificationAlgorithm: f.verificationAlg as SigningAlgorithm } : {}),
    ...(f.keyId ? { keyId: f.keyId } : {}),
    ...(f.scope ? { scope: f.scope } : {}),
    identity: await identityFrom(f),
    logger,
    instance: hostname(),
    ...(f.spill ? { spillFile: f.spill } : {}),
    decisionLines,
  });
  const plugin = await starting.catch((err: unknown) => {
    if (err instanceof RegistryError) throw new UserError(`--bundle-url: ${err.message}`);
    throw err instanceof EngineConnectionError ? new UserError(`--engine: ${err.message}`) : err;
  });
  // A rotated SVID (SPIRE, csi-driver-spiffe, a Secret volume) is presented to the engine without a restart.
  const engine = plugin.engine;
  const rotation = engine && engineTls ? reloadOnRotation('engine client certificate', { cert: f.engineCert, key: f.engineKey, ca: f.engineCa }, engineTls, (p) => engine.setTls(p), logger, reloadMs) : undefined;
  return { plugin, rotations: rotation ? [rotation] : [], reloadMs };
}

async function listen(server: Server, flag: string, value: string): Promise<void> {
  const a = parseListenAddress(flag, value);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new UserError(`cannot listen on ${value} (${flag}): ${err.message}`)));
    server.listen(a.port, a.host, resolve);
  });
}

// The address actually bound (a :0 flag picks a free port), as host:port.
const bound = (s: Server) => {
  const a = s.address() as AddressInfo;
  return `${a.address}:${a.port}`;
};

// Listen on each address (--listen, or one per --inbound) and the admin port on --admin, say where
// on stderr, run until SIGTERM/SIGINT.
async function serveUntilSignal(plugin: Plugin, listeners: Array<{ server: Server; flag: string; at: string }>, f: PluginFlags, rotations: PemWatch[], banner: (at: string) => string, probes?: ReadonlyMap<string, AppProbe>): Promise<void> {
  const drainMs = whole('--drain-seconds', f.drainSeconds) * 1000;
  const servers: Server[] = [];
  for (const l of listeners) {
    await listen(l.server, l.flag, l.at);
    servers.push(l.server);
  }
  const at = servers.map(bound).join(', ') || 'no inbound listener';
  if (f.admin) {
    const admin = createAdminServer(plugin.metrics, plugin.ready, probes && appHealth(probes));
    await listen(admin, '--admin', f.admin);
    servers.push(admin);
  }
  process.stderr.write(`${banner(`${at}${f.admin ? ` (admin ${bound(servers[servers.length - 1]!)})` : ''}`)}\n`);
  await runUntilSignal(plugin, servers, rotations, drainMs);
}

// On SIGTERM or SIGINT: stop accepting, let calls in flight end (keep-alive connections close after
// their answer), and after --drain-seconds cut what is still open (event streams, upgrades), so the pod
// ends within its grace period rather than at SIGKILL; a second signal cuts at once. Then the decision
// log is shipped, with the events of the calls that ended while draining.
async function runUntilSignal(plugin: Plugin, servers: Server[], rotations: PemWatch[], drainMs: number): Promise<void> {
  await new Promise<void>((resolve) => {
    const cut = () => {
      for (const s of servers) s.closeAllConnections();
    };
    let stopping = false;
    const stop = () => {
      if (stopping) return cut();
      stopping = true;
      for (const r of rotations) r.close(); // nothing is re-applied to what is being closed
      const closed = servers.map((s) => new Promise<void>((r) => s.close(() => r())));
      for (const s of servers) s.closeIdleConnections();
      const timer = setTimeout(cut, drainMs);
      void Promise.all(closed)
        .then(() => clearTimeout(timer))
        .then(() => plugin.close())
        .then(() => stdout.close())
        .then(resolve);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

function commonOptions(cmd: Command): Command {
  return cmd
    .requiredOption('--workload <name>', 'the workload this pod runs (its bundle is pulled by this name)')
    .option('--namespace <ns>', 'namespace, until the bundle names it')
    .option('--engine <url>', 'engine base URL (bundles from GET /bundles/<workload>, decision events to POST /logs)')
    .option('--engine-cert <pem>', "this workload's certificate (SVID) presented to the engine; required for the engine to accept decision events")
    .option('--engine-key <pem>', 'private key of --engine-cert')
    .option('--engine-ca <pem>', "CA bundle that signed the engine's serving certificate")
    .option('--bundle <file>', 'a local bundle file to start from (or to run on alone)')
    .option('--bundle-url <oci://…>', 'pull bundles from an OCI registry instead of the engine (oci://host/repo:tag; oci+http:// for plain HTTP); the tag is polled')
    .option('--registry-config <file>', 'docker-config JSON with the registry credentials (default $DOCKER_CONFIG/config.json, else ~/.docker/config.json)')
    .option('--bundle-poll <seconds>', 'how often --bundle-url is polled for a new digest', '30')
    .requiredOption('--verification-key <pem>', 'public key bundles must be signed with (bundles/verification-key.pem)')
    .option('--verification-alg <alg>', 'signature algorithm (default from the key)')
    .option('--key-id <id>', 'key id to verify with regardless of the bundle signature kid')
    .option('--scope <scope>', 'signature scope bundles must carry')
    .option('--jwks <file|url>', 'JWKS for bearer tokens (URL: cached, refetched on unknown kid)')
    .option('--issuer <iss>', 'required JWT issuer')
    .option('--audience <aud>', 'required JWT audience')
    .option('--jwt-algs <list>', 'accepted JWT algorithms (asymmetric only)', 'RS256,ES256,PS256,EdDSA')
    .option('--clock-skew <seconds>', 'tolerated clock skew for exp/nbf (max 300)', '30')
    .option('--jwt-cache <tokens>', 'verified bearer tokens remembered, so a token pays for its signature check once (0: check every call)', '1000')
    .option('--jwt-cache-seconds <s>', 'longest one check is reused (never past the token exp)', '60')
    .option('--trust-header <name>', 'mesh identity header to trust (e.g. x-forwarded-client-cert, l5d-client-id)')
    .option('--trust-peer <addr>', 'peer address the trusted header is accepted from (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--admin <addr>', 'admin listener for /metrics, /healthz, /readyz')
    .option('--spill <file>', 'NDJSON file decision events spill to while the engine is away', 'warden-decisions.spill.ndjson')
    .option('--drain-seconds <s>', 'on SIGTERM, how long calls in flight may go on before what is still open (event streams, upgrades) is cut; keep it below the pod\'s terminationGracePeriodSeconds', String(DEFAULT_DRAIN_SECONDS))
    .option('--cert-reload <seconds>', 'how often certificate and key files are re-read, so a rotated SVID is used without a restart (0: never)', '10')
    .option('--decision-lines <which>', `decisions that also get a local log line: ${DECISION_LINES.join(', ')} (denied: all but allowed calls; fewer than all needs --engine). Default: denied with --engine (the shipped events are the record), all without`);
}

/** Register `warden proxy` and `warden ext-authz`. */
export function registerProxy(program: Command): void {
  commonOptions(
    program
      .command('proxy')
      .description('run the sidecar reverse proxy: every inbound call is decided by the workload bundle')
      .option('--upstream <url>', 'the workload (e.g. http://127.0.0.1:8080)')
      .option('--inbound <listen=upstream>', 'a listener of its own for one app port, e.g. 0.0.0.0:15101=http://127.0.0.1:8080 (repeatable; the injector writes one per port the interception redirects, since Node cannot read SO_ORIGINAL_DST)', (v: string, acc: string[]) => [...acc, v], [] as string[])
      .option('--listen <addr>', 'address to listen on', '0.0.0.0:15001')
      .option('--tls-cert <pem>', 'serve TLS with this certificate')
      .option('--tls-key <pem>', 'private key of --tls-cert')
      .option('--client-ca <pem>', 'trust bundle for client certificates (mTLS identity)')
      .option('--max-header-bytes <n>', 'largest request head (431 beyond)', '16384')
      .option('--max-body-bytes <n>', 'largest request body (413 beyond)', String(10 * 1024 * 1024))
      .option('--headers-timeout <ms>', 'time allowed to send the request head (408 beyond)', '10000')
      .option('--request-timeout <ms>', 'time allowed to send the whole request', '60000')
      .option('--json-body <bytes>', 'put JSON request bodies up to this size into input.request.body (0 = off)', '65536')
      .option('--remove-header <name>', 'also remove this caller-sent field before forwarding (repeatable; see docs/proxy-security.md)', (v: string, acc: string[]) => [...acc, v], [] as string[])
      .option('--app-probes <json>', "the app's kubelet probes the admin port answers at /app-health/<container>/<kind> (JSON; the injector writes it, see docs/injection.md)")
      .option('--keep-header <name>', 'forward this field although the default list removes it (repeatable; never x-warden-*)', (v: string, acc: string[]) => [...acc, v], [] as string[]),
  ).action(async (f: PluginFlags) => {
    // Each listener and the app it forwards to: --listen → --upstream, and one per --inbound.
    const routes: Array<{ flag: string; at: string; upstream: URL }> = [];
    if (f.upstream !== undefined) {
      try {
        routes.push({ flag: '--listen', at: f.listen, upstream: new URL(f.upstream) });
      } catch {
        throw new UserError(`--upstream ${JSON.stringify(f.upstream)} is not a URL; use e.g. http://127.0.0.1:8080`);
      }
    }
    for (const value of f.inbound) {
      const r = parseInbound(value);
      if (typeof r === 'string') throw new UserError(r);
      routes.push({ flag: '--inbound', at: r.listen, upstream: r.upstream });
    }
    // A pod that declares no port gets a sidecar with its admin listener only: every inbound connection is refused.
    if (routes.length === 0 && !f.admin) throw new UserError('give --upstream <url> (or one --inbound <listen>=<url> per app port)');
    const probes = f.appProbes === undefined ? undefined : parseAppProbes(f.appProbes);
    if (typeof probes === 'string') throw new UserError(probes);
    if (probes && !f.admin) throw new UserError('--app-probes needs --admin: the kubelet reaches the app probes on the admin port');
    if ((f.tlsCert === undefined) !== (f.tlsKey === undefined)) throw new UserError('--tls-cert and --tls-key go together');
    if (f.clientCa && !f.tlsCert) throw new UserError('--client-ca needs --tls-cert/--tls-key (client certificates need TLS)');
    const jsonBodyBytes = whole('--json-body', f.jsonBody);
    const headers = headerPolicyFrom(f);
    const limits = {
      maxHeaderBytes: whole('--max-header-bytes', f.maxHeaderBytes),
      maxBodyBytes: whole('--max-body-bytes', f.maxBodyBytes),
      headersTimeoutMs: whole('--headers-timeout', f.headersTimeout),
      requestTimeoutMs: whole('--request-timeout', f.requestTimeout),
    };
    const tls = f.tlsCert && f.tlsKey ? { cert: readPem('--tls-cert', f.tlsCert), key: readPem('--tls-key', f.tlsKey), ...(f.clientCa ? { ca: readPem('--client-ca', f.clientCa) } : {}) } : undefined;
    const { plugin, rotations, reloadMs } = await startFromFlags(f);
    const sidecars = routes.map(({ flag, at, upstream }) => {
      // MCP-aware enforcement claims the workload's MCP transport paths (from its bundle); the rest is plain HTTP.
      // (The MCP relay speaks plain HTTP to the upstream inside the pod; an https upstream gets HTTP-level enforcement only.)
      const handlers = upstream.protocol === 'http:' ? [mcpCallHandler({ upstream: httpUpstream(upstream.href), recordDrift: (e) => plugin.log.record(e), warn: (msg, fields) => processLogger.warn({ ...fields, upstream: upstream.href }, msg), listMemory: (hit) => plugin.metrics.listMemory(hit) })] : [];
      if (handlers.length === 0) process.stderr.write(`warden proxy: upstream ${upstream.href} is not http://; MCP-aware enforcement is off (MCP endpoints are decided as plain HTTP)\n`);
      const server = createSidecar({
        upstream,
        gate: plugin.gate,
        handlers,
        logger: processLogger,
        jsonBodyBytes,
        headers,
        limits,
        held: (seconds) => plugin.metrics.held(seconds),
        ...(tls ? { tls } : {}),
      });
      return { server, flag, at };
    });
    // The serving certificate and the client CA are re-read too: new connections get the rotated ones.
    const serving = tls && reloadOnRotation('serving certificate', { cert: f.tlsCert, key: f.tlsKey, ca: f.clientCa }, tls, (p) => { for (const s of sidecars) s.server.setTls({ cert: p.cert!, key: p.key!, ...(p.ca ? { ca: p.ca } : {}) }); }, processLogger, reloadMs);
    if (serving) rotations.push(serving);
    const targets = routes.map((r) => r.upstream.href).join(', ');
    await serveUntilSignal(plugin, sidecars, f, rotations, (at) => `warden proxy: ${f.workload} on ${at} → ${targets || 'nothing'} (bundle ${plugin.source.current?.revision ?? 'none yet: deny-all'})`, probes);
  });

  commonOptions(
    program
      .command('ext-authz')
      .description('run an Envoy ext_authz HTTP authorization service for the workload')
      .option('--listen <addr>', 'address to listen on', '127.0.0.1:15002')
      .option('--path-prefix <prefix>', "Envoy's http_service path_prefix", '')
      .option('--json-body <bytes>', 'put JSON request bodies Envoy sends (with_request_body) up to this size into input.request.body (0 = off)', '65536'),
  ).action(async (f: PluginFlags) => {
    const jsonBodyBytes = whole('--json-body', f.jsonBody);
    const { plugin, rotations } = await startFromFlags(f);
    const server = createExtAuthzServer({ gate: plugin.gate, jsonBodyBytes, ...(f.pathPrefix ? { pathPrefix: f.pathPrefix } : {}) });
    await serveUntilSignal(plugin, [{ server, flag: '--listen', at: f.listen }], f, rotations, (at) => `warden ext-authz: ${f.workload} on ${at}`);
  });
}
