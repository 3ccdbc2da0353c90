// Guardrails against taking the node without `privileged`: a hostPath onto the node's root or its
// container runtime, an added capability (SYS_ADMIN and friends), allowPrivilegeEscalation, and an
// ephemeral container (`kubectl debug`) running as root. They live in code, not in the policy
// repository's Rego, because their one exception depends on the webhook's own configuration: the
// interception init (`warden-init`, first init container, an allowed image) may add NET_ADMIN and
// NET_RAW, and run as root, and nothing else may. Every container list is checked, ephemeral too.
import type { InjectionConfig } from './config.js';
import { initImages, INIT_CONTAINER, type Container } from './injection.js';
import type { PodTemplate } from './pod-template.js';

/** One node-access violation (the webhook adds the set and mode). */
export interface NodeAccessFinding {
  rule: 'no-host-path' | 'no-added-capabilities' | 'no-privilege-escalation' | 'ephemeral-non-root';
  msg: string;
  field: string;
  container?: string;
}

// Host paths that hand over the node: its runtime's sockets and state, kubelet's credentials, the
// kernel's interfaces, its configuration. A hostPath at, under or above any of them is refused.
const NODE_PATHS = ['/run', '/var/run', '/var/lib/kubelet', '/var/lib/containerd', '/var/lib/docker', '/var/lib/crio', '/etc', '/proc', '/sys', '/dev', '/root', '/boot'];
// Capabilities any container may add.
const HARMLESS_CAPABILITIES = new Set(['NET_BIND_SERVICE', 'CAP_NET_BIND_SERVICE']);
const INIT_CAPABILITIES = new Set(['NET_ADMIN', 'NET_RAW']);

/** A host path with `.`/`..`/repeated slashes resolved, as the kubelet would mount it. */
export function normalizeHostPath(path: string): string {
  const parts: string[] = [];
  for (const p of path.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') parts.pop();
    else parts.push(p);
  }
  return `/${parts.join('/')}`;
}

function touchesNode(path: string): boolean {
  const p = normalizeHostPath(path);
  return p === '/' || NODE_PATHS.some((n) => p === n || p.startsWith(`${n}/`) || n.startsWith(`${p}/`));
}

/** Is this the verified interception init: first init container, named warden-init, an allowed image? */
export function isInterceptionInit(spec: PodTemplate['spec'], cfg: InjectionConfig): boolean {
  const first = ((spec.initContainers as Container[] | undefined) ?? [])[0];
  return first?.name === INIT_CONTAINER && initImages(cfg).has(String(first.image)) && first.restartPolicy !== 'Always';
}

/** Check a pod (template) for the ways onto the node that do not need `privileged`. */
export function checkNodeAccess(pod: PodTemplate, cfg: InjectionConfig): NodeAccessFinding[] {
  const out: NodeAccessFinding[] = [];
  ((pod.spec.volumes as Array<{ name?: string; hostPath?: { path?: string } }> | undefined) ?? []).forEach((v, i) => {
    if (v?.hostPath && typeof v.hostPath.path === 'string' && touchesNode(v.hostPath.path)) {
      out.push({ rule: 'no-host-path', field: `${pod.path}.volumes[${i}].hostPath.path`, msg: `volume "${String(v.name)}" mounts the node's ${normalizeHostPath(v.hostPath.path)}, which gives the pod the node (its runtime socket, kubelet or system files); use a PersistentVolume, a ConfigMap or an emptyDir instead` });
    }
  });
  const init = isInterceptionInit(pod.spec, cfg);
  const podNonRoot = (pod.spec.securityContext as { runAsNonRoot?: boolean; runAsUser?: number } | undefined) ?? {};
  for (const list of ['initContainers', 'containers', 'ephemeralContainers'] as const) {
    ((pod.spec[list] as Container[] | undefined) ?? []).forEach((c, index) => {
      const sc = (c.securityContext ?? {}) as { capabilities?: { add?: unknown }; allowPrivilegeEscalation?: boolean; runAsNonRoot?: boolean; runAsUser?: number };
      const field = (rest: string) => `${pod.path}.${list}[${index}].securityContext.${rest}`;
      const name = String(c.name);
      const isInit = init && list === 'initContainers' && index === 0;
      const added = Array.isArray(sc.capabilities?.add) ? (sc.capabilities.add as unknown[]).map((x) => String(x).toUpperCase()) : [];
      const refused = added.filter((x) => !HARMLESS_CAPABILITIES.has(x) && !(isInit && INIT_CAPABILITIES.has(x)));
      if (refused.length > 0) {
        out.push({ rule: 'no-added-capabilities', container: name, field: field('capabilities.add'), msg: `container "${name}" adds ${refused.join(', ')}: with it a container can reach past its sandbox (only NET_BIND_SERVICE may be added; ${INIT_CONTAINER} alone gets NET_ADMIN/NET_RAW); remove it from securityContext.capabilities.add` });
      }
      if (sc.allowPrivilegeEscalation === true) {
        out.push({ rule: 'no-privilege-escalation', container: name, field: field('allowPrivilegeEscalation'), msg: `container "${name}" sets allowPrivilegeEscalation: true, so a setuid binary could make it root; set it to false` });
      }
      if (list === 'ephemeralContainers') {
        const nonRoot = (sc.runAsNonRoot ?? podNonRoot.runAsNonRoot) === true && (sc.runAsUser ?? podNonRoot.runAsUser) !== 0;
        if (!nonRoot) out.push({ rule: 'ephemeral-non-root', container: name, field: field('runAsNonRoot'), msg: `ephemeral container "${name}" may run as root; debug with a non-root profile (kubectl debug --profile=restricted) or set securityContext.runAsNonRoot: true and a non-zero runAsUser` });
      }
    });
  }
  return out;
}
