// The console's only script (served as is, no build): the live feed over SSE and the who-talks-to-whom
// graph drawn and laid out by cytoscape. Rows arrive as HTML the server escaped.
/* global document, window, EventSource, fetch, URLSearchParams, setTimeout, cytoscape -- the browser's, and cytoscape.min.js loaded before this script */
'use strict';

(function feed() {
  const body = document.getElementById('feed');
  const state = document.getElementById('live-state');
  if (!body || !body.dataset.stream) return;
  const source = new EventSource(body.dataset.stream);
  source.addEventListener('open', () => {
    if (state) state.textContent = 'live';
  });
  source.addEventListener('error', () => {
    if (state) state.textContent = 'reconnecting…';
  });
  source.addEventListener('decision', (e) => {
    const { html } = JSON.parse(e.data);
    body.insertAdjacentHTML('afterbegin', html);
    body.firstElementChild.classList.add('fresh');
    // Bounded: the page keeps the newest 500 rows.
    while (body.children.length > 500) body.lastElementChild.remove();
  });
})();

(function graph() {
  const box = document.getElementById('graph');
  if (!box || !box.dataset.src || typeof cytoscape !== 'function') return;
  // A wide window's first aggregate is computed off the request path: 202 until it is ready (bounded retries).
  const load = (tries) =>
    fetch(box.dataset.src, { headers: { accept: 'application/json' } }).then((r) => {
      if (r.status === 202 && tries > 0) return new Promise((ok) => setTimeout(ok, 1000)).then(() => load(tries - 1));
      if (r.status !== 200) throw new Error(`graph data: ${r.status}`);
      return r.json();
    });
  load(120)
    .then(({ edges }) => {
      // The page was rendered before the aggregate existed: render it again, with its table and note.
      if (box.dataset.pending === 'true') return void window.location.reload();
      const nodes = new Map();
      const elements = [];
      const node = (id, label, kind) => {
        if (!nodes.has(id)) {
          nodes.set(id, true);
          elements.push({ data: { id, label, kind } });
        }
      };
      edges.forEach((e, i) => {
        const from = `p:${e.source}`;
        const to = `w:${e.namespace}/${e.destination}`;
        node(from, e.source.replace(/^spiffe:\/\/[^/]+\/ns\/([^/]+)\/sa\/(.+)$/, '$1/$2'), 'caller');
        node(to, `${e.namespace}/${e.destination}`, 'workload');
        const label = `✓ ${e.allow}  ✗ ${e.deny}${e.dry_run_deny ? `  ~ ${e.dry_run_deny}` : ''}`;
        elements.push({ data: { id: `e${i}`, source: from, target: to, label, denied: e.deny > 0 ? 1 : 0, principal: e.source, workload: e.destination, namespace: e.namespace } });
      });
      box.dataset.edges = String(edges.length);
      const cy = cytoscape({
        container: box,
        elements,
        layout: { name: 'breadthfirst', directed: true, spacingFactor: 1.1, padding: 20 },
        style: [
          { selector: 'node', style: { label: 'data(label)', 'font-size': 11, 'text-valign': 'bottom', 'text-margin-y': 4, 'background-color': '#5b7bd5', width: 18, height: 18 } },
          { selector: 'node[kind = "workload"]', style: { shape: 'round-rectangle', 'background-color': '#2f8f5b', width: 26, height: 20 } },
          { selector: 'edge', style: { label: 'data(label)', 'font-size': 10, 'curve-style': 'bezier', 'target-arrow-shape': 'triangle', width: 2, 'line-color': '#2f8f5b', 'target-arrow-color': '#2f8f5b', 'text-background-color': '#fff', 'text-background-opacity': 0.9 } },
          { selector: 'edge[denied = 1]', style: { 'line-color': '#c5221f', 'target-arrow-color': '#c5221f' } },
        ],
      });
      cy.on('tap', 'edge', (evt) => {
        const d = evt.target.data();
        const q = new URLSearchParams(window.location.search);
        q.set('principal', d.principal);
        q.set('workload', d.workload);
        q.set('namespace', d.namespace);
        window.location.href = `/ui/feed?${q.toString()}`;
      });
      // Kept reachable for the console's browser test (it clicks an edge drawn on the canvas).
      window.wardenGraph = cy;
      box.dataset.ready = 'true';
    })
    .catch(() => {
      box.textContent = 'the graph could not be loaded';
    });
})();
