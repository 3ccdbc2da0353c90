// The injector's side of kubelet probes (formats/app-probes.ts explains the contract): rewrite each
// httpGet/tcpSocket probe an app container aims at an intercepted app port to the sidecar's admin
// path, collect the original targets for the sidecar's `--app-probes`, refuse grpc probes on app
// ports; and, for coverage, check that a Pod's probes and the sidecar's `--app-probes` agree, so that
// a hand-written pod cannot point the sidecar at anything but its own probes on its own app ports.
import { appHealthPath, APP_HEALTH_PREFIX, checkAppProbe, PROBE_KINDS, type AppProbe, type ProbeField } from '../formats/app-probes.js';
import type { PodTemplate } from './pod-template.js';

type Obj = Record<string, unknown>;
type Probe = { httpGet?: Obj; tcpSocket?: Obj; grpc?: Obj; timeoutSeconds?: number } & Obj;
type ProbeContainer = { name?: string; ports?: unknown; restartPolicy?: string } & Obj;

/** One probe field of one app container, where it sits in the pod spec. */
interface ProbeAt {
  container: ProbeContainer;
  /** JSON Pointer of the container, e.g. `/spec/containers/0`. */
  pointer: string;
  /** Field path for messages, e.g. `spec.containers[0].livenessProbe`. */
  field: string;
  kind: ProbeField;
  probe: Probe;
}

/** Every probe of the pod's app containers (regular ones and the user's native sidecars), but the proxy's. */
function probesOf(pod: PodTemplate, proxyName: string): ProbeAt[] {
  const out: ProbeAt[] = [];
  for (const list of ['containers', 'initContainers'] as const) {
    ((pod.spec[list] as ProbeContainer[] | undefined) ?? []).forEach((container, i) => {
      if (!container || container.name === proxyName || (list === 'initContainers' && container.restartPolicy !== 'Always')) return;
      for (const kind of Object.keys(PROBE_KINDS) as ProbeField[]) {
        const probe = container[kind] as Probe | undefined;
        if (probe && typeof probe === 'object') out.push({ container, pointer: `/spec/${list}/${i}`, field: `${pod.path}.${list}[${i}].${kind}`, kind, probe });
      }
    });
  }
  return out;
}

/** A probe's port as a number: numeric, or the name of one of the container's ports. */
function portOf(target: Obj, container: ProbeContainer): number | undefined {
  const p = target.port;
  if (typeof p === 'number') return p;
  if (typeof p === 'string' && /^\d+$/.test(p)) return Number(p);
  const ports = (Array.isArray(container.ports) ? container.ports : []) as Array<{ name?: string; containerPort?: number }>;
  return ports.find((x) => x.name === p)?.containerPort;
}

/** The probe's target when it is one interception would break: a port of the pod's own (no `host`) that is an app port. */
function appTarget(probe: Probe, container: ProbeContainer, appPorts: readonly number[]): { how: 'httpGet' | 'tcpSocket' | 'grpc'; port: number } | undefined {
  for (const how of ['httpGet', 'tcpSocket', 'grpc'] as const) {
    const t = probe[how];
    if (!t || typeof t !== 'object') continue;
    // A probe with a host of its own goes to another address, where interception does not apply.
    if (how !== 'grpc' && typeof t.host === 'string' && t.host !== '') return undefined;
    const port = portOf(t, container);
    return port !== undefined && appPorts.includes(port) ? { how, port } : undefined;
  }
  return undefined;
}

/** What the injector does to the probes: patch ops (`add` replaces a member), the sidecar's probes, or a refusal. */
export type ProbeRewrite = { ops: Array<{ op: 'add'; path: string; value: unknown }>; probes: Map<string, AppProbe> } | { refuse: string };

/** Rewrite the app containers' probes on app ports to the sidecar's admin port (see docs/injection.md "Probes"). */
export function rewriteProbes(pod: PodTemplate, appPorts: readonly number[], adminPort: number, proxyName: string): ProbeRewrite {
  const ops: Array<{ op: 'add'; path: string; value: unknown }> = [];
  const probes = new Map<string, AppProbe>();
  for (const at of probesOf(pod, proxyName)) {
    const target = appTarget(at.probe, at.container, appPorts);
    if (!target) continue;
    const name = String(at.container.name);
    if (target.how === 'grpc') {
      return { refuse: `${at.field} is a grpc probe on app port ${target.port}: interception sends that port through the Warden sidecar (mTLS), where the kubelet's probe cannot reach, and Warden rewrites only httpGet and tcpSocket probes; use an httpGet or tcpSocket probe, or an exec probe` };
    }
    const timeoutSeconds = Math.min(Math.max(at.probe.timeoutSeconds ?? 1, 1), 60);
    const http = at.probe.httpGet as { path?: string; scheme?: string; httpHeaders?: unknown } | undefined;
    const original = target.how === 'httpGet'
      ? { kind: 'http', port: target.port, path: http?.path || '/', scheme: (http?.scheme ?? 'HTTP').toUpperCase(), headers: Array.isArray(http?.httpHeaders) ? http.httpHeaders : [], timeoutSeconds }
      : { kind: 'tcp', port: target.port, timeoutSeconds };
    const checked = checkAppProbe(original, at.field);
    if (typeof checked === 'string') return { refuse: `${checked}; Warden cannot hand this probe to the sidecar` };
    const path = appHealthPath(name, at.kind);
    probes.set(path, checked);
    const { httpGet: _h, tcpSocket: _t, ...rest } = at.probe;
    ops.push({ op: 'add', path: `${at.pointer}/${at.kind}`, value: { ...rest, httpGet: { path, port: adminPort, scheme: 'HTTP' } } });
  }
  return { ops, probes };
}

/**
 * Probes interception will break that the injector cannot rewrite: on a port of the pod's own that no
 * container declares (interception resets new connections to it). For the response's warnings.
 */
export function undeclaredProbeWarnings(pod: PodTemplate, appPorts: readonly number[], proxyName: string): string[] {
  const out: string[] = [];
  for (const at of probesOf(pod, proxyName)) {
    for (const how of ['httpGet', 'tcpSocket', 'grpc'] as const) {
      const t = at.probe[how];
      if (!t || typeof t !== 'object' || (how !== 'grpc' && typeof t.host === 'string' && t.host !== '')) continue;
      const port = portOf(t, at.container);
      if (port !== undefined && !appPorts.includes(port)) {
        out.push(`${at.field} probes port ${port}, which no container declares as a TCP port: Warden's interception resets inbound connections to undeclared ports, so this probe will fail; declare the port in the container's ports`);
      }
    }
  }
  return out;
}

/**
 * Coverage: the pod's probes on app ports are all rewritten ones, every rewritten one has its entry
 * in the sidecar's `--app-probes`, and every entry belongs to a rewritten probe and aims at an app
 * port. Returns what is wrong, each with the field it is about.
 */
export function checkProbes(pod: PodTemplate, probes: ReadonlyMap<string, AppProbe>, appPorts: readonly number[], adminPort: number, proxyName: string): Array<{ field?: string; msg: string }> {
  const out: Array<{ field?: string; msg: string }> = [];
  const used = new Set<string>();
  for (const at of probesOf(pod, proxyName)) {
    const http = at.probe.httpGet as { path?: unknown; port?: unknown; host?: unknown } | undefined;
    if (http && typeof http.path === 'string' && http.path.startsWith(APP_HEALTH_PREFIX) && portOf(http, at.container) === adminPort) {
      const expected = appHealthPath(String(at.container.name), at.kind);
      if (http.path !== expected) out.push({ field: `${at.field}.httpGet.path`, msg: `${at.field} asks the sidecar for ${http.path}, but this probe's path is ${expected}` });
      else if (!probes.has(expected)) out.push({ field: `${at.field}.httpGet.path`, msg: `${at.field} asks the sidecar for ${expected}, which its --app-probes does not configure` });
      used.add(expected);
      continue;
    }
    const target = appTarget(at.probe, at.container, appPorts);
    if (target) out.push({ field: at.field, msg: `${at.field} is a ${target.how} probe on app port ${target.port}, which interception sends through the sidecar: the injector rewrites it to ${appHealthPath(String(at.container.name), at.kind)} on port ${adminPort}` });
  }
  for (const [path, probe] of probes) {
    if (!used.has(path)) out.push({ msg: `the sidecar's --app-probes configures ${path}, which no probe of the pod uses` });
    else if (!appPorts.includes(probe.port)) out.push({ msg: `the sidecar's --app-probes sends ${path} to port ${probe.port}, which is not an app port of the pod` });
  }
  return out;
}
