// `warden admission certs|manifests|serve` as an operator runs them: real processes, real files, the
// served webhook answering over HTTPS with the CA the certs command wrote.
import { spawn, execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../engine/toolchain/paths.js';
import { admissionReview, buildExamplePolicies, deployment, type BuiltPolicies } from './support/admission-fixture.js';

const execFileP = promisify(execFile);
const warden = join(repoRoot, 'bin', 'warden.js');
let built: BuiltPolicies;

beforeAll(async () => {
  built = await buildExamplePolicies();
}, 240_000);
afterAll(() => built?.cleanup());

describe('warden admission CLI', () => {
  it('certs then manifests prints the webhook objects with the CA as caBundle', async () => {
    const certs = join(built.dir, 'certs');
    await execFileP(process.execPath, [warden, 'admission', 'certs', '--out', certs], { cwd: built.dir });
    const { stdout } = await execFileP(process.execPath, [warden, 'admission', 'manifests', '--certs', certs, '--namespace', 'warden-system'], { cwd: built.dir });
    const docs = parseAllDocuments(stdout).map((d) => d.toJS() as { kind: string; webhooks?: Array<{ clientConfig: { caBundle: string; service: { name: string } } }> });
    expect(docs.map((d) => d.kind)).toEqual(['Namespace', 'Secret', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Deployment', 'Service', 'ValidatingWebhookConfiguration']);
    const hook = docs.at(-1)!.webhooks![0]!;
    expect(Buffer.from(hook.clientConfig.caBundle, 'base64').toString()).toBe(readFileSync(join(certs, 'ca.crt'), 'utf8'));
    expect(hook.clientConfig.service.name).toBe('warden-admission');
  });

  it('serve answers AdmissionReviews over HTTPS with certificates from certs', async () => {
    const certs = join(built.dir, 'local-certs');
    await execFileP(process.execPath, [warden, 'admission', 'certs', '--out', certs, '--ip', '127.0.0.1'], { cwd: built.dir });
    const child = spawn(process.execPath, [warden, 'admission', 'serve', '--host', '127.0.0.1', '--port', '0', '--certs', certs, '--admission-bundle', join(built.bundles, 'admission.tar.gz'), '--bundles', built.bundles, '--verification-key', join(built.bundles, 'verification-key.pem')], { cwd: built.dir, stdio: ['ignore', 'ignore', 'pipe'] });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let err = '';
        child.stderr.setEncoding('utf8');
        child.stderr.on('data', (c: string) => {
          err += c;
          const m = /listening on (https:\/\/\S+)/.exec(err);
          if (m) resolve(m[1]!);
        });
        child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${err}`)));
      });
      const body = JSON.stringify(admissionReview(deployment({ name: 'orders', inject: false }), 'shop'));
      const answer = await new Promise<{ response: { allowed: boolean; status?: { message?: string } } }>((resolve, reject) => {
        const req = request(url, { method: 'POST', ca: readFileSync(join(certs, 'ca.crt'), 'utf8'), headers: { 'content-type': 'application/json' } }, (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve(JSON.parse(text) as never));
        });
        req.on('error', reject);
        req.end(body);
      });
      expect(answer.response.allowed).toBe(false);
      expect(answer.response.status?.message).toContain('[coverage/proxy-plugin]');
    } finally {
      child.kill('SIGTERM');
    }
  });
});
