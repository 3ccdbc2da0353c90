// The express middleware form reads the body the app's own parser read: with `express.json()` and
// `express.urlencoded()` mounted before Warden, a JSON body is in the decision, exactly as the app reads it,
// and a POST whose parsed body holds `_method` (which method-override with a body getter takes for the
// method) is refused. Mounted before the parsers, Warden sees no body, and `requests.unread_body` denies one.
// Real express apps on loopback, the real plugin and WASM.
import express from 'express';
import { readFileSync } from 'node:fs';
import http, { type Server } from 'node:http';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wardenMiddleware } from '../proxy-plugin/middleware.js';
import { startPlugin, type Plugin } from '../proxy-plugin/plugin.js';
import { closeServer, listenLocal } from './support/proxy-fixtures.js';
import { tillsPolicies } from './support/tills-workload.js';

let plugin: Plugin;
const servers: Server[] = [];
// What each app's route handler received: method, path, parsed body.
const seen: Array<{ app: string; method: string; body: unknown }> = [];
const ports = { parsedFirst: 0, wardenFirst: 0 };

beforeAll(async () => {
  const policies = await tillsPolicies();
  plugin = await startPlugin({ workload: 'tills', bundleFile: join(policies.out, 'tills.tar.gz'), verificationKey: readFileSync(join(policies.out, 'verification-key.pem'), 'utf8'), identity: {}, logger: pino({ level: 'silent' }) });
  const route = (app: string) => (req: express.Request, res: express.Response) => {
    seen.push({ app, method: req.method, body: req.body as unknown });
    res.json({ ok: true });
  };
  const parsedFirst = express();
  parsedFirst.use(express.json(), express.urlencoded({ extended: false }), wardenMiddleware(plugin.gate), route('parsed-first'));
  const wardenFirst = express();
  wardenFirst.use(wardenMiddleware(plugin.gate), express.json(), route('warden-first'));
  for (const [name, app] of [['parsedFirst', parsedFirst], ['wardenFirst', wardenFirst]] as const) {
    const server = http.createServer(app);
    servers.push(server);
    ports[name] = await listenLocal(server);
  }
});

afterAll(async () => {
  await plugin?.close();
  for (const s of servers) await closeServer(s);
});

async function post(port: number, path: string, type: string, body: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST', headers: { 'content-type': type }, body });
  return { status: res.status, text: await res.text() };
}

describe('the express middleware with the app\'s body parsers mounted before it', () => {
  it('decides on the JSON body as the app parsed it: a large amount denied, a small one reaches the route', async () => {
    const before = seen.length;
    const large = await post(ports.parsedFirst, '/pay', 'application/json', '{"amount": 500}');
    expect([large.status, large.text]).toEqual([403, expect.stringContaining('amount above 100')]);
    // A key given twice: the app's parser keeps the last, and so does the decision (it reads the app's value).
    expect((await post(ports.parsedFirst, '/pay', 'application/json', '{"amount": 5, "amount": 500}')).status).toBe(403);
    expect((await post(ports.parsedFirst, '/pay', 'application/json', '{"amount": 5}')).status).toBe(200);
    expect(seen.slice(before)).toEqual([{ app: 'parsed-first', method: 'POST', body: { amount: 5 } }]);
  });

  it('refuses a POST whose parsed body holds _method at its top (400), JSON or form, and passes one nested', async () => {
    const before = seen.length;
    for (const [type, body] of [['application/json', '{"amount": 5, "_method": "DELETE"}'], ['application/x-www-form-urlencoded', 'name=x&_method=DELETE'], ['application/json', '{"_METHOD": "put"}']]) {
      const r = await post(ports.parsedFirst, '/form', type!, body!);
      expect({ type, body, status: r.status }).toEqual({ type, body, status: 400 });
      expect(r.text).toContain('method override');
    }
    expect(seen.length).toBe(before);
    expect((await post(ports.parsedFirst, '/form', 'application/json', '{"order": {"_method": "DELETE"}}')).status).toBe(200);
    expect((await post(ports.parsedFirst, '/form', 'application/x-www-form-urlencoded', 'name=x&method=DELETE')).status).toBe(200);
  });

  it('refuses a parsed body nested deeper than Warden reads (400)', async () => {
    const deep = `${'{"a":'.repeat(70)}1${'}'.repeat(70)}`;
    const r = await post(ports.parsedFirst, '/form', 'application/json', deep);
    expect([r.status, r.text]).toEqual([400, expect.stringContaining('nests deeper than 64 levels')]);
  });
});

describe('the express middleware mounted before the app\'s body parser', () => {
  it('sees no body: requests.unread_body denies a payment the policy cannot read', async () => {
    const before = seen.length;
    const r = await post(ports.wardenFirst, '/pay', 'application/json', '{"amount": 5}');
    expect([r.status, r.text]).toEqual([403, expect.stringContaining('the body could not be read')]);
    expect(seen.length).toBe(before);
  });
});

describe('a query key the policy reads by position, given twice, through the middleware', () => {
  it('is refused (400) when the call is allowed on its first value and not on its last, and the route never runs', async () => {
    const before = seen.length;
    const split = await fetch(`http://127.0.0.1:${ports.parsedFirst}/reports?register=1&register=9`);
    expect([split.status, await split.text()]).toEqual([400, expect.stringContaining('the query key \\"register\\" is given 2 times and the policy does not allow the call on its last value alone')]);
    expect(seen.length).toBe(before);
    expect((await fetch(`http://127.0.0.1:${ports.parsedFirst}/reports?register=1`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${ports.parsedFirst}/reports?register=9&register=1`)).status).toBe(403);
  });
});
