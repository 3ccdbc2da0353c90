// Inbound interception, defined once for the three parts that meet on it: the injector writes the
// interception init's arguments and the sidecar's `--inbound` listeners (admission/injection.ts), the
// init container turns the same arguments into iptables rules (`warden init-net`,
// proxy-plugin/interception.ts), and coverage reads both back from a Pod to check that they agree.
//
// Node cannot read SO_ORIGINAL_DST, so the sidecar cannot learn which app port a redirected
// connection was for. Instead every app port P gets a sidecar listener of its own, L(P): the rules
// redirect pod-ip:P to L(P), and the listener on L(P) forwards to 127.0.0.1:P. The port a connection
// arrives on names its upstream; nothing has to be recovered from the socket.
import { listenAddress } from './listen-address.js';

/** Ports the sidecar itself owns: its admin listener and the first listener for app ports. */
export const SIDECAR_PORTS = { admin: 15020, firstInbound: 15101 } as const;

/** `warden proxy --drain-seconds` when not given; the injector writes the flag only for a pod whose grace period needs less. */
export const DEFAULT_DRAIN_SECONDS = 10;

/** One app port and the sidecar listener its inbound connections are redirected to. */
export interface Redirect {
  appPort: number;
  proxyPort: number;
}

/** What the interception init sets up in the pod's network namespace. */
export interface InterceptionPlan {
  redirects: Redirect[];
  /** The sidecar's admin port: reachable (kubelet probes), never redirected. */
  adminPort: number;
}

const isPort = (n: number): boolean => Number.isInteger(n) && n >= 1 && n <= 65535;

/** `warden init-net` arguments for a plan (after the command name). */
export function interceptionArgs(plan: InterceptionPlan): string[] {
  return [...plan.redirects.flatMap((r) => ['--redirect', `${r.appPort}=${r.proxyPort}`]), '--admin-port', String(plan.adminPort)];
}

/**
 * Read `warden init-net` arguments back into a plan; a string says what is wrong. Strict on purpose:
 * coverage accepts a Pod only when its init container says exactly what this module writes.
 */
export function parseInterceptionArgs(args: readonly string[]): InterceptionPlan | string {
  const redirects: Redirect[] = [];
  let adminPort: number | undefined;
  for (let i = 0; i < args.length; i += 2) {
    const flag = args[i];
    const value = args[i + 1];
    if (value === undefined) return `${flag} has no value`;
    if (flag === '--redirect') {
      const m = /^(\d{1,5})=(\d{1,5})$/.exec(value);
      if (!m || !isPort(Number(m[1])) || !isPort(Number(m[2]))) return `--redirect ${JSON.stringify(value)} is not <app port>=<sidecar port>`;
      redirects.push({ appPort: Number(m[1]), proxyPort: Number(m[2]) });
    } else if (flag === '--admin-port') {
      if (!/^\d{1,5}$/.test(value) || !isPort(Number(value))) return `--admin-port ${JSON.stringify(value)} is not a port`;
      adminPort = Number(value);
    } else {
      return `unknown argument ${JSON.stringify(flag)}`;
    }
  }
  if (adminPort === undefined) return '--admin-port is missing';
  const sidecar = new Set([adminPort, ...redirects.map((r) => r.proxyPort)]);
  const apps = new Set<number>();
  for (const r of redirects) {
    // An app port that is also a sidecar port would redirect the sidecar's own listener (a loop).
    if (sidecar.has(r.appPort)) return `app port ${r.appPort} is also one of the sidecar's ports`;
    if (apps.has(r.appPort)) return `app port ${r.appPort} is redirected twice`;
    apps.add(r.appPort);
  }
  if (new Set(redirects.map((r) => r.proxyPort)).size !== redirects.length || redirects.some((r) => r.proxyPort === adminPort)) {
    return 'two redirects share a sidecar port';
  }
  return { redirects, adminPort };
}

/** Sidecar listener for each app port: the first free ports from SIDECAR_PORTS.firstInbound on. */
export function planFor(appPorts: readonly number[], adminPort: number = SIDECAR_PORTS.admin): InterceptionPlan {
  const taken = new Set<number>([...appPorts, adminPort]);
  const redirects: Redirect[] = [];
  let next: number = SIDECAR_PORTS.firstInbound;
  for (const appPort of [...new Set(appPorts)].sort((a, b) => a - b)) {
    while (taken.has(next)) next++;
    redirects.push({ appPort, proxyPort: next });
    taken.add(next);
  }
  return { redirects, adminPort };
}

/** The sidecar's `--inbound` value for one redirect: listen on every address, IPv6 and IPv4 (an IPv6 connection is redirected too), forward to the app on loopback. */
export function inboundArg(r: Redirect): string {
  return `[::]:${r.proxyPort}=http://127.0.0.1:${r.appPort}`;
}

/** Read an `--inbound` value: the listener address and the upstream URL, or what is wrong. */
export function parseInbound(value: string): { listen: string; port: number; upstream: URL } | string {
  const eq = value.indexOf('=');
  if (eq < 0) return `--inbound ${JSON.stringify(value)} is not <listen address>=<upstream url>, e.g. 0.0.0.0:15101=http://127.0.0.1:8080`;
  const listen = value.slice(0, eq);
  // Port 0 (any free port) is a valid listener for a local run; no redirect ever targets it.
  const at = listenAddress(listen);
  if (!at) return `--inbound ${JSON.stringify(value)}: ${JSON.stringify(listen)} is not host:port`;
  let upstream: URL;
  try {
    upstream = new URL(value.slice(eq + 1));
  } catch {
    return `--inbound ${JSON.stringify(value)}: ${JSON.stringify(value.slice(eq + 1))} is not a URL`;
  }
  return { listen, port: at.port, upstream };
}
