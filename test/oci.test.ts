// Build once, ship through an OCI registry: `warden push` to a real CNCF Distribution registry (Basic
// auth, credentials from a docker-config file), a real `warden proxy --bundle-url oci+http://…` pulls and
// enforces it, stock OPA pulls the same artifact; a tampered artifact, an older generation and a registry
// that is down are refused, refused, and survived on the last good bundle.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
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
import { MEDIA, parseOciReference, pullBundle, pushBundle, RegistryClient } from '../runtime/oci-registry.js';
import { openBundle } from '../runtime/bundle.js';
import { Policy } from '../runtime/policy.js';
import { readArchive, writeArchive } from '../runtime/archive.js';
import { closeServer, startUpstream, type Upstream } from './support/proxy-fixtures.js';
import { opaWasmBinary } from './support/opa.js';
import { freePorts } from './support/kube-apiserver.js';
import { policyWorkspace, type PolicyWorkspace } from './support/policy-repo.js';
import { startRegistry, type TestRegistry } from './support/registry.js';
import { until } from './support/until.js';
import { startWarden, stopWardens } from './support/warden-process.js';

const run = promisify(execFile);
const foreignKey = () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
const user = { name: 'ci', password: 'pushes-bundles' };
const children: ChildProcess[] = [];
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
  await stopWardens(children);
  if (upstream) await closeServer(upstream.server);
  await registry?.remove();
  ws?.remove();
});

describe('bundles through an OCI registry', () => {
  it('refuses a push without the registry credentials, and says which entry to fix', async () => {
    const err = await warden('push', `oci+http://${registry.host}/platform/bundles:main`, '--bundles', 'bundles', '--registry-config', join(ws.dir, 'none.json')).catch((e: { stderr: string; code: number }) => e);
    expect((err as { code: number }).code).toBe(1);
    expect((err as { stderr: string }).stderr).toMatch(/registry credentials .*none\.json cannot be read/);
  });

  it('refuses a push with wrong credentials, or none for this registry, and names the entry to fix; nothing is published', async () => {
    const wrong = join(ws.dir, 'docker', 'wrong.json');
    writeFileSync(wrong, JSON.stringify({ auths: { [registry.host]: { username: user.name, password: 'not-the-password' } } }));
    const other = join(ws.dir, 'docker', 'other-registry.json');
    writeFileSync(other, JSON.stringify({ auths: { 'registry.example.com': { auth: Buffer.from(`${user.name}:${user.password}`).toString('base64') } } }));
    const host = registry.host.replace(/\./g, '\\.');
    for (const [config, message] of [
      [wrong, new RegExp(`refused \\w+ http://${host}/v2/\\S+ \\(401\\) with the credentials given; check the user and password \\(or token\\) in the auths entry for ${host} in \\S*wrong\\.json`)],
      [other, new RegExp(`registry ${host} asks for a user and password and none were given; add the auths entry for ${host} in \\S*other-registry\\.json`)],
    ] as const) {
      const err = await warden('push', `oci+http://${registry.host}/platform/refused:main`, '--bundles', 'bundles', '--registry-config', config).catch((e: { stderr: string; code: number }) => e);
      expect((err as { code: number }).code).toBe(1);
      expect((err as { stderr: string }).stderr).toMatch(message);
      expect((err as { stderr: string }).stderr).not.toMatch(/internal error|not-the-password/);
    }
    await expect(client.manifest('platform/refused/orders', 'main')).rejects.toThrow(/does not exist \(404\)/);
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

  it('a sidecar whose registry credentials are refused stays unready, denies every call and says why', async () => {
    const seenBefore = upstream.seen.length;
    const wrong = join(ws.dir, 'docker', 'sidecar-wrong.json');
    writeFileSync(wrong, JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from(`${user.name}:guessed`).toString('base64') } } }));
    const proxy = await startWarden(
      ['proxy', '--workload', 'orders', '--upstream', `http://127.0.0.1:${upstream.port}`, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--bundle-url', `oci+http://${registry.host}/platform/bundles/orders:main`,
        '--registry-config', wrong, '--bundle-poll', '1', '--verification-key', join(ws.out, 'verification-key.pem'), '--trust-header', 'x-forwarded-client-cert', '--trust-peer', '127.0.0.1', '--spill', join(ws.dir, 'spill-wrong.ndjson')],
      /on ([\d.]+:\d+) \(admin ([\d.]+:\d+)\)/,
      children,
    );
    const child = children.at(-1)!;
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    await until(() => `the sidecar to report the refused credentials: ${out}`, () => (/"msg":"bundle rejected"/.test(out) && /\(401\) with the credentials given; check the user and password \(or token\) in the auths entry for [\d.:]+ in \S*sidecar-wrong\.json/.test(out) ? true : undefined));
    expect(out).not.toMatch(/guessed/);
    expect((await fetch(`http://${proxy[2]}/readyz`)).status).toBe(503);
    const denied = await fetch(`http://${proxy[1]}/orders`, { headers: STOREFRONT });
    expect(denied.status).toBeGreaterThanOrEqual(403);
    expect(upstream.seen.length).toBe(seenBefore);
    child.kill('SIGTERM');
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

  it('stock OPA pulls the artifact with registry credentials, activates it and decides as Warden does', async () => {
    // The OPA built with its pure-Go WASM engine (build tag opa_wasm; tools.json "opa-wasm"), against the
    // registry that wants Basic auth. OPA's OCI client base64-encodes a bearer token itself, so the
    // Basic credential is the plain `user:password` under scheme "Basic".
    const dir = join(ws.dir, 'opa');
    mkdirSync(dir, { recursive: true });
    // Its own repository: the test above left a forged bundle under platform/bundles.
    await warden('push', `oci+http://${registry.host}/platform/stock:main`, '--bundles', 'bundles', '--registry-config', dockerConfig);
    const bundleRef = `${registry.host}/platform/stock/orders:main`;
    const stockOpa = async (name: string, opts: { token?: string; key?: string }) => {
      const [port] = await freePorts(1);
      const credentials = opts.token ? { bearer: { scheme: 'Basic', token: opts.token } } : undefined;
      writeFileSync(
        join(dir, `${name}.yaml`),
        JSON.stringify({
          services: { registry: { url: `http://${registry.host}`, type: 'oci', ...(credentials ? { credentials } : {}) } },
          bundles: { orders: { service: 'registry', resource: bundleRef, persist: false, polling: { min_delay_seconds: 1, max_delay_seconds: 2 }, signing: { keyid: 'warden' } } },
          keys: { warden: { key: opts.key ?? readFileSync(join(ws.out, 'verification-key.pem'), 'utf8'), algorithm: 'ES256' } },
          persistence_directory: join(dir, `${name}-persist`),
        }),
      );
      const child = spawn(opaWasmBinary, ['run', '--server', '--addr', `127.0.0.1:${port}`, '--config-file', join(dir, `${name}.yaml`)], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      return { url: `http://127.0.0.1:${port}`, output: () => out, stop: () => child.kill('SIGTERM') };
    };

    // Wrong credentials: the registry refuses the pull and OPA activates nothing.
    const wrong = await stockOpa('wrong-credentials', { token: `${user.name}:not-the-password` });
    await until(() => `stock OPA to be refused by the registry: ${wrong.output()}`, () => (/Bundle load failed: failed to pull .*basic credential not found/.test(wrong.output()) ? true : undefined), 30_000);
    expect(wrong.output()).not.toMatch(/activated successfully/);
    wrong.stop();

    // The right credentials: OPA pulls, verifies Warden's signature, activates policy.wasm.
    const opa = await stockOpa('stock', { token: `${user.name}:${user.password}` });
    await until(() => `stock OPA to activate the bundle: ${opa.output()}`, () => (/Bundle loaded and activated successfully/.test(opa.output()) ? true : undefined), 30_000);
    expect(opa.output()).not.toMatch(/verification|signature|Bundle load failed|Bundle activation failed/i);

    // Stock OPA and Warden's runtime decide the same calls alike, from the same bytes in the registry.
    const pulled = await pullBundle(client, parseOciReference(`oci+http://${bundleRef}`));
    const policy = await Policy.load(await openBundle(pulled!.bytes, trustFromPem(readFileSync(join(ws.out, 'verification-key.pem'), 'utf8'))));
    const call = (method: string, path: string, source: Record<string, unknown>) => ({
      source: { authn: 'none', claims: {}, address: '10.0.0.7', ...source },
      destination: { workload: 'orders', namespace: 'shop' },
      request: { method, path, segments: path.split('/').filter(Boolean), query: {}, headers: {} },
    });
    const storefront = { principal: 'spiffe://cluster.local/ns/shop/sa/storefront', authn: 'mtls' };
    const inputs = [
      call('GET', '/orders', storefront),
      call('GET', '/orders', {}),
      call('POST', '/orders', storefront),
      call('GET', '/orders/export', { principal: 'spiffe://cluster.local/ns/billing/sa/invoicer', authn: 'mtls' }),
      call('DELETE', '/orders/42', storefront),
      call('DELETE', '/orders/42', { authn: 'jwt', claims: { role: ['admin'], amr: ['pwd'] } }),
      call('GET', '/orders/42', { authn: 'jwt', claims: { role: ['support'] } }),
      call('GET', '/admin', storefront),
    ];
    const decisions = await Promise.all(inputs.map(async (input) => ((await (await fetch(`${opa.url}/v1/data/warden/decision`, { method: 'POST', body: JSON.stringify({ input }) })).json()) as { result?: unknown }).result));
    expect(decisions).toEqual(inputs.map((input) => policy.evaluate('warden/decision', input)));
    expect(decisions.map((d) => (d as { allow: boolean }).allow)).toEqual([true, false, true, true, false, false, true, false]);
    opa.stop();

    // The same artifact under a key that did not sign it: refused at verification, never activated.
    const foreign = await stockOpa('foreign-key', { token: `${user.name}:${user.password}`, key: foreignKey() });
    await until(() => `stock OPA to refuse the bundle under a foreign key: ${foreign.output()}`, () => (/verification|signature/i.test(foreign.output()) ? true : undefined), 30_000);
    expect(foreign.output()).not.toMatch(/activated successfully/);
    foreign.stop();
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
