// Real apps behind `warden proxy`: PHP's built-in server (Debian's php-cli) run with no php.ini, as PHP's
// official images run it, answering with what PHP read of each request; the same server running Laravel's
// own Request (Debian's php-illuminate-http, Laravel 8), with the method override on as Laravel's kernel
// turns it on; a Rack app (Debian's ruby-rack 2.2 on WEBrick) behind Rack::MethodOverride reading
// Rack::Request#params, as Sinatra does; and an express app reading its query with qs. Each answers with
// the method, the tenant and the region it read. The
// policy allows GET and POST, and denies the tenant `b` read from the query and the region `eu` read from a
// header. Each request of a corpus spells the tenant, the method or the region another way, in the query,
// a form, a JSON body, a cookie or a header name; the invariant: a request Warden lets through is one in
// which the app reads the method the policy decided and neither `b` as the tenant nor `eu` as the region.
// Warden's model of these readings (runtime/input-selection.ts, proxy-plugin/form-fields.ts) is checked
// against PHP and Laravel themselves.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeServer, copyPolicies, listenLocal } from './support/proxy-fixtures.js';
import { workloadYaml } from './support/rego-workload.js';
import { answerBody, exchange, statuses } from './support/raw-http.js';
import { until } from './support/until.js';
import { startLocalProxy, stopWardens } from './support/warden-process.js';

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
const PLAIN_APP = `<?php
header('Content-Type: application/json');
echo json_encode(['method' => $_SERVER['REQUEST_METHOD'], 'tenant' => $_REQUEST['tenant'] ?? null, 'region' => $_SERVER['HTTP_X_REGION'] ?? null, 'type' => $_SERVER['CONTENT_TYPE'] ?? null, 'note' => $_REQUEST['note'] ?? null]);
`;

// What Laravel's Request read, as JSON (Debian's autoloader for Illuminate\\Http).
const LARAVEL_APP = `<?php
require '/usr/share/php/Illuminate/Http/autoload.php';
Illuminate\\Http\\Request::enableHttpMethodParameterOverride();
$r = Illuminate\\Http\\Request::capture();
header('Content-Type: application/json');
echo json_encode(['method' => $r->method(), 'tenant' => $r->input('tenant'), 'region' => $r->header('x-region'), 'type' => $r->header('content-type'), 'note' => $r->input('note')]);
`;

/** What an app read of one request. */
interface Read {
  method: string;
  tenant: unknown;
  region: string | null;
  type: string | null;
  note: unknown;
}

// What Rack read, as JSON: Rack::MethodOverride before the app, params as Rack::Request merges them (the
// body's over the query's), the region as WEBrick writes the header's CGI variable.
const RACK_APP = `require 'rack'
require 'webrick'
require 'json'
app = Rack::Builder.new do
  use Rack::MethodOverride
  run lambda { |env|
    req = Rack::Request.new(env)
    [200, { 'Content-Type' => 'application/json' }, [JSON.generate({ method: req.request_method, tenant: req.params['tenant'], region: env['HTTP_X_REGION'], type: req.content_type, note: req.params['note'] })]]
  }
end
Rack::Handler::WEBrick.run(app, Host: '127.0.0.1', Port: 0, AccessLog: [], Logger: WEBrick::Log.new($stderr, WEBrick::Log::WARN)) do |server|
  $stderr.puts "rack app listening on #{server.listeners[0].addr[1]}"
end
`;

const children: ChildProcess[] = [];
/** warden proxy's port in front of each app (and, for Laravel, one with --json-body 0). */
const ports = { plain: 0, laravel: 0, laravelStreamed: 0, rack: 0, express: 0, go: 0 };
let expressServer: http.Server | undefined;

// What Go's net/http read: FormValue's reading (a POST's, PUT's or PATCH's form, multipart too, before the
// query), the header by its canonical name. Standard library only: built with the local toolchain.
const GO_APP = `package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
)

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	fmt.Fprintf(os.Stderr, "go app listening on %d\\n", ln.Addr().(*net.TCPAddr).Port)
	panic(http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseMultipartForm(1 << 20)
		var tenant any
		if v, ok := r.Form["tenant"]; ok {
			tenant = v[0]
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"method": r.Method, "tenant": tenant, "region": r.Header.Get("X-Region"), "type": r.Header.Get("Content-Type"), "note": r.FormValue("note")})
	})))
}
`;

// An express 5 app reading the query with qs (the 'extended' parser, express 4's default) and forms with
// it too: `req.query.tenant` is what such an app reads, nested as qs nests it (`tenant[x]=b` is {x: 'b'}).
function expressApp(): express.Express {
  const app = express();
  app.set('query parser', 'extended');
  app.use(express.urlencoded({ extended: true }));
  app.use((req, res) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    res.json({ method: req.method, tenant: (req.query as Record<string, unknown>).tenant ?? null, region: req.get('x-region') ?? null, type: req.get('content-type') ?? null, note: body.note ?? null });
  });
  return app;
}

// Start an app server and read the port it says it listens on.
async function serveApp(command: string, args: string[], cwd: string, listening: RegExp, timeoutMs?: number): Promise<number> {
  const app = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '', CGO_ENABLED: '0' }, detached: command === 'go' });
  children.push(app);
  let said = '';
  app.stdout.on('data', (d: Buffer) => (said += d.toString()));
  app.stderr.on('data', (d: Buffer) => (said += d.toString()));
  return Number(await until(() => `${command} ${args.at(-1)} to say its port (it said: ${said || 'nothing'})`, () => listening.exec(said)?.[1], timeoutMs));
}

// PHP's built-in server on `script`, with no php.ini (`-n`): request_order unset, so $_REQUEST holds
// cookies over the query and the form; mbstring loaded by hand, as -n loads no extension.
function servePhp(docroot: string, script: string, text: string): Promise<number> {
  writeFileSync(join(docroot, script), text);
  return serveApp('php', ['-n', '-d', 'extension=mbstring', '-S', '127.0.0.1:0', join(docroot, script)], docroot, /Development Server \(http:\/\/127\.0\.0\.1:(\d+)\) started/);
}

beforeAll(async () => {
  const policies = await copyPolicies(['ledger'], (repo) => {
    const dir = join(repo, 'workloads', 'ledger');
    mkdirSync(dir);
    writeFileSync(join(dir, 'workload.yaml'), workloadYaml('ledger'));
    writeFileSync(join(dir, 'policy.rego'), POLICY);
  });
  const docroot = join(policies.dir, 'apps');
  mkdirSync(docroot);
  writeFileSync(join(docroot, 'app.rb'), RACK_APP);
  writeFileSync(join(docroot, 'app.go'), GO_APP);
  const [plain, laravel, rack, go] = await Promise.all([
    servePhp(docroot, 'plain.php', PLAIN_APP),
    servePhp(docroot, 'laravel.php', LARAVEL_APP),
    serveApp('ruby', [join(docroot, 'app.rb')], docroot, /rack app listening on (\d+)/),
    // `go run` builds it with Go's cache (outside the clone): seconds once the standard library is built.
    serveApp('go', ['run', join(docroot, 'app.go')], docroot, /go app listening on (\d+)/, 120_000),
  ]);
  const portOf = async (upstream: number, flags: string[]) => Number(new URL((await startLocalProxy(policies, 'ledger', upstream, flags, children)).url).port);
  expressServer = http.createServer(expressApp());
  const expressPort = await listenLocal(expressServer);
  [ports.plain, ports.laravel, ports.laravelStreamed, ports.rack, ports.express, ports.go] = await Promise.all([portOf(plain, []), portOf(laravel, []), portOf(laravel, ['--json-body', '0']), portOf(rack, []), portOf(expressPort, []), portOf(go, [])]);
});

const isApp = (c: ChildProcess) => c.spawnfile === 'php' || c.spawnfile === 'ruby' || c.spawnfile === 'go';

afterAll(async () => {
  // `go run` runs the built app as its child: its process group goes with it.
  for (const c of children) {
    if (c.exitCode !== null || !isApp(c)) continue;
    if (c.spawnfile === 'go') process.kill(-c.pid!, 'SIGTERM');
    else c.kill('SIGTERM');
  }
  await stopWardens(children.filter((c) => !isApp(c)));
  if (expressServer) await closeServer(expressServer);
});

/** The status, and what the app read when the request reached it. */
interface Seen {
  status: number;
  read?: Read;
}

async function send(port: number, method: string, target: string, fields: string[], body = ''): Promise<Seen> {
  const framing = body !== '' || method === 'POST' ? [`Content-Length: ${Buffer.byteLength(body)}`] : [];
  const text = await exchange(port, `${method} ${target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n${[...fields, ...framing].map((f) => `${f}\r\n`).join('')}\r\n${body}`);
  const status = statuses(text)[0]!;
  return status === 200 ? { status, read: JSON.parse(Buffer.from(answerBody(text), 'latin1').toString('utf8')) as Read } : { status };
}

// The tenant the app reads, however it nests it: `b` anywhere in it counts.
const readsClosedTenant = (read: Read): boolean => JSON.stringify(read.tenant ?? null).includes('"b"');

// A request Warden let through must be one the app reads as decided; one it stopped, a refusal or a denial.
function expectDecidedAsRead(what: unknown, method: string, seen: Seen): void {
  if (!seen.read) expect({ what, status: seen.status }).toEqual({ what, status: expect.toSatisfy((s: number) => s === 400 || s === 403 || s === 415) });
  else expect({ what, method: seen.read.method, closedTenant: readsClosedTenant(seen.read), closedRegion: seen.read.region === 'eu' }).toEqual({ what, method, closedTenant: false, closedRegion: false });
}

// Ways PHP and Rack read a name as `tenant`, and near misses they do not.
const SPELLINGS = ['tenant', 'tenant[]', 'tenant[0]', 'tenant[x]', ' tenant', '%20tenant', 'tenant%00x', 'Tenant', '%74enant', 'tenant]', '[tenant]', 'tenant.', 'x[tenant]', 'tenant_id'];

// The corpus every app gets: the tenant in each spelling, in the query, a form and a multipart part, and
// the region header in each CGI spelling, alone or beside the header itself.
function spellingsOf(app: string, port: () => number): void {
  const send$ = (method: string, target: string, fields: string[], body?: string) => send(port(), method, target, fields, body);

  it(`lets the spelling the policy reads through, and ${app} reads it so (the corpus below can fail)`, async () => {
    const open = await send$('GET', '/ledger?tenant=a', ['X-Region: us']);
    expect([open.status, open.read?.tenant, open.read?.region]).toEqual([200, 'a', 'us']);
    expect((await send$('GET', '/ledger?tenant=b', [])).status).toBe(403);
    const form = await send$('POST', '/ledger?tenant=a', ['Content-Type: application/x-www-form-urlencoded'], 'note=x');
    expect([form.status, form.read?.tenant, form.read?.note]).toEqual([200, 'a', 'x']);
    // A form field that repeats the query's value, in any encoding of it, is what the app reads either way: it passes.
    for (const body of ['note=x&tenant=a', 'note=x&%74enant=%61']) {
      const same = await send$('POST', '/ledger?tenant=a', ['Content-Type: application/x-www-form-urlencoded'], body);
      expect({ body, got: [same.status, same.read?.tenant, same.read?.note] }).toEqual({ body, got: [200, 'a', 'x'] });
    }
  });

  it.each([
    ['the query', 'GET', (k: string) => send$('GET', `/ledger?${k}=b`, [])],
    ['the query, beside the key itself', 'GET', (k: string) => send$('GET', `/ledger?tenant=a&${k}=b`, [])],
    ['a url-encoded form', 'POST', (k: string) => send$('POST', '/ledger?tenant=a', ['Content-Type: application/x-www-form-urlencoded'], `${k}=b`)],
    ['an untyped POST body', 'POST', (k: string) => send$('POST', '/ledger?tenant=a', [], `${k}=b`)],
    ['a multipart form', 'POST', (k: string) => send$('POST', '/ledger?tenant=a', ['Content-Type: multipart/form-data; boundary=b1'], `--b1\r\nContent-Disposition: form-data; name="${decodeURIComponent(k.replace('%00', ''))}"\r\n\r\nb\r\n--b1--\r\n`)],
    ['a cookie', 'GET', (k: string) => send$('GET', '/ledger?tenant=a', [`Cookie: ${k}=b`])],
    ['a cookie, with no tenant in the query', 'GET', (k: string) => send$('GET', '/ledger', [`Cookie: session=1; ${k}=b`])],
  ])(`through %s, in every spelling ${app} reads as tenant`, async (where, method, request) => {
    for (const k of SPELLINGS) expectDecidedAsRead({ where, k }, method, await request(k));
  });

  it(`through a header name, in every spelling ${app} reads as X-Region, alone or beside the header itself`, async () => {
    for (const name of ['X-Region', 'X_Region', 'x_region', 'X-REGION', 'x-Region', 'X_REGION']) {
      for (const fields of [[`${name}: eu`], ['X-Region: us', `${name}: eu`], [`${name}: eu`, 'X-Region: us']]) expectDecidedAsRead(fields, 'GET', await send$('GET', '/ledger?tenant=a', fields));
    }
  });
}

describe('a real PHP app behind warden proxy reads no tenant or region the policy did not decide on', () => {
  const send$ = (method: string, target: string, fields: string[], body?: string) => send(ports.plain, method, target, fields, body);
  spellingsOf('PHP', () => ports.plain);

  it('through a Content-Type spelled with "_": PHP reads the body as the type Warden read, or Warden refused it', async () => {
    const seen = await send$('POST', '/ledger?tenant=a', ['Content-Type: text/plain', 'Content_Type: application/x-www-form-urlencoded'], 'tenant=b');
    if (seen.read) expect([seen.read.type, readsClosedTenant(seen.read)]).toEqual(['text/plain', false]);
    else expect(seen.status).toBe(400);
  });
});

// A POST naming another method: in a form (escaped too), an untyped body, a multipart part, the headers.
type Override = [target: string, fields: string[], body: string];
const METHOD_OVERRIDES: Override[] = [
  ['/ledger?tenant=a', ['Content-Type: application/x-www-form-urlencoded'], '_method=DELETE'],
  ['/ledger?tenant=a', ['Content-Type: application/x-www-form-urlencoded'], 'note=x&%5Fmethod=PUT'],
  ['/ledger?tenant=a', [], '_method=DELETE'],
  ['/ledger?tenant=a', ['Content-Type: multipart/form-data; boundary=b1'], '--b1\r\nContent-Disposition: form-data; name="_method"\r\n\r\nDELETE\r\n--b1--\r\n'],
  ['/ledger?tenant=a', ['X-HTTP-Method-Override: DELETE'], ''],
  ['/ledger?tenant=a', ['X_HTTP_Method_Override: DELETE'], ''],
];

describe('a Rack app behind warden proxy reads the method, tenant and region the policy decided on', () => {
  spellingsOf('Rack', () => ports.rack);

  it('through a method override in a form, a multipart part or a header, and a query split on ";"', async () => {
    const cases: Override[] = [
      ...METHOD_OVERRIDES,
      ['/ledger?tenant=a', ['Content-Type: application/x-www-form-urlencoded'], 'note=x;_method=PUT'],
      ['/ledger?tenant=a', ['Content-Type: application/x-www-form-urlencoded'], '[_method]=DELETE'],
      ['/ledger?tenant=a;tenant=b', [], ''],
    ];
    for (const [target, fields, body] of cases) expectDecidedAsRead({ target, fields, body }, 'POST', await send(ports.rack, 'POST', target, fields, body));
  });
});

describe('an express app reading the query with qs behind warden proxy reads the tenant and region the policy decided on', () => {
  spellingsOf('qs', () => ports.express);
});

describe("a Go app reading FormValue behind warden proxy reads the tenant and region the policy decided on", () => {
  spellingsOf('Go', () => ports.go);
});

describe("Laravel's Request behind warden proxy reads the method, tenant and region the policy decided on", () => {
  const JSON_TYPES = ['application/json', 'text/json', 'application/x-json', 'application/vnd.ledger+json', 'text/plain; profile=/json', 'application/jsonl'];
  const JSON_BODIES = ['{"tenant": "b"}', '{"\\u0074enant": "b"}', '{"note": "x", "tenant": ["b"]}', '{"_method": "DELETE"}', '{"\\u005fmethod": "PUT"}', '{"tenant": "a", "tenant": "b"}', '{"note": {"tenant": "b"}}', '{"tenant": "a"}'];

  for (const [proxy, label] of [['laravel', 'the JSON body read whole (--json-body, the default)'], ['laravelStreamed', 'no JSON body read whole (--json-body 0)']] as const) {
    describe(label, () => {
      const send$ = (method: string, target: string, fields: string[], body?: string) => send(ports[proxy], method, target, fields, body);

      it('lets the spellings the policy reads through, and Laravel reads them so (the corpus below can fail)', async () => {
        const json = await send$('POST', '/ledger?tenant=a', ['Content-Type: application/json', 'X-Region: us'], '{"note": "x"}');
        expect([json.status, json.read]).toEqual([200, { method: 'POST', tenant: 'a', region: 'us', type: 'application/json', note: 'x' }]);
        const same = await send$('POST', '/ledger?tenant=a', ['Content-Type: application/json'], '{"tenant": "a"}');
        expect([same.status, same.read?.tenant]).toEqual([200, 'a']);
        expect((await send$('POST', '/ledger?tenant=b', ['Content-Type: application/json'], '{}')).status).toBe(403);
      });

      it('through a JSON body of every type Laravel reads as JSON, on GET and POST', async () => {
        for (const method of ['GET', 'POST']) {
          for (const type of JSON_TYPES) {
            for (const body of JSON_BODIES) expectDecidedAsRead({ method, type, body }, method, await send$(method, '/ledger?tenant=a', [`Content-Type: ${type}`], body));
          }
        }
      });

      it('through a method override in the query, a form or a header', async () => {
        const cases: Override[] = [...METHOD_OVERRIDES, ['/ledger?tenant=a&_method=DELETE', ['Content-Type: application/x-www-form-urlencoded'], 'note=x']];
        for (const [target, fields, body] of cases) expectDecidedAsRead({ target, fields, body }, 'POST', await send$('POST', target, fields, body));
      });
    });
  }
});
