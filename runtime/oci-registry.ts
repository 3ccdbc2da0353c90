// Bundles as OCI artifacts, in the layout stock OPA pulls: an image manifest whose one
// `application/vnd.oci.image.layer.v1.tar+gzip` layer is the bundle archive (OPA's download/oci_download.go
// looks for exactly that layer, through image indexes too). Just the part of the OCI distribution API
// that Warden needs: resolve a tag, read a manifest, read and write blobs, write a manifest; credentials
// from a docker-config file; the registry's Basic or Bearer-token challenge. Every byte pulled is
// checked against its digest before anyone reads it; the bundle's own signature is checked after.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { BundleError } from './archive.js';
import { UserError } from '../formats/user-error.js';

/** OCI media types of a bundle artifact. */
export const MEDIA = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  index: 'application/vnd.oci.image.index.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  bundleLayer: 'application/vnd.oci.image.layer.v1.tar+gzip',
} as const;

const MANIFEST_ACCEPT = [MEDIA.manifest, MEDIA.index, 'application/vnd.docker.distribution.manifest.v2+json', 'application/vnd.docker.distribution.manifest.list.v2+json'].join(', ');
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** Largest bundle layer pulled (the archive reader caps the unpacked size on its own). */
const MAX_BUNDLE_BYTES = 256 * 1024 * 1024;

/** Where an artifact lives: `oci://registry/repository:tag` (or `@sha256:…`); `oci+http://` for a plain-HTTP registry. */
export interface OciReference {
  registry: string;
  repository: string;
  /** A tag, or a digest (`sha256:…`). */
  reference: string;
  plainHttp: boolean;
}

/** An OCI content descriptor. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

/** A registry answered something Warden cannot use; says which URL and what to do. */
export class RegistryError extends UserError {
  override name = 'RegistryError';
  /** True when the registry could not be reached at all (the last good bundle stays in force). */
  constructor(
    message: string,
    readonly unreachable = false,
  ) {
    super(message);
  }
}

const REPOSITORY = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;

/** Parse `oci://host[:port]/repo[/…]:tag` (or `@sha256:…`); a bare `host/repo:tag` is taken as `oci://`. */
export function parseOciReference(raw: string): OciReference {
  const m = /^(?:(oci|oci\+http):\/\/)?([^/]+)\/(.+)$/.exec(raw.trim());
  const fail = (why: string) => new RegistryError(`${JSON.stringify(raw)} is not an OCI reference: ${why}; write it as oci://registry.example.com/team/bundles/orders:main (oci+http:// for a plain-HTTP registry)`);
  if (!m) throw fail('it needs a registry host and a repository');
  const [, scheme, registry, rest] = m as unknown as [string, string | undefined, string, string];
  if (!/^[A-Za-z0-9.-]+(?::\d{1,5})?$/.test(registry) && !/^\[[0-9a-fA-F:]+\](?::\d{1,5})?$/.test(registry)) throw fail(`${registry} is not a host[:port]`);
  const at = rest.indexOf('@');
  let repository: string;
  let reference: string;
  if (at >= 0) {
    repository = rest.slice(0, at);
    reference = rest.slice(at + 1);
    if (!DIGEST.test(reference)) throw fail(`${reference} is not a sha256 digest`);
  } else {
    const colon = rest.lastIndexOf(':');
    if (colon < 0) throw fail('it has no :tag (name the tag the cluster follows, e.g. :main)');
    repository = rest.slice(0, colon);
    reference = rest.slice(colon + 1);
    if (!TAG.test(reference)) throw fail(`${reference} is not a valid tag`);
  }
  if (!REPOSITORY.test(repository)) throw fail(`${repository} is not a valid repository name (lowercase, / separated)`);
  return { registry, repository, reference, plainHttp: scheme === 'oci+http' };
}

/** The reference written back as a URL. */
export function formatOciReference(r: OciReference): string {
  return `${r.plainHttp ? 'oci+http' : 'oci'}://${r.registry}/${r.repository}${DIGEST.test(r.reference) ? '@' : ':'}${r.reference}`;
}

/** Credentials for one registry: a user and password (or token as password), or a registry token. */
export type RegistryCredentials = { username: string; password: string } | { bearer: string };

/** The docker-config file in use: `given`, else $DOCKER_CONFIG/config.json, else ~/.docker/config.json. */
export function dockerConfigPath(given?: string, env: NodeJS.ProcessEnv = process.env): string {
  return given ?? join(env.DOCKER_CONFIG ?? join(homedir(), '.docker'), 'config.json');
}

/**
 * The credentials a docker-config file holds for `registry` (`auths.<host>.auth`, or `username` and
 * `password`, or `registrytoken`). A missing file means anonymous access, unless it was named explicitly.
 */
export function credentialsFor(registry: string, configFile: string, explicit = false): RegistryCredentials | undefined {
  let text: string;
  try {
    text = readFileSync(configFile, 'utf8');
  } catch (err) {
    if (!explicit && (err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new RegistryError(`registry credentials ${configFile} cannot be read: ${(err as Error).message}`);
  }
  let config: { auths?: Record<string, { auth?: string; username?: string; password?: string; registrytoken?: string }>; credHelpers?: Record<string, string>; credsStore?: string };
  try {
    config = JSON.parse(text) as typeof config;
  } catch (err) {
    throw new RegistryError(`registry credentials ${configFile} is not JSON: ${(err as Error).message}`);
  }
  const entry = config.auths?.[registry] ?? config.auths?.[`https://${registry}`] ?? config.auths?.[`http://${registry}`];
  if (!entry) {
    if (config.credHelpers?.[registry] || config.credsStore) throw new RegistryError(`registry credentials ${configFile} delegate ${registry} to a credential helper, which Warden does not run; put an "auths" entry for ${registry} in the file (e.g. from a kubernetes.io/dockerconfigjson Secret)`);
    return undefined;
  }
  if (entry.registrytoken) return { bearer: entry.registrytoken };
  if (entry.auth) {
    const plain = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = plain.indexOf(':');
    if (colon < 0) throw new RegistryError(`registry credentials ${configFile}: auths.${registry}.auth is not base64 of user:password`);
    return { username: plain.slice(0, colon), password: plain.slice(colon + 1) };
  }
  if (entry.username !== undefined && entry.password !== undefined) return { username: entry.username, password: entry.password };
  throw new RegistryError(`registry credentials ${configFile}: auths.${registry} has neither auth, username/password nor registrytoken`);
}

const sha256 = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const basic = (c: { username: string; password: string }) => `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;

// `Bearer realm="…",service="…",scope="…"` → its parameters.
function challengeOf(header: string): { scheme: string; params: Record<string, string> } {
  const scheme = header.trim().split(/\s+/, 1)[0]!.toLowerCase();
  const params: Record<string, string> = {};
  for (const m of header.matchAll(/(\w+)="([^"]*)"/g)) params[m[1]!.toLowerCase()] = m[2]!;
  return { scheme, params };
}

/** Read a response body whole, refusing more than `max` bytes (a registry is not trusted with memory). */
async function readCapped(res: Response, max: number, what: string): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > max) throw new RegistryError(`${what} is ${declared} bytes, more than the ${max} allowed`);
  const chunks: Buffer[] = [];
  let total = 0;
  const reader = res.body?.getReader();
  for (let r = await reader?.read(); reader && r && !r.done; r = await reader.read()) {
    total += r.value.length;
    if (total > max) {
      await reader.cancel();
      throw new RegistryError(`${what} is more than the ${max} bytes allowed`);
    }
    chunks.push(Buffer.from(r.value));
  }
  return Buffer.concat(chunks);
}

/** A client for one registry host: requests under /v2/, answering its auth challenge once per scope. */
export class RegistryClient {
  private readonly base: string;
  private readonly tokens = new Map<string, string>();

  constructor(
    readonly registry: string,
    /** `credentialsFrom`: the docker-config file the credentials came from, named when the registry refuses them. */
    private readonly opts: { plainHttp?: boolean; credentials?: RegistryCredentials; credentialsFrom?: string; timeoutMs?: number } = {},
  ) {
    this.base = `${opts.plainHttp ? 'http' : 'https'}://${registry}/v2/`;
  }

  /** A client for the registry of `ref`, with the credentials `configFile` holds for it. */
  static for(ref: OciReference, configFile?: string): RegistryClient {
    const file = dockerConfigPath(configFile);
    const credentials = credentialsFor(ref.registry, file, configFile !== undefined);
    return new RegistryClient(ref.registry, { plainHttp: ref.plainHttp, credentialsFrom: file, ...(credentials ? { credentials } : {}) });
  }

  // Where the credentials for this registry are kept, for the refusal that tells the user what to fix.
  private get entry(): string {
    return `the auths entry for ${this.registry} in ${this.opts.credentialsFrom ?? 'the docker-config file'}`;
  }

  /** One request under /v2/; a 401 challenge is answered (Basic, or a Bearer token for `scope`) and the request sent again. */
  async request(method: string, path: string, init: { headers?: Record<string, string>; body?: Uint8Array; scope: string }): Promise<Response> {
    const url = new URL(path, this.base).href;
    const send = (auth?: string) =>
      fetch(url, {
        method,
        headers: { ...init.headers, ...(auth ? { authorization: auth } : {}) },
        ...(init.body ? { body: init.body as unknown as BodyInit } : {}),
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 30_000),
      }).catch((err: Error) => {
        throw new RegistryError(`registry ${this.registry} is unreachable (${method} ${url}): ${String((err.cause as Error | undefined)?.message ?? err.message)}`, true);
      });
    const cached = this.tokens.get(init.scope);
    let res = await send(cached);
    if (res.status !== 401) return res;
    const header = res.headers.get('www-authenticate');
    await res.body?.cancel();
    if (!header) throw new RegistryError(`registry ${this.registry} refused ${method} ${url} (401) without saying how to authenticate`);
    const auth = await this.authorize(challengeOf(header), init.scope);
    this.tokens.set(init.scope, auth);
    res = await send(auth);
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw new RegistryError(`registry ${this.registry} refused ${method} ${url} (${res.status}) with the credentials given; check the user and password (or token) in ${this.entry}`);
    }
    return res;
  }

  private async authorize(challenge: { scheme: string; params: Record<string, string> }, scope: string): Promise<string> {
    const creds = this.opts.credentials;
    if (challenge.scheme === 'basic') {
      if (!creds || !('username' in creds)) throw new RegistryError(`registry ${this.registry} asks for a user and password and none were given; add ${this.entry}`);
      return basic(creds);
    }
    if (challenge.scheme !== 'bearer' || !challenge.params.realm) throw new RegistryError(`registry ${this.registry} asks for ${challenge.scheme} authentication, which Warden does not speak (Basic or Bearer tokens)`);
    if (creds && 'bearer' in creds) return `Bearer ${creds.bearer}`;
    const realm = new URL(challenge.params.realm);
    // The token service gets the registry password: never over plain HTTP unless the registry itself is.
    if (realm.protocol !== 'https:' && !(realm.protocol === 'http:' && this.opts.plainHttp)) throw new RegistryError(`registry ${this.registry} sends its token requests to ${realm.origin}, which is not https; refusing to send it credentials`);
    if (challenge.params.service) realm.searchParams.set('service', challenge.params.service);
    realm.searchParams.set('scope', challenge.params.scope ?? scope);
    const res = await fetch(realm, { headers: creds ? { authorization: basic(creds) } : {}, signal: AbortSignal.timeout(this.opts.timeoutMs ?? 30_000) }).catch((err: Error) => {
      throw new RegistryError(`token service ${realm.origin} of registry ${this.registry} is unreachable: ${err.message}`);
    });
    if (!res.ok) throw new RegistryError(`token service ${realm.origin} of registry ${this.registry} refused a token for ${scope} (${res.status}); check the user and password in ${this.entry}`);
    const body = JSON.parse((await readCapped(res, 1024 * 1024, 'token answer')).toString('utf8')) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!token) throw new RegistryError(`token service ${realm.origin} of registry ${this.registry} answered without a token`);
    return `Bearer ${token}`;
  }

  /** The manifest `reference` names in `repository`, its bytes checked against the digest it is known by. */
  async manifest(repository: string, reference: string): Promise<{ digest: string; mediaType: string; bytes: Buffer }> {
    const res = await this.request('GET', `${repository}/manifests/${reference}`, { headers: { accept: MANIFEST_ACCEPT }, scope: `repository:${repository}:pull` });
    if (res.status === 404) {
      await res.body?.cancel();
      throw new RegistryError(`${this.registry}/${repository}:${reference} does not exist (404); push it first (warden push)`);
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new RegistryError(`registry ${this.registry} answered ${res.status} for the manifest of ${repository}:${reference}`);
    }
    const bytes = await readCapped(res, MAX_MANIFEST_BYTES, `manifest of ${repository}:${reference}`);
    const digest = sha256(bytes);
    const claimed = DIGEST.test(reference) ? reference : res.headers.get('docker-content-digest');
    if (claimed && claimed !== digest) throw new RegistryError(`manifest of ${this.registry}/${repository}:${reference} does not match its digest ${claimed} (got ${digest}); refusing it`);
    return { digest, mediaType: (res.headers.get('content-type') ?? '').split(';')[0]!.trim(), bytes };
  }

  /** The digest `reference` currently names (HEAD), or undefined when the registry does not say. */
  async resolve(repository: string, reference: string): Promise<string | undefined> {
    const res = await this.request('HEAD', `${repository}/manifests/${reference}`, { headers: { accept: MANIFEST_ACCEPT }, scope: `repository:${repository}:pull` });
    if (!res.ok) throw new RegistryError(`registry ${this.registry} answered ${res.status} for ${repository}:${reference}`);
    const d = res.headers.get('docker-content-digest');
    return d && DIGEST.test(d) ? d : undefined;
  }

  /** A blob, refused unless its bytes match the descriptor's digest and size. */
  async blob(repository: string, desc: Descriptor, max = MAX_BUNDLE_BYTES): Promise<Buffer> {
    if (!DIGEST.test(desc.digest)) throw new RegistryError(`layer digest ${JSON.stringify(desc.digest)} is not a sha256 digest`);
    if (desc.size > max) throw new RegistryError(`layer ${desc.digest} is ${desc.size} bytes, more than the ${max} allowed`);
    const res = await this.request('GET', `${repository}/blobs/${desc.digest}`, { scope: `repository:${repository}:pull` });
    if (!res.ok) {
      await res.body?.cancel();
      throw new RegistryError(`registry ${this.registry} answered ${res.status} for blob ${desc.digest} of ${repository}`);
    }
    const bytes = await readCapped(res, max, `blob ${desc.digest}`);
    if (sha256(bytes) !== desc.digest || bytes.length !== desc.size) throw new RegistryError(`blob ${desc.digest} of ${this.registry}/${repository} does not match its digest (tampered or truncated); refusing it`);
    return bytes;
  }

  /** Upload a blob unless the registry has it already; returns its descriptor. */
  async pushBlob(repository: string, bytes: Uint8Array, mediaType: string): Promise<Descriptor> {
    const digest = sha256(bytes);
    const scope = `repository:${repository}:pull,push`;
    const head = await this.request('HEAD', `${repository}/blobs/${digest}`, { scope });
    if (head.ok) return { mediaType, digest, size: bytes.length };
    const start = await this.request('POST', `${repository}/blobs/uploads/`, { scope });
    await start.body?.cancel();
    const location = start.headers.get('location');
    if (start.status !== 202 || !location) throw new RegistryError(`registry ${this.registry} did not start an upload to ${repository} (${start.status})`);
    const upload = new URL(location, this.base);
    upload.searchParams.set('digest', digest);
    const put = await this.request('PUT', upload.href, { headers: { 'content-type': 'application/octet-stream' }, body: bytes, scope });
    await put.body?.cancel();
    if (put.status !== 201) throw new RegistryError(`registry ${this.registry} did not accept blob ${digest} for ${repository} (${put.status})`);
    return { mediaType, digest, size: bytes.length };
  }

  /** Write a manifest under `tag`; returns its digest. */
  async putManifest(repository: string, tag: string, manifest: unknown): Promise<string> {
    const bytes = Buffer.from(JSON.stringify(manifest));
    const res = await this.request('PUT', `${repository}/manifests/${tag}`, { headers: { 'content-type': MEDIA.manifest }, body: bytes, scope: `repository:${repository}:pull,push` });
    const text = await res.text();
    if (res.status !== 201) throw new RegistryError(`registry ${this.registry} did not accept the manifest for ${repository}:${tag} (${res.status}): ${text.slice(0, 300)}`);
    return sha256(bytes);
  }
}

interface ImageManifest {
  mediaType?: string;
  layers?: Descriptor[];
  manifests?: Descriptor[];
}

/**
 * Pull the bundle archive `ref` names: the manifest (through an image index, as OPA does), then its
 * tar+gzip layer, each checked against its digest. `unlessDigest`: the manifest digest already in
 * force; when the tag still names it, nothing is downloaded (undefined).
 */
export async function pullBundle(client: RegistryClient, ref: OciReference, unlessDigest?: string): Promise<{ digest: string; bytes: Buffer } | undefined> {
  if (unlessDigest && (await client.resolve(ref.repository, ref.reference)) === unlessDigest) return undefined;
  let m = await client.manifest(ref.repository, ref.reference);
  const digest = m.digest;
  for (let depth = 0; ; depth++) {
    const parsed = JSON.parse(m.bytes.toString('utf8')) as ImageManifest;
    const layer = parsed.layers?.find((l) => l.mediaType === MEDIA.bundleLayer);
    if (layer) return { digest, bytes: await client.blob(ref.repository, layer) };
    const child = parsed.manifests?.find((d) => d.mediaType === MEDIA.manifest);
    if (!child || depth >= 3) throw new BundleError(`${formatOciReference(ref)} holds no ${MEDIA.bundleLayer} layer: it is not a bundle (push one with warden push)`);
    m = await client.manifest(ref.repository, child.digest);
  }
}

/** The manifest of a bundle artifact: an empty config and the bundle as its one layer. */
export async function pushBundle(client: RegistryClient, ref: OciReference, archive: Uint8Array, annotations: Record<string, string>): Promise<{ digest: string; layer: Descriptor }> {
  if (DIGEST.test(ref.reference)) throw new RegistryError(`push to a tag, not a digest (${formatOciReference(ref)})`);
  const config = await client.pushBlob(ref.repository, Buffer.from('{}'), MEDIA.config);
  const layer = { ...(await client.pushBlob(ref.repository, archive, MEDIA.bundleLayer)), annotations: { 'org.opencontainers.image.title': 'bundle.tar.gz' } };
  const digest = await client.putManifest(ref.repository, ref.reference, { schemaVersion: 2, mediaType: MEDIA.manifest, config, layers: [layer], annotations });
  return { digest, layer };
}
