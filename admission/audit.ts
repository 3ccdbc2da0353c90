// `warden admission audit`: like Gatekeeper's audit, review the objects already in the cluster with
// the same rules the webhook enforces, and report what would be refused or warned about today.
import { randomUUID } from 'node:crypto';
import { AppsV1Api, BatchV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { AdmissionRequest } from '../formats/admission-review.js';
import { admit, type AdmissionDeps, type Finding } from './decide.js';

/** One audited object and what the rules say about it. */
export interface AuditEntry {
  kind: string;
  namespace: string;
  name: string;
  findings: Finding[];
}

type Listed = { metadata?: { name?: string; namespace?: string; ownerReferences?: unknown[] } };

/** List pod controllers and bare Pods (Pods owned by a controller are judged through it). */
async function listObjects(kc: KubeConfig): Promise<Array<{ group: string; version: string; kind: string; resource: string; object: Record<string, unknown> }>> {
  const apps = kc.makeApiClient(AppsV1Api);
  const batch = kc.makeApiClient(BatchV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  const [deployments, statefulSets, daemonSets, jobs, cronJobs, pods] = await Promise.all([
    apps.listDeploymentForAllNamespaces({}),
    apps.listStatefulSetForAllNamespaces({}),
    apps.listDaemonSetForAllNamespaces({}),
    batch.listJobForAllNamespaces({}),
    batch.listCronJobForAllNamespaces({}),
    core.listPodForAllNamespaces({}),
  ]);
  const tag = (group: string, kind: string, resource: string, items: Listed[]) =>
    items.map((o) => ({ group, version: 'v1', kind, resource, object: { apiVersion: group ? `${group}/v1` : 'v1', kind, ...(o as Record<string, unknown>) } }));
  return [
    ...tag('apps', 'Deployment', 'deployments', deployments.items as Listed[]),
    ...tag('apps', 'StatefulSet', 'statefulsets', statefulSets.items as Listed[]),
    ...tag('apps', 'DaemonSet', 'daemonsets', daemonSets.items as Listed[]),
    ...tag('batch', 'Job', 'jobs', (jobs.items as Listed[]).filter((j) => !j.metadata?.ownerReferences?.length)),
    ...tag('batch', 'CronJob', 'cronjobs', cronJobs.items as Listed[]),
    ...tag('', 'Pod', 'pods', (pods.items as Listed[]).filter((p) => !p.metadata?.ownerReferences?.length)),
  ];
}

/** Review every listed object as if it were created now; exempt namespaces are skipped. */
export async function auditCluster(kc: KubeConfig, deps: AdmissionDeps): Promise<AuditEntry[]> {
  const out: AuditEntry[] = [];
  for (const o of await listObjects(kc)) {
    const meta = (o.object.metadata ?? {}) as { name?: string; namespace?: string };
    const request: AdmissionRequest = {
      uid: randomUUID(),
      kind: { group: o.group, version: o.version, kind: o.kind },
      resource: { group: o.group, version: o.version, resource: o.resource },
      operation: 'CREATE',
      userInfo: { username: 'warden-audit' },
      name: meta.name ?? '',
      namespace: meta.namespace ?? '',
      object: o.object,
    };
    const outcome = await admit({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request }, deps);
    out.push({ kind: o.kind, namespace: meta.namespace ?? '', name: meta.name ?? '', findings: outcome.findings });
  }
  return out;
}

/** A table for the terminal: one line per finding, grouped by object. */
export function formatAudit(entries: AuditEntry[]): string {
  const lines: string[] = [];
  const bad = entries.filter((e) => e.findings.length > 0);
  for (const e of bad) {
    lines.push(`${e.kind} ${e.namespace}/${e.name}:`);
    for (const f of e.findings) lines.push(`  ${f.mode.padEnd(8)} [${f.set}/${f.rule}]${f.container ? ` container ${f.container}` : ''}${f.field ? ` ${f.field}` : ''}: ${f.msg}`);
  }
  lines.push(`${entries.length} object(s) audited, ${bad.length} with findings, ${bad.filter((e) => e.findings.some((f) => f.mode === 'enforce')).length} would be refused`);
  return lines.join('\n');
}
