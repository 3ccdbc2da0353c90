// Admission benchmark: latency of POST /validate over HTTPS (keep-alive, as the API server calls it)
// at a fixed rate of real AdmissionReview payloads — compliant, refused, warned — for a bounded time.
// The webhook runs in a child process. Prints a table; never passes or fails.
// Run: npx tsx bench/admission.bench.ts   (BENCH_SECONDS, BENCH_RATE to change the load)
import type { Figure } from './figure.js';
import { fork } from 'node:child_process';
import { Agent, request } from 'node:https';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { admissionReview, buildExamplePolicies, deployment } from '../test/support/admission-fixture.js';

/** What one run measured (latencies in milliseconds). */
export interface AdmissionBenchResult {
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

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;

/** Run the benchmark: `rate` reviews per second for `seconds`. */
export async function run(opts: { rate?: number; seconds?: number } = {}): Promise<AdmissionBenchResult> {
  const rate = opts.rate ?? Number(process.env.BENCH_RATE ?? 100);
  const seconds = opts.seconds ?? Number(process.env.BENCH_SECONDS ?? 10);
  const built = await buildExamplePolicies();
  const child = fork(fileURLToPath(new URL('./admission-server.ts', import.meta.url)), [built.bundles], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
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
    const post = (body: string) => new Promise<{ ms: number; text: string }>((resolve, reject) => {
      const t0 = performance.now();
      const req = request({ host: '127.0.0.1', port, path: '/validate', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => (res.statusCode === 200 ? resolve({ ms: performance.now() - t0, text }) : reject(new Error(`HTTP ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end(body);
    });
    for (let i = 0; i < 50; i++) await post(payloads[i % payloads.length]!); // warm up JIT, TLS session, caches
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
        post(payloads[i % payloads.length]!).then(
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
    agent.destroy();
    const sorted = latencies.sort((a, b) => a - b);
    const round = (x: number) => Math.round(x * 100) / 100;
    return {
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
  } finally {
    child.kill();
    built.cleanup();
  }
}

/** The figures as a table. */
export function table(r: AdmissionBenchResult): string {
  return [
    `admission webhook, POST /validate over HTTPS keep-alive, ${r.rate} reviews/s for ${r.seconds} s (${r.machine.cpus} CPUs, load ${r.machine.loadavg1})`,
    'sent   ok     errors  denied  warned  p50 ms  p90 ms  p99 ms  max ms  cpu/review ms',
    `${String(r.sent).padEnd(7)}${String(r.ok).padEnd(7)}${String(r.errors).padEnd(8)}${String(r.denied).padEnd(8)}${String(r.warned).padEnd(8)}${String(r.p50).padEnd(8)}${String(r.p90).padEnd(8)}${String(r.p99).padEnd(8)}${String(r.max).padEnd(8)}${r.cpuPerReview}`,
  ].join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const r = await run();
  process.stdout.write(`${table(r)}\n`);
}

/** The run as table figures for `npm run bench`. */
export function figures(r: AdmissionBenchResult): Figure[] {
  const load = `load ${r.machine.loadavg1.toFixed(1)} on ${r.machine.cpus} cores; ${r.sent} reviews at ${r.rate}/s, ${r.errors} errors`;
  return [
    { suite: 'admission', name: 'review latency p50', value: r.p50, unit: 'ms', detail: load },
    { suite: 'admission', name: 'review latency p99', value: r.p99, unit: 'ms', detail: 'target ≤ 10 ms at 100 reviews/s' },
    { suite: 'admission', name: 'webhook CPU per review', value: r.cpuPerReview, unit: 'ms' },
  ];
}
