// Admission benchmark: latency over HTTPS (keep-alive, as the API server calls it) at a fixed rate,
// for a bounded time, in two flows measured in the same run against the same webhook process:
//   validate          POST /validate of real AdmissionReview payloads (compliant, refused, warned)
//   mutate+validate   what a Pod costs when it is injected: POST /mutate, then POST /validate of the
//                     injected Pod, one after the other as the API server calls them; the latency of
//                     one review is the sum.
// Each flow at 100 and at 500 reviews/s (a rollout of hundreds of pods arrives as a burst).
// The webhook runs in a child process. Prints a table; never passes or fails.
// Run: npx tsx bench/admission.bench.ts   (BENCH_SECONDS, BENCH_RATES=100,500 to change the load)
import type { Figure } from './figure.js';
import { applyJsonPatch } from '../admission/json-patch.js';
import { fork } from 'node:child_process';
import { Agent, request } from 'node:https';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { admit } from '../admission/decide.js';
import { mutate } from '../admission/mutate.js';
import { admissionReview, buildExamplePolicies, deployment, podOf, PROXY_IMAGE, webhookFor } from '../test/support/admission-fixture.js';

/** Which requests one review makes. */
export type AdmissionFlow = 'validate' | 'mutate+validate';

/** What one run measured (latencies in milliseconds). */
export interface AdmissionBenchResult {
  flow: AdmissionFlow;
  rate: number;
  seconds: number;
  sent: number;
  ok: number;
  errors: number;
  denied: number;
  warned: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  /** CPU time of the webhook process per review, ms. */
  cpuPerReview: number;
  machine: { cpus: number; loadavg1: number };
}

const payloads = [
  deployment({ name: 'orders' }),
  deployment({ name: 'orders', app: { securityContext: { privileged: true } } }),
  deployment({ name: 'storefront', serviceAccount: 'storefront', app: { image: 'registry.example.com/shop/storefront:2.3.0' } }),
  deployment({ name: 'payments', serviceAccount: 'payments', inject: false }),
  deployment({ name: 'unlabelled', labels: { app: 'unlabelled' } }),
].map((d, i) => JSON.stringify(admissionReview(d, 'shop', i % 2 ? 'UPDATE' : 'CREATE')));

/** The Pod a ReplicaSet creates, and the same Pod as the injector leaves it (the API server applies the patch). */
async function podPayloads(bundles: Parameters<typeof webhookFor>[0]): Promise<{ create: string; injected: string }> {
  const pod = podOf(deployment({ name: 'orders', inject: false, app: { ports: [{ containerPort: 8080 }] } }));
  const webhook = await webhookFor(bundles, { config: { injection: { proxyImage: PROXY_IMAGE } } });
  const answer = (await mutate(admissionReview(pod, 'shop'), webhook.deps, 'namespace')).body as { response: { patch?: string } };
  if (!answer.response.patch) throw new Error('the injector returned no patch for the benchmark pod');
  const injected = applyJsonPatch(pod, JSON.parse(Buffer.from(answer.response.patch, 'base64').toString('utf8')) as never) as typeof pod;
  const check = (await admit(admissionReview(injected, 'shop'), webhook.deps)).body as { response: { allowed: boolean; status?: { message?: string } } };
  if (!check.response.allowed) throw new Error(`the injected benchmark pod is refused: ${check.response.status?.message}`);
  return { create: JSON.stringify(admissionReview(pod, 'shop')), injected: JSON.stringify(admissionReview(injected, 'shop')) };
}

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;

/** Measure each flow at each rate (reviews per second) for `seconds`, against one webhook process. */
export async function measure(opts: { rates?: number[]; seconds?: number; flows?: AdmissionFlow[] } = {}): Promise<AdmissionBenchResult[]> {
  const rates = opts.rates ?? (process.env.BENCH_RATES ?? '100,500').split(',').map(Number);
  const seconds = opts.seconds ?? Number(process.env.BENCH_SECONDS ?? 5);
  const flows = opts.flows ?? ['validate', 'mutate+validate'];
  const built = await buildExamplePolicies();
  const pods = await podPayloads(built);
  const child = fork(fileURLToPath(new URL('./admission-server.ts', import.meta.url)), [built.bundles, PROXY_IMAGE], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  try {
    const { port, caPem } = await new Promise<{ port: number; caPem: string }>((resolve, reject) => {
      child.once('message', (m) => resolve(m as { port: number; caPem: string }));
      child.once('exit', (code) => reject(new Error(`webhook process exited (${code})`)));
    });
    const cpu = () => new Promise<number>((resolve) => {
      child.once('message', (m) => resolve((m as { cpu: number }).cpu));
      child.send('cpu');
    });
    const agent = new Agent({ keepAlive: true, maxSockets: 16, ca: caPem });
    const post = (body: string, path = '/validate') => new Promise<{ ms: number; text: string }>((resolve, reject) => {
      const t0 = performance.now();
      const req = request({ host: '127.0.0.1', port, path, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => (res.statusCode === 200 ? resolve({ ms: performance.now() - t0, text }) : reject(new Error(`HTTP ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end(body);
    });
    // One review of a flow: its latency and the final answer.
    const reviewOnce = async (flow: AdmissionFlow, i: number): Promise<{ ms: number; text: string }> => {
      if (flow === 'validate') return post(payloads[i % payloads.length]!);
      const m = await post(pods.create, '/mutate');
      const v = await post(pods.injected, '/validate');
      return { ms: m.ms + v.ms, text: v.text };
    };
    for (let i = 0; i < 50; i++) for (const flow of flows) await reviewOnce(flow, i); // warm up JIT, TLS session, caches
    const results: AdmissionBenchResult[] = [];
    for (const rate of rates) for (const flow of flows) results.push(await once(flow, rate));
    agent.destroy();
    return results;

    async function once(flow: AdmissionFlow, rate: number): Promise<AdmissionBenchResult> {
      const cpuBefore = await cpu();
      const latencies: number[] = [];
      let errors = 0;
      let denied = 0;
      let warned = 0;
      const total = Math.round(rate * seconds);
      const start = performance.now();
      const inflight: Array<Promise<void>> = [];
      // Open loop: request i is sent at start + i/rate whatever happened to the previous ones.
      for (let i = 0; i < total; i++) {
        const due = start + (i * 1000) / rate;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        inflight.push(
          reviewOnce(flow, i).then(
            ({ ms, text }) => {
              latencies.push(ms);
              const r = (JSON.parse(text) as { response: { allowed: boolean; warnings?: string[] } }).response;
              if (!r.allowed) denied++;
              if (r.warnings?.length) warned++;
            },
            () => void errors++,
          ),
        );
      }
      await Promise.all(inflight);
      const cpuAfter = await cpu();
      const sorted = latencies.sort((a, b) => a - b);
      const round = (x: number) => Math.round(x * 100) / 100;
      return {
        flow,
        rate,
        seconds,
        sent: total,
        ok: latencies.length,
        errors,
        denied,
        warned,
        p50: round(quantile(sorted, 0.5)),
        p90: round(quantile(sorted, 0.9)),
        p99: round(quantile(sorted, 0.99)),
        max: round(sorted.at(-1) ?? NaN),
        cpuPerReview: round((cpuAfter - cpuBefore) / 1000 / Math.max(1, latencies.length)),
        machine: { cpus: cpus().length, loadavg1: round(loadavg()[0]!) },
      };
    }
  } finally {
    child.kill();
    built.cleanup();
  }
}

/** The figures as a table. */
export function table(rs: AdmissionBenchResult[]): string {
  const r0 = rs[0]!;
  return [
    `admission webhook over HTTPS keep-alive, ${r0.seconds} s per row (${r0.machine.cpus} CPUs, load ${r0.machine.loadavg1} at the first row; a shared machine: compare rows, not absolutes)`,
    'flow              rate/s  sent   ok     errors  denied  p50 ms  p90 ms  p99 ms  max ms  cpu/review ms',
    ...rs.map((r) => `${r.flow.padEnd(18)}${String(r.rate).padEnd(8)}${String(r.sent).padEnd(7)}${String(r.ok).padEnd(7)}${String(r.errors).padEnd(8)}${String(r.denied).padEnd(8)}${String(r.p50).padEnd(8)}${String(r.p90).padEnd(8)}${String(r.p99).padEnd(8)}${String(r.max).padEnd(8)}${r.cpuPerReview}`),
  ].join('\n');
}

/** The comparison as figures for `npm run bench`. */
export async function run(): Promise<Figure[]> {
  return (await measure()).flatMap(figures);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.stdout.write(`${table(await measure())}\n`);
}

/** One measurement as table figures. */
export function figures(r: AdmissionBenchResult): Figure[] {
  const load = `load ${r.machine.loadavg1.toFixed(1)} on ${r.machine.cpus} cores; ${r.sent} reviews at ${r.rate}/s, ${r.errors} errors`;
  const name = (what: string) => `${r.flow} ${r.rate}/s ${what}`;
  return [
    { suite: 'admission', name: name('latency p50'), value: r.p50, unit: 'ms', detail: load },
    { suite: 'admission', name: name('latency p99'), value: r.p99, unit: 'ms', detail: 'target ≤ 10 ms at 500 reviews/s' },
    { suite: 'admission', name: name('webhook CPU per review'), value: r.cpuPerReview, unit: 'ms' },
  ];
}
