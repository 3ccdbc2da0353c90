// What a deadline on every evaluation costs, for the mechanisms issue #25 names, each against the plain
// (unbounded) evaluation in the same run, on the `orders` example bundle and generated inputs:
// - metered: Warden's choice — loops spend fuel, the host is asked every 10,000 turns (runtime/wasm-metering.ts);
// - vm timeout: each evaluation run through vm.runInContext(…, {timeout}), which starts a watchdog per call;
// - worker: the evaluation in a worker thread, the caller blocked in Atomics.wait with a timeout (on
//   expiry it would terminate the worker); measured as the round trip of the input and the answer
//   through a SharedArrayBuffer, with the worker evaluating with the SDK;
// - worker ping-pong: the same round trip with no evaluation, the floor of any worker or pool design.
// Figures are p50/p99 per decision and the p50 cost over plain. Target: p50 cost ≤ 3 µs.
import { cpus, loadavg } from 'node:os';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import vm from 'node:vm';
import { Worker } from 'node:worker_threads';
import { buildRepo } from '../engine/compiler/build.js';
import { openBundle } from '../runtime/bundle.js';
import { InputSelection } from '../runtime/input-selection.js';
import { Policy } from '../runtime/policy.js';
import { generateInputs } from '../test/support/inputs.js';
import { policyWorkspace } from '../test/support/policy-repo.js';
import { median, quantile, type Figure } from './figure.js';

const ROUNDS = Number(process.env.DEADLINE_BENCH_ROUNDS ?? 5);

// p50/p99 of one way of deciding, interleaved round by round with the others so load hits all alike.
function timeEach(decide: (input: unknown) => unknown, inputs: unknown[], into: number[]): void {
  for (const input of inputs) {
    const s = process.hrtime.bigint();
    decide(input);
    into.push(Number(process.hrtime.bigint() - s) / 1000);
  }
}

// A worker that evaluates (or only echoes) what the caller writes into a SharedArrayBuffer.
// Layout: Int32 [0] = request sequence, [1] = reply sequence, [2] = byte length; bytes from offset 16.
const WORKER = `
const { workerData } = require('node:worker_threads');
const { loadPolicySync } = require(workerData.sdk);
const ctl = new Int32Array(workerData.sab, 0, 4);
const bytes = new Uint8Array(workerData.sab, 16);
const policy = workerData.wasm ? loadPolicySync(workerData.wasm, { initial: 5, maximum: 4096 }) : undefined;
if (policy) policy.setData(workerData.data);
let seen = 0;
for (;;) {
  Atomics.wait(ctl, 0, seen);
  seen = Atomics.load(ctl, 0);
  if (seen < 0) break;
  if (policy) {
    const input = bytes.slice(0, ctl[2]).buffer;
    const rs = policy.evaluate(input, 'warden/decision');
    const out = new TextEncoder().encode(JSON.stringify(rs));
    bytes.set(out);
    ctl[2] = out.length;
  }
  Atomics.store(ctl, 1, seen);
  Atomics.notify(ctl, 1);
}
`;

function workerDecider(sab: SharedArrayBuffer, deadlineMs: number): (input: unknown) => unknown {
  const ctl = new Int32Array(sab, 0, 4);
  const bytes = new Uint8Array(sab, 16);
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  let seq = 0;
  return (input) => {
    const { written } = encoder.encodeInto(JSON.stringify(input), bytes);
    ctl[2] = written;
    seq++;
    Atomics.store(ctl, 0, seq);
    Atomics.notify(ctl, 0);
    if (Atomics.wait(ctl, 1, seq - 1, deadlineMs) === 'timed-out' && Atomics.load(ctl, 1) !== seq) throw new Error('deadline (the worker would be terminated)');
    return ctl[2] ? JSON.parse(decoder.decode(bytes.slice(0, ctl[2]))) : undefined;
  };
}

/** Runs the comparison and returns its figures. */
export async function run(): Promise<Figure[]> {
  const ws = policyWorkspace('warden-bench-deadline-');
  const workers: Array<{ worker: Worker; sab: SharedArrayBuffer }> = [];
  try {
    const built = await buildRepo({ repo: ws.repo, out: ws.out, cwd: ws.dir });
    const w = built.workloads.find((x) => x.workload === 'orders')!;
    const bundle = await openBundle(readFileSync(w.bundle), 'unsigned-ok');
    const metered = await Policy.load(bundle, { reuse: false });
    const plain = await Policy.load(bundle, { unmeteredBaseline: true, reuse: false });
    const inputs = generateInputs(bundle, 2_000, 23);

    // Warden's ways get the whole input, as the SDK's do (Policy.evaluate would keep only what the Rego reads).
    const whole = (input: unknown) => InputSelection.whole.json(input);
    const context = vm.createContext({ decide: (input: unknown) => plain.decide('warden/decision', whole(input)), input: undefined as unknown });
    const script = new vm.Script('decide(input)');
    const viaVm = (input: unknown) => {
      context.input = input;
      return script.runInContext(context, { timeout: 1_000 }); // the watchdog costs the same whatever the value; a loaded machine tripped 10 ms
    };

    const sdk = createRequire(import.meta.url).resolve('@open-policy-agent/opa-wasm');
    const start = (wasm: Uint8Array | undefined) => {
      const sab = new SharedArrayBuffer(16 + (1 << 20));
      const worker = new Worker(WORKER, { eval: true, workerData: { sab, sdk, wasm, data: bundle.data } });
      workers.push({ worker, sab });
      return workerDecider(sab, 5_000);
    };
    const viaWorker = start(bundle.wasm);
    const pingPong = start(undefined);
    // The worker evaluates with the SDK (a plain JS worker cannot load Warden's TypeScript runtime):
    // its own cost is measured in the main thread and subtracted, leaving what the thread hop adds.
    const { loadPolicy } = await import('@open-policy-agent/opa-wasm');
    const sdkPolicy = await loadPolicy(bundle.wasm, { initial: 5, maximum: 4096 });
    sdkPolicy.setData(bundle.data);
    const viaSdk = (input: unknown) => sdkPolicy.evaluate(input, 'warden/decision');

    const ways: Record<string, (input: unknown) => unknown> = {
      plain: (i) => plain.decide('warden/decision', whole(i)),
      metered: (i) => metered.decide('warden/decision', whole(i)),
      'vm timeout': viaVm,
      'sdk in main thread': viaSdk,
      worker: viaWorker,
      'worker ping-pong': pingPong,
    };
    for (const decide of Object.values(ways)) for (const i of inputs.slice(0, 300)) decide(i); // warm up
    const times = Object.fromEntries(Object.keys(ways).map((k) => [k, [] as number[]]));
    for (let round = 0; round < ROUNDS; round++) for (const [name, decide] of Object.entries(ways)) timeEach(decide, inputs, times[name]!);

    const p50 = (k: string) => median(times[k]!);
    const figures: Figure[] = [];
    const detail = `${inputs.length} inputs × ${ROUNDS} rounds, interleaved; load ${loadavg()[0]!.toFixed(1)} on ${cpus().length} cores`;
    for (const name of Object.keys(ways)) {
      figures.push({ suite: 'deadline', name: `${name} p50`, value: p50(name), unit: 'µs', detail });
      figures.push({ suite: 'deadline', name: `${name} p99`, value: quantile(times[name]!, 0.99), unit: 'µs' });
    }
    figures.push(
      { suite: 'deadline', name: 'metered cost over plain (p50)', value: p50('metered') - p50('plain'), unit: 'µs', detail: 'target ≤ 3 µs' },
      { suite: 'deadline', name: 'vm timeout cost over plain (p50)', value: p50('vm timeout') - p50('plain'), unit: 'µs' },
      { suite: 'deadline', name: 'worker cost over its own evaluation (p50)', value: p50('worker') - p50('sdk in main thread'), unit: 'µs', detail: 'the thread hop with input and answer' },
      { suite: 'deadline', name: 'worker ping-pong alone (p50)', value: p50('worker ping-pong'), unit: 'µs' },
    );
    return figures;
  } finally {
    // A worker blocked in Atomics.wait is told to leave (-1) before it is terminated.
    for (const { worker, sab } of workers) {
      const ctl = new Int32Array(sab, 0, 4);
      Atomics.store(ctl, 0, -1);
      Atomics.notify(ctl, 0);
      await worker.terminate();
    }
    ws.remove();
  }
}
