// A real PHP app behind `warden proxy`: PHP's built-in server (Debian's php-cli) run with no php.ini, as
// PHP's official images run it, answering with what PHP read of each request ($_GET, $_POST, $_COOKIE,
// $_REQUEST, the CGI header variables). The policy denies the tenant `b` read from the query and the region
// `eu` read from a header. Each request of the corpus spells the tenant or the region another way, in the
// query, a form, a cookie or a header name; the invariant: a request Warden lets through is one where PHP
// reads neither `b` as the tenant nor `eu` as the region. Warden's model of PHP's readings
// (runtime/input-selection.ts, proxy-plugin/form-fields.ts) is checked against PHP itself.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyPolicies } from './support/proxy-fixtures.js';
import { answerBody, exchange, statuses } from './support/raw-http.js';
import { until } from './support/until.js';
import { startLocalProxy, stopWardens } from './support/warden-process.js';

const WORKLOAD = `apiVersion: warden.dev/v1alpha1
kind: Workload
name: ledger
namespace: shop
serviceAccount: ledger
mode: enforce
`;

const POLICY = `package warden.workload

import rego.v1

allow if input.request.method in {"GET", "POST"}

deny contains "tenant b is closed" if {
	some t in input.request.query.tenant
	t == "b"
}

deny contains "region eu is closed" if input.request.headers["x-region"] == "eu"
`;

// What PHP read, as JSON.
const APP = `<?php
header('Content-Type: application/json');
echo json_encode(['request' => $_REQUEST, 'region' => $_SERVER['HTTP_X_REGION'] ?? null, 'type' => $_SERVER['CONTENT_TYPE'] ?? null]);
`;

const children: ChildProcess[] = [];
let port = 0;

beforeAll(async () => {
  const policies = await copyPolicies(['ledger'], (repo) => {
    const dir = join(repo, 'workloads', 'ledger');
    mkdirSync(dir);
    writeFileSync(join(dir, 'workload.yaml'), WORKLOAD);
    writeFileSync(join(dir, 'policy.rego'), POLICY);
  });
  const docroot = join(policies.dir, 'php-app');
  mkdirSync(docroot);
  writeFileSync(join(docroot, 'app.php'), APP);
  // -n: no php.ini, so request_order is unset and $_REQUEST holds cookies over the query and the form.
  const php = spawn('php', ['-n', '-S', '127.0.0.1:0', join(docroot, 'app.php')], { cwd: docroot, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(php);
  let said = '';
  php.stdout.on('data', (d: Buffer) => (said += d.toString()));
  php.stderr.on('data', (d: Buffer) => (said += d.toString()));
  const phpPort = await until(() => `PHP's built-in server to say its port (it said: ${said || 'nothing'})`, () => /Development Server \(http:\/\/127\.0\.0\.1:(\d+)\) started/.exec(said)?.[1]);
  port = Number(new URL((await startLocalProxy(policies, 'ledger', Number(phpPort), [], children)).url).port);
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.spawnfile === 'php') c.kill('SIGTERM');
  await stopWardens(children.filter((c) => c.spawnfile !== 'php'));
});

interface Seen {
  status: number;
  /** What PHP read, when the request reached it. */
  php?: { request: Record<string, unknown>; region: string | null; type: string | null };
}

async function send(method: 'GET' | 'POST', target: string, fields: string[], body = ''): Promise<Seen> {
  const framing = method === 'POST' ? [`Content-Length: ${Buffer.byteLength(body)}`] : [];
  const text = await exchange(port, `${method} ${target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n${[...fields, ...framing].map((f) => `${f}\r\n`).join('')}\r\n${body}`);
  const status = statuses(text)[0]!;
  return status === 200 ? { status, php: JSON.parse(Buffer.from(answerBody(text), 'latin1').toString('utf8')) as Seen['php'] } : { status };
}

// The tenant PHP reads, however it nests it: `b` anywhere in $_REQUEST['tenant'] counts.
const readsClosedTenant = (php: NonNullable<Seen['php']>): boolean => JSON.stringify(php.request.tenant ?? null).includes('"b"');

// Ways PHP reads a name as `tenant`, and near misses it does not.
const SPELLINGS = ['tenant', 'tenant[]', 'tenant[0]', 'tenant[x]', ' tenant', '%20tenant', 'tenant%00x', 'Tenant', '%74enant', 'tenant]', '[tenant]', 'tenant.', 'x[tenant]', 'tenant_id'];

describe('a real PHP app behind warden proxy reads no tenant or region the policy did not decide on', () => {
  it('lets the spelling the policy reads through, and PHP reads it so (the corpus below can fail)', async () => {
    const open = await send('GET', '/ledger?tenant=a', ['X-Region: us']);
    expect([open.status, open.php?.request.tenant, open.php?.region]).toEqual([200, 'a', 'us']);
    const closed = await send('GET', '/ledger?tenant=b', []);
    expect(closed.status).toBe(403);
    const form = await send('POST', '/ledger?tenant=a', ['Content-Type: application/x-www-form-urlencoded'], 'note=x');
    expect([form.status, form.php?.request.tenant, form.php?.request.note]).toEqual([200, 'a', 'x']);
  });

  it.each([
    ['the query', (k: string) => send('GET', `/ledger?${k}=b`, [])],
    ['the query, beside the key itself', (k: string) => send('GET', `/ledger?tenant=a&${k}=b`, [])],
    ['a url-encoded form', (k: string) => send('POST', '/ledger?tenant=a', ['Content-Type: application/x-www-form-urlencoded'], `${k}=b`)],
    ['an untyped POST body', (k: string) => send('POST', '/ledger?tenant=a', [], `${k}=b`)],
    ['a multipart form', (k: string) => send('POST', '/ledger?tenant=a', ['Content-Type: multipart/form-data; boundary=b1'], `--b1\r\nContent-Disposition: form-data; name="${decodeURIComponent(k.replace('%00', ''))}"\r\n\r\nb\r\n--b1--\r\n`)],
    ['a cookie', (k: string) => send('GET', '/ledger?tenant=a', [`Cookie: ${k}=b`])],
    ['a cookie, with no tenant in the query', (k: string) => send('GET', '/ledger', [`Cookie: session=1; ${k}=b`])],
  ])('through %s, in every spelling PHP reads as tenant', async (_where, request) => {
    for (const k of SPELLINGS) {
      const seen = await request(k);
      if (seen.php) expect({ k, tenant: seen.php.request.tenant ?? null, closed: readsClosedTenant(seen.php) }).toEqual({ k, tenant: seen.php.request.tenant ?? null, closed: false });
      else expect({ k, status: seen.status }).toEqual({ k, status: expect.toSatisfy((s: number) => s === 400 || s === 403) });
    }
  });

  it('through a header name, in every spelling PHP reads as X-Region, alone or beside the header itself', async () => {
    for (const name of ['X-Region', 'X_Region', 'x_region', 'X-REGION', 'x-Region', 'X_REGION']) {
      for (const fields of [[`${name}: eu`], ['X-Region: us', `${name}: eu`], [`${name}: eu`, 'X-Region: us']]) {
        const seen = await send('GET', '/ledger?tenant=a', fields);
        if (seen.php) expect({ fields, region: seen.php.region }).toEqual({ fields, region: expect.not.stringMatching(/^eu$/) });
        else expect({ fields, status: seen.status }).toEqual({ fields, status: expect.toSatisfy((s: number) => s === 400 || s === 403) });
      }
    }
  });

  it('through a Content-Type spelled with "_": PHP reads the body as the type Warden read, or Warden refused it', async () => {
    const seen = await send('POST', '/ledger?tenant=a', ['Content-Type: text/plain', 'Content_Type: application/x-www-form-urlencoded'], 'tenant=b');
    if (seen.php) expect([seen.php.type, readsClosedTenant(seen.php)]).toEqual(['text/plain', false]);
    else expect(seen.status).toBe(400);
  });
});
