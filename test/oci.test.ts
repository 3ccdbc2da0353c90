// Build once, ship through an OCI registry: `warden push` to a real CNCF Distribution registry (Basic
// auth, credentials from a docker-config file), a real `warden proxy --bundle-url oci+http://…` pulls and
// enforces it, stock OPA pulls the same artifact; a tampered artifact, an older generation and a registry
// that is down are refused, refused, and survived on the last good bundle.
import { execFile, type ChildProcess } from 'node:child_process';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../admission/config.js';
import { memorySink } from '../admission/decision-sink.js';
import { createWebhook, trustFromPem } from '../admission/webhook.js';
import { buildRepo } from '../engine/compiler/build.js';
import { publishBundles } from '../engine/publish.js';
import { signBundle } from '../runtime/signature.js';
import { MEDIA, parseOciReference, pushBundle, RegistryClient } from '../runtime/oci-registry.js';
import { readArchive, writeArchive } from '../runtime/archive.js';
import { closeServer, startUpstream, type Upstream } from './support/proxy-fixtures.js';
import { opaBinary } from './support/opa.js';
import { policyWorkspace, type PolicyWorkspace } from './support/policy-repo.js';
import { startRegistry, type TestRegistry } from './support/registry.js';
import { until } from './support/until.js';
import { startWarden } from './support/warden-process.js';

const run = promisify(execFile);
const foreignKey = () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
const user = { name: 'ci', password: 'pushes-bundles' };
const children: ChildProcess[] = [];
const cleanups: Array<() => Promise<void>> = [];
let registry: TestRegistry;
let ws: PolicyWorkspace;
let upstream: Upstream;
let dockerConfig: string;
let client: RegistryClient;
let proxyUrl: string;
let proxyOut = '';
const STOREFRONT = { 'x-forwarded-client-cert': 'URI=spiffe://cluster.local/ns/shop/sa/storefront' };

const warden = (...args: string[]) => run(process.execPath, [resolve('bin/warden.js'), ...args], { cwd: ws.dir });
const build = (only?: string[]) => buildRepo({ repo: 'policies', out: 'bundles', cwd: ws.dir, cacheDir: resolve('.warden/cache/opa'), ...(only ? { only } : {}) });
const ordersRef = () => parseOciReference(`oci+http://${registry.host}/platform/bundles/orders:main`);
const revision = async () => ((await (await fetch(`${proxyUrl.replace(/:\d+$/, '')}:${adminPort}/metrics`)).text()).match(/warden_bundle_info\{revision="([^"]+)"\} 1/) ?? [])[1];
let adminPort = '';

beforeAll(async () => {
  registry = await startRegistry({ user });
  ws = policyWorkspace('warden-oci-');
  dockerConfig = join(ws.dir, 'docker', 'config.json');
  mkdirSync(join(ws.dir, 'docker'));
  writeFileSync(dockerConfig, JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from(`${user.name}:${user.password}`).toString('base64') } } }));
  client = new RegistryClient(registry.host, { plainHttp: true, credentials: { username: user.name, password: user.password } });
  await build(); // every workload and the admission bundle
  upstream = await startUpstream();
}, 120_000);

afterAll(async () => {
  for (const c of children) c.kill('SIGTERM');
  await Promise.all(children.map((c) => (c.exitCode !== null ? undefined : new Promise((r) => c.once('exit', r)))));
  if (upstream) await closeServer(upstream.server);
  for (const c of cleanups) await c();
  await registry?.remove();
  ws?.remove();
});

describe('bundles through an OCI registry', () => {
  it('refuses a push without the registry credentials, and says which entry to fix', async () => {
    const err = await warden('push', `oci+http://${registry.host}/platform/bundles:main`, '--bundles', 'bundles', '--registry-config', join(ws.dir, 'none.json')).catch((e: { stderr: string; code: number }) => e);
    expect((err as { code: number }).code).toBe(1);
    expect((err as { stderr: string }).stderr).toMatch(/registry credentials .*none\.json cannot be read/);
  });

  it('warden push publishes every bundle and the index; a real warden proxy pulls it and enforces', async () => {
    const { stdout } = await warden('push', `oci+http://${registry.host}/platform/bundles:main`, '--bundles', 'bundles', '--registry-config', dockerConfig);
    expect(stdout).toMatch(/pushed orders\s+generation 1\s+oci\+http:\/\/[\d.:]+\/platform\/bundles\/orders:main@sha256:[a-f0-9]{64}/);
    expect(stdout).toMatch(/pushed \(index\)/);
    // The artifact is laid out as OPA pulls it: an image manifest with one tar+gzip layer.
    const manifest = JSON.parse((await client.manifest('platform/bundles/orders', 'main')).bytes.toString()) as { mediaType: string; config: { mediaType: string }; layers: Array<{ mediaType: string }> };
    expect(manifest).toMatchObject({ mediaType: MEDIA.manifest, config: { mediaType: MEDIA.config }, layers: [{ mediaType: MEDIA.bundleLayer }] });

    const proxy = await startWarden(
      ['proxy', '--workload', 'orders', '--upstream', `http://127.0.0.1:${upstream.port}`, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--bundle-url', `oci+http://${registry.host}/platform/bundles/orders:main`,
        '--registry-config', dockerConfig, '--bundle-poll', '1', '--verification-key', join(ws.out, 'verification-key.pem'), '--trust-header', 'x-forwarded-client-cert', '--trust-peer', '127.0.0.1', '--spill', join(ws.dir, 'spill.ndjson')],
      /on ([\d.]+:\d+) \(admin ([\d.]+):(\d+)\)/,
      children,
    );
    children.at(-1)!.stdout!.on('data', (d: Buffer) => (proxyOut += d.toString()));
    proxyUrl = `http://${proxy[1]}`;
    adminPort = proxy[3]!;
    await until('the proxy to load the bundle from the registry', async () => ((await fetch(`http://${proxy[2]}:${adminPort}/readyz`)).status === 200 ? true : undefined));
    expect((await fetch(`${proxyUrl}/orders`)).status).toBe(403);
    expect((await fetch(`${proxyUrl}/orders`, { headers: STOREFRONT })).status).toBe(200);
  });

  it('an engine replica fronting the registry serves what CI pushed, without building', async () => {
    const mirrorDir = join(ws.dir, 'engine-bundles');
    const serve = await startWarden(
      ['serve', '--bundles', mirrorDir, '--bundles-from', `oci+http://${registry.host}/platform/bundles:main`, '--registry-config', dockerConfig, '--verification-key', join(ws.out, 'verification-key.pem'), '--bundles-poll', '1', '--listen', '127.0.0.1:0'],
      /on (http:\/\/[\d.]+:\d+)/,
      children,
    );
    let engineOut = '';
    children.at(-1)!.stdout!.on('data', (d: Buffer) => (engineOut += d.toString()));
    const index = (await (await fetch(`${serve[1]}/bundles`)).json()) as { bundles: Record<string, { sha256: string }>; admission?: unknown };
    const built = JSON.parse(readFileSync(join(ws.out, 'index.json'), 'utf8')) as typeof index;
    expect(index).toEqual(built);
    const orders = Buffer.from(await (await fetch(`${serve[1]}/bundles/orders`)).arrayBuffer());
    expect(orders.equals(readFileSync(join(ws.out, 'orders.tar.gz')))).toBe(true);

    // Someone with push access but not the signing key publishes an index naming a bundle signed with
    // their own key (it would name its own principal as an audit-log writer): the engine refuses to
    // mirror it and keeps serving what it had.
    const forgedDir = join(ws.dir, 'forged');
    cpSync(ws.out, forgedDir, { recursive: true });
    const files = await readArchive(readFileSync(join(forgedDir, 'orders.tar.gz')));
    files.delete('.signatures.json');
    const manifest = JSON.parse(files.get('.manifest')!.toString()) as { metadata: { principal: string; generation: number } };
    manifest.metadata.principal = 'spiffe://cluster.local/ns/attacker/sa/forger';
    manifest.metadata.generation += 1000;
    files.set('.manifest', Buffer.from(JSON.stringify(manifest)));
    files.set('.signatures.json', await signBundle(files, { key: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, algorithm: 'ES256', keyId: 'forger' }));
    const forged = writeArchive(files);
    writeFileSync(join(forgedDir, 'orders.tar.gz'), forged);
    const forgedIndex = JSON.parse(readFileSync(join(forgedDir, 'index.json'), 'utf8')) as { bundles: Record<string, { sha256: string }> };
    forgedIndex.bundles.orders!.sha256 = createHash('sha256').update(forged).digest('hex');
    writeFileSync(join(forgedDir, 'index.json'), JSON.stringify(forgedIndex));
    await publishBundles(forgedDir, parseOciReference(`oci+http://${registry.host}/platform/bundles:main`), client);
    await until(() => `the engine to refuse the forged bundle: ${engineOut}`, () => (engineOut.split('\n').some((l) => l.includes('registry mirror failed') && l.includes('bundle signature is invalid')) ? true : undefined));
    const still = Buffer.from(await (await fetch(`${serve[1]}/bundles/orders`)).arrayBuffer());
    expect(still.equals(readFileSync(join(ws.out, 'orders.tar.gz')))).toBe(true);
    expect(((await (await fetch(`${serve[1]}/bundles`)).json()) as typeof index).bundles.orders).toEqual(built.bundles.orders);
  });

  it('warden serve --bundles-from refuses to start without the key the bundles must be signed with', async () => {
    const err = await warden('serve', '--bundles', join(ws.dir, 'nokey'), '--bundles-from', `oci+http://${registry.host}/platform/bundles:main`, '--listen', '127.0.0.1:0').catch((e: { stderr: string }) => e);
    expect((err as { stderr: string }).stderr).toMatch(/--bundles-from needs --verification-key/);
  });

  it('stock OPA pulls the same artifact from a registry (opa run --server with an OCI bundle service)', async () => {
    // An anonymous registry: the one above wants Basic auth, which this OPA's OCI client does not send
    // from service credentials (it answers the challenge with "basic credential not found").
    const open = await startRegistry();
    cleanups.push(() => open.remove());
    await warden('push', `oci+http://${open.host}/platform/bundles:main`, '--bundles', 'bundles');
    const dir = join(ws.dir, 'opa');
    mkdirSync(dir, { recursive: true });
    const [port] = await (await import('./support/kube-apiserver.js')).freePorts(1);
    writeFileSync(
      join(dir, 'config.yaml'),
      JSON.stringify({
        services: { registry: { url: `http://${open.host}`, type: 'oci' } },
        bundles: { orders: { service: 'registry', resource: `${open.host}/platform/bundles/orders:main`, persist: false, polling: { min_delay_seconds: 1, max_delay_seconds: 2 }, signing: { keyid: 'warden' } } },
        keys: { warden: { key: readFileSync(join(ws.out, 'verification-key.pem'), 'utf8'), algorithm: 'ES256' } },
        persistence_directory: join(dir, 'persist'),
      }),
    );
    const opa = (await import('node:child_process')).spawn(opaBinary, ['run', '--server', '--addr', `127.0.0.1:${port}`, '--config-file', join(dir, 'config.yaml')], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(opa);
    let out = '';
    opa.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    opa.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    // This OPA is built with CGO off, so it has no WASM engine: it pulls the artifact through OCI, checks
    // the signature with Warden's key, reads the manifest and stops only at instantiating policy.wasm.
    // A bundle that fails the signature check never gets that far (checked below with a foreign key).
    await until(() => `stock OPA to pull and verify the bundle: ${out}`, () => (/Bundle activation failed: failed to initialize wasm module for entrypoints '\[data\.warden\.decision data\.warden\.visible_tools\]'/.test(out) ? true : undefined), 30_000);
    expect(out).not.toMatch(/verification|signature|Bundle load failed/i);
    opa.kill('SIGTERM');
    // The same artifact with a signature OPA cannot verify: refused before activation.
    writeFileSync(join(dir, 'config.yaml'), readFileSync(join(dir, 'config.yaml'), 'utf8').replace(/"key":"[^"]+"/, `"key":${JSON.stringify(foreignKey())}`));
    const again = (await import('node:child_process')).spawn(opaBinary, ['run', '--server', '--addr', `127.0.0.1:${port}`, '--config-file', join(dir, 'config.yaml')], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(again);
    let out2 = '';
    again.stdout!.on('data', (d: Buffer) => (out2 += d.toString()));
    again.stderr!.on('data', (d: Buffer) => (out2 += d.toString()));
    await until(() => `stock OPA to refuse the bundle under a foreign key: ${out2}`, () => (/verification|signature/i.test(out2) ? true : undefined), 30_000);
    expect(out2).not.toMatch(/failed to initialize wasm module/);
    again.kill('SIGTERM');
  }, 90_000);

  it('refuses a tampered artifact and keeps enforcing the last good bundle', async () => {
    const good = await revision();
    expect(good).toBeTruthy();
    const files = await readArchive(readFileSync(join(ws.out, 'orders.tar.gz')));
    const manifest = JSON.parse(files.get('.manifest')!.toString()) as { revision: string; metadata: { generation: number } };
    manifest.revision = 'tampered';
    manifest.metadata.generation = 99;
    files.set('.manifest', Buffer.from(JSON.stringify(manifest)));
    const before = proxyOut.length;
    await pushBundle(client, ordersRef(), writeArchive(files), {});
    await until(() => `the proxy to refuse the tampered bundle: ${proxyOut.slice(before)}`, () => (/"msg":"bundle rejected"/.test(proxyOut.slice(before)) ? true : undefined));
    expect(proxyOut.slice(before)).toMatch(/\.manifest|signature|hash/);
    expect(await revision()).toBe(good);
    expect((await fetch(`${proxyUrl}/orders`, { headers: STOREFRONT })).status).toBe(200);
  });

  it('refuses a correctly signed bundle of an older generation pushed over the tag', async () => {
    const good = await revision();
    ws.edit('workloads/orders/workload.yaml', 'orders', 'orders # newer');
    ws.commit('newer orders');
    await build(['orders']);
    const newer = (JSON.parse(readFileSync(join(ws.out, 'orders.build.json'), 'utf8')) as { revision: string; generation: number });
    expect(newer.generation).toBe(2);
    await warden('push', `oci+http://${registry.host}/platform/bundles/orders:main`, '--bundles', 'bundles', '--workload', 'orders', '--registry-config', dockerConfig);
    await until('the proxy to load generation 2', async () => ((await revision()) === newer.revision ? true : undefined));
    expect(newer.revision).not.toBe(good);
    // Roll the tag back to generation 1 (a replayed, correctly signed old bundle).
    ws.git('checkout', '-q', 'HEAD~1');
    await build(['orders']);
    const old = JSON.parse(readFileSync(join(ws.out, 'orders.build.json'), 'utf8')) as { generation: number };
    expect(old.generation).toBe(1);
    const before = proxyOut.length;
    await warden('push', `oci+http://${registry.host}/platform/bundles/orders:main`, '--bundles', 'bundles', '--workload', 'orders', '--registry-config', dockerConfig);
    await until(() => `the proxy to refuse generation 1: ${proxyOut.slice(before)}`, () => (/generation 1, older than the loaded/.test(proxyOut.slice(before)) ? true : undefined));
    expect(await revision()).toBe(newer.revision);
    ws.git('checkout', '-q', 'main');
  });

  it('the admission webhook pulls its bundle from the registry with the docker-config credentials', async () => {
    const previous = process.env.DOCKER_CONFIG;
    process.env.DOCKER_CONFIG = join(ws.dir, 'docker');
    try {
      const webhook = await createWebhook({
        config: resolveConfig(),
        sink: memorySink(),
        sources: { admissionBundle: `oci+http://${registry.host}/platform/bundles/admission:main`, workloads: { folder: ws.out }, trust: trustFromPem(readFileSync(join(ws.out, 'verification-key.pem'), 'utf8')) },
      });
      const pushed = JSON.parse((await readArchive(readFileSync(join(ws.out, 'admission.tar.gz')))).get('.manifest')!.toString()) as { revision: string };
      expect(webhook.deps.policies()?.revision).toBe(pushed.revision);
      expect(await webhook.reload()).toEqual({ changed: false }); // the tag still names the same digest
    } finally {
      if (previous === undefined) delete process.env.DOCKER_CONFIG;
      else process.env.DOCKER_CONFIG = previous;
    }
  });

  it('keeps the last good bundle while the registry is down, and follows it again when it is back', async () => {
    const good = await revision();
    const before = proxyOut.length;
    await registry.stop();
    await until(() => `the proxy to report the registry unreachable: ${proxyOut.slice(before)}`, () => (/bundle server unreachable/.test(proxyOut.slice(before)) ? true : undefined));
    expect((await fetch(`${proxyUrl}/orders`, { headers: STOREFRONT })).status).toBe(200);
    expect((await fetch(`${proxyUrl}/orders`)).status).toBe(403);
    expect(await revision()).toBe(good);
    await registry.restart();
  });
});
