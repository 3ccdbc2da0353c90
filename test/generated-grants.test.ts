// Generated grants are keyed by what they grant, so a call evaluates only the grants of the operation or
// MCP entry it addresses: the keyed module and the indexed routing table decide exactly what `opa eval`
// decides on the same Rego, for operations with several grants, wildcard principals, literal-vs-template
// routes behind a shared /api/v1 prefix, odd names, and a 1,000-operation spec.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { buildRepo, type BuildResult } from '../engine/compiler/build.js';
import type { PolicyInput, Source } from '../formats/input.js';
import { compiledSpecOf, openBundle, type VerifiedBundle } from '../runtime/bundle.js';
import { Policy } from '../runtime/policy.js';
import { generateInputs } from './support/inputs.js';
import { extractPolicy, opaBinary, opaDecisions } from './support/opa.js';

const execFileP = promisify(execFile);
const OPS = 1000;
const spiffe = (ns: string, sa: string) => `spiffe://cluster.local/ns/${ns}/sa/${sa}`;
const teamCaller = (i: number) => spiffe(`team-${i % 10}`, `caller-${i}`);

const catalogApi = {
  openapi: '3.1.0',
  info: { title: 'catalog', version: '1' },
  paths: {
    '/': { get: { operationId: 'root', 'x-warden-authz': { public: true } } },
    '/api/v1/orders': {
      get: {
        operationId: 'listOrders',
        'x-warden-authz': {
          allow: [
            { principal: spiffe('shop', 'storefront') },
            { principal: 'spiffe://cluster.local/ns/billing/sa/*', description: 'any billing service' },
            { namespace: 'agents' },
            { scopes: ['orders:refund'], claims: { role: ['support', 'admin'] } },
          ],
        },
      },
    },
    '/api/v1/orders/export': { get: { operationId: 'exportOrders', 'x-warden-authz': { allow: [{ namespace: 'billing' }] } } },
    '/api/v1/openapi.json': { get: { operationId: 'describe', 'x-warden-authz': { public: true } } },
    '/api/v1/orders/{id}': {
      get: { operationId: 'getOrder', 'x-warden-authz': { allow: [{ principal: 'spiffe://cluster.local/**' }, { claims: { role: ['admin'] } }] } },
      delete: { operationId: 'delete-order.v2', 'x-warden-authz': { allow: [{ claims: { role: ['admin'] }, description: 'admins only' }] } },
    },
    '/api/v1/products/{id}': { get: { operationId: 'getProduct', 'x-warden-authz': { public: true } } },
    '/api/v1/{tenant}/settings': { put: { operationId: 'putSettings', 'x-warden-authz': { allow: [{ principal: 'spiffe://cluster.local/ns/*/sa/dba-bot' }] } } },
    '/api/v1/products/{id}/reviews': { post: { operationId: 'addReview', 'x-warden-authz': { allow: [] } } },
  },
};

const catalogTools = {
  tools: [
    {
      name: 'orders.search-v2',
      inputSchema: { type: 'object' },
      annotations: { readOnlyHint: true },
      'x-warden-authz': { allow: [{ scopes: ['tools:read'] }, { principal: 'spiffe://cluster.local/ns/platform/sa/*' }] },
    },
    {
      name: 'drop_table',
      inputSchema: { type: 'object' },
      annotations: { destructiveHint: true },
      'x-warden-authz': { allow: [{ principal: 'spiffe://cluster.local/ns/platform/sa/*', destructive: true }, { scopes: ['tools:write'] }] },
    },
    { name: 'unreviewed', inputSchema: { type: 'object' }, annotations: { readOnlyHint: true } },
  ],
  resources: [{ uri: 'orders://schema', name: 'schema', 'x-warden-authz': { allow: [{ scopes: ['tools:read'] }] } }],
  prompts: [{ name: 'triage', 'x-warden-authz': { public: true } }],
};

// One workload exercising every kind of generated grant, and one with OPS operations, operation i
// granted to principal i and to its team's namespace.
function writeRepo(dir: string): void {
  const root = join(dir, 'policies');
  const workload = (name: string, manifest: Record<string, unknown>, files: Record<string, string>) => {
    const w = join(root, 'workloads', name);
    mkdirSync(w, { recursive: true });
    writeFileSync(join(w, 'workload.yaml'), stringify({ apiVersion: 'warden.dev/v1alpha1', kind: 'Workload', name, namespace: 'test', serviceAccount: name, mode: 'enforce', ...manifest }));
    for (const [f, text] of Object.entries(files)) writeFileSync(join(w, f), text);
  };
  mkdirSync(root, { recursive: true });
  writeFileSync(join(root, 'warden.yaml'), stringify({ apiVersion: 'warden.dev/v1alpha1', kind: 'PolicyRepository', trustDomain: 'cluster.local' }));
  workload('catalog', { specs: { openapi: 'openapi.yaml', mcp: 'mcp-tools.json' }, mcp: { endpoint: '/mcp' } }, { 'openapi.yaml': stringify(catalogApi), 'mcp-tools.json': JSON.stringify(catalogTools) });
  const paths: Record<string, unknown> = {};
  for (let i = 0; i < OPS; i++) {
    paths[`/r${i}/{id}`] = { post: { operationId: `op${i}`, 'x-warden-authz': { allow: [{ principal: teamCaller(i) }, { namespace: `team-${i % 10}`, description: 'same team' }] } } };
  }
  workload('large', { specs: { openapi: 'openapi.yaml' } }, { 'openapi.yaml': stringify({ openapi: '3.1.0', info: { title: 'large', version: '1' }, paths }) });
}

const mtls = (principal: string): Source => ({ principal, authn: 'mtls', claims: {}, address: '10.0.0.1' });
const jwt = (sub: string, claims: Record<string, unknown>): Source => ({ principal: sub, authn: 'jwt', claims: { sub, ...claims }, address: '10.0.0.2' });
const destination = { workload: 'catalog', namespace: 'test', principal: spiffe('test', 'catalog') };
const http = (source: Source, method: string, path: string): PolicyInput => ({
  source,
  destination,
  request: { method, path, segments: path === '/' ? [] : path.slice(1).split('/'), query: {}, headers: {} },
});
const mcp = (source: Source, call: Record<string, unknown>): PolicyInput => ({ ...http(source, 'POST', '/mcp'), mcp: call as PolicyInput['mcp'] & object });

let dir: string;
let built: BuildResult;
const loaded = new Map<string, { bundle: VerifiedBundle; policy: Policy; archive: Buffer }>();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'warden-keyed-'));
  writeRepo(dir);
  built = await buildRepo({ repo: 'policies', out: 'bundles', cwd: dir });
  for (const w of built.workloads) {
    const archive = readFileSync(w.bundle);
    const bundle = await openBundle(archive, 'unsigned-ok');
    loaded.set(w.workload, { bundle, policy: await Policy.load(bundle), archive });
  }
}, 240_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the generated module', () => {
  it('writes one rule per grant, keyed by the operation or entry it grants, with its spec line', () => {
    const rego = readFileSync(built.workloads.find((w) => w.workload === 'catalog')!.generated, 'utf8');
    expect(rego.match(/^operations\["listOrders"\]\.grants\[\d\] := /gm)).toHaveLength(4);
    expect(rego).toMatch(/^# x-warden-authz\.allow\[1\]: principal spiffe:\/\/cluster\.local\/ns\/billing\/sa\/\* — any billing service$/m);
    expect(rego).toMatch(/^operations\["delete-order\.v2"\]\.grants\[0\] := \{"kind": "operation", "name": "delete-order\.v2", "reason": "operation delete-order\.v2 granted by x-warden-authz\.allow\[0\] \(policies\/workloads\/catalog\/openapi\.yaml:\d+\) — admins only"\} if \{$/m);
    expect(rego).toMatch(/^operations\["root"\]\.grants\["public"\] := \{[^\n]*\}$/m); // public: no conditions
    expect(rego).toMatch(/^tools\["orders\.search-v2"\]\.grants\[\d\] := /m);
    expect(rego.match(/^tools\["drop_table"\]\.grants\[/gm)).toHaveLength(1);
    expect(rego).toMatch(/^# x-warden-authz\.allow\[1\] \(scopes tools:write\) grants nothing: the tool is destructive/m);
    expect(rego).toMatch(/^resources\["orders:\/\/schema"\]\.grants\[\d\] := /m);
    expect(rego).toMatch(/^prompts\["triage"\]\.grants\["public"\] := /m);
    expect(rego).not.toMatch(/tools\["unreviewed"\]|operations\["addReview"\]/);
    // No grant rule tests which operation the call is: the key does.
    expect(rego).not.toMatch(/core\.operation\.id ==|input\.mcp\.tool ==/);
  });

  it('is planned as a dynamic call of the addressed operation, not a scan of every grant', async () => {
    const plans = join(dir, 'plan');
    await extractPolicy(loaded.get('large')!.archive, join(plans, 'src'));
    await execFileP(opaBinary, ['build', '-t', 'plan', '-e', 'warden/decision', '-o', join(plans, 'plan.tar.gz'), join(plans, 'src')], { maxBuffer: 64 << 20 });
    await execFileP('tar', ['xzf', join(plans, 'plan.tar.gz'), '-C', plans]);
    const plan = readFileSync(join(plans, 'plan.json'), 'utf8');
    const strings = (JSON.parse(plan) as { static: { strings: Array<{ value: string }> } }).static.strings.map((s) => s.value);
    const dynamic = [...plan.matchAll(/"type":"CallDynamicStmt","stmt":\{[^}]*"path":(\[[^\]]*\])/g)].map((m) =>
      (JSON.parse(m[1]!) as Array<{ type: string; value: number }>).map((p) => (p.type === 'string_index' ? strings[p.value] : '<key>')).join('.'),
    );
    expect(dynamic).toContain('g0.warden.generated.operations.<key>.grants');
  });

  it('indexes the routes of one method and length on the segment that separates them best', () => {
    const spec = compiledSpecOf(loaded.get('catalog')!.bundle);
    const get4 = spec.http.routes.GET![4]!;
    expect(get4.position).toBe(2); // /api/v1/<orders|products>/{id}: the shared /api/v1 prefix separates nothing
    expect(Object.keys(get4.literal).sort()).toEqual(['orders', 'products']);
    const spellings = (folded: Array<Record<string, { routes: Array<{ spelling: string }> }>>) => folded.map((at) => Object.fromEntries(Object.entries(at).map(([k, l]) => [k, l.routes.map((r) => r.spelling)])));
    expect(spellings(get4.folded)).toEqual([{ api: ['api', 'api', 'api'] }, { v1: ['v1', 'v1', 'v1'] }, { orders: ['orders', 'orders'], products: ['products'] }, { export: ['export'] }]);
    expect(get4.folded[3]!.export).toEqual({ spellings: ['export'], routes: [{ spelling: 'export', route: ['api', 'v1', 'orders', 'export'] }] });
    expect(spellings(spec.http.routes.POST![5]!.folded)).toEqual([{ api: ['api'] }, { v1: ['v1'] }, { products: ['products'] }, {}, { reviews: ['reviews'] }]);
    expect(spec.http.routes.GET![0]).toMatchObject({ param: [{ id: 'root' }] });
    expect(spec.http.routes.HEAD![4]!.position).toBe(2);
  });
});

describe('decisions of the keyed module', () => {
  const decide = (input: PolicyInput) => loaded.get('catalog')!.policy.decide('warden/decision', input);

  it('gives every grant of an operation that covers the caller as a reason, and no grant of another operation', () => {
    const d = decide(http(jwt('sam', { role: 'support', scope: 'orders:refund' }), 'GET', '/api/v1/orders'));
    expect(d).toMatchObject({ allow: true, operation: 'listOrders' });
    expect(d.reasons).toEqual([expect.stringMatching(/^operation listOrders granted by x-warden-authz\.allow\[3\] /)]);
    const two = decide(http(jwt('ann', { role: 'admin', scope: 'orders:refund' }), 'GET', '/api/v1/orders/7'));
    expect(two).toMatchObject({ allow: true, operation: 'getOrder', reasons: [expect.stringMatching(/^operation getOrder granted by x-warden-authz\.allow\[1\] /)] });
    const denied = decide(http(jwt('sam', { role: 'support', scope: 'orders:refund' }), 'DELETE', '/api/v1/orders/7'));
    expect(denied).toEqual({ allow: false, operation: 'delete-order.v2', reasons: ['no rule grants sam DELETE /api/v1/orders/7'] });
  });

  it('matches wildcard principals within one segment (*) or across segments (**)', () => {
    expect(decide(http(mtls(spiffe('billing', 'invoicer')), 'GET', '/api/v1/orders')).allow).toBe(true);
    expect(decide(http(mtls('spiffe://cluster.local/ns/billing/sa/invoicer/extra'), 'GET', '/api/v1/orders')).allow).toBe(false);
    expect(decide(http(mtls('spiffe://cluster.local/ns/billing/sa/invoicer/extra'), 'GET', '/api/v1/orders/1')).allow).toBe(true);
    expect(decide(http(mtls(spiffe('acme', 'dba-bot')), 'PUT', '/api/v1/acme/settings')).allow).toBe(true);
    expect(decide(http(mtls(spiffe('acme', 'dba-bot')), 'PUT', '/api/v1/orders/settings')).operation).toBe('putSettings');
  });

  it('routes a literal template before a parameter, behind a shared prefix, and HEAD like GET', () => {
    expect(decide(http(mtls(spiffe('billing', 'reports')), 'GET', '/api/v1/orders/export'))).toMatchObject({ allow: true, operation: 'exportOrders' });
    // getOrder's grant (any principal of the trust domain) would allow this; the literal template wins.
    expect(decide(http(mtls(spiffe('shop', 'storefront')), 'GET', '/api/v1/orders/export'))).toMatchObject({ allow: false, operation: 'exportOrders' });
    expect(decide(http(mtls(spiffe('shop', 'storefront')), 'GET', '/api/v1/orders/42'))).toMatchObject({ allow: true, operation: 'getOrder' });
    expect(decide(http({ principal: 'anonymous', authn: 'none', claims: {}, address: '1.2.3.4' }, 'HEAD', '/api/v1/products/9'))).toMatchObject({ allow: true, operation: 'getProduct' });
    expect(decide(http({ principal: 'anonymous', authn: 'none', claims: {}, address: '1.2.3.4' }, 'GET', '/'))).toMatchObject({ allow: true, operation: 'root' });
    expect(decide(http(mtls(spiffe('shop', 'storefront')), 'GET', '/api/v1/orders/'))).not.toHaveProperty('operation');
  });

  it('denies a path whose segment differs only by case from a literal the spec routes there (an app may route regardless of case)', () => {
    const storefront = mtls(spiffe('shop', 'storefront'));
    const variant = (segment: string, route: string) => `the path segment "${segment}" differs only by case from "${route}", which the spec routes: an app that routes regardless of case would read another operation`;
    // getOrder's grant covers the storefront and /{id} matches, but express would serve the export here.
    for (const spelled of ['EXPORT', 'Export', 'exporT']) {
      expect(decide(http(storefront, 'GET', `/api/v1/orders/${spelled}`))).toEqual({ allow: false, operation: 'getOrder', reasons: [variant(spelled, 'export')] });
    }
    expect(decide(http(storefront, 'HEAD', '/api/v1/orders/EXPORT'))).toMatchObject({ allow: false, reasons: [variant('EXPORT', 'export')] });
    // Any literal segment of a route, the prefix's too; the Kelvin sign lower-cases to k as Go's ToLower reads it.
    expect(decide(http(storefront, 'GET', '/API/v1/orders/42')).reasons).toEqual([variant('API', 'api')]);
    expect(decide(http(storefront, 'GET', '/api/v1/products/\u212a9')).allow).toBe(true);
    expect(decide(http(storefront, 'GET', '/api/v1/orders/\u212a')).allow).toBe(true);
    expect(decide(http(storefront, 'GET', '/api/v1/pro\u212aducts/1')).allow).toBe(false);
    // Only routes the rest of the call matches: /api/v1/products/{id} holds no literal `export`.
    expect(decide(http(storefront, 'GET', '/api/v1/products/EXPORT'))).toMatchObject({ allow: true, operation: 'getProduct' });
    expect(decide(http(storefront, 'GET', '/api/v1/products/export.json'))).toMatchObject({ allow: true, operation: 'getProduct' });
    // Literals of other methods and lengths are not this call's: PUT routes /api/v1/{tenant}/settings only.
    expect(decide(http(mtls(spiffe('acme', 'dba-bot')), 'PUT', '/api/v1/ORDERS/settings'))).toMatchObject({ allow: true, operation: 'putSettings' });
    // The literal with a format suffix: Rails reads /orders/export.json as /orders/export.
    const suffixed = (segment: string, route: string) => `the path segment "${segment}" is "${route}", which the spec routes, with a format suffix: an app that reads suffixes as formats (Rails) would read another operation`;
    for (const spelled of ['export.json', 'export.csv', 'Export.JSON', 'export.tar.gz']) {
      expect(decide(http(storefront, 'GET', `/api/v1/orders/${spelled}`)).reasons).toContain(suffixed(spelled, 'export'));
    }
    expect(decide(http(storefront, 'GET', '/api/v1/orders/42.json'))).toMatchObject({ allow: true, operation: 'getOrder' });
    expect(decide(http(storefront, 'GET', '/api/v1/orders/.export'))).toMatchObject({ allow: true, operation: 'getOrder' });
    // A literal spelled with its dot is itself; the base of a suffixed literal of its bucket is not.
    expect(decide(http(storefront, 'GET', '/api/v1/openapi.json'))).toMatchObject({ allow: true, operation: 'describe' });
    expect(decide(http(storefront, 'GET', '/api/v1/orders.json')).reasons).toEqual([suffixed('orders.json', 'orders')]);
    // Ids that only contain a literal, or equal it exactly, are as before.
    expect(decide(http(storefront, 'GET', '/api/v1/orders/EXPORT-42'))).toMatchObject({ allow: true, operation: 'getOrder' });
    expect(decide(http(storefront, 'GET', '/api/v1/orders/export'))).toMatchObject({ allow: false, operation: 'exportOrders', reasons: [expect.stringMatching(/^no rule grants/)] });
  });

  it('grants MCP entries by name, keeps destructive tools to grants that say so, and offers tools per caller', () => {
    const platform = mtls(spiffe('platform', 'dba-bot'));
    const writer = jwt('agent', { scope: 'tools:read tools:write' });
    expect(decide(mcp(writer, { method: 'tools/call', tool: 'orders.search-v2', arguments: {} })).allow).toBe(true);
    expect(decide(mcp(writer, { method: 'tools/call', tool: 'drop_table', arguments: {} })).allow).toBe(false);
    expect(decide(mcp(platform, { method: 'tools/call', tool: 'drop_table', arguments: {} })).allow).toBe(true);
    expect(decide(mcp(writer, { method: 'tools/call', tool: 'unreviewed', arguments: {} })).allow).toBe(false);
    expect(decide(mcp(writer, { method: 'resources/read', uri: 'orders://schema' })).allow).toBe(true);
    expect(decide(mcp(platform, { method: 'resources/read', uri: 'orders://schema' })).allow).toBe(false);
    expect(decide(mcp(platform, { method: 'prompts/get', name: 'triage' })).allow).toBe(true);
    // A denial with no other reason names the call: the tool, prompt or resource it addresses, or nothing.
    const named = (call: Record<string, unknown>) => decide(mcp(platform, call)).reasons.join('; ').replace(/^no rule grants \S+ /, '');
    expect(named({ method: 'resources/read', uri: 'orders://schema' })).toBe('MCP resources/read orders://schema');
    expect(named({ method: 'prompts/get', name: 'unlisted' })).toBe('MCP prompts/get unlisted');
    expect(named({ method: 'sampling/createMessage' })).toBe('MCP sampling/createMessage ');
    const visible = (s: Source) => [...(loaded.get('catalog')!.policy.evaluate('warden/visible_tools', mcp(s, { method: 'tools/list' })) as string[])].sort();
    expect(visible(writer)).toEqual(['orders.search-v2']);
    expect(visible(platform)).toEqual(['drop_table', 'orders.search-v2']);
    expect(visible(mtls(spiffe('shop', 'storefront')))).toEqual([]);
  });

  it('never lets a bearer token pose as a workload: SPIFFE principals, wildcards and namespaces match mTLS and mesh-header callers only, in the pod and in opa eval', async () => {
    const { policy, archive } = loaded.get('catalog')!;
    const as = (authn: Source['authn'], principal: string): Source => ({ principal, authn, claims: authn === 'jwt' ? { sub: principal } : {}, address: '10.0.0.3' });
    const calls: Array<[string, string, string]> = [
      [spiffe('shop', 'storefront'), 'GET', '/api/v1/orders'], // principal grant
      [spiffe('billing', 'invoicer'), 'GET', '/api/v1/orders'], // ns/billing/sa/* wildcard
      [spiffe('billing', 'reports'), 'GET', '/api/v1/orders/export'], // namespace grant
      [spiffe('acme', 'dba-bot'), 'PUT', '/api/v1/acme/settings'], // ns/*/sa/dba-bot wildcard
      [spiffe('shop', 'storefront'), 'GET', '/api/v1/orders/9'], // ** wildcard
    ];
    const inputs = calls.flatMap(([principal, method, path]) => (['mtls', 'header', 'jwt'] as const).map((authn) => http(as(authn, principal), method, path)));
    const pod = inputs.map((i) => policy.decide('warden/decision', i));
    expect(pod.map((d) => d.allow)).toEqual(calls.flatMap(() => [true, true, false]));
    expect((await opaDecisions(archive, inputs, join(dir, 'diff-kinds'))).decisions).toEqual(pod);
  });

  it('decides exactly what opa eval decides on the same Rego, on generated inputs', async () => {
    const { bundle, policy, archive } = loaded.get('catalog')!;
    const inputs = generateInputs(bundle, 400, 3);
    const go = await opaDecisions(archive, inputs, join(dir, 'diff-catalog'));
    expect(inputs.map((i) => policy.decide('warden/decision', i))).toEqual(go.decisions);
    const sorted = (v: unknown) => (Array.isArray(v) ? [...(v as string[])].sort() : v);
    expect(inputs.map((i) => sorted(policy.evaluate('warden/visible_tools', i)))).toEqual(go.visible.map(sorted));
  });
});

describe(`a spec with ${OPS} operations`, () => {
  // Operation i is granted to principal i (allow[0]) and to callers in namespace team-(i % 10) (allow[1]).
  const inputs = Array.from({ length: 600 }, (_, n) => {
    const op = (n * 337) % OPS;
    const caller = [op, op + 1, op + 10][n % 3]! % OPS;
    const path = `/r${op}/${n}`;
    return { op, caller, input: { ...http(mtls(teamCaller(caller)), 'POST', path), destination: { ...destination, workload: 'large' } } };
  });

  it('decides every operation by its own grants', () => {
    const { policy } = loaded.get('large')!;
    for (const { op, caller, input } of inputs) {
      const d = policy.decide('warden/decision', input);
      const line = /openapi\.yaml:(\d+)/.exec(d.reasons.join(' '))?.[1];
      const expected = [
        ...(caller === op ? [`operation op${op} granted by x-warden-authz.allow[0] (policies/workloads/large/openapi.yaml:${line})`] : []),
        ...(caller % 10 === op % 10 ? [`operation op${op} granted by x-warden-authz.allow[1] (policies/workloads/large/openapi.yaml:${line}) — same team`] : []),
      ];
      if (expected.length === 0) expected.push(`no rule grants ${teamCaller(caller)} POST ${input.request.path}`);
      expect(d).toEqual({ allow: caller % 10 === op % 10, operation: `op${op}`, reasons: expected });
    }
  });

  it('decides exactly what opa eval decides', async () => {
    const { policy, archive } = loaded.get('large')!;
    const sample = inputs.map((x) => x.input);
    const go = await opaDecisions(archive, sample, join(dir, 'diff-large'));
    expect(sample.map((i) => policy.decide('warden/decision', i))).toEqual(go.decisions);
  });
});
