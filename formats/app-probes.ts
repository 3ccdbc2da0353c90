// Kubelet probes of injected pods, defined once for the parts that meet on them. Interception sends
// every inbound connection to an app port through the sidecar's mTLS listener, so the kubelet's own
// probes of that port would fail. The injector (admission/app-probes.ts) rewrites each httpGet or
// tcpSocket probe on an app port to a path of the sidecar's admin port, `/app-health/<container>/<kind>`,
// and hands the original target to the sidecar in one `--app-probes` argument (JSON, this format); the
// sidecar (proxy-plugin/app-health.ts) answers exactly those paths by making that one request itself,
// on loopback; coverage reads the argument back to check it matches the pod's probes.
//
// An argument rather than an env var: coverage already reads the sidecar's command line strictly
// (a flag given twice is refused), so the probe targets are checked where everything else is.

/** Where the sidecar answers app probes: `/app-health/<container>/<kind>`. */
export const APP_HEALTH_PREFIX = '/app-health/';

/** The probe fields of a container and the path word each gets. */
export const PROBE_KINDS = { livenessProbe: 'livez', readinessProbe: 'readyz', startupProbe: 'startupz' } as const;

/** A probe field of a container. */
export type ProbeField = keyof typeof PROBE_KINDS;

/** One probe the sidecar makes for the kubelet: always to 127.0.0.1, always GET. */
export type AppProbe =
  | { kind: 'http'; port: number; path: string; scheme: 'HTTP' | 'HTTPS'; headers: Array<{ name: string; value: string }>; timeoutSeconds: number }
  | { kind: 'tcp'; port: number; timeoutSeconds: number };

/** The admin path of one container's probe. */
export function appHealthPath(container: string, field: ProbeField): string {
  return `${APP_HEALTH_PREFIX}${container}/${PROBE_KINDS[field]}`;
}

const PATH_KEY = /^\/app-health\/[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\/(livez|readyz|startupz)$/;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$/;
const HEADER_VALUE = /^[\x20-\x7e\t]{0,4096}$/;
const REQUEST_PATH = /^\/[\x21-\x7e]{0,2047}$/;
const isPort = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 1 && (n as number) <= 65535;

function onlyKeys(o: Record<string, unknown>, allowed: string[], where: string): string | undefined {
  const extra = Object.keys(o).find((k) => !allowed.includes(k));
  return extra === undefined ? undefined : `${where} has an unknown field ${JSON.stringify(extra)}`;
}

/** Check one probe; a string says what is wrong with it (`where` names it). */
export function checkAppProbe(v: unknown, where: string): AppProbe | string {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return `${where} is not an object`;
  const o = v as Record<string, unknown>;
  if (!isPort(o.port)) return `${where}.port ${JSON.stringify(o.port)} is not a port number`;
  if (!Number.isInteger(o.timeoutSeconds) || (o.timeoutSeconds as number) < 1 || (o.timeoutSeconds as number) > 60) return `${where}.timeoutSeconds must be 1 to 60`;
  if (o.kind === 'tcp') return onlyKeys(o, ['kind', 'port', 'timeoutSeconds'], where) ?? { kind: 'tcp', port: o.port, timeoutSeconds: o.timeoutSeconds as number };
  if (o.kind !== 'http') return `${where}.kind must be "http" or "tcp"`;
  const unknown = onlyKeys(o, ['kind', 'port', 'path', 'scheme', 'headers', 'timeoutSeconds'], where);
  if (unknown) return unknown;
  if (typeof o.path !== 'string' || !REQUEST_PATH.test(o.path)) return `${where}.path must start with / and hold printable ASCII only`;
  if (o.scheme !== 'HTTP' && o.scheme !== 'HTTPS') return `${where}.scheme must be HTTP or HTTPS`;
  if (!Array.isArray(o.headers) || o.headers.length > 32) return `${where}.headers must be a list of at most 32 headers`;
  for (const [i, h] of o.headers.entries()) {
    const hv = h as { name?: unknown; value?: unknown };
    if (!h || typeof h !== 'object' || typeof hv.name !== 'string' || !HEADER_NAME.test(hv.name) || typeof hv.value !== 'string' || !HEADER_VALUE.test(hv.value) || Object.keys(h).length !== 2) {
      return `${where}.headers[${i}] must be {name, value} with a token name and a printable value`;
    }
  }
  return { kind: 'http', port: o.port, path: o.path, scheme: o.scheme, headers: (o.headers as Array<{ name: string; value: string }>).map(({ name, value }) => ({ name, value })), timeoutSeconds: o.timeoutSeconds as number };
}

/** Read a `--app-probes` value: admin path → probe, or what is wrong. Strict: coverage and the sidecar both rely on it. */
export function parseAppProbes(text: string): Map<string, AppProbe> | string {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return `--app-probes is not JSON (${(err as Error).message})`;
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) return '--app-probes must be a JSON object of admin path → probe';
  const out = new Map<string, AppProbe>();
  for (const [path, v] of Object.entries(json as Record<string, unknown>)) {
    if (!PATH_KEY.test(path)) return `--app-probes: ${JSON.stringify(path)} is not ${APP_HEALTH_PREFIX}<container>/<livez|readyz|startupz>`;
    const probe = checkAppProbe(v, `--app-probes ${path}`);
    if (typeof probe === 'string') return probe;
    out.set(path, probe);
  }
  return out;
}

/** The `--app-probes` value for a set of probes (keys sorted, so the same probes give the same argument). */
export function formatAppProbes(probes: ReadonlyMap<string, AppProbe>): string {
  return JSON.stringify(Object.fromEntries([...probes].sort(([a], [b]) => (a < b ? -1 : 1))));
}
