// Prometheus metrics of one plugin instance (its own registry: no global state) and the admin server
// that exposes them with /healthz and /readyz.
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** The plugin's metrics. */
export class PluginMetrics {
  // Per-call figures are appended here and reach prom-client when /metrics is scraped (or when many
  // piled up): an observe() with its label lookup costs microseconds per call on a cache the proxy's
  // sockets keep cold; an append costs nanoseconds, and the batch runs hot.
  private readonly pendingEval: number[] = [];
  private readonly pendingHeld: number[] = [];
  /** outcome → front end → count (both from small fixed sets: no key is built per call). */
  private readonly pendingDecisions = new Map<string, Map<string, number>>();
  readonly registry = new Registry();
  readonly decisions = new Counter({
    name: 'warden_decisions_total',
    help: 'Decisions by outcome and reason class',
    labelNames: ['outcome', 'source'] as const,
    registers: [this.registry],
    collect: () => this.flush(),
  });
  readonly evalSeconds = new Histogram({
    name: 'warden_policy_eval_seconds',
    help: 'Policy evaluation time',
    buckets: [5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 5e-3, 2e-2],
    registers: [this.registry],
    collect: () => this.flush(),
  });
  readonly heldSeconds = new Histogram({
    name: 'warden_proxy_held_seconds',
    help: "Time a call forwarded on the sidecar's fast path spent in the sidecar: its request head to its forwarding, plus the answer's first bytes to its last write (the upstream's time is not counted)",
    buckets: [2.5e-5, 5e-5, 1e-4, 2e-4, 4e-4, 8e-4, 1.6e-3, 3.2e-3, 6.4e-3, 1.28e-2, 5e-2],
    registers: [this.registry],
    collect: () => this.flush(),
  });
  // Decisions answered with a result reused (Policy.evaluate): a plain number, read when /metrics is scraped.
  private reusedCount = 0;
  private readonly reusedCounter: Counter = new Counter({
    name: 'warden_policy_results_reused_total',
    help: 'Decisions answered with the result the policy gave before for the same selected input (pure policies only; no evaluation ran)',
    registers: [this.registry],
    collect: () => {
      this.reusedCounter.reset();
      this.reusedCounter.inc(this.reusedCount);
    },
  });
  // Lookups of remembered tools/list answers (proxy-plugin/mcp/list-answers.ts): plain numbers, read when
  // /metrics is scraped.
  private readonly listLookups = { hit: 0, miss: 0 };
  private readonly listMemoryCounter: Counter<'result'> = new Counter({
    name: 'warden_mcp_tool_list_memory_total',
    help: "Lookups of remembered tools/list answers: hit = answered from memory (the server's answer was one filtered before, but for its id), miss = filtered from the server's answer",
    labelNames: ['result'] as const,
    registers: [this.registry],
    collect: () => {
      this.listMemoryCounter.reset();
      this.listMemoryCounter.inc({ result: 'hit' }, this.listLookups.hit);
      this.listMemoryCounter.inc({ result: 'miss' }, this.listLookups.miss);
    },
  });
  readonly bundleLoads = new Counter({ name: 'warden_bundle_loads_total', help: 'Bundle load attempts by result', labelNames: ['result'] as const, registers: [this.registry] });
  readonly bundleInfo = new Gauge({ name: 'warden_bundle_info', help: 'The loaded bundle (value 1), labelled with its revision', labelNames: ['revision'] as const, registers: [this.registry] });
  readonly bundleBuiltAt = new Gauge({ name: 'warden_bundle_built_timestamp_seconds', help: 'Build time of the loaded bundle (age = time() - this)', registers: [this.registry] });
  readonly bundleLoadedAt = new Gauge({ name: 'warden_bundle_loaded_timestamp_seconds', help: 'When the loaded bundle was swapped in', registers: [this.registry] });
  private queueDepth = 0;
  /** Set on every recorded decision: a plain number, read into the gauge when /metrics is scraped. */
  readonly logQueue = {
    set: (depth: number): void => {
      this.queueDepth = depth;
    },
  };
  private readonly logQueueGauge: Gauge = new Gauge({
    name: 'warden_decision_log_queue_depth',
    help: 'Decision events waiting to be shipped',
    registers: [this.registry],
    collect: (): void => this.logQueueGauge.set(this.queueDepth),
  });
  readonly logDropped = new Counter({ name: 'warden_decision_log_dropped_total', help: 'Decision events lost (buffer and spill file full)', registers: [this.registry] });
  readonly logSpilled = new Counter({ name: 'warden_decision_log_spilled_total', help: 'Decision events written to the local spill file', registers: [this.registry] });
  readonly logShipped = new Counter({ name: 'warden_decision_log_shipped_total', help: 'Decision events accepted by the engine', registers: [this.registry] });

  /** One policy evaluation took `seconds`. */
  evaluated(seconds: number): void {
    if (this.pendingEval.push(seconds) >= 4096) this.flush();
  }

  /** One decision reused a result the policy gave before. */
  reused(): void {
    this.reusedCount++;
  }

  /** One lookup of a remembered tools/list answer: found, or filtered anew. */
  listMemory(hit: boolean): void {
    if (hit) this.listLookups.hit++;
    else this.listLookups.miss++;
  }

  /** The sidecar held one forwarded call for `seconds` (FastPathOptions.held). */
  held(seconds: number): void {
    if (this.pendingHeld.push(seconds) >= 4096) this.flush();
  }

  /** One decision was made (outcome × front end). */
  decided(outcome: string, source: string): void {
    let bySource = this.pendingDecisions.get(outcome);
    if (!bySource) this.pendingDecisions.set(outcome, (bySource = new Map()));
    bySource.set(source, (bySource.get(source) ?? 0) + 1);
  }

  /** Move what the hot path recorded into the prom-client metrics. */
  flush(): void {
    for (const v of this.pendingEval) this.evalSeconds.observe(v);
    this.pendingEval.length = 0;
    for (const v of this.pendingHeld) this.heldSeconds.observe(v);
    this.pendingHeld.length = 0;
    for (const [outcome, bySource] of this.pendingDecisions) for (const [source, n] of bySource) this.decisions.inc({ outcome, source }, n);
    this.pendingDecisions.clear();
  }

  /** Record a newly active bundle. */
  bundleLoaded(revision: string, builtAtMs: number, loadedAtMs: number): void {
    this.bundleInfo.reset();
    this.bundleInfo.set({ revision }, 1);
    this.bundleBuiltAt.set(builtAtMs / 1000);
    this.bundleLoadedAt.set(loadedAtMs / 1000);
  }
}

/** Serve /metrics, /healthz (process up), /readyz (a bundle is loaded) and the app probes `appProbe` configures (proxy-plugin/app-health.ts). */
export function createAdminServer(metrics: PluginMetrics, isReady: () => boolean, appProbe?: (path: string) => Promise<number> | undefined): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const probed = req.method === 'GET' ? appProbe?.(path) : undefined;
    if (req.method !== 'GET') {
      res.writeHead(405).end();
    } else if (probed) {
      void probed.then((status) => res.writeHead(status, { 'content-type': 'text/plain' }).end(status < 400 ? 'app healthy\n' : 'app unhealthy\n'));
    } else if (path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        () => res.writeHead(500).end(),
      );
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const ready = isReady();
      res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ready\n' : 'no bundle loaded yet\n');
    } else {
      res.writeHead(404).end();
    }
  });
}
