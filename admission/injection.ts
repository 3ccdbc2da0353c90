// The sidecar contract: what the mutating webhook adds to a Pod, in one place, so that the injector
// writes it and coverage checks it from the same definitions.
//   - `warden-init`: a one-shot init container, first of all, running `warden init-net` with the
//     interception plan (formats/interception.ts). The only container that gets NET_ADMIN/NET_RAW.
//   - `warden-proxy`: a native sidecar (init container with restartPolicy: Always), the proxy image
//     by digest, `warden proxy` for the workload the service account maps to, one --inbound listener
//     per app port, its SVID, the verification key, probes, resources, its own non-root UID.
// The user's containers change in one way only: their httpGet/tcpSocket probes on app ports go to the
// sidecar's admin port (admission/app-probes.ts). The app keeps listening where it did.
import { formatAppProbes, type AppProbe } from '../formats/app-probes.js';
import { DEFAULT_DRAIN_SECONDS, inboundArg, interceptionArgs, planFor, type InterceptionPlan } from '../formats/interception.js';
import type { InjectionConfig, SvidSource } from './config.js';
import type { PodTemplate } from './pod-template.js';
import { rewriteProbes } from './app-probes.js';

/** Container names of the contract. */
export const PROXY_CONTAINER = 'warden-proxy';
export const INIT_CONTAINER = 'warden-init';
/** Namespace label (value `enabled`) and pod annotation (`enabled` or `true`) that ask for injection. */
export const INJECT_KEY = 'warden.dev/inject';
/** Annotation the injector leaves: the workload and bundle revision it injected for. */
export const INJECTED_ANNOTATION = 'warden.dev/injected';

/** Where the sidecar finds its files. */
export const SIDECAR_PATHS = {
  svid: '/var/run/secrets/warden/svid',
  verificationKey: '/etc/warden/verification',
  run: '/var/run/warden',
  tmp: '/tmp',
} as const;

const VOLUMES = { svid: 'warden-svid', verificationKey: 'warden-verification-key', run: 'warden-run', tmp: 'warden-tmp' } as const;

type Obj = Record<string, unknown>;
/** A container as it appears in a pod spec. */
export type Container = { name?: string; image?: string; command?: unknown; args?: unknown; ports?: Array<{ containerPort?: number; protocol?: string }>; restartPolicy?: string } & Obj;

/** One operation of a JSON Patch (RFC 6902): the injector only adds. */
export interface PatchOp {
  op: 'add';
  path: string;
  value: unknown;
}

/** Does the pod ask for injection by annotation? (A namespace asks by its label, which the API server matches.) */
export function annotatedForInjection(pod: PodTemplate): boolean {
  const v = pod.metadata.annotations?.[INJECT_KEY];
  return v === 'enabled' || v === 'true';
}

/** The proxy image injected, and every proxy image coverage accepts, by digest. */
export function proxyImages(cfg: InjectionConfig): Set<string> {
  return new Set([...(cfg.proxyImage ? [cfg.proxyImage] : []), ...cfg.allowedProxyImages]);
}

/** The interception image injected (default: the proxy image), and every one coverage accepts. */
export function initImages(cfg: InjectionConfig): Set<string> {
  const injected = cfg.initImage ?? cfg.proxyImage;
  return new Set([...(injected ? [injected] : []), ...cfg.allowedInitImages]);
}

/** Containers that run for the pod's life: the regular ones and native sidecars (init with restartPolicy Always). */
export function runningContainers(spec: PodTemplate['spec']): Container[] {
  const init = (spec.initContainers as Container[] | undefined) ?? [];
  return [...((spec.containers as Container[] | undefined) ?? []), ...init.filter((c) => c.restartPolicy === 'Always')];
}

/** TCP ports the pod's own running containers declare: the ones interception sends through the sidecar. */
export function appPortsOf(spec: PodTemplate['spec']): number[] {
  const ports = runningContainers(spec)
    .filter((c) => c.name !== PROXY_CONTAINER)
    .flatMap((c) => (Array.isArray(c.ports) ? c.ports : []))
    .filter((p) => (p.protocol ?? 'TCP') === 'TCP' && Number.isInteger(p.containerPort))
    .map((p) => p.containerPort as number);
  return [...new Set(ports)].sort((a, b) => a - b);
}

/** The SVID file names the sidecar reads (every supported source writes these three). */
const svidFile = (name: 'tls.crt' | 'tls.key' | 'ca.crt') => `${SIDECAR_PATHS.svid}/${name}`;

/**
 * The sidecar's --drain-seconds for a pod's terminationGracePeriodSeconds (Kubernetes' default 30): half
 * of it, at most the proxy's default 10, so the drain and the last shipping of the decision log end
 * before SIGKILL (a native sidecar is stopped after the app, within the same grace period). undefined
 * when it is the default.
 */
export function drainSecondsFor(grace: unknown): number | undefined {
  const seconds = typeof grace === 'number' && Number.isInteger(grace) && grace >= 0 ? grace : 30;
  const drain = Math.min(DEFAULT_DRAIN_SECONDS, Math.floor(seconds / 2));
  return drain === DEFAULT_DRAIN_SECONDS ? undefined : drain;
}

/** `warden proxy` arguments for a workload (the container's entrypoint is `warden`). */
export function proxyArgs(workload: string, namespace: string, plan: InterceptionPlan, cfg: InjectionConfig, probes: ReadonlyMap<string, AppProbe> = new Map(), drainSeconds?: number): string[] {
  return [
    'proxy', '--workload', workload, '--namespace', namespace,
    '--engine', cfg.engineUrl, '--engine-cert', svidFile('tls.crt'), '--engine-key', svidFile('tls.key'), '--engine-ca', svidFile('ca.crt'),
    '--verification-key', `${SIDECAR_PATHS.verificationKey}/verification-key.pem`,
    '--tls-cert', svidFile('tls.crt'), '--tls-key', svidFile('tls.key'), '--client-ca', svidFile('ca.crt'),
    '--admin', `[::]:${plan.adminPort}`, '--spill', `${SIDECAR_PATHS.run}/decisions.spill.ndjson`,
    ...plan.redirects.flatMap((r) => ['--inbound', inboundArg(r)]),
    ...(probes.size > 0 ? ['--app-probes', formatAppProbes(probes)] : []),
    ...(drainSeconds !== undefined ? ['--drain-seconds', String(drainSeconds)] : []),
  ];
}

/** Restricted securityContext of the sidecar: its own UID, nothing it could escalate with. */
function proxySecurityContext(cfg: InjectionConfig): Obj {
  return {
    runAsUser: cfg.proxyUid, runAsGroup: cfg.proxyUid, runAsNonRoot: true, allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' },
  };
}

/** The native sidecar. */
export function proxyContainer(workload: string, namespace: string, plan: InterceptionPlan, cfg: InjectionConfig, probes?: ReadonlyMap<string, AppProbe>, drainSeconds?: number): Obj {
  const admin = (path: string, extra: Obj) => ({ httpGet: { path, port: plan.adminPort }, ...extra });
  return {
    name: PROXY_CONTAINER,
    image: cfg.proxyImage,
    restartPolicy: 'Always',
    args: proxyArgs(workload, namespace, plan, cfg, probes, drainSeconds),
    ports: [...plan.redirects.map((r, i) => ({ name: `warden-in-${i}`, containerPort: r.proxyPort })), { name: 'warden-admin', containerPort: plan.adminPort }],
    // The app starts only once the sidecar is up (native sidecars gate on their startup probe).
    startupProbe: admin('/healthz', { periodSeconds: 1, failureThreshold: 60 }),
    readinessProbe: admin('/readyz', { periodSeconds: 5 }),
    livenessProbe: admin('/healthz', { periodSeconds: 10, failureThreshold: 6 }),
    resources: cfg.resources,
    securityContext: proxySecurityContext(cfg),
    volumeMounts: [
      { name: VOLUMES.svid, mountPath: SIDECAR_PATHS.svid, readOnly: true },
      { name: VOLUMES.verificationKey, mountPath: SIDECAR_PATHS.verificationKey, readOnly: true },
      { name: VOLUMES.run, mountPath: SIDECAR_PATHS.run },
      { name: VOLUMES.tmp, mountPath: SIDECAR_PATHS.tmp },
    ],
  };
}

/** The interception init: root with NET_ADMIN/NET_RAW and nothing else, for one iptables-restore per family. */
export function interceptionContainer(plan: InterceptionPlan, cfg: InjectionConfig): Obj {
  return {
    name: INIT_CONTAINER,
    image: cfg.initImage ?? cfg.proxyImage,
    args: ['init-net', ...interceptionArgs(plan)],
    resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { cpu: '500m', memory: '128Mi' } },
    securityContext: {
      runAsUser: 0, runAsNonRoot: false, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' },
    },
    // A read-only root filesystem: tsx's cache goes to /tmp, iptables' lock file (/run/xtables.lock) to /run.
    volumeMounts: [{ name: VOLUMES.tmp, mountPath: SIDECAR_PATHS.tmp }, { name: VOLUMES.run, mountPath: '/run' }],
  };
}

function svidVolume(svid: SvidSource, serviceAccount: string, workload: string): Obj {
  if ('csiDriver' in svid) return { name: VOLUMES.svid, csi: { driver: svid.csiDriver, readOnly: true, ...(svid.volumeAttributes ? { volumeAttributes: svid.volumeAttributes } : {}) } };
  return { name: VOLUMES.svid, secret: { secretName: svid.secretName.replaceAll('{serviceAccount}', serviceAccount).replaceAll('{workload}', workload), defaultMode: 0o440 } };
}

/** The volumes the two containers mount. */
export function injectedVolumes(cfg: InjectionConfig, serviceAccount: string, workload: string): Obj[] {
  return [
    svidVolume(cfg.svid, serviceAccount, workload),
    { name: VOLUMES.verificationKey, configMap: { name: cfg.verificationKeyConfigMap } },
    { name: VOLUMES.run, emptyDir: { sizeLimit: '128Mi' } },
    { name: VOLUMES.tmp, emptyDir: { sizeLimit: '64Mi' } },
  ];
}

/** Does the pod already carry any part of the contract? Then injecting again would duplicate it. */
export function alreadyInjected(spec: PodTemplate['spec']): boolean {
  const names = [...((spec.containers as Container[] | undefined) ?? []), ...((spec.initContainers as Container[] | undefined) ?? [])].map((c) => c.name);
  const volumes = ((spec.volumes as Array<{ name?: string }> | undefined) ?? []).map((v) => v.name);
  return names.includes(PROXY_CONTAINER) || names.includes(INIT_CONTAINER) || volumes.some((v) => Object.values(VOLUMES).includes(v as never));
}

// RFC 6901: "~" and "/" inside a key.
const pointer = (key: string) => key.replaceAll('~', '~0').replaceAll('/', '~1');

/**
 * The JSON Patch that injects the contract into a Pod: the app containers' probes on app ports
 * rewritten to the sidecar (first, while their indices are the user's), the two containers first
 * among the init containers (interception before anything else runs), the volumes, and the
 * annotation. Only adds (an add on an existing member replaces it). A probe the sidecar cannot take
 * over (grpc on an app port) is a refusal.
 */
export function injectionPatch(pod: PodTemplate, namespace: string, serviceAccount: string, workload: string, revision: string, cfg: InjectionConfig): PatchOp[] | { refuse: string } {
  const plan = planFor(appPortsOf(pod.spec));
  const probes = rewriteProbes(pod, plan.redirects.map((r) => r.appPort), plan.adminPort, PROXY_CONTAINER);
  if ('refuse' in probes) return probes;
  const containers = [interceptionContainer(plan, cfg), proxyContainer(workload, namespace, plan, cfg, probes.probes, drainSecondsFor(pod.spec.terminationGracePeriodSeconds))];
  const ops: PatchOp[] = [...probes.ops];
  const init = pod.spec.initContainers as unknown[] | undefined;
  if (!Array.isArray(init) || init.length === 0) ops.push({ op: 'add', path: '/spec/initContainers', value: containers });
  else containers.forEach((c, i) => ops.push({ op: 'add', path: `/spec/initContainers/${i}`, value: c }));
  const volumes = injectedVolumes(cfg, serviceAccount, workload);
  if (!Array.isArray(pod.spec.volumes)) ops.push({ op: 'add', path: '/spec/volumes', value: volumes });
  else for (const v of volumes) ops.push({ op: 'add', path: '/spec/volumes/-', value: v });
  const note = `${workload}@${revision}`;
  if (!pod.metadata.annotations || typeof pod.metadata.annotations !== 'object') ops.push({ op: 'add', path: '/metadata/annotations', value: { [INJECTED_ANNOTATION]: note } });
  else ops.push({ op: 'add', path: `/metadata/annotations/${pointer(INJECTED_ANNOTATION)}`, value: note });
  return ops;
}

