// The release as users get it: `npm pack` (prepack compiles dist/ with type declarations), installed
// into a scratch project, whose plain-JavaScript express app enforces a Warden bundle through
// `warden/middleware`, and whose TypeScript sees the package's types.
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build } from '../bin/build.js';
import { copyPolicies, type PolicyCopy } from './support/proxy-fixtures.js';

const run = promisify(execFile);
let dir: string;
let tarball: string;
let policies: PolicyCopy;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), `warden-package-${process.pid}-`));
  // Pack from a staging copy, so the clone's own dist/ (which other tests run) is never swapped mid-run.
  const stage = join(dir, 'stage');
  mkdirSync(stage);
  for (const f of ['package.json', 'tools.json', 'README.md', 'bin/warden.js']) cpSync(resolve(f), join(stage, f));
  await build({ types: true, out: join(stage, 'dist') });
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: stage });
  tarball = join(dir, (JSON.parse(stdout) as Array<{ filename: string }>)[0]!.filename);
  policies = await copyPolicies(['orders']);
}, 300_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('npm pack', () => {
  it('ships the compiled code, its types and the CLI, and no TypeScript sources or tests', async () => {
    const { stdout } = await run('tar', ['-tzf', tarball]);
    const files = stdout.split('\n').filter(Boolean);
    expect(files).toContain('package/bin/warden.js');
    expect(files).toContain('package/dist/cli/main.js');
    expect(files).toContain('package/dist/proxy-plugin/middleware.d.ts');
    expect(files).toContain('package/dist/runtime/library.d.ts');
    expect(files).toContain('package/dist/engine/compiler/rego/core.rego');
    expect(files.filter((f) => /\.test\.|\/test\/|\.ts$/.test(f) && !f.endsWith('.d.ts'))).toEqual([]);
  });

  it('installs into a scratch project whose plain-JavaScript express app enforces a bundle through warden/middleware', async () => {
    const app = join(dir, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'scratch', version: '1.0.0', type: 'module', private: true }));
    await run('npm', ['install', '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error', tarball], { cwd: app, maxBuffer: 16 << 20 });
    writeFileSync(
      join(app, 'server.js'),
      `import express from 'express';
import { pino } from 'pino';
import { startPlugin, wardenMiddleware } from 'warden/middleware';
import { openBundle } from 'warden/runtime';
import { readFileSync } from 'node:fs';
const [bundleFile, keyFile] = process.argv.slice(2);
const plugin = await startPlugin({ workload: 'orders', bundleFile, verificationKey: readFileSync(keyFile, 'utf8'), identity: { trustedHeader: { name: 'x-forwarded-client-cert', peers: ['127.0.0.1', '::ffff:127.0.0.1'] } }, logger: pino({ level: 'silent' }) });
const revision = (await openBundle(readFileSync(bundleFile), 'unsigned-ok')).revision;
const app = express();
app.use(wardenMiddleware(plugin.gate));
app.get('/orders', (_req, res) => res.json({ orders: [] }));
const server = app.listen(0, '127.0.0.1', async () => {
  const url = 'http://127.0.0.1:' + server.address().port + '/orders';
  const anonymous = (await fetch(url)).status;
  const storefront = (await fetch(url, { headers: { 'x-forwarded-client-cert': 'URI=spiffe://cluster.local/ns/shop/sa/storefront' } })).status;
  console.log(JSON.stringify({ anonymous, storefront, revision, ready: plugin.ready() }));
  server.close();
  await plugin.close();
});
`,
    );
    const { stdout } = await run(process.execPath, ['server.js', join(policies.out, 'orders.tar.gz'), join(policies.out, 'verification-key.pem')], { cwd: app });
    const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
    const built = JSON.parse(readFileSync(join(policies.out, 'orders.build.json'), 'utf8')) as { revision: string };
    expect(result).toEqual({ anonymous: 403, storefront: 200, revision: built.revision, ready: true });
    // TypeScript users get the entry points' types.
    writeFileSync(join(app, 'check.ts'), `import { wardenMiddleware, type PluginConfig } from 'warden/middleware';\nimport { Policy, openBundle } from 'warden/runtime';\nconst workload: PluginConfig['workload'] = 'orders';\nconst n: number = workload;\nexport { wardenMiddleware, Policy, openBundle, n };\n`);
    writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: true, types: [] }, files: ['check.ts'] }));
    const tsc = await run(process.execPath, [resolve('node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], { cwd: app }).catch((e: { stdout: string }) => e);
    // The one error is the deliberate one: the types are real (a string is not a number), nothing is `any`.
    expect(tsc.stdout.trim().split('\n')).toEqual([expect.stringMatching(/check\.ts\(4,7\): error TS2322: Type 'string' is not assignable to type 'number'/)]);
    // The installed CLI runs the compiled code.
    const version = await run(process.execPath, [join(app, 'node_modules', 'warden', 'bin', 'warden.js'), '--version']);
    expect(version.stdout.trim()).toBe((JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version);
  }, 300_000);
});
