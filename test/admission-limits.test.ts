// No review can hang the admission webhook: a real `warden admission serve` with the Gatekeeper
// library's containerlimits template (read from ../shared/corpus), whose `replace(orig, suffix, "")`
// looped forever in OPA's WASM on a unit-less memory limit, now decides such a Pod in milliseconds as
// `opa eval` does; a template written to loop, or to exhaust memory, is cut off at the configured
// deadline or memory bound, and the webhook answers the reviews sent alongside it.
import { execFile, spawn, type ChildProcessByStdio } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reviewFromRequest } from '../admission/gatekeeper.js';
import type { AdmissionRequest } from '../formats/admission-review.js';
import { repoRoot } from '../engine/toolchain/paths.js';
import { admissionReview, buildExamplePolicies, GOOD_IMAGE, type BuiltPolicies } from './support/admission-fixture.js';
import { opaBinary } from './support/opa.js';
import { until } from './support/until.js';
import { readyOnStderr } from './support/warden-process.js';

const run = promisify(execFile);
const warden = join(repoRoot, 'bin', 'warden.js');
// Where the corpus lies beside the clone (WARDEN_CORPUS names it when the clone sits elsewhere, e.g. a worktree).
const corpus = process.env.WARDEN_CORPUS ?? resolve(repoRoot, '..', 'shared', 'corpus');
const library = join(corpus, 'gatekeeper-library', 'library', 'general', 'containerlimits');
const templateText = readFileSync(join(library, 'template.yaml'), 'utf8');
const constraintText = readFileSync(join(library, 'samples', 'container-must-have-limits', 'constraint.yaml'), 'utf8');
const constraint = parseYaml(constraintText) as { spec: { parameters: Record<string, unknown> } };

// A template written to misbehave on demand: a label picks a loop that allocates nothing per turn
// (3,000³ turns) or an array of 100 million numbers.
const spin = `apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: wardenspin
spec:
  crd:
    spec:
      names:
        kind: WardenSpin
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package wardenspin

        violation[{"msg": msg}] {
          input.review.object.metadata.labels.spin == "loop"
          a := numbers.range(1, 3000)
          n := count({true | a[_]; a[_]; a[_]})
          msg := sprintf("spun %v", [n])
        }

        violation[{"msg": msg}] {
          input.review.object.metadata.labels.spin == "hog"
          n := count(numbers.range(1, 100000000))
          msg := sprintf("counted %v", [n])
        }
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: WardenSpin
metadata:
  name: spin-on-demand
spec:
  match:
    kinds:
      - apiGroups: [""]
        kinds: ["Pod"]
`;

const DEADLINE_MS = 200;
const MEMORY_MIB = 16;

let built: BuiltPolicies;
let served: { child: ChildProcessByStdio<null, Readable, Readable>; url: string; stderr: () => string; events: () => string };
let regoDir: string;

function pod(name: string, memory: string, labels: Record<string, string> = {}): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: { app: name, ...labels } },
    spec: { containers: [{ name: 'app', image: GOOD_IMAGE, resources: { limits: { cpu: '100m', memory } } }] },
  };
}

// `warden admission serve` over the built bundles with a config file, as an operator starts it.
async function serve(name: string, configText: string): Promise<typeof served> {
  const config = join(built.dir, name);
  writeFileSync(config, configText);
  const child = spawn(
    process.execPath,
    [warden, 'admission', 'serve', '--host', '127.0.0.1', '--port', '0', '--admission-bundle', join(built.bundles, 'admission.tar.gz'), '--verification-key', join(built.bundles, 'verification-key.pem'), '--bundles', built.bundles, '--config', config],
    { cwd: built.dir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  // Without an engine the decision events are logged to stdout, one JSON line each.
  let events = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (c: string) => (events += c));
  const ready = readyOnStderr(child, /listening on (https:\/\/\S+)/);
  const url = await ready.url;
  return { child, url, stderr: ready.text, events: () => events };
}

async function stop(s: typeof served): Promise<void> {
  const exited = new Promise((r) => s.child.once('exit', r));
  s.child.kill('SIGTERM');
  await exited;
}

function review(object: Record<string, unknown>, to = served): Promise<{ response: { allowed: boolean; status?: { message?: string } } }> {
  const body = JSON.stringify(admissionReview(object, 'shop'));
  return new Promise((resolve, reject) => {
    // The webhook's in-memory certificate is accepted for this loopback call only.
    const req = request(to.url, { method: 'POST', rejectUnauthorized: false, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve(JSON.parse(text) as never));
    });
    req.on('error', reject);
    req.end(body);
  });
}

// containerlimits' own verdict, from the webhook's answer: its findings are tagged with the constraint.
const limitsFindings = (message: string | undefined) => (message ?? '').split('\n').filter((l) => l.includes('K8sContainerLimits/container-must-have-limits'));

// What `opa eval` says the template's violations are for the same review.
async function opaViolations(object: Record<string, unknown>): Promise<string[]> {
  const input = { review: reviewFromRequest((admissionReview(object, 'shop') as { request: AdmissionRequest }).request), parameters: constraint.spec.parameters };
  writeFileSync(join(regoDir, 'input.json'), JSON.stringify(input));
  const { stdout } = await run(opaBinary, ['eval', '--v0-compatible', '--format', 'json', '-d', join(regoDir, 'template.rego'), '-d', join(regoDir, 'lib.rego'), '-i', join(regoDir, 'input.json'), 'data.k8scontainerlimits.violation']);
  const out = JSON.parse(stdout) as { result?: { expressions: { value: Array<{ msg: string }> }[] }[] };
  return (out.result?.[0]?.expressions[0]?.value ?? []).map((v) => v.msg);
}

beforeAll(async () => {
  built = await buildExamplePolicies({ 'admission/gatekeeper/containerlimits.yaml': `${templateText}\n---\n${constraintText}`, 'admission/gatekeeper/spin.yaml': spin });
  regoDir = mkdtempSync(join(tmpdir(), 'warden-limits-rego-'));
  const template = parseYaml(templateText) as { spec: { targets: Array<{ rego: string; libs: string[] }> } };
  writeFileSync(join(regoDir, 'template.rego'), template.spec.targets[0]!.rego);
  writeFileSync(join(regoDir, 'lib.rego'), template.spec.targets[0]!.libs[0]!);
  served = await serve('webhook.yaml', `evaluation:\n  deadlineMs: ${DEADLINE_MS}\n  memoryMiB: ${MEMORY_MIB}\n`);
}, 300_000);

afterAll(async () => {
  if (served) await stop(served);
  rmSync(regoDir, { recursive: true, force: true });
  built?.cleanup();
});

describe('warden admission serve under evaluation limits', () => {
  it('decides unit-less memory limits with containerlimits in milliseconds, as opa eval does', async () => {
    for (const memory of ['128974848', '2147483648', '1Gi', '512Mi']) {
      const object = pod(`unitless-${memory.toLowerCase()}`, memory);
      const t0 = performance.now();
      const answer = await review(object);
      const took = performance.now() - t0;
      expect(took).toBeLessThan(DEADLINE_MS * 10);
      const expected = await opaViolations(object);
      const found = limitsFindings(answer.response.status?.message);
      expect(found.length, `${memory}: ${answer.response.status?.message}`).toBe(expected.length);
      for (const msg of expected) expect(found.some((f) => f.includes(msg))).toBe(true);
      expect(answer.response.status?.message ?? '').not.toMatch(/could not be evaluated/);
    }
    // The unit-less 2 GiB limit is the one containerlimits refuses.
    expect(await opaViolations(pod('x', '2147483648'))).toHaveLength(1);
  });

  it('cuts a looping template off at its deadline while answering the reviews sent with it', async () => {
    const t0 = performance.now();
    const [looping, ...others] = await Promise.all([
      review(pod('spinner', '128974848', { spin: 'loop' })),
      ...['a', 'b', 'c', 'd'].map((n, i) => review(pod(`bystander-${n}`, i % 2 ? '2147483648' : '128974848'))),
    ]);
    const took = performance.now() - t0;
    expect(looping.response.allowed).toBe(false);
    expect(looping.response.status?.message).toMatch(new RegExp(`WardenSpin/spin-on-demand\\] could not be evaluated \\(.*deadline of ${DEADLINE_MS} ms`));
    for (const [i, other] of others.entries()) {
      const message = other.response.status?.message ?? '';
      expect(message).not.toMatch(/deadline|could not be evaluated/);
      expect(limitsFindings(message)).toHaveLength(i % 2 ? 1 : 0);
    }
    // Bounded by the wall-clock cap of the deadline (10×), not by the loop's 27 billion turns.
    expect(took).toBeLessThan(DEADLINE_MS * 10 + 3_000);
    // The review has its own decision event, saying which limit stopped it.
    await until(
      () => `an admission event with the evaluation limit in the webhook's log: ${served.events().slice(-2000)}`,
      async () => (/"error":"evaluation limit \(deadline\): WardenSpin\/spin-on-demand/.test(served.events()) ? true : undefined),
    );
    // The instance was rebuilt: the same template decides the next review.
    const after = await review(pod('after-spin', '128974848'));
    expect(after.response.status?.message ?? '').not.toMatch(/WardenSpin|could not be evaluated/);
  });

  it('stops a template that exhausts its memory bound, and keeps deciding', async () => {
    const [hog, other] = await Promise.all([review(pod('hog', '128974848', { spin: 'hog' })), review(pod('neighbour', '2147483648'))]);
    expect(hog.response.allowed).toBe(false);
    expect(hog.response.status?.message).toMatch(new RegExp(`WardenSpin/spin-on-demand\\] could not be evaluated \\(.*memory bound of ${MEMORY_MIB} MiB`));
    expect(limitsFindings(other.response.status?.message)).toHaveLength(1);
    const after = await review(pod('after-hog', '128974848'));
    expect(after.response.status?.message ?? '').not.toMatch(/WardenSpin|could not be evaluated/);
  });

  it("gives a review's evaluations together no more than the review budget", async () => {
    const tight = await serve('tight.yaml', 'evaluation:\n  deadlineMs: 2000\n  reviewBudgetMs: 300\n');
    try {
      const t0 = performance.now();
      const answer = await review(pod('spinner', '128974848', { spin: 'loop' }), tight);
      expect(performance.now() - t0).toBeLessThan(2_000);
      const stopped = /WardenSpin\/spin-on-demand\] could not be evaluated \(.*deadline of (\d+) ms/.exec(answer.response.status?.message ?? '');
      expect(stopped, answer.response.status?.message).not.toBeNull();
      expect(Number(stopped![1])).toBeLessThanOrEqual(300);
    } finally {
      await stop(tight);
    }
  });
});
