// Where the pod sits in each kind the webhook reviews: a Pod is its own template, a Deployment keeps
// it at spec.template, a CronJob at spec.jobTemplate.spec.template.

/** A pod (template) located in an object, with the path of its spec for messages. */
export interface PodTemplate {
  metadata: { labels?: Record<string, string>; annotations?: Record<string, string> } & Record<string, unknown>;
  spec: { serviceAccountName?: string; serviceAccount?: string; containers?: Array<{ name?: string; image?: string } & Record<string, unknown>> } & Record<string, unknown>;
  /** e.g. `spec.template.spec`. */
  path: string;
}

/** The kinds reviewed, by API group, with the path to their pod template. */
export const POD_KINDS: Record<string, { group: string; template: string[] }> = {
  Pod: { group: '', template: [] },
  Deployment: { group: 'apps', template: ['spec', 'template'] },
  StatefulSet: { group: 'apps', template: ['spec', 'template'] },
  DaemonSet: { group: 'apps', template: ['spec', 'template'] },
  ReplicaSet: { group: 'apps', template: ['spec', 'template'] },
  Job: { group: 'batch', template: ['spec', 'template'] },
  CronJob: { group: 'batch', template: ['spec', 'jobTemplate', 'spec', 'template'] },
};

/** Is this group/kind one the webhook reviews? */
export function isPodKind(group: string, kind: string): boolean {
  return POD_KINDS[kind]?.group === group;
}

/** The pod template of an object of a reviewed kind; undefined when the object has none (malformed). */
export function podTemplateOf(kind: string, object: Record<string, unknown>): PodTemplate | undefined {
  const where = POD_KINDS[kind];
  if (!where) return undefined;
  let node: unknown = object;
  for (const key of where.template) node = (node as Record<string, unknown> | undefined)?.[key];
  const t = node as { metadata?: PodTemplate['metadata']; spec?: PodTemplate['spec'] } | undefined;
  if (!t || typeof t !== 'object' || !t.spec || typeof t.spec !== 'object') return undefined;
  return { metadata: t.metadata ?? {}, spec: t.spec, path: [...where.template, 'spec'].join('.') };
}
