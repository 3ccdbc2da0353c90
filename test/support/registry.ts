// A real OCI registry for tests: CNCF Distribution's `registry` (built from the Go module proxy by
// `node bin/setup.js --test`, tools.json), on loopback, storing in a temp folder, optionally behind
// htpasswd (bcrypt) Basic auth. Ready once GET /v2/ answers.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import bcrypt from 'bcryptjs';
import { freePorts } from './kube-apiserver.js';
import { until } from './until.js';

/** The pinned registry binary that `node bin/setup.js --test` links into the clone. */
export const registryBinary = resolve(import.meta.dirname, '../../.tools/bin/registry');

/** A running registry: `host` is 127.0.0.1:<port>; `stop()` ends it and removes its storage. */
export interface TestRegistry {
  host: string;
  dir: string;
  /** Stop the process (its storage stays until `remove`), e.g. to show a registry that is down. */
  stop(): Promise<void>;
  /** Start it again on the same port and storage. */
  restart(): Promise<void>;
  remove(): Promise<void>;
  output(): string;
}

/** Start a registry; with `user`, every request needs that user's password (Basic auth). */
export async function startRegistry(opts: { user?: { name: string; password: string } } = {}): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), `warden-registry-${process.pid}-`));
  const [port] = await freePorts(1);
  const host = `127.0.0.1:${port}`;
  let auth = '';
  if (opts.user) {
    await writeFile(join(dir, 'htpasswd'), `${opts.user.name}:${bcrypt.hashSync(opts.user.password, 4)}\n`);
    auth = `auth:\n  htpasswd:\n    realm: warden-test\n    path: ${join(dir, 'htpasswd')}\n`;
  }
  await writeFile(
    join(dir, 'config.yml'),
    `version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'data')}\n  delete:\n    enabled: true\nhttp:\n  addr: ${host}\n${auth}`,
  );
  let child: ChildProcess | undefined;
  let out = '';
  const start = async () => {
    child = spawn(registryBinary, ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<never>((_, fail) => child!.once('exit', (code) => fail(new Error(`registry exited with ${code}: ${out}`))));
    const ready = until(
      () => `the registry on ${host}: ${out}`,
      async () => ((await fetch(`http://${host}/v2/`).catch(() => undefined))?.status ?? 0) > 0 || undefined,
    );
    await Promise.race([ready, exited]);
    exited.catch(() => undefined);
  };
  const stop = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    await new Promise<void>((r) => {
      c.removeAllListeners('exit');
      c.once('exit', () => r());
      c.kill('SIGTERM');
    });
  };
  await start();
  return {
    host,
    dir,
    stop,
    restart: start,
    remove: async () => {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
    output: () => out,
  };
}
