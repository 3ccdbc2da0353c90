// A factory for schema-valid DecisionEvents: tests say only what matters to them, the rest is filled in.
import { decisionEvent, type DecisionEvent, type Outcome } from '../../formats/decision-event.js';

/** What a test may set; everything else gets a plausible default. */
export interface EventSpec {
  id?: string;
  time?: string | Date;
  workload?: string;
  namespace?: string;
  principal?: string;
  outcome?: Outcome;
  method?: string;
  path?: string;
  operation?: string;
  tool?: string;
  revision?: string;
  reasons?: string[];
}

let counter = 0;

/** One HTTP (or MCP when `tool` is set) decision event, validated against the schema before it is returned. */
export function makeEvent(spec: EventSpec = {}): DecisionEvent {
  counter += 1;
  const workload = spec.workload ?? 'orders';
  const namespace = spec.namespace ?? 'shop';
  const outcome = spec.outcome ?? 'allow';
  const time = spec.time instanceof Date ? spec.time.toISOString() : (spec.time ?? new Date(Date.UTC(2026, 10, 25, 10, 0, 0) + counter).toISOString());
  const path = spec.path ?? (spec.tool ? '/mcp' : `/orders/${counter}`);
  const e: DecisionEvent = {
    decision_id: spec.id ?? `dec-${process.pid}-${counter.toString().padStart(8, '0')}`,
    timestamp: time,
    kind: spec.tool ? 'mcp' : 'http',
    outcome,
    mode: outcome === 'dry-run-deny' ? 'dry-run' : 'enforce',
    labels: { workload, namespace, source: 'proxy', instance: `${workload}-7d9f-abcde` },
    bundles: { [workload]: { revision: spec.revision ?? 'abc123-7f3e' } },
    path: 'warden/decision',
    input: {
      source: { principal: spec.principal ?? `spiffe://cluster.local/ns/${namespace}/sa/frontend`, authn: 'mtls', claims: {}, address: '10.0.0.7' },
      destination: { workload, namespace, principal: `spiffe://cluster.local/ns/${namespace}/sa/${workload}` },
      request: { method: spec.method ?? (spec.tool ? 'POST' : 'GET'), path, segments: path.split('/').filter(Boolean), query: {}, headers: { authorization: '***' } },
      ...(spec.tool ? { mcp: { method: 'tools/call', tool: spec.tool, arguments: {} } } : {}),
    },
    result: {
      allow: outcome === 'allow',
      reasons: spec.reasons ?? (outcome === 'allow' ? [] : ['not permitted']),
      ...(spec.operation ? { operation: spec.operation } : {}),
    },
    masked: ['/request/headers/authorization'],
    metrics: { eval_ns: 12000 },
  };
  return decisionEvent.parse(e, 'test event');
}

/** `n` events, each built by `spec(i)`. */
export function makeEvents(n: number, spec: (i: number) => EventSpec = () => ({})): DecisionEvent[] {
  return Array.from({ length: n }, (_, i) => makeEvent(spec(i)));
}
