// Where the plugin's policy comes from: pulled from the engine's bundle server (ETag + long poll, or
// short poll with jitter) or read from a local file; verified before it is loaded; swapped atomically.
import { readFile } from 'node:fs/promises';
import type { BundleMetadata } from '../formats/bundle-manifest.js';
import { builtAtOf, generationOf, openBundle, refuseOlder } from '../runtime/bundle.js';
import type { Clock } from '../runtime/clock.js';
import { EngineConnection, sameRevisionEtag, type EngineResponse } from '../runtime/engine-connection.js';
import { formatOciReference, pullBundle, RegistryError, type OciReference, type RegistryClient } from '../runtime/oci-registry.js';
import { SIDECAR_LIMITS, withLimits } from '../runtime/evaluation-limits.js';
import { Policy } from '../runtime/policy.js';
import type { TrustPolicy } from '../runtime/signature.js';

/** A loaded bundle: the policy plus what the pipeline reads from its manifest and data. */
export interface ActiveBundle {
  policy: Policy;
  revision: string;
  metadata: Partial<BundleMetadata>;
  mode: 'enforce' | 'dry-run';
  /** Place in the policy history (manifest metadata.generation): a lower one never replaces this. */
  generation: number;
  /** Build time (manifest metadata.builtAt, else the signature's iat), ms since epoch; informational. */
  builtAt: number;
  loadedAt: number;
  etag?: string;
}

/** What happened to one bundle the source saw. */
export type BundleEvent =
  | { type: 'loaded'; revision: string; origin: string }
  | { type: 'rejected'; origin: string; reason: string }
  | { type: 'unreachable'; origin: string; reason: string };

/** Options of a bundle source. */
export interface BundleSourceOptions {
  workload: string;
  trust: TrustPolicy;
  /** Clock the policy's time builtins read (default: the system clock). */
  clock?: Clock;
  /** The engine to pull from: a connection (mTLS, shared with the decision log) or a base URL. */
  engine?: EngineConnection | string;
  /** An OCI registry to poll instead of the engine: the tag is followed, each new digest pulled. */
  registry?: { reference: OciReference; client: RegistryClient };
  /** Long-poll wait asked of the server, seconds (0 = short poll). */
  longPollSeconds?: number;
  /** Short-poll / retry interval, ms; jitter of ±50% is added. */
  pollIntervalMs?: number;
  onEvent?: (e: BundleEvent) => void;
  now?: () => number;
  random?: () => number;
}

/** Holds the active bundle; `current` is read once per call, so a swap never changes a call midway. */
export class BundleSource {
  private active: ActiveBundle | undefined;
  private stopped = false;
  private inflight: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly engine: EngineConnection | undefined;

  constructor(private readonly opts: BundleSourceOptions) {
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    this.engine = typeof opts.engine === 'string' ? new EngineConnection(opts.engine) : opts.engine;
  }

  /** The bundle in force, or undefined (deny-all) until a first good one is loaded. */
  get current(): ActiveBundle | undefined {
    return this.active;
  }

  /** Verify, load and (if not of a lower generation than the active one) install a bundle archive. */
  async install(bytes: Uint8Array, origin: string, etag?: string): Promise<ActiveBundle> {
    try {
      const bundle = await openBundle(bytes, this.opts.trust);
      const metadata = (bundle.manifest.metadata ?? {}) as Partial<BundleMetadata>;
      if (metadata.workload && metadata.workload !== this.opts.workload) throw new Error(`bundle is for workload ${metadata.workload}, not ${this.opts.workload}`);
      const generation = generationOf(bundle);
      refuseOlder({ revision: bundle.revision, generation }, this.active);
      // The workload's own limits (workload.yaml, carried in the signed bundle) over the sidecar's defaults.
      const limits = withLimits(SIDECAR_LIMITS, metadata.limits, `bundle ${bundle.revision} metadata`);
      const policy = await Policy.load(bundle, { limits, ...(this.opts.clock ? { clock: this.opts.clock } : {}) });
      const next: ActiveBundle = {
        policy,
        revision: bundle.revision,
        metadata,
        mode: metadata.mode === 'dry-run' ? 'dry-run' : 'enforce',
        generation,
        builtAt: builtAtOf(bundle),
        loadedAt: this.now(),
        ...(etag ? { etag } : {}),
      };
      this.active = next; // the atomic swap: one reference assignment
      this.opts.onEvent?.({ type: 'loaded', revision: next.revision, origin });
      return next;
    } catch (err) {
      const reason = String((err as Error)?.message ?? err);
      this.opts.onEvent?.({ type: 'rejected', origin, reason });
      throw err;
    }
  }

  /** Load from a local bundle file. */
  async loadFile(path: string): Promise<ActiveBundle> {
    return this.install(await readFile(path), `file ${path}`);
  }

  /** Start pulling from the registry or the engine; resolves once the first attempt finished (loaded or not). */
  start(): Promise<void> {
    if (!this.engine && !this.opts.registry) throw new Error('BundleSource.start needs an engine URL or a registry');
    let first!: () => void;
    const firstDone = new Promise<void>((r) => (first = r));
    this.loop = this.opts.registry ? this.registryLoop(this.opts.registry, first) : this.pullLoop(first);
    return firstDone;
  }

  /** Stop pulling; an in-flight long poll is aborted. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.inflight?.abort();
    this.wake?.();
    await this.loop;
    if (typeof this.opts.engine === 'string') this.engine?.close();
  }

  private jittered(ms: number): number {
    return Math.round(ms * (0.5 + this.random()));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  // Poll the tag: a HEAD names its digest; only a digest not seen before is downloaded (and verified).
  private async registryLoop(registry: NonNullable<BundleSourceOptions['registry']>, firstDone: () => void): Promise<void> {
    const origin = formatOciReference(registry.reference);
    const interval = this.opts.pollIntervalMs ?? 30_000;
    let failures = 0;
    let seen: string | undefined;
    while (!this.stopped) {
      try {
        const got = await pullBundle(registry.client, registry.reference, seen);
        if (got) {
          seen = got.digest; // accepted or refused, the same digest is not fetched again
          await this.install(got.bytes, origin, got.digest).catch(() => undefined); // refused: reported via onEvent, last good kept
        }
        failures = 0;
      } catch (err) {
        if (this.stopped) break;
        failures++;
        const reason = String((err as Error)?.message ?? err);
        this.opts.onEvent?.(err instanceof RegistryError && err.unreachable ? { type: 'unreachable', origin, reason } : { type: 'rejected', origin, reason });
      }
      firstDone();
      if (!this.stopped) await this.sleep(this.jittered(failures ? Math.min(interval * 2 ** Math.min(failures - 1, 5), 300_000) : interval));
    }
    firstDone();
  }

  private async pullLoop(firstDone: () => void): Promise<void> {
    const path = `bundles/${encodeURIComponent(this.opts.workload)}`;
    const url = new URL(path, `${this.engine!.base.href.replace(/\/+$/, '')}/`).href;
    const interval = this.opts.pollIntervalMs ?? 5000;
    const wait = this.opts.longPollSeconds ?? 30;
    let failures = 0;
    let lastSeenEtag: string | undefined;
    while (!this.stopped) {
      let delay = 0;
      try {
        // Long poll only once something is loaded: at start we want an answer now.
        const etag = this.active?.etag;
        const headers: Record<string, string> = {};
        if (etag) headers['if-none-match'] = etag;
        if (etag && wait > 0) headers.prefer = `wait=${wait}`;
        this.inflight = new AbortController();
        const timer = setTimeout(() => this.inflight?.abort(), (etag && wait > 0 ? wait * 1000 : 0) + 10_000);
        let res: EngineResponse;
        try {
          res = await this.engine!.request(path, { headers, signal: this.inflight.signal });
          if (res.status === 200) {
            const bytes = new Uint8Array(res.body);
            const tag = res.headers.etag;
            const active = this.active;
            const kept = sameRevisionEtag(res, active?.revision);
            if (active && kept) {
              this.active = { ...active, etag: kept };
            } else if (tag === undefined || tag !== lastSeenEtag) {
              lastSeenEtag = tag;
              await this.install(bytes, url, tag).catch(() => undefined); // rejected: reported via onEvent, last good kept
            } else {
              delay = this.jittered(interval); // the same rejected bytes again: do not spin
            }
          } else if (res.status !== 304) {
            throw new Error(`bundle server answered ${res.status}`);
          }
        } finally {
          clearTimeout(timer);
        }
        failures = 0;
        if (!(etag && wait > 0) && delay === 0) delay = this.jittered(interval);
      } catch (err) {
        if (this.stopped) break;
        failures++;
        this.opts.onEvent?.({ type: 'unreachable', origin: url, reason: String((err as Error)?.cause ?? (err as Error)?.message ?? err) });
        delay = this.jittered(Math.min(interval * 2 ** Math.min(failures - 1, 5), 60_000));
      }
      firstDone();
      if (delay > 0 && !this.stopped) await this.sleep(delay);
    }
    firstDone();
  }
}
