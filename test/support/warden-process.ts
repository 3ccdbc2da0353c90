// `bin/warden.js <args>` as a real child process, for tests that run the CLI the way an operator does.
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import type { Readable } from 'node:stream';
import { join, resolve } from 'node:path';

const warden = resolve('bin/warden.js');

/**
 * Start a CLI command and resolve with the first match of `ready` in its stdout+stderr; rejects when it
 * exits first. The child is pushed onto `children` so the test can stop it.
 */
export function startWarden(args: string[], ready: RegExp, children: ChildProcess[]): Promise<RegExpMatchArray> {
  const child = spawn(process.execPath, [warden, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return new Promise((ok, fail) => {
    let out = '';
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = ready.exec(out);
      if (m) ok(m);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => fail(new Error(`warden ${args[0]} exited with ${code}: ${out}`)));
  });
}

/**
 * Watch a child's stderr for `ready`: resolves with the match's first group, rejects when the child
 * exits first; `text()` is everything it wrote there so far.
 */
export function readyOnStderr(child: ChildProcess & { stderr: Readable }, ready: RegExp): { url: Promise<string>; text: () => string } {
  let err = '';
  const url = new Promise<string>((resolve, reject) => {
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (c: string) => {
      err += c;
      const m = ready.exec(err);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`${child.spawnargs.slice(1, 3).join(' ')} exited ${code}: ${err}`)));
  });
  return { url, text: () => err };
}

/** Stop every process `startWarden` started for a suite (SIGTERM), and wait until each has exited. */
export async function stopWardens(children: ChildProcess[]): Promise<void> {
  for (const c of children) c.kill('SIGTERM');
  await Promise.all(children.map((c) => (c.exitCode !== null ? undefined : new Promise((r) => c.once('exit', r)))));
}

/**
 * Start `warden proxy` for `workload` as a user does, on a free loopback port, in front of the upstream
 * at `upstreamPort`, with the bundle and key a policy copy built (`extra`: more flags), and its admin
 * server (/metrics) on another. Returns both URLs.
 */
export async function startLocalProxy(policies: { out: string; dir: string }, workload: string, upstreamPort: number, extra: string[], children: ChildProcess[]): Promise<{ url: string; admin: string }> {
  const m = await startWarden(
    ['proxy', '--workload', workload, '--upstream', `http://127.0.0.1:${upstreamPort}`, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--bundle', join(policies.out, `${workload}.tar.gz`),
      '--verification-key', join(policies.out, 'verification-key.pem'), '--spill', join(policies.dir, 'spill.ndjson'), ...extra],
    /on ([\d.]+:\d+) \(admin ([\d.]+:\d+)\)/,
    children,
  );
  return { url: `http://${m[1]}`, admin: `http://${m[2]}` };
}

/** True once a connection to `port` on loopback is refused (its listener closed); false after 500 tries, each a round trip. */
export async function refusedSoon(port: number): Promise<boolean> {
  for (let i = 0; i < 500; i++) {
    const err = await new Promise<string | undefined>((r) => {
      const s = net.connect(port, '127.0.0.1', () => (s.destroy(), r(undefined)));
      s.once('error', (e: NodeJS.ErrnoException) => r(e.code));
    });
    if (err === 'ECONNREFUSED') return true;
  }
  return false;
}
