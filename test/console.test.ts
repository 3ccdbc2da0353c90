// The web console in real headless Chromium (Debian's, driven by playwright-core; no browser download):
// the system of `warden up` (engine with its SQLite store filled by real sidecars and the webhook, demo
// scenario), every page opened with the auditor's client certificate, what a person sees checked, and
// screenshots saved under test/artifacts/console/. Access is checked on a real engine too: no
// certificate, a workload's certificate, and forged, expired, alg:none and wrong-claim OIDC tokens.
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, UnsecuredJWT } from 'jose';
import { pino } from 'pino';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callAs } from '../cli/up-apps.js';
import { runScenario } from '../cli/up-scenario.js';
import { ID, startStack, type Stack } from '../cli/up-stack.js';
import { buildRepo } from '../engine/compiler/build.js';
import { examplePolicies } from './support/example-policies.js';
import { startEngineService, type EngineService } from '../engine/service.js';
import { repoRoot } from '../engine/toolchain/paths.js';
import { until } from './support/until.js';

const CHROMIUM = process.env.WARDEN_CHROMIUM ?? '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const artifacts = join(repoRoot, 'test', 'artifacts', 'console');
const dir = mkdtempSync(join(tmpdir(), 'warden-console-test-'));
let stack: Stack;
let browser: BrowserContext;
let page: Page;
let oidcEngine: EngineService;
let issuerKey: CryptoKey;
const ISSUER = 'https://login.example.test';

const shot = (name: string) => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
const open = async (path: string) => {
  const r = await page.goto(`${stack.engine.url}${path}`);
  expect(r?.status(), path).toBe(200);
};

function get(base: string, path: string, opts: { cert?: { cert: string; key: string }; headers?: Record<string, string> } = {}): Promise<{ status: number; text: string }> {
  const u = new URL(path, base);
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: u.hostname, port: u.port, path: u.pathname + u.search, ca: stack.ca.cert, agent: false, headers: opts.headers ?? {}, ...(opts.cert ?? {}) }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  mkdirSync(artifacts, { recursive: true });
  // The run's shared build, copied: its bundles, and its signing key for a later rebuild here.
  cpSync((await examplePolicies()).dir, dir, { recursive: true });
  stack = await startStack({ bundlesDir: join(dir, 'bundles'), stateDir: join(dir, 'state'), enginePort: 0, webhookPort: 0 });
  await runScenario(stack, () => undefined);
  await stack.flush();
  browser = await chromium.launchPersistentContext(join(dir, 'chromium-profile'), {
    executablePath: CHROMIUM,
    args: ARGS,
    headless: true,
    viewport: { width: 1400, height: 900 },
    // The engine's certificate comes from this run's own CA; the client certificate is the auditor's.
    ignoreHTTPSErrors: true,
    clientCertificates: [{ origin: stack.engine.url, cert: Buffer.from(stack.certs.auditor.cert), key: Buffer.from(stack.certs.auditor.key) }],
  });
  page = await browser.newPage();

  // A second engine on the same bundles with OIDC access configured (a JWKS file of a test issuer).
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  issuerKey = privateKey;
  writeFileSync(join(dir, 'issuer-jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), alg: 'ES256', kid: 'k1' }] }));
  const serving = await stack.ca.server('127.0.0.1');
  oidcEngine = await startEngineService({
    bundlesDir: join(dir, 'bundles'),
    host: '127.0.0.1',
    port: 0,
    storeUrl: `sqlite:${join(dir, 'oidc-audit.db')}`,
    tls: { cert: serving.cert, key: serving.key, clientCa: stack.ca.cert },
    readers: [],
    console: { oidc: { issuer: ISSUER, jwks: join(dir, 'issuer-jwks.json'), audience: 'warden-console', claim: 'groups', value: 'warden-auditors' } },
    logger: pino({ level: 'silent' }),
  });
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await oidcEngine?.close();
  await stack?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the web console in Chromium', () => {
  it('feed: shows the stored decisions, and a new decision within a second of the call', async () => {
    await open('/ui/feed');
    await page.waitForSelector('#live-state:text("live")');
    await expect(page.locator('#feed tr').count()).resolves.toBeGreaterThan(10);
    await expect(page.locator('#feed').innerText()).resolves.toContain('tools/call drop_table');
    await shot('feed');
    const r = await callAs(undefined, stack.ca.cert, stack.workloads.storefront.url, 'GET', '/products/sku-7');
    expect(r.decisionId).toBeDefined();
    const answered = Date.now();
    await page.waitForSelector(`#feed a[href="/ui/decisions/${r.decisionId}"]`, { timeout: 1000 });
    expect(Date.now() - answered).toBeLessThan(1000);
    await expect(page.locator('#feed tr').first().innerText()).resolves.toContain('GET /products/sku-7');
  });

  it('feed: filters as warden audit query does', async () => {
    await open('/ui/feed?decision=deny&workload=ops-mcp');
    const rows = await page.locator('#feed tr').allInnerTexts();
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) expect(row).toMatch(/deny\s+agents\/ops-mcp/);
  });

  it('graph: draws the scenario edges with allow/deny counts, and an edge click lists its decisions', async () => {
    await open('/ui/graph');
    await page.waitForSelector('#graph[data-ready="true"]');
    await expect(page.locator('#graph canvas').count()).resolves.toBeGreaterThan(0);
    const edges = await page.locator('table.edges tbody tr').allInnerTexts();
    const has = (from: string, to: string) => edges.some((e) => e.includes(from) && e.includes(to));
    expect(has('spiffe://cluster.local/ns/shop/sa/storefront', 'shop/orders')).toBe(true);
    expect(has('support-agent', 'agents/ops-mcp')).toBe(true);
    expect(has('anonymous', 'shop/storefront')).toBe(true);
    expect(has('spiffe://cluster.local/ns/agents/sa/ops-mcp', 'shop/orders')).toBe(true);
    expect(Number(await page.locator('#graph').getAttribute('data-edges'))).toBe(edges.length);
    await shot('graph');
    // Click-through: a real mouse click on the support agent's edge, drawn by cytoscape on a canvas.
    const at = await page.evaluate(() => {
      const cy = (window as unknown as { wardenGraph: { edges(sel: string): { renderedMidpoint(): { x: number; y: number } } } }).wardenGraph;
      return cy.edges('[principal = "support-agent"]').renderedMidpoint();
    });
    const box = (await page.locator('#graph').boundingBox())!;
    const navigated = page.waitForURL(/\/ui\/feed\?/, { waitUntil: 'commit' });
    await page.mouse.click(box.x + at.x, box.y + at.y);
    await navigated;
    await page.waitForSelector('#feed tr');
    expect(new URL(page.url()).searchParams.get('principal')).toBe('support-agent');
    const rows = await page.locator('#feed tr').allInnerTexts();
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) expect(row).toContain('support-agent');
  });

  it('graph: a capped graph says how many edges and decisions it left out, and a wide window says the exact window and when it was computed', async () => {
    await open('/ui/graph');
    const all = await page.locator('table.edges tbody tr').count();
    expect(all).toBeGreaterThan(3);
    await expect(page.locator('#graph-window').innerText()).resolves.toMatch(new RegExp(`as of .*: all ${all} edges \\(\\d+ decisions\\)`));
    await open('/ui/graph?limit=2');
    await page.waitForSelector('#graph[data-ready="true"]');
    expect(await page.locator('table.edges tbody tr').count()).toBe(2);
    expect(Number(await page.locator('#graph').getAttribute('data-edges'))).toBe(2);
    await expect(page.locator('#graph-window').innerText()).resolves.toMatch(new RegExp(`the 2 busiest of ${all} edges \\(\\d+ of \\d+ decisions\\); ${all - 2} edges left out carry the other \\d+ decisions`));
    await shot('graph-top');
    // Seven days: computed off the request path; the page either has it or reloads itself once it is ready.
    await page.goto(`${stack.engine.url}/ui/graph?since=7d`);
    await page.waitForSelector('#graph[data-ready="true"]', { timeout: 30_000 });
    const note = await page.locator('#graph-window').innerText();
    const [, from, to, asOf] = /^decisions from (\S+) to (\S+), as of (\S+) /.exec(note) ?? [];
    expect(Date.parse(to!) - Date.parse(from!)).toBe(7 * 86_400_000);
    expect(to).toBe(asOf);
    expect(note).toContain(`all ${all} edges`);
  });

  it('graph: a wide window not computed yet says so, and the page reloads itself with the graph once its snapshot is ready', async () => {
    // A second engine on the same store whose wide windows never wait for their first snapshot.
    const serving = await stack.ca.server('127.0.0.1');
    const second = await startEngineService({
      bundlesDir: join(dir, 'bundles'),
      host: '127.0.0.1',
      port: 0,
      storeUrl: stack.files.store,
      tls: { cert: serving.cert, key: serving.key, clientCa: stack.ca.cert },
      readers: [ID.auditor],
      console: { graphWaitMs: 0 },
      logger: pino({ level: 'silent' }),
    });
    const context = await chromium.launchPersistentContext(join(dir, 'chromium-profile-2'), {
      executablePath: CHROMIUM,
      args: ARGS,
      headless: true,
      viewport: { width: 1400, height: 900 },
      ignoreHTTPSErrors: true,
      clientCertificates: [{ origin: second.url, cert: Buffer.from(stack.certs.auditor.cert), key: Buffer.from(stack.certs.auditor.key) }],
    });
    try {
      const p = await context.newPage();
      const loads: string[] = [];
      p.on('load', () => loads.push(p.url()));
      // The script's polls of /ui/api/graph reach the engine only once the pending page has been read here.
      let release: () => void = () => undefined;
      const read = new Promise<void>((r) => (release = r));
      await p.route(/\/ui\/api\/graph/, async (route) => {
        await read;
        await route.continue();
      });
      await p.goto(`${second.url}/ui/graph?since=7d`);
      await expect(p.locator('#graph-window').innerText()).resolves.toContain('This window is wide: its aggregate is being computed off the request path');
      await p.screenshot({ path: join(artifacts, 'graph-pending.png'), fullPage: true });
      release();
      // The script polls /ui/api/graph (202 until the snapshot exists), then reloads the page, which now has it.
      await p.waitForSelector('#graph[data-ready="true"]', { timeout: 30_000 });
      expect(loads.length).toBeGreaterThanOrEqual(2);
      await expect(p.locator('#graph-window').innerText()).resolves.toMatch(/^decisions from \S+ to \S+, as of \S+ .*: all \d+ edges/);
      expect(await p.locator('table.edges tbody tr').count()).toBeGreaterThan(3);
    } finally {
      await context.close();
      await second.close();
    }
  });

  it('decision page: the drop_table denial names the failed condition and the grant that would allow it', async () => {
    const drop = (await stack.engine.store!.query({ tool: ['drop_table'], sort: 'seq', limit: 1 }))[0]!;
    await open(`/ui/decisions/${drop.event.decision_id}`);
    const text = await page.locator('main').innerText();
    expect(text).toContain('What would have allowed it');
    expect(text).toContain('grants the workload identity spiffe://cluster.local/ns/platform/sa/dba-bot only; the caller authenticated with a JWT');
    expect(text).toContain('tool drop_table is destructive and no grant marked destructive: true covers this caller');
    expect(text).toMatch(/warden\/core\.rego:\d+/);
    await shot('decision');
  });

  it('workload pages: bundle revision and age, and the permission matrix warden diff computes', async () => {
    await open('/ui/workloads');
    await expect(page.locator('main').innerText()).resolves.toMatch(/ops-mcp\s+\S+-\S+\s+\d+ (s|min) old/);
    await shot('workloads');
    await open('/ui/workloads/ops-mcp');
    const matrix = await page.locator('table.matrix').innerText();
    expect(matrix).toContain('tool:drop_table');
    expect(matrix).toContain('jwt{scope=tools:read}');
    await expect(page.locator('main').innerText()).resolves.toContain('decision-log drops');
    // The ops-mcp sidecar reports its drop counter with every batch of decisions it ships.
    await expect(page.locator('#drops').innerText()).resolves.toMatch(/ops-mcp-up\s+agents\s+0\s+\d+ s ago/);
    await shot('workload');
  });

  it('admission page: refusals grouped by rule and namespace, each group leading to its refusals and their explanations', async () => {
    await open('/ui/admission');
    const rows = await page.locator('table.refusals tbody tr').allInnerTexts();
    expect(rows.some((r) => /guardrails\/no-latest-tag\s+shop\s+1/.test(r))).toBe(true);
    expect(rows.some((r) => /coverage\/workload-bundle\s+shop\s+1/.test(r))).toBe(true);
    await shot('admission');
    // A group leads to its refusals (read from the refusal index, a page at a time), and each refusal to its explanation.
    await Promise.all([page.waitForURL(/\/ui\/admission\/refusals\?/, { waitUntil: 'commit' }), page.locator('table.refusals tbody tr', { hasText: 'guardrails/no-latest-tag' }).locator('a').click()]);
    await page.waitForSelector('#refusals tr');
    await expect(page.locator('h1').innerText()).resolves.toBe('Refused by guardrails/no-latest-tag in shop');
    const refusals = await page.locator('#refusals tr').allInnerTexts();
    expect(refusals).toHaveLength(1);
    expect(refusals[0]).toMatch(/deny\s+shop\/admission\s+alice@example.com\s+CREATE Deployment shop\/payments\s+.*guardrails\/no-latest-tag: /);
    await shot('admission-group');
    await Promise.all([page.waitForURL(/\/ui\/decisions\//, { waitUntil: 'commit' }), page.locator('#refusals a').first().click()]);
    await expect(page.locator('main').innerText()).resolves.toContain('guardrails/no-latest-tag');
  });

  it('review: the last rollout of a workload, as warden diff --format html shows a review', async () => {
    // A new policy revision reaches the engine: the support agent's grant now says destructive: true.
    const repo = join(dir, 'policies-next');
    cpSync(join(repoRoot, 'policies'), repo, { recursive: true });
    const edit = (file: string, from: string, to: string) => writeFileSync(join(repo, file), readFileSync(join(repo, file), 'utf8').replace(from, to));
    edit('workloads/ops-mcp/mcp-tools.json', '{ "scopes": ["tools:write"], "description": "NOT a grant: lacks destructive: true (compiler warns)" }', '{ "scopes": ["tools:write"], "destructive": true }');
    edit('workloads/ops-mcp/policy_test.rego', 'test_writer_cannot_drop_tables if', 'writer_could_not_drop_tables if');
    await buildRepo({ repo, out: join(dir, 'bundles'), cwd: dir });
    await until('the engine to keep the new ops-mcp revision', async () => ((await stack.engine.revisions!.list()).filter((k) => k.bundle === 'ops-mcp').length === 2 ? true : undefined));
    await open('/ui/workloads/ops-mcp');
    await Promise.all([page.waitForURL(/\/ui\/review\/ops-mcp$/, { waitUntil: 'commit' }), page.click('a[href="/ui/review/ops-mcp"]')]);
    await page.waitForSelector('td.widen');
    const text = await page.locator('body').innerText();
    expect(text).toMatch(/deny → allow\s+tool:drop_table\s+jwt\{scope=tools:write\}/);
    await shot('review');
  });
});

describe('console access', () => {
  const token = (claims: Record<string, unknown>, opts: { exp?: string | number; key?: CryptoKey; issuer?: string } = {}) =>
    new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setSubject('dana').setIssuer(opts.issuer ?? ISSUER).setAudience('warden-console').setIssuedAt(Math.floor(Date.now() / 1000) - 7200).setExpirationTime(opts.exp ?? '1h').sign(opts.key ?? issuerKey);
  const bearer = async (t: string | Promise<string>) => get(oidcEngine.url, '/ui/feed', { headers: { authorization: `Bearer ${await t}` } });

  it('is never anonymous: no certificate → 401, a workload certificate → 403, on every page and asset', async () => {
    for (const path of ['/ui', '/ui/feed', '/ui/feed/stream', '/ui/graph', '/ui/api/graph', '/ui/admission', '/ui/workloads/orders', '/ui/assets/console.js']) {
      expect((await get(stack.engine.url, path)).status, path).toBe(401);
      expect((await get(stack.engine.url, path, { cert: stack.certs.storefront })).status, path).toBe(403);
    }
    expect((await get(stack.engine.url, '/ui/feed', { cert: stack.certs.auditor })).status).toBe(200);
  });

  it('takes an OIDC token from the configured issuer with the configured claim, and nothing else', async () => {
    expect((await bearer(token({ groups: ['warden-auditors'] }))).status).toBe(200);
    expect((await bearer(token({ groups: ['developers'] }))).status).toBe(403);
    const { privateKey: forger } = await generateKeyPair('ES256');
    expect((await bearer(token({ groups: ['warden-auditors'] }, { key: forger }))).status).toBe(401);
    expect((await bearer(token({ groups: ['warden-auditors'] }, { exp: Math.floor(Date.now() / 1000) - 3600 }))).status).toBe(401);
    expect((await bearer(token({ groups: ['warden-auditors'] }, { issuer: 'https://evil.example' }))).status).toBe(401);
    const none = new UnsecuredJWT({ groups: ['warden-auditors'] }).setSubject('dana').setIssuer(ISSUER).setAudience('warden-console').setExpirationTime('1h').encode();
    expect((await bearer(none)).status).toBe(401);
    // An HMAC token keyed with the issuer's public key (algorithm confusion) is refused.
    const jwk = JSON.parse(readFileSync(join(dir, 'issuer-jwks.json'), 'utf8')) as { keys: Array<Record<string, string>> };
    const hs = await new SignJWT({ groups: ['warden-auditors'] }).setProtectedHeader({ alg: 'HS256', kid: 'k1' }).setSubject('dana').setIssuer(ISSUER).setAudience('warden-console').setExpirationTime('1h').sign(new TextEncoder().encode(JSON.stringify(jwk.keys[0])));
    expect((await bearer(hs)).status).toBe(401);
    // A valid token's payload grafted onto an alg:none header, and a Basic header, are refused too.
    const good = await token({ groups: ['warden-auditors'] });
    const [, payload] = good.split('.');
    expect((await bearer(`${Buffer.from('{"alg":"none"}').toString('base64url')}.${payload}.`)).status).toBe(401);
    expect((await get(oidcEngine.url, '/ui/feed', { headers: { authorization: 'Basic ZGFuYTpwdw==' } })).status).toBe(401);
    // The engine without OIDC configured takes no bearer token at all, even with a reader's certificate.
    expect((await get(stack.engine.url, '/ui/feed', { cert: stack.certs.auditor, headers: { authorization: `Bearer ${good}` } })).status).toBe(401);
  });

  it('sends a strict content security policy and escapes what callers control', async () => {
    const r = await get(stack.engine.url, '/ui/feed?principal=%3Cscript%3Ealert(1)%3C%2Fscript%3E', { cert: stack.certs.auditor });
    expect(r.text).not.toContain('<script>alert(1)');
    expect(r.text).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
  });

  it("refuses the graph's and an admission group's parameters it cannot use, saying which, and escapes the group it names", async () => {
    const as = (path: string) => get(stack.engine.url, path, { cert: stack.certs.auditor });
    for (const [path, says] of [
      ['/ui/graph?limit=100000', 'limit: &quot;100000&quot; is not a number of edges from 1 to 200'],
      ['/ui/api/graph?limit=0', 'limit: &quot;0&quot;'],
      ['/ui/graph?limit=2&limit=3', 'limit: &quot;2,3&quot; is not a number of edges'],
      ['/ui/admission/refusals?rule=a&rule=b&namespace=shop', "rule: give exactly one (the group&#39;s rule"],
      ['/ui/admission/refusals?rule=a', "namespace: give exactly one"],
      ['/ui/admission/refusals?rule=a&namespace=shop&before=1%3B%20DROP%20TABLE%20events', 'before: not a cursor of this page'],
      ['/ui/admission/refusals?rule=a&namespace=shop&since=forever', 'since: &quot;forever&quot; is not a duration'],
    ] as const) {
      const r = await as(path);
      expect(r.status, path).toBe(400);
      expect(r.text, path).toContain(says);
    }
    const r = await as('/ui/admission/refusals?rule=%3Cscript%3Ealert(1)%3C%2Fscript%3E&namespace=shop');
    expect(r.status).toBe(200);
    expect(r.text).not.toContain('<script>alert(1)');
    expect(r.text).toContain('Refused by &lt;script&gt;alert(1)&lt;/script&gt; in shop');
  });
});
