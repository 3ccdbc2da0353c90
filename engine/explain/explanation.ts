// Why one stored decision came out as it did. Pipeline:
//   stored event → the exact bundle revision (the engine's revision archive) → replay in WASM, compared
//   with the stored result (masked fields named) → OPA's trace over the bundle's own Rego (rules that
//   held, file:line, which rule produced each reason) → for a denial, each grant of what the call
//   addressed and the condition that failed → for an admission refusal, each finding with its rule's
//   source, the field and the way to exempt it.
// Bundles are never rebuilt here: a revision the archive no longer holds is reported as such.
import type { DecisionEvent } from '../../formats/decision-event.js';
import { DECISION_ENTRYPOINT } from '../../formats/decision.js';
import { openBundle, type VerifiedBundle } from '../../runtime/bundle.js';
import { CaseVariantInput } from '../../runtime/input-selection.js';
import { EvaluationError, Policy } from '../../runtime/policy.js';
import { callOf, principalOf } from '../audit/render.js';
import type { StoredEvent } from '../audit/store.js';
import type { RevisionArchive } from '../bundle-revisions.js';
import { admissionFindings, type FindingExplained } from './admission.js';
import { conditionChecks, grantTarget, judgeGrants, type WhatWouldAllow } from './grants.js';
import { explainWithOpa, TraceError, type HeldRule } from './opa-trace.js';

/** How the replay compares with what was stored. */
export type ReplayStatus = 'confirmed' | 'differs' | 'masked-confirmed' | 'masked-differs' | 'not-replayable';

/** A reason and the rule that produced it (from OPA's trace). */
export interface ReasonSource {
  reason: string;
  rule?: HeldRule;
}

/** The whole answer to "why was this decided so?". */
export interface Explanation {
  decision_id: string;
  timestamp: string;
  kind: DecisionEvent['kind'];
  outcome: DecisionEvent['outcome'];
  mode: DecisionEvent['mode'];
  workload: string;
  namespace: string;
  principal: string;
  call: string;
  /** The bundle that decided and where the explanation found it. */
  bundle: { name: string; revision?: string; found: 'archive' | 'missing' | 'none'; sha256?: string; keptAt?: string };
  stored: { allow?: boolean; reasons: string[]; error?: string; operation?: string };
  replay: { status: ReplayStatus; note: string; allow?: boolean; reasons?: string[] };
  /** JSON pointers that were masked before the event left the pod. */
  masked: string[];
  /** OPA's own evaluation of the same bundle and input. */
  opa?: { allow?: boolean; reasons: string[]; agreesWithWasm: boolean; held: HeldRule[] };
  reasons: ReasonSource[];
  wouldAllow?: WhatWouldAllow;
  findings?: FindingExplained[];
}

/** Where explanations get events and bundles. */
export interface ExplainSources {
  event(decisionId: string): Promise<StoredEvent | undefined>;
  /** Absent when the engine keeps no revisions: decisions are then explained from the stored event alone. */
  archive?: RevisionArchive;
}

const obj = (v: unknown): Record<string, unknown> => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {});
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
const sameReasons = (a: string[], b: string[]) => JSON.stringify([...a].sort()) === JSON.stringify([...b].sort());

/** The bundle that decided an event: the workload's (or the admission bundle), and its revision. */
function decidingBundle(e: DecisionEvent): { name: string; revision?: string } {
  const name = e.kind === 'admission' ? 'admission' : e.labels.workload;
  const revision = e.bundles[name]?.revision;
  return revision ? { name, revision } : { name };
}

async function loadKept(archive: RevisionArchive | undefined, name: string, revision: string): Promise<{ bundle: VerifiedBundle; sha256: string; keptAt: number } | undefined> {
  const kept = await archive?.find(name, revision);
  if (!kept) return undefined;
  // The archive holds exactly the bytes the engine served, checked against their sha256 on read.
  return { bundle: await openBundle(kept.bytes, 'unsigned-ok'), sha256: kept.kept.sha256, keptAt: kept.kept.keptAt };
}

// What the event itself says, before any replay.
function storedAccount(e: DecisionEvent, which: { name: string; revision?: string }): Explanation {
  const result = obj(e.result);
  return {
    decision_id: e.decision_id,
    timestamp: e.timestamp,
    kind: e.kind,
    outcome: e.outcome,
    mode: e.mode,
    workload: e.labels.workload,
    namespace: e.labels.namespace,
    principal: principalOf(e),
    call: callOf(e),
    bundle: { ...which, found: which.revision ? 'missing' : 'none' },
    stored: {
      ...(typeof result.allow === 'boolean' ? { allow: result.allow } : typeof result.allowed === 'boolean' ? { allow: result.allowed } : {}),
      reasons: strings(result.reasons),
      ...(e.error ? { error: e.error } : {}),
      ...(typeof result.operation === 'string' ? { operation: result.operation } : {}),
    },
    replay: { status: 'not-replayable', note: '' },
    masked: e.masked ?? [],
    reasons: strings(result.reasons).map((reason) => ({ reason })),
  };
}

// Why a (non-admission) event cannot be replayed; undefined when it can.
function whyNotReplayable(e: DecisionEvent, which: { name: string; revision?: string }, kept: unknown, archive: RevisionArchive | undefined): string | undefined {
  if (e.kind === 'drift') return 'a drift record (a tools/list answer that differs from the compiled tool list) is not a decision of the policy; there is nothing to replay';
  if (!e.input || !e.result) return `the call was refused before the policy decided${e.error ? `: ${e.error}` : ''}; there is nothing to replay`;
  if (!which.revision) return 'no bundle was loaded when this call was decided (default deny)';
  if (kept) return undefined;
  return !archive
    ? `no revision archive is at hand (it lives in the engine's audit store), so revision ${which.revision} of ${which.name} cannot be replayed`
    : `revision ${which.revision} of bundle ${which.name} is not in the revision archive (${archive.location}): it was served before the archive existed or pruned with the audit events that named it. Rebuild it from the policy commit in its revision (${which.revision.split('-')[0]}) with git checkout + warden build to explain it by hand`;
}

type Replayed = { allow: boolean; reasons: string[]; operation?: string };

// Replay in WASM, as the pod decided, and say how far the replay can be trusted (masked fields).
async function replayInWasm(x: Explanation, bundle: VerifiedBundle, input: Record<string, unknown>): Promise<Replayed | undefined> {
  let replayed: Replayed;
  try {
    const policy = await Policy.load(bundle);
    replayed = policy.decide(DECISION_ENTRYPOINT, input);
  } catch (err) {
    // Refused before the evaluation, as the sidecar refuses it (400).
    if (err instanceof CaseVariantInput) replayed = { allow: false, reasons: [`request refused: ${err.message}`] };
    else if (!(err instanceof EvaluationError)) throw err;
    else {
      x.replay = { status: 'not-replayable', note: `the bundle could not evaluate the stored input: ${err.message}` };
      return undefined;
    }
  }
  const same = replayed.allow === x.stored.allow && sameReasons(replayed.reasons, x.stored.reasons);
  const masked = x.masked.filter((p) => p.startsWith('/input/'));
  const status: ReplayStatus = masked.length ? (same ? 'masked-confirmed' : 'masked-differs') : same ? 'confirmed' : 'differs';
  // Whether a Rego file of the bundle names the masked field at all (a hint, not a proof: Rego can reach a field dynamically).
  const rego = [...bundle.files].filter(([n]) => n.endsWith('.rego')).map(([, b]) => b.toString('utf8')).join('\n');
  const named = masked.filter((p) => rego.includes(p.slice(p.lastIndexOf('/') + 1)));
  const maskedNote = `${masked.join(', ')} ${masked.length === 1 ? 'was' : 'were'} masked before the event left the pod, so the replay saw "**masked**" there instead of the real value (${named.length ? `the bundle's Rego names ${named.map((p) => p.slice(p.lastIndexOf('/') + 1)).join(', ')}` : "no Rego file of the bundle names the masked field, though Rego could still reach it by a computed key"})`;
  const note = {
    confirmed: 'replaying the stored input against this revision gives the stored result',
    differs: 'replaying the stored input against this revision gives a different result than the one stored; the stored event or the archive does not match what the pod ran',
    'masked-confirmed': `the replay gives the stored result, but it is not exact: ${maskedNote}`,
    'masked-differs': `an exact replay is impossible: ${maskedNote}, and with it the result differs; the explanation below is as far as the unmasked input allows`,
    'not-replayable': '',
  }[status];
  x.replay = { status, note, allow: replayed.allow, reasons: replayed.reasons };
  return replayed;
}

// OPA's account over the bundle's own Rego: the rule behind each reason, and for a denial each grant
// condition of what the call addressed.
async function opaAccount(x: Explanation, e: DecisionEvent, bundle: VerifiedBundle, input: Record<string, unknown>, replayed: Replayed | undefined): Promise<void> {
  const operation = x.stored.operation ?? replayed?.operation;
  const target = bundle.spec ? grantTarget(bundle.spec, input, operation) : undefined;
  try {
    const account = await explainWithOpa(bundle.files, 'data.warden.decision', input, target ? conditionChecks(target) : {});
    const opaResult = obj(account.result);
    const opaReasons = strings(opaResult.reasons);
    x.opa = { ...(typeof opaResult.allow === 'boolean' ? { allow: opaResult.allow } : {}), reasons: opaReasons, agreesWithWasm: !!replayed && opaResult.allow === replayed.allow && sameReasons(opaReasons, replayed.reasons), held: account.held };
    const decisionRule = [...account.held].reverse().find((r) => r.name === 'decision' && r.file !== 'warden/entrypoints.rego');
    x.reasons = x.stored.reasons.map((reason) => {
      const rule = account.producedBy[reason] ?? decisionRule;
      return rule ? { reason, rule } : { reason };
    });
    if (e.outcome !== 'allow') {
      const denials = opaResult.allow === false && target ? opaReasons.filter((r) => !r.startsWith('no rule grants')) : [];
      const generated = bundle.files.get('warden/generated.rego')?.toString('utf8');
      x.wouldAllow = judgeGrants(target, account.checks, obj(input.source), generated, x.call, denials);
    }
  } catch (err) {
    if (!(err instanceof TraceError)) throw err;
    x.replay.note += ` (OPA's trace is unavailable: ${err.message})`;
  }
}

/**
 * Explain one stored decision; undefined when no event has this id. Steps: what the event says; the
 * bundle revision that decided, from the archive; admission findings, or why the call cannot be
 * replayed, or a replay in WASM and OPA's account of it.
 */
export async function explainDecision(decisionId: string, sources: ExplainSources): Promise<Explanation | undefined> {
  const stored = await sources.event(decisionId);
  if (!stored) return undefined;
  const e = stored.event;
  const which = decidingBundle(e);
  const x = storedAccount(e, which);
  const kept = which.revision ? await loadKept(sources.archive, which.name, which.revision) : undefined;
  if (kept) Object.assign(x.bundle, { found: 'archive', sha256: kept.sha256, keptAt: new Date(kept.keptAt).toISOString() });
  if (e.kind === 'admission') {
    x.findings = admissionFindings(obj(e.result), kept?.bundle);
    x.replay.note = 'admission decisions are not replayed: the event records the findings but not the reviewed object (it may hold secrets); each finding below names its rule';
    return x;
  }
  const unreplayable = whyNotReplayable(e, which, kept, sources.archive);
  if (unreplayable !== undefined || !kept || !e.input) {
    x.replay.note = unreplayable ?? '';
    return x;
  }
  const replayed = await replayInWasm(x, kept.bundle, e.input);
  await opaAccount(x, e, kept.bundle, e.input, replayed);
  return x;
}
