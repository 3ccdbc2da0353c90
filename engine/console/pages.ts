// The console's pages, rendered on the server as typed functions of their data (no framework, no
// bundler): every value goes through `html`, which escapes it. Pages hold bounded data only (a page
// of events, an aggregate); the browser script adds the live feed and draws the graph.
import type { RefusalGroup } from '../audit/refusals.js';
import type { StoredEvent, Edge, LogSender } from '../audit/store.js';
import type { GraphPending, GraphView } from './graph-snapshots.js';
import { callOf, principalOf } from '../audit/render.js';
import { matrixHtml } from '../diff/render.js';
import type { WorkloadDiff } from '../diff/replay.js';
import type { Explanation } from '../explain/explanation.js';
import { decidingRules } from '../explain/render.js';
import { html, page, type Html } from '../html.js';

/** The pages of the navigation bar. */
const NAV: Array<[string, string]> = [
  ['feed', 'Live feed'],
  ['graph', 'Who talks to whom'],
  ['workloads', 'Workloads'],
  ['admission', 'Admission'],
];

/** The frame of every page. */
export function layout(title: string, active: string, who: string, body: Html): string {
  const nav = html`<nav><strong>Warden</strong>${NAV.map(([k, label]) => html`<a href="/ui/${k}"${k === active ? html` class="active"` : ''}>${label}</a>`)}<span class="who">signed in as ${who}</span></nav>`;
  return page(`${title} · Warden`, html`${nav}<main><h1>${title}</h1>${body}</main>`, { href: '/ui/assets/console.css' }, ['/ui/assets/cytoscape.min.js', '/ui/assets/console.js']);
}

/** One decision as a table row (also what the live feed sends). */
export function eventRow(s: StoredEvent): Html {
  const e = s.event;
  // Calls carry reasons; admission refusals carry findings (the enforcing ones refused the object).
  const findings = Array.isArray(e.result?.findings) ? (e.result.findings as Array<{ set?: unknown; rule?: unknown; msg?: unknown; mode?: unknown }>).filter((f) => f?.mode === 'enforce') : [];
  const reasons = Array.isArray(e.result?.reasons)
    ? (e.result.reasons as unknown[]).map(String).join('; ')
    : findings.length
      ? findings.map((f) => `${String(f.set)}/${String(f.rule)}: ${String(f.msg)}`).join('; ')
      : (e.error ?? '');
  return html`<tr class="${e.outcome}" data-seq="${s.seq}"><td>${e.timestamp.replace('T', ' ').replace('Z', '')}</td><td class="outcome">${e.outcome}</td><td>${e.labels.namespace}/${e.labels.workload}</td><td>${principalOf(e)}</td><td>${callOf(e)}</td><td class="reasons">${e.outcome === 'allow' ? '' : reasons}</td><td><a href="/ui/decisions/${encodeURIComponent(e.decision_id)}">explain</a></td></tr>`;
}

const FILTER_FIELDS: Array<[string, string]> = [
  ['since', 'since (15m, 1h, 7d)'],
  ['workload', 'workload'],
  ['namespace', 'namespace'],
  ['principal', 'principal'],
  ['decision', 'decision'],
  ['tool', 'tool'],
  ['operation', 'operation'],
];

function filterForm(action: string, values: URLSearchParams, fields = FILTER_FIELDS): Html {
  return html`<form class="filters" method="get" action="${action}">${fields.map(([name, label]) => html`<label>${label}<input name="${name}" value="${values.get(name) ?? ''}"></label>`)}<button type="submit">filter</button></form>`;
}

/** The feed: the newest page of matching decisions, then live updates over SSE. */
export function feedPage(who: string, events: StoredEvent[], params: URLSearchParams, stream: string, older: string | undefined, error?: string): string {
  return layout(
    'Live feed',
    'feed',
    who,
    html`${filterForm('/ui/feed', params)}${error ? html`<p class="error">${error}</p>` : ''}
<p class="live"><span id="live-state">connecting…</span> · newest first · ${events.length} shown</p>
<table class="events"><thead><tr><th>time (UTC)</th><th>decision</th><th>workload</th><th>caller</th><th>call</th><th>why</th><th></th></tr></thead>
<tbody id="feed" data-stream="${stream}">${events.map(eventRow)}</tbody></table>${older ? html`<p><a href="${older}">older →</a></p>` : ''}`,
  );
}

const at = (r: { file: string; row: number } | undefined) => (r ? `${r.file}:${r.row}` : '-');

/** The decision page: the explanation of one decision. */
export function decisionPage(who: string, x: Explanation): string {
  const wa = x.wouldAllow;
  const body = html`<dl class="facts"><dt>decision</dt><dd class="${x.outcome}">${x.outcome} (${x.mode})</dd><dt>call</dt><dd><code>${x.call}</code></dd><dt>caller</dt><dd><code>${x.principal}</code></dd>
<dt>workload</dt><dd>${x.namespace}/${x.workload}</dd><dt>time</dt><dd>${x.timestamp}</dd><dt>bundle</dt><dd>${x.bundle.name} <code>${x.bundle.revision ?? 'none'}</code> (${x.bundle.found === 'archive' ? `kept ${x.bundle.keptAt}` : x.bundle.found})</dd>
<dt>replay</dt><dd><strong>${x.replay.status}</strong>: ${x.replay.note}</dd>${x.opa ? html`<dt>opa eval</dt><dd>${x.opa.allow ? 'allow' : 'deny'}, ${x.opa.agreesWithWasm ? 'agrees with the WASM replay' : 'DIFFERS from the WASM replay'}</dd>` : ''}${x.stored.error ? html`<dt>error</dt><dd>${x.stored.error}</dd>` : ''}</dl>
${x.reasons.length ? html`<h2>Reasons</h2><table><thead><tr><th>rule</th><th>reason</th></tr></thead><tbody>${x.reasons.map((r) => html`<tr><td><code>${at(r.rule)}</code></td><td>${r.reason}</td></tr>`)}</tbody></table>` : ''}
${wa ? html`<h2>What would have allowed it</h2><p class="summary">${wa.summary}</p><ul class="grants">${wa.grants.map((g) => html`<li class="${g.covers ? 'covers' : 'fails'}"><code>x-warden-authz.allow[${g.index}]</code> <code>${JSON.stringify(g.grant)}</code>${g.where ? html` <small>${g.where}</small>` : ''}<br>${g.covers ? '✓ covers the caller' : html`✗ ${g.void ?? g.conditions.filter((c) => !c.held).map((c) => c.says).join('; ')}`}</li>`)}</ul>` : ''}
${decidingRules(x).length ? html`<h2>Deciding rules <small>(opa eval --explain full over the bundle's Rego)</small></h2><table><tbody>${decidingRules(x).map((r) => html`<tr><td><code>${at(r)}</code></td><td><code>${r.source}</code></td></tr>`)}</tbody></table>` : ''}
${x.findings ? html`<h2>Findings</h2><table><thead><tr><th>rule</th><th>mode</th><th>field</th><th>message</th><th>source</th><th>exemption</th></tr></thead><tbody>${x.findings.map((f) => html`<tr><td><code>${f.set}/${f.rule}</code></td><td>${f.mode}</td><td>${f.field ? html`<code>${f.field}</code>` : ''}</td><td>${f.msg}</td><td>${f.source}</td><td>${f.exemption}</td></tr>`)}</tbody></table>` : ''}
${x.masked.length ? html`<p class="note">Masked before the event left the pod: ${x.masked.map((m) => html`<code>${m}</code> `)}</p>` : ''}`;
  return layout(`Decision ${x.decision_id}`, 'feed', who, body);
}

const iso = (ms: number) => new Date(ms).toISOString().replace('.000Z', 'Z');

/** What a graph leaves out and when it was computed, in words. */
function graphNote(v: GraphView, now: number): Html {
  const shown = v.edges.reduce((n, e) => n + e.total, 0);
  const window = html`decisions ${v.from !== undefined ? html`from ${iso(v.from)}` : 'since the oldest stored'} to ${iso(v.to)}, as of ${iso(v.asOf)} (${age(new Date(v.asOf).toISOString(), now).replace(' old', ' ago')})`;
  const rest = v.edgeCount - v.edges.length;
  const cut = rest > 0 ? html`the <strong>${v.edges.length}</strong> busiest of ${v.edgeCount} edges (${shown} of ${v.eventCount} decisions); <strong>${rest} edges left out</strong> carry the other ${Math.max(0, v.eventCount - shown)} decisions` : html`all ${v.edges.length} edges (${v.eventCount} decisions)`;
  return html`<p class="note" id="graph-window">${window}: ${cut}.</p>`;
}

/** The graph page: the busiest edges as a table (and for the graph the script draws from /ui/api/graph), or a note that the window is being computed. */
export function graphPage(who: string, view: GraphView | GraphPending, params: URLSearchParams, now: number): string {
  const feed = (e: Edge) => `/ui/feed?${new URLSearchParams({ ...Object.fromEntries([...params].filter(([k]) => k !== 'limit')), principal: e.source, workload: e.destination, namespace: e.namespace }).toString()}`;
  const src = `/ui/api/graph?${params.toString()}`;
  if ('pending' in view) {
    return layout('Who talks to whom', 'graph', who, html`${filterForm('/ui/graph', params)}<div id="graph" data-src="${src}" data-pending="true"></div><p class="note" id="graph-window">This window is wide: its aggregate is being computed off the request path (started ${iso(view.since)}). The page reloads when it is ready.</p>`);
  }
  return layout(
    'Who talks to whom',
    'graph',
    who,
    html`${filterForm('/ui/graph', params)}<div id="graph" data-src="${src}"></div>${graphNote(view, now)}<p class="note">The last hour unless a filter says otherwise; windows wider than two hours are computed off the request path and refreshed every minute while they are viewed. Click an edge to list its decisions. Layout by cytoscape (breadthfirst).</p>
<table class="edges"><thead><tr><th>caller</th><th>workload</th><th>allow</th><th>deny</th><th>dry-run deny</th><th></th></tr></thead><tbody>${view.edges.map((e) => html`<tr><td><code>${e.source}</code></td><td>${e.namespace}/${e.destination}</td><td>${e.allow}</td><td>${e.deny}</td><td>${e.dry_run_deny}</td><td><a href="${feed(e)}">decisions</a></td></tr>`)}</tbody></table>`,
  );
}

/** A workload as the index lists it. */
export interface WorkloadSummary {
  name: string;
  revision: string;
  builtAt?: string;
}

const age = (iso: string | undefined, now: number) => {
  if (!iso) return 'unknown age';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  return s < 120 ? `${s} s old` : s < 7200 ? `${Math.round(s / 60)} min old` : s < 172800 ? `${Math.round(s / 3600)} h old` : `${Math.round(s / 86400)} days old`;
};

/** The workloads the engine serves bundles for. */
export function workloadsPage(who: string, list: WorkloadSummary[], now: number): string {
  return layout('Workloads', 'workloads', who, html`<table><thead><tr><th>workload</th><th>bundle revision</th><th>age</th></tr></thead><tbody>${list.map((w) => html`<tr><td><a href="/ui/workloads/${encodeURIComponent(w.name)}">${w.name}</a></td><td><code>${w.revision}</code></td><td>${age(w.builtAt, now)}</td></tr>`)}</tbody></table>`);
}

/** One workload: its bundle, its permission matrix (the one `warden diff` computes) and its traffic. */
export function workloadPage(who: string, w: WorkloadSummary, matrix: WorkloadDiff['matrix'] | undefined, counts: { allow: number; deny: number }, senders: LogSender[], now: number): string {
  const lost = senders.reduce((n, s) => n + s.dropped, 0);
  return layout(
    `Workload ${w.name}`,
    'workloads',
    who,
    html`<dl class="facts"><dt>bundle revision</dt><dd><code>${w.revision}</code></dd><dt>built</dt><dd>${w.builtAt ?? '?'} (${age(w.builtAt, now)})</dd>
<dt>last 24 h</dt><dd>${counts.allow} allowed, ${counts.deny} denied (<a href="/ui/feed?workload=${encodeURIComponent(w.name)}">feed</a>)</dd>
<dt>last rollout</dt><dd><a href="/ui/review/${encodeURIComponent(w.name)}">review</a> (the decisions that flipped between its two newest revisions, as warden diff --format html shows them)</dd>
<dt>decision-log drops</dt><dd>${senders.length ? html`${lost} event(s) lost for good by ${senders.length} pod(s), as each pod last reported with its decision log` : 'no pod has reported yet (pods report with every batch of decisions they ship)'}</dd></dl>
${senders.length ? html`<table id="drops"><thead><tr><th>pod</th><th>namespace</th><th>events dropped</th><th>reported</th></tr></thead><tbody>${senders.map((s) => html`<tr class="${s.dropped ? 'deny' : 'allow'}"><td>${s.instance}</td><td>${s.namespace}</td><td class="outcome">${s.dropped}</td><td>${age(new Date(s.reportedAt).toISOString(), now).replace(' old', ' ago')}</td></tr>`)}</tbody></table>` : ''}
<h2>Permission matrix</h2><p class="note">Every operation and tool × every caller the specs name, decided by the bundle now served (✓ allowed, · denied) — the matrix of <code>warden diff</code>.</p>${matrix ? matrixHtml(matrix) : html`<p>no bundle file to compute it from</p>`}`,
  );
}

/** Admission refusals grouped by rule and namespace; each group leads to its refusals. */
export function admissionPage(who: string, groups: RefusalGroup[], objects: number, capped: boolean, params: URLSearchParams): string {
  const list = (g: RefusalGroup) => `/ui/admission/refusals?${new URLSearchParams([...[...params].filter(([k]) => k !== 'namespace'), ['rule', g.rule], ['namespace', g.namespace]]).toString()}`;
  return layout(
    'Admission refusals',
    'admission',
    who,
    html`${filterForm('/ui/admission', params, FILTER_FIELDS.filter(([name]) => name === 'since' || name === 'namespace'))}<p class="note">${objects} refused object(s), grouped by the rule that refused them and the namespace${capped ? ` (the ${groups.length} largest groups)` : ''}. An object refused by two rules is in both groups.</p>
<table class="refusals"><thead><tr><th>rule</th><th>namespace</th><th>refusals</th><th>latest</th><th></th></tr></thead><tbody>${groups.map((g) => html`<tr><td><code>${g.rule}</code></td><td>${g.namespace}</td><td>${g.count}</td><td>${new Date(g.latest).toISOString()}</td><td><a href="${list(g)}">refusals</a></td></tr>`)}</tbody></table>`,
  );
}

/** One group's refusals, newest first, a page at a time; each row leads to its explanation. */
export function refusalsPage(who: string, rule: string, namespace: string, events: StoredEvent[], params: URLSearchParams, older: string | undefined): string {
  const back = `/ui/admission?${new URLSearchParams([...params].filter(([k]) => k !== 'rule' && k !== 'namespace')).toString()}`;
  return layout(
    `Refused by ${rule} in ${namespace}`,
    'admission',
    who,
    html`<p class="note"><a href="${back}">← all groups</a> · newest first · ${events.length} shown</p>
<table class="events"><thead><tr><th>time (UTC)</th><th>decision</th><th>workload</th><th>caller</th><th>call</th><th>why</th><th></th></tr></thead>
<tbody id="refusals">${events.map(eventRow)}</tbody></table>${older ? html`<p><a href="${older}">older →</a></p>` : ''}`,
  );
}

/** A page saying what went wrong. */
export function errorPage(status: number, message: string): string {
  return page(`Warden console: ${status}`, html`<main><h1>${status}</h1><p>${message}</p></main>`, { href: '/ui/assets/console.css' });
}
