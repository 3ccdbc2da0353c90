// Coverage: is a pod inside the zero-trust regime? It must run the real Warden sidecar behind the
// interception init (checked container by container, never by a name or an annotation), and its
// service account must be a workload of the policy repository with a signed bundle at the current
// revision. The bundle directory answers the second question from the engine (GET /bundles and the
// bundles themselves, signatures verified) or from a local bundles folder, cached for a short TTL.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openBundle } from '../runtime/bundle.js';
import type { EngineConnection } from '../runtime/engine-connection.js';
import type { TrustPolicy } from '../runtime/signature.js';
import { parseInbound, parseInterceptionArgs } from '../formats/interception.js';
import { listenAddress } from '../formats/listen-address.js';
import type { InjectionConfig } from './config.js';
import { parseAppProbes } from '../formats/app-probes.js';
import { checkProbes } from './app-probes.js';
import { alreadyInjected, annotatedForInjection, appPortsOf, initImages, INIT_CONTAINER, INJECT_KEY, PROXY_CONTAINER, proxyImages, type Container } from './injection.js';
import type { PodTemplate } from './pod-template.js';

/** Where bundles come from: the engine's bundle server, or a folder written by `warden build`. */
export interface BundleSource {
  /** Bundle name → current revision. Throws when the source cannot be reached. */
  index(): Promise<Record<string, { revision: string }>>;
  fetch(name: string): Promise<Uint8Array>;
  describe: string;
}

/**
 * The engine's bundle server (`warden serve`): GET /bundles, GET /bundles/<name>, over the webhook's
 * connection to the engine (its client certificate, the engine's CA).
 */
export function engineSource(conn: EngineConnection, opts: { timeoutMs?: number } = {}): BundleSource {
  const get = async (path: string): Promise<Buffer> => {
    const r = await conn.request(path, { signal: AbortSignal.timeout(opts.timeoutMs ?? 2_000) });
    if (r.status !== 200) throw new Error(`GET ${path} answered ${r.status}`);
    return r.body;
  };
  return {
    describe: `engine ${conn.base.href}`,
    index: async () => (JSON.parse((await get('bundles')).toString('utf8')) as { bundles?: Record<string, { revision: string }> }).bundles ?? {},
    fetch: async (name) => new Uint8Array(await get(`bundles/${encodeURIComponent(name)}`)),
  };
}

/** A bundles folder (index.json + <name>.tar.gz), as `warden build` writes it. */
export function folderSource(dir: string): BundleSource {
  return {
    describe: `folder ${dir}`,
    index: async () => ((JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { bundles?: Record<string, { revision: string }> }).bundles ?? {}),
    fetch: async (name) => readFile(join(dir, `${name}.tar.gz`)),
  };
}

/** Answer to "which workload is service account X in namespace Y?". */
export type WorkloadLookup =
  | { status: 'covered'; workload: string; revision: string }
  | { status: 'unknown' }
  | { status: 'unreachable'; error: string };

/** The question the webhook asks; implementations cache. */
export interface WorkloadDirectory {
  lookup(namespace: string, serviceAccount: string): Promise<WorkloadLookup>;
}

interface Known {
  workload: string;
  revision: string;
  principal: string;
}

/**
 * Directory over a BundleSource: the index is re-read after `ttlMs`; a bundle is downloaded and its
 * signature verified only when its revision changed. A bundle that fails verification covers nobody.
 */
export class BundleDirectory implements WorkloadDirectory {
  private known = new Map<string, Known>();
  private fetchedAt = -Infinity;
  private refreshing: Promise<void> | undefined;
  private lastError: string | undefined;

  constructor(
    private readonly source: BundleSource,
    private readonly trust: TrustPolicy,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  private async refresh(): Promise<void> {
    try {
      const index = await this.source.index();
      const next = new Map<string, Known>();
      for (const [name, { revision }] of Object.entries(index)) {
        if (name === 'admission') continue;
        const prev = this.known.get(name);
        if (prev && prev.revision === revision) {
          next.set(name, prev);
          continue;
        }
        try {
          const bundle = await openBundle(await this.source.fetch(name), this.trust);
          const principal = bundle.manifest.metadata?.principal;
          if (bundle.revision === revision && typeof principal === 'string') next.set(name, { workload: name, revision, principal });
        } catch {
          // Unsigned, tampered or unreadable: it covers no one (and the proxy would refuse it too).
        }
      }
      this.known = next;
      this.fetchedAt = this.now();
      this.lastError = undefined;
    } catch (err) {
      this.lastError = `${this.source.describe} could not be read: ${(err as Error).message}`;
    }
  }

  async lookup(namespace: string, serviceAccount: string): Promise<WorkloadLookup> {
    if (this.now() - this.fetchedAt >= this.ttlMs) {
      this.refreshing ??= this.refresh().finally(() => (this.refreshing = undefined));
      await this.refreshing;
    }
    if (this.now() - this.fetchedAt >= this.ttlMs && this.lastError) return { status: 'unreachable', error: this.lastError };
    const suffix = `/ns/${namespace}/sa/${serviceAccount}`;
    for (const k of this.known.values()) if (k.principal.endsWith(suffix)) return { status: 'covered', workload: k.workload, revision: k.revision };
    return { status: 'unknown' };
  }
}

/** One coverage finding, for the denial message. */
export interface CoverageFinding {
  rule: 'proxy-plugin' | 'proxy-image' | 'proxy-args' | 'app-probes' | 'interception' | 'interception-integrity' | 'host-network' | 'injection' | 'workload-bundle' | 'engine-unreachable';
  msg: string;
  field?: string;
  container?: string;
}

/** The service account the pod runs as (Kubernetes' default is `default`). */
export function serviceAccountOf(pod: PodTemplate): string {
  return pod.spec.serviceAccountName || pod.spec.serviceAccount || 'default';
}

/** Where the pod's metadata sits in the object (a bare Pod: `metadata`; a Deployment: `spec.template.metadata`). */
export function metadataPath(pod: PodTemplate): string {
  return pod.path === 'spec' ? 'metadata' : pod.path.replace(/\.spec$/, '.metadata');
}

/** How to get injected, for every message that finds the sidecar missing or wrong. */
const howToInject = (namespace: string) =>
  `label the namespace (kubectl label namespace ${namespace} ${INJECT_KEY}=enabled) and create the pod again so that Warden's injector adds the sidecar, or see docs/injection.md for the sidecar contract`;

// Flags of `warden proxy` that take no value: none today. Every other flag takes one.
const proxyBooleanFlags = new Set<string>();

/**
 * Read `warden proxy` arguments as commander would: `--flag value` and `--flag=value`. A flag given
 * twice (commander keeps the last) is refused for every flag but --inbound, so that what coverage
 * reads is what the proxy runs with.
 */
export function parseProxyArgs(args: readonly unknown[]): Map<string, string[]> | string {
  if (args[0] !== 'proxy') return `the first argument is ${JSON.stringify(args[0])}, not "proxy"`;
  const flags = new Map<string, string[]>();
  for (let i = 1; i < args.length; i++) {
    const a = args[i];
    if (typeof a !== 'string' || !a.startsWith('--') || a === '--') return `argument ${JSON.stringify(a)} is not a --flag`;
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(0, eq) : a;
    let value: string;
    if (eq > 0) value = a.slice(eq + 1);
    else if (proxyBooleanFlags.has(name)) value = '';
    else {
      const next = args[++i];
      if (typeof next !== 'string') return `${name} has no value`;
      value = next;
    }
    if (flags.has(name) && name !== '--inbound' && name !== '--trust-peer') return `${name} is given twice`;
    flags.set(name, [...(flags.get(name) ?? []), value]);
  }
  return flags;
}

// Capabilities that could undo interception (iptables) or take the node; only warden-init may add the first two.
const INTERCEPTION_CAPABILITIES = new Set(['NET_ADMIN', 'NET_RAW', 'SYS_ADMIN', 'ALL', 'CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_SYS_ADMIN', 'CAP_ALL']);

// What a container could run instead of the image's `warden` entrypoint, or load into it.
function tampering(c: Container): string | undefined {
  if (c.command !== undefined) return 'sets command (the image entrypoint must run)';
  if (c.workingDir !== undefined) return 'sets workingDir';
  if (c.envFrom !== undefined) return 'sets envFrom';
  const env = (Array.isArray(c.env) ? c.env : []) as Array<{ name?: string }>;
  const bad = env.find((e) => typeof e.name === 'string' && /^(NODE_|UV_|LD_)/.test(e.name));
  if (bad) return `sets ${bad.name}, which changes what node runs`;
  const mounts = (Array.isArray(c.volumeMounts) ? c.volumeMounts : []) as Array<{ mountPath?: string }>;
  const over = mounts.find((m) => typeof m.mountPath === 'string' && /^\/(app|usr|bin|sbin|lib|lib64|etc\/ssl|opt)(\/|$)|^\/$/.test(m.mountPath));
  if (over) return `mounts a volume over ${over.mountPath}, where the image's code lives`;
  return undefined;
}

interface Located {
  c: Container;
  list: 'containers' | 'initContainers';
  index: number;
}

function locate(spec: PodTemplate['spec'], name: string): Located[] {
  const out: Located[] = [];
  for (const list of ['initContainers', 'containers'] as const) {
    const cs = (spec[list] as Container[] | undefined) ?? [];
    cs.forEach((c, index) => c?.name === name && out.push({ c, list, index }));
  }
  return out;
}

/**
 * Is the real sidecar there? Every condition of docs/injection.md "What coverage checks": the proxy
 * as a running container with an allowed image by digest, for `workload`, wired to the engine and
 * the verification key, one listener per app port; the interception init first, with an allowed
 * image, redirecting every app port to those listeners; nothing else able to undo it; no hostNetwork.
 */
export function checkSidecar(pod: PodTemplate, namespace: string, workload: string | undefined, cfg: InjectionConfig): CoverageFinding[] {
  const findings: CoverageFinding[] = [];
  const at = (l: Located, rest: string) => `${pod.path}.${l.list}[${l.index}]${rest ? `.${rest}` : ''}`;
  if (pod.spec.hostNetwork === true) {
    findings.push({ rule: 'host-network', field: `${pod.path}.hostNetwork`, msg: "the pod uses hostNetwork: it would skip the pod's network namespace, where Warden intercepts inbound connections; remove hostNetwork" });
  }
  const proxies = locate(pod.spec, PROXY_CONTAINER);
  const running = proxies.filter((l) => l.list === 'containers' || l.c.restartPolicy === 'Always');
  if (proxies.length > 1) findings.push({ rule: 'proxy-plugin', field: at(proxies[1]!, ''), msg: `the pod has ${proxies.length} containers named ${PROXY_CONTAINER}; it must have exactly one` });
  const proxy = running[0];
  if (!proxy) {
    const oneShot = proxies[0];
    findings.push({
      rule: 'proxy-plugin',
      field: oneShot ? at(oneShot, 'restartPolicy') : `${metadataPath(pod)}.annotations`,
      msg: oneShot
        ? `${PROXY_CONTAINER} is a one-shot init container: it would exit before the app starts and decide nothing; it must run as a native sidecar (restartPolicy: Always) or a regular container; ${howToInject(namespace)}`
        : `the pod does not run the Warden proxy: ${howToInject(namespace)}`,
    });
  } else {
    const images = proxyImages(cfg);
    if (!images.has(String(proxy.c.image))) {
      findings.push({
        rule: 'proxy-image', container: PROXY_CONTAINER, field: at(proxy, 'image'),
        msg: images.size === 0
          ? 'the webhook configuration names no proxy image (injection.proxyImage), so no proxy can be trusted; the platform team must set it'
          : `${PROXY_CONTAINER} runs ${JSON.stringify(proxy.c.image)}, which is not an allowed proxy image (by digest: ${[...images].join(', ')}); ${howToInject(namespace)}`,
      });
    }
    const tamper = tampering(proxy.c);
    if (tamper) findings.push({ rule: 'proxy-args', container: PROXY_CONTAINER, field: at(proxy, ''), msg: `${PROXY_CONTAINER} ${tamper}; ${howToInject(namespace)}` });
    findings.push(...checkProxyArgs(pod, namespace, proxy, workload, cfg, at));
  }
  findings.push(...checkInterception(pod, namespace, proxy, cfg, at));
  return findings;
}

function checkProxyArgs(pod: PodTemplate, namespace: string, proxy: Located, workload: string | undefined, cfg: InjectionConfig, at: (l: Located, rest: string) => string): CoverageFinding[] {
  const bad = (msg: string): CoverageFinding[] => [{ rule: 'proxy-args', container: PROXY_CONTAINER, field: at(proxy, 'args'), msg: `${msg}; ${howToInject(namespace)}` }];
  const flags = parseProxyArgs(Array.isArray(proxy.c.args) ? proxy.c.args : []);
  if (typeof flags === 'string') return bad(`${PROXY_CONTAINER}'s arguments are not a \`warden proxy\` command line: ${flags}`);
  const one = (f: string) => flags.get(f)?.[0];
  if (workload !== undefined && one('--workload') !== workload) {
    return bad(`${PROXY_CONTAINER} runs --workload ${JSON.stringify(one('--workload') ?? null)}, but service account ${serviceAccountOf(pod)} is the workload ${JSON.stringify(workload)}`);
  }
  if (one('--engine') !== cfg.engineUrl) return bad(`${PROXY_CONTAINER} must pull its bundle from the engine (--engine ${cfg.engineUrl}), not ${JSON.stringify(one('--engine') ?? null)}`);
  if (flags.has('--bundle') || flags.has('--upstream')) return bad(`${PROXY_CONTAINER} must not be given ${flags.has('--bundle') ? '--bundle' : '--upstream'}: its bundle comes from the engine and its listeners from --inbound`);
  const key = one('--verification-key');
  const mounts = (Array.isArray(proxy.c.volumeMounts) ? proxy.c.volumeMounts : []) as Array<{ name?: string; mountPath?: string }>;
  const volumes = (Array.isArray(pod.spec.volumes) ? pod.spec.volumes : []) as Array<{ name?: string; configMap?: { name?: string } }>;
  const keyMount = key && mounts.find((m) => typeof m.mountPath === 'string' && key.startsWith(`${m.mountPath.replace(/\/$/, '')}/`));
  const keyVolume = keyMount && volumes.find((v) => v.name === keyMount.name);
  if (!keyVolume || keyVolume.configMap?.name !== cfg.verificationKeyConfigMap) {
    return bad(`${PROXY_CONTAINER}'s --verification-key must be read from the ConfigMap ${cfg.verificationKeyConfigMap} mounted into it`);
  }
  // One listener per app port, each forwarding to that port on loopback.
  const listeners = new Map<number, number>();
  for (const v of flags.get('--inbound') ?? []) {
    const r = parseInbound(v);
    if (typeof r === 'string') return bad(r);
    const port = Number(r.upstream.port);
    if (r.upstream.protocol !== 'http:' || r.upstream.hostname !== '127.0.0.1' || !port) return bad(`--inbound ${v} must forward to http://127.0.0.1:<app port>`);
    listeners.set(r.port, port);
  }
  for (const p of appPortsOf(pod.spec)) {
    if (![...listeners.values()].includes(p)) return bad(`${PROXY_CONTAINER} has no --inbound listener for app port ${p}`);
  }
  // The probes the sidecar makes for the kubelet: exactly the pod's rewritten ones, on app ports.
  const probes = flags.has('--app-probes') ? parseAppProbes(one('--app-probes')!) : new Map();
  if (typeof probes === 'string') return bad(probes);
  const adminPort = listenAddress(one('--admin') ?? '')?.port ?? Number.NaN;
  return checkProbes(pod, probes, appPortsOf(pod.spec), adminPort, PROXY_CONTAINER).map((f) => ({ rule: 'app-probes' as const, container: PROXY_CONTAINER, field: f.field ?? at(proxy, 'args'), msg: `${f.msg}; ${howToInject(namespace)}` }));
}

function checkInterception(pod: PodTemplate, namespace: string, proxy: Located | undefined, cfg: InjectionConfig, at: (l: Located, rest: string) => string): CoverageFinding[] {
  const findings: CoverageFinding[] = [];
  const inits = locate(pod.spec, INIT_CONTAINER);
  const init = inits[0];
  const integrity = (l: Located, what: string) => findings.push({ rule: 'interception-integrity', container: String(l.c.name), field: at(l, 'securityContext'), msg: `container "${String(l.c.name)}" ${what}: it could undo the interception that makes the sidecar the pod's only door; only ${INIT_CONTAINER} may add NET_ADMIN/NET_RAW` });
  // Anyone but warden-init with the power to rewrite the pod's iptables.
  for (const list of ['initContainers', 'containers', 'ephemeralContainers'] as const) {
    ((pod.spec[list] as Container[] | undefined) ?? []).forEach((c, index) => {
      // The interception init itself may add NET_ADMIN and NET_RAW, nothing more.
      const isInit = list === 'initContainers' && index === 0 && init?.list === 'initContainers' && init.index === 0;
      const sc = (c.securityContext ?? {}) as { privileged?: boolean; capabilities?: { add?: unknown } };
      const added = Array.isArray(sc.capabilities?.add) ? (sc.capabilities.add as unknown[]).map((x) => String(x).toUpperCase()) : [];
      const risky = added.filter((x) => INTERCEPTION_CAPABILITIES.has(x) && !(isInit && (x === 'NET_ADMIN' || x === 'NET_RAW')));
      const l = { c, list: list as Located['list'], index };
      if (sc.privileged === true) integrity(l, 'runs privileged');
      else if (risky.length > 0) integrity(l, `adds ${risky.join(', ')}`);
    });
  }
  const bad = (field: string, msg: string) => findings.push({ rule: 'interception', container: INIT_CONTAINER, field, msg: `${msg}; ${howToInject(namespace)}` });
  if (!init) {
    bad(`${pod.path}.initContainers`, `the pod has no ${INIT_CONTAINER} init container: nothing sends inbound connections through the sidecar`);
    return findings;
  }
  if (init.list !== 'initContainers' || init.index !== 0 || init.c.restartPolicy === 'Always' || inits.length > 1) {
    bad(at(init, ''), `${INIT_CONTAINER} must be the first init container, once, and run to completion before anything else starts`);
    return findings;
  }
  const images = initImages(cfg);
  if (!images.has(String(init.c.image))) bad(at(init, 'image'), `${INIT_CONTAINER} runs ${JSON.stringify(init.c.image)}, which is not an allowed interception image (by digest: ${[...images].join(', ') || 'none configured'})`);
  const tamper = tampering(init.c);
  if (tamper) bad(at(init, ''), `${INIT_CONTAINER} ${tamper}`);
  const args = Array.isArray(init.c.args) ? init.c.args : [];
  const plan = args[0] === 'init-net' && args.every((a) => typeof a === 'string') ? parseInterceptionArgs(args.slice(1) as string[]) : `the arguments are not \`warden init-net …\``;
  if (typeof plan === 'string') {
    bad(at(init, 'args'), `${INIT_CONTAINER}: ${plan}`);
    return findings;
  }
  const listeners = new Map<number, number>();
  const proxyFlags = proxy ? parseProxyArgs(Array.isArray(proxy.c.args) ? proxy.c.args : []) : undefined;
  // The one port the rules leave open besides the listeners must be the proxy's own admin port, or an
  // app port left out of the declared ones would be reachable directly.
  const admin = proxyFlags && typeof proxyFlags !== 'string' ? proxyFlags.get('--admin')?.[0] : undefined;
  if (proxy && listenAddress(admin ?? '')?.port !== plan.adminPort) {
    bad(at(init, 'args'), `${INIT_CONTAINER} leaves port ${plan.adminPort} open as the admin port, but ${PROXY_CONTAINER}'s --admin is ${JSON.stringify(admin ?? null)}`);
  }
  for (const v of proxyFlags && typeof proxyFlags !== 'string' ? (proxyFlags.get('--inbound') ?? []) : []) {
    const r = parseInbound(v);
    if (typeof r !== 'string') listeners.set(r.port, Number(r.upstream.port));
  }
  for (const p of appPortsOf(pod.spec)) {
    const r = plan.redirects.find((x) => x.appPort === p);
    if (!r) bad(at(init, 'args'), `${INIT_CONTAINER} does not redirect app port ${p} to the sidecar`);
    else if (proxy && listeners.get(r.proxyPort) !== p) bad(at(init, 'args'), `${INIT_CONTAINER} redirects app port ${p} to port ${r.proxyPort}, where ${PROXY_CONTAINER} has no listener forwarding to ${p}`);
  }
  return findings;
}

/** What the directory says about the pod's service account, as findings. */
async function checkWorkload(pod: PodTemplate, namespace: string, directory: WorkloadDirectory, whenUnreachable: 'deny' | 'allow'): Promise<{ findings: CoverageFinding[]; workload?: string; revision?: string; note?: string }> {
  const sa = serviceAccountOf(pod);
  const found = await directory.lookup(namespace, sa);
  if (found.status === 'covered') return { findings: [], workload: found.workload, revision: found.revision };
  if (found.status === 'unknown') {
    return {
      findings: [{
        rule: 'workload-bundle',
        field: `${pod.path}.serviceAccountName`,
        msg: `service account ${sa} in namespace ${namespace} is not a workload of the policy repository (no signed bundle at the current revision): add policies/workloads/<name>/workload.yaml with namespace: ${namespace} and serviceAccount: ${sa}, build and publish it, or run the pod as a service account that has one`,
      }],
    };
  }
  if (whenUnreachable === 'allow') return { findings: [], note: `coverage not checked: ${found.error} (allowed by configuration)` };
  return { findings: [{ rule: 'engine-unreachable', msg: `cannot tell whether service account ${sa} has a signed policy bundle: ${found.error}; retry when the Warden engine is reachable` }] };
}

/**
 * Check coverage; returns findings (empty = covered) and the workload when known. A Pod must carry the
 * real sidecar (checkSidecar): that is the enforcement. A pod controller's template is checked early:
 * it will be injected (namespace label, or pod annotation) or already carries the sidecar, and its
 * service account has a bundle. `namespaceLabelled` is undefined when the labels cannot be read.
 */
export async function checkCoverage(
  pod: PodTemplate,
  kind: string,
  namespace: string,
  deps: { directory: WorkloadDirectory; whenUnreachable: 'deny' | 'allow'; injection: InjectionConfig; namespaceLabelled?: boolean | undefined },
): Promise<{ findings: CoverageFinding[]; workload?: string; revision?: string; note?: string }> {
  const found = await checkWorkload(pod, namespace, deps.directory, deps.whenUnreachable);
  const findings = [...found.findings];
  if (kind === 'Pod' || alreadyInjected(pod.spec)) {
    findings.push(...checkSidecar(pod, namespace, found.workload, deps.injection));
  } else {
    if (pod.spec.hostNetwork === true) findings.push({ rule: 'host-network', field: `${pod.path}.hostNetwork`, msg: "the pod template uses hostNetwork: its pods would skip the pod's network namespace, where Warden intercepts inbound connections; remove hostNetwork" });
    if (!annotatedForInjection(pod) && deps.namespaceLabelled === false) {
      findings.push({ rule: 'injection', field: `${metadataPath(pod)}.annotations`, msg: `its pods would not get the Warden sidecar, and every one of them would be refused: ${howToInject(namespace)}` });
    }
  }
  return { ...found, findings };
}
