// The decision pipeline every front end shares: evaluate the active bundle for an input, fail closed
// on anything unexpected, apply dry-run, and emit exactly one decision event per call.
import { newDecisionId } from '../formats/decision-id.js';
import { DECISION_ENTRYPOINT, type Decision } from '../formats/decision.js';
import type { DecisionEvent, EventKind, EventSource, Outcome } from '../formats/decision-event.js';
import type { Destination, PolicyInput } from '../formats/input.js';
import type { ActiveBundle, BundleSource } from './bundle-source.js';
import type { DecisionLog } from '../runtime/decision-log.js';
import { isSegmentPointer, maskInput, PATH_POINTER, withoutPathQuotes } from '../runtime/decision-mask.js';
import type { LimitKind } from '../runtime/evaluation-limits.js';
import { EvaluationLimitError, type Policy } from '../runtime/policy.js';
import { CaseVariantInput } from '../runtime/input-selection.js';
import type { PluginMetrics } from './metrics.js';
import { fieldMap } from '../runtime/field-map.js';

/** What the front end does with a call. */
export interface Verdict {
  decisionId: string;
  /** Forward the call (true also for a policy denial in dry-run mode). */
  allow: boolean;
  outcome: Outcome;
  /** Denial status (403 unless the policy or the refusal chose another). */
  status: number;
  /** Reasons safe to show the caller. */
  reasons: string[];
  /** Extra response headers the policy asked for on denial. */
  headers: Record<string, string>;
  decision?: Decision;
  /** The bundle that decided (pinned for the whole call). */
  bundle?: ActiveBundle;
}

/** Options of the pipeline. */
export interface PipelineOptions {
  destination: Destination;
  source: BundleSource;
  log: DecisionLog;
  metrics?: PluginMetrics;
  instance?: string;
  newId?: () => string;
  now?: () => Date;
}

type Masked = Record<string, { mask: string[] }>;

// Every pointer any entry of one list masks, computed once per loaded spec.
const everyMaskOf = new WeakMap<Masked, string[]>();

// The mask of the entry a call names. A call that names none of the list (no route matched, an unknown
// tool, or the policy failed before it said) gets every entry's: a field is never logged because the
// call missed its entry.
function maskFor(entries: Masked, name: string | undefined): string[] {
  if (name !== undefined && Object.hasOwn(entries, name)) return entries[name]!.mask;
  let all = everyMaskOf.get(entries);
  if (!all) everyMaskOf.set(entries, (all = [...new Set(Object.values(entries).flatMap((e) => e.mask))]));
  return all;
}

/** True when the bundle's spec masks a path parameter of any operation (`sensitive: ["path:…"]`). */
export function masksPathParameter(bundle: ActiveBundle | undefined): boolean {
  const spec = bundle?.policy.bundle.spec;
  return spec ? maskFor(spec.http.operations, undefined).some(isSegmentPointer) : false;
}

// What the compiled spec says to mask for the operation (OpenAPI), tool, resource or prompt (MCP) the call addressed.
function maskOf(bundle: ActiveBundle | undefined, operation: string | undefined, input: PolicyInput): string[] {
  const spec = bundle?.policy.bundle.spec;
  if (!spec) return [];
  const mcp = input.mcp;
  // An HTTP call that matched no operation gets every operation's mask (a header, a path segment); an MCP
  // call only when it carries a body besides its message.
  const fromOp = mcp === undefined || operation !== undefined || input.request.body !== undefined ? maskFor(spec.http.operations, operation) : [];
  const fromMcp =
    mcp?.method === 'tools/call' ? maskFor(spec.mcp.tools, mcp.tool)
    : mcp?.method === 'prompts/get' ? maskFor(spec.mcp.prompts, mcp.name)
    : mcp?.method === 'resources/read' ? maskFor(spec.mcp.resources, mcp.uri)
    : [];
  return [...fromOp, ...fromMcp];
}

// Why an allowed call is refused for a query key it gives more than once, if it is. The policy gets every
// value in order (`?tenant=a&tenant=b` is ["a", "b"]); apps read the first (Go's Query().Get), the last
// (PHP, Rack) or all (qs, Spring). A rule that reads one by position (`query.tenant[0]`) decides on a value
// the app may not read. So a call the policy allows, with such a key it reads, is decided again with only
// the first and with only the last value of every such key: it goes on only when both are allowed too.
// Those evaluations log nothing; the memo answers a repeat (Policy.evaluate). A call the policy denies
// reaches no app, whatever it would read.
function splitReading(policy: Policy, input: PolicyInput): string | undefined {
  const inputs = policy.bundle.inputs;
  if (!inputs.readsQuery) return undefined; // known when the bundle loaded: most policies read no query key
  const query = input.request.query;
  let repeated: Set<string> | undefined;
  for (const k in query) if (Object.hasOwn(query, k) && query[k]!.length > 1 && inputs.readsQueryKey(k)) (repeated ??= new Set()).add(k);
  if (!repeated) return undefined;
  for (const [which, pick] of POSITIONS) {
    const q = fieldMap<string[]>();
    for (const k in query) if (Object.hasOwn(query, k)) q[k] = repeated.has(k) ? [pick(query[k]!)] : query[k]!;
    let allowed: boolean;
    try {
      allowed = policy.decide(DECISION_ENTRYPOINT, { ...input, request: { ...input.request, query: q } }).allow;
    } catch {
      allowed = false; // fail closed: a reading that cannot be decided is not allowed
    }
    if (!allowed) {
      const k = repeated.values().next().value!;
      return `the query key ${JSON.stringify(k.slice(0, 64))} is given ${query[k]!.length} times and the policy does not allow the call on its ${which} value alone: apps read the first, the last or all of them; send it once`;
    }
  }
  return undefined;
}
// The positions apps read a repeated key's value at, each tried alone.
const POSITIONS: ReadonlyArray<[string, (values: readonly string[]) => string]> = [
  ['first', (v) => v[0]!],
  ['last', (v) => v[v.length - 1]!],
];

/** The shared decision pipeline. */
export class DecisionPipeline {
  private readonly newId: () => string;
  private readonly now: () => Date;

  constructor(readonly opts: PipelineOptions) {
    this.newId = opts.newId ?? newDecisionId;
    this.now = opts.now ?? (() => new Date());
  }

  /** The workload being protected; namespace and principal come from the loaded bundle when there is one. */
  get destination(): Destination {
    const m = this.pin()?.metadata;
    const d = this.opts.destination;
    return { workload: d.workload, namespace: m?.namespace ?? d.namespace, principal: m?.principal ?? d.principal };
  }

  /** The bundle a new call should use; read once per call so a swap never splits a call. */
  pin(): ActiveBundle | undefined {
    return this.opts.source.current;
  }

  /** Decide one call. Never throws: every failure is a denial with a logged reason. */
  decide(input: PolicyInput, ctx: { kind: EventKind; via: EventSource; bundle?: ActiveBundle | undefined }): Verdict {
    const bundle = ctx.bundle ?? this.pin();
    const decisionId = this.newId();
    if (!bundle) return this.finish(decisionId, input, ctx, undefined, { error: 'no policy bundle loaded yet (deny-all until the first good bundle)' });
    const t0 = process.hrtime.bigint();
    let decision: Decision;
    const reusedBefore = bundle.policy.reused;
    try {
      // Policy.evaluate serializes only the input paths the bundle's Rego reads (runtime/input-selection.ts).
      decision = bundle.policy.decide(DECISION_ENTRYPOINT, input);
    } catch (err) {
      const ns = Number(process.hrtime.bigint() - t0);
      this.opts.metrics?.evaluated(ns / 1e9);
      // A stopped evaluation gets its own event: `evaluation limit (deadline|memory)`, with the time it took.
      if (err instanceof EvaluationLimitError) return this.finish(decisionId, input, ctx, bundle, { error: `evaluation limit (${err.limit}): ${err.message}`, limit: err.limit, evalNs: ns });
      if (err instanceof CaseVariantInput) return this.finish(decisionId, input, ctx, bundle, { error: `request refused: ${err.message}`, status: 400 });
      return this.finish(decisionId, input, ctx, bundle, { error: `policy evaluation failed: ${String((err as Error)?.message ?? err)}` });
    }
    const evalNs = Number(process.hrtime.bigint() - t0);
    this.opts.metrics?.evaluated(evalNs / 1e9);
    if (bundle.policy.reused !== reusedBefore) this.opts.metrics?.reused();
    const split = decision.allow ? splitReading(bundle.policy, input) : undefined;
    if (split) return this.finish(decisionId, input, ctx, bundle, { error: `request refused: ${split}`, status: 400, evalNs });
    return this.finish(decisionId, input, ctx, bundle, { decision, evalNs });
  }

  /** Refuse a call before policy (unparseable request, refused credentials); logged like any decision. */
  refuse(input: PolicyInput, ctx: { kind: EventKind; via: EventSource; bundle?: ActiveBundle | undefined }, error: string, status: number): Verdict {
    return this.finish(this.newId(), input, ctx, ctx.bundle ?? this.pin(), { error, status });
  }

  private finish(
    decisionId: string,
    input: PolicyInput,
    ctx: { kind: EventKind; via: EventSource },
    bundle: ActiveBundle | undefined,
    r: { decision?: Decision; evalNs?: number; error?: string; status?: number; limit?: LimitKind },
  ): Verdict {
    const mode = bundle?.mode ?? 'enforce';
    const d = r.decision;
    // Dry-run softens policy denials only; refusals and failures before or outside the policy still deny.
    const outcome: Outcome = d?.allow ? 'allow' : d && mode === 'dry-run' ? 'dry-run-deny' : 'deny';
    const verdict: Verdict = {
      decisionId,
      allow: outcome !== 'deny',
      outcome,
      status: r.status ?? d?.status ?? 403,
      // Refusals explain themselves to the caller; internal failures say only that the call failed closed.
      reasons: d
        ? d.reasons
        : r.status !== undefined
          ? [r.error ?? 'refused']
          : r.limit
            ? [`the policy did not decide within its ${r.limit === 'deadline' ? 'deadline' : 'memory bound'} (fail closed)`]
            : ['the call could not be decided (fail closed); look the decision id up in the audit log'],
      headers: d?.headers ?? {},
    };
    if (d) verdict.decision = d;
    if (bundle) verdict.bundle = bundle;
    this.opts.metrics?.decided(outcome, ctx.via);
    // The event is built once the call has gone on (DecisionLog.recordLater): masking and serializing
    // are not on its path. The time is the decision's.
    const at = this.now();
    this.opts.log.recordLater(() => this.event(decisionId, at, input, ctx, bundle, r, outcome, mode));
    return verdict;
  }

  // The decision event of one call, its secrets masked (DecisionEvent: what the audit log stores).
  private event(
    decisionId: string,
    at: Date,
    input: PolicyInput,
    ctx: { kind: EventKind; via: EventSource },
    bundle: ActiveBundle | undefined,
    r: { decision?: Decision; evalNs?: number; error?: string },
    outcome: Outcome,
    mode: DecisionEvent['mode'],
  ): DecisionEvent {
    const d = r.decision;
    const { input: masked, masked: pointers } = maskInput(input as unknown as Record<string, unknown>, maskOf(bundle, d?.operation, input));
    const labels: DecisionEvent['labels'] = { workload: input.destination.workload, namespace: input.destination.namespace || 'unknown', source: ctx.via };
    if (this.opts.instance) labels.instance = this.opts.instance;
    // Built by assignment, not spreads, with the optional members in a fixed order (the JSON text's).
    const event: DecisionEvent = {
      decision_id: decisionId,
      timestamp: at.toISOString(),
      kind: ctx.kind,
      outcome,
      mode,
      labels,
      bundles: bundle ? { [this.opts.destination.workload]: { revision: bundle.revision } } : {},
      path: DECISION_ENTRYPOINT,
      input: masked,
    };
    // A reason that quotes the path must not carry a segment masked there.
    const quoted = pointers.includes(PATH_POINTER);
    if (d) event.result = (quoted ? withoutPathQuotes(d, input, masked) : d) as unknown as Record<string, unknown>;
    if (r.error) event.error = quoted ? withoutPathQuotes(r.error, input, masked) : r.error;
    if (pointers.length > 0) event.masked = pointers;
    if (r.evalNs !== undefined) event.metrics = { timer_eval_ns: r.evalNs };
    return event;
  }
}
