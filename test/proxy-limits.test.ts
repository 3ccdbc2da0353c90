// No call can hang `warden proxy`: run as a real process, with a policy that passes a caller's header
// to `replace` (which looped forever in OPA's WASM when the header named no unit) and one that loops
// on demand, under the deadline the workload sets in its workload.yaml; plus an MCP tool call whose
// arguments carry a lone surrogate, through the real MCP SDK on both sides, decided as `opa eval` does.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { exportJWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUDIENCE, ISSUER, startMcpServer, tokenIssuer, type TestMcpServer, type TokenIssuer } from './support/mcp-fixtures.js';
import { closeServer, copyPolicies, startUpstream, type PolicyCopy, type Upstream } from './support/proxy-fixtures.js';
import { extractPolicy, opaBinary } from './support/opa.js';
import { until } from './support/until.js';
import { stopWardens } from './support/warden-process.js';

const run = promisify(execFile);
const DEADLINE_MS = 20;

// Rules a platform team could write: a quota header with a unit the caller names (stripped as the
// Gatekeeper library strips resource units), and a loop a header switches on.
const rules = `
package warden.workload

import rego.v1

deny contains "quota above 100" if {
	unit := object.get(input.request.headers, "x-unit", "")
	quota := object.get(input.request.headers, "x-quota", "0")
	to_number(replace(quota, unit, "")) > 100
}

deny contains "spun" if {
	input.request.headers["x-spin"] == "yes"
	a := numbers.range(1, 3000)
	count({true | a[_]; a[_]; a[_]}) > 0
}
`;

const children: ChildProcess[] = [];
let policies: PolicyCopy;
let upstream: Upstream;
let mcpServer: TestMcpServer;
let issuer: TokenIssuer;
let storefront: { url: string; lines: () => string };
let opsMcp: { url: string; lines: () => string };

function startProxy(args: string[]): Promise<{ url: string; lines: () => string }> {
  const child = spawn(process.execPath, ['bin/warden.js', 'proxy', '--listen', '127.0.0.1:0', '--verification-key', join(policies.out, 'verification-key.pem'), '--spill', join(policies.dir, `spill-${children.length}.ndjson`), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  return new Promise((ok, fail) => {
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /on ([\d.]+:\d+)/.exec(out);
      if (m) ok({ url: `http://${m[1]}`, lines: () => out });
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => fail(new Error(`warden proxy exited with ${code}: ${out}`)));
  });
}

beforeAll(async () => {
  policies = await copyPolicies(['storefront', 'ops-mcp'], (repo) => {
    writeFileSync(join(repo, 'workloads', 'storefront', 'limits.rego'), rules);
    const manifest = join(repo, 'workloads', 'storefront', 'workload.yaml');
    writeFileSync(manifest, `${readFileSync(manifest, 'utf8')}limits:\n  deadlineMs: ${DEADLINE_MS}\n`);
  });
  upstream = await startUpstream();
  mcpServer = await startMcpServer({ json: true });
  issuer = await tokenIssuer();
  const jwks = join(policies.dir, 'jwks.json');
  writeFileSync(jwks, JSON.stringify({ keys: [{ ...(await exportJWK(issuer.publicKey)), alg: 'ES256', use: 'sig', kid: 'test' }] }));
  storefront = await startProxy(['--workload', 'storefront', '--upstream', `http://127.0.0.1:${upstream.port}`, '--bundle', join(policies.out, 'storefront.tar.gz')]);
  opsMcp = await startProxy(['--workload', 'ops-mcp', '--upstream', new URL(mcpServer.url).origin, '--bundle', join(policies.out, 'ops-mcp.tar.gz'), '--jwks', jwks, '--issuer', ISSUER, '--audience', AUDIENCE]);
}, 240_000);

afterAll(async () => {
  await stopWardens(children);
  await mcpServer?.close();
  if (upstream) await closeServer(upstream.server);
});

const get = (headers: Record<string, string>) => fetch(`${storefront.url}/products`, { headers });

describe('warden proxy under evaluation limits', () => {
  it("passes a caller's header to replace with an empty old and decides as OPA does", async () => {
    // No x-unit: replace(quota, "", "") — the call that never returned.
    const small = await get({ 'x-quota': '50' });
    expect(small.status).toBe(200);
    const large = await get({ 'x-quota': '500' });
    expect(large.status).toBe(403);
    expect(await large.text()).toContain('quota above 100');
    const withUnit = await get({ 'x-quota': '50Mi', 'x-unit': 'Mi' });
    expect(withUnit.status).toBe(200);
  });

  it("stops a loop at the workload's deadline, denies with its own event, and keeps serving", async () => {
    const [spun, ...others] = await Promise.all([get({ 'x-spin': 'yes' }), get({}), get({ 'x-quota': '500' }), get({})]);
    expect(spun.status).toBe(403);
    expect(await spun.text()).toMatch(/did not decide within its deadline/);
    expect(others.map((r) => r.status)).toEqual([200, 403, 200]);
    await until(
      () => `a decision line for the stopped evaluation: ${storefront.lines().slice(-2000)}`,
      async () => (new RegExp(`"error":"evaluation limit \\(deadline\\): evaluating warden/decision was stopped: evaluation stopped at its deadline of ${DEADLINE_MS} ms \\(`).test(storefront.lines()) ? true : undefined),
    );
    expect((await get({})).status).toBe(200);
    // The stopped call was denied before anything of it went on: the application never saw it.
    expect(upstream.seen.filter((r) => r.headers['x-spin'] !== undefined)).toEqual([]);
  });

  it('decides an MCP tool call whose arguments carry a lone surrogate as opa eval does', async () => {
    const sqlText = "SELECT name FROM orders WHERE note = '\ud800'";
    // The rule that decides a query, evaluated by OPA's Go code on the same argument.
    const dir = join(policies.dir, 'opa-ops');
    await extractPolicy(readFileSync(join(policies.out, 'ops-mcp.tar.gz')), dir);
    writeFileSync(join(dir, 'input.json'), JSON.stringify({ sql: sqlText }));
    const { stdout } = await run(opaBinary, ['eval', '--format', 'json', '-d', dir, '-i', join(dir, 'input.json'), 'data.warden.lib.sql.read_only(input.sql)']);
    const readOnly = (JSON.parse(stdout) as { result?: Array<{ expressions: Array<{ value: unknown }> }> }).result?.[0]?.expressions[0]?.value;
    expect(readOnly).toBe(true);

    const client = new Client({ name: 'limits-test-agent', version: '1.0.0' });
    const headers = { authorization: `Bearer ${await issuer.sign('agent-reader', 'tools:read')}` };
    await client.connect(new StreamableHTTPClientTransport(new URL(`${opsMcp.url}/mcp`), { requestInit: { headers } }));
    try {
      const result = await client.callTool({ name: 'query', arguments: { sql: sqlText } });
      expect(result.isError).toBeFalsy();
      expect(mcpServer.ran).toContain('query');
      // A statement OPA refuses is still refused with the surrogate in it.
      await expect(client.callTool({ name: 'query', arguments: { sql: "DELETE FROM orders WHERE note = '\ud800'" } })).rejects.toThrow(/Forbidden by policy/);
    } finally {
      await client.close();
    }
  });
});
