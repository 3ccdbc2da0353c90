// A real, throwaway PostgreSQL server for tests and benchmarks: initdb into a temp dir, postgres on a
// free 127.0.0.1 port, ready when a connection succeeds, removed on stop. Run as the unprivileged
// `postgres` user when we are root (postgres refuses to run as root). `node bin/setup.js --test`
// installs Debian's postgresql when no initdb is found.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/** A running server; `url` points at its `postgres` database as the superuser `warden`. */
export interface PostgresServer {
  url: string;
  port: number;
  /** A new empty database on this server; returns its URL. */
  createDatabase(name: string): Promise<string>;
  stop(): Promise<void>;
}

/** Where initdb/postgres live: $WARDEN_PG_BIN, Debian's /usr/lib/postgresql/<newest>/bin, or PATH. */
export function postgresBinDir(): string | undefined {
  if (process.env.WARDEN_PG_BIN) return process.env.WARDEN_PG_BIN;
  const base = '/usr/lib/postgresql';
  if (existsSync(base)) {
    const versions = readdirSync(base).filter((v) => existsSync(join(base, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a));
    if (versions[0]) return join(base, versions[0], 'bin');
  }
  const which = spawnSync('sh', ['-c', 'command -v initdb'], { encoding: 'utf8' });
  const found = which.stdout.trim();
  return which.status === 0 && found ? join(found, '..') : undefined;
}

function unprivilegedUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const r = spawnSync('getent', ['passwd', 'postgres'], { encoding: 'utf8' });
  const f = r.stdout.trim().split(':');
  if (r.status !== 0 || f.length < 4) throw new Error('running as root, but there is no `postgres` user to run PostgreSQL as (install Debian\'s postgresql, or run tests as a normal user)');
  return { uid: Number(f[2]), gid: Number(f[3]) };
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
  if (!bin) throw new Error('PostgreSQL is not installed: run `node bin/setup.js --test` (installs Debian\'s postgresql) or set WARDEN_PG_BIN to the directory holding initdb and postgres');
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
