// `bin/warden.js <args>` as a real child process, for tests that run the CLI the way an operator does.
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';

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
