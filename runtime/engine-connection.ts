// The connection from a pod (proxy plugin, admission webhook) to the engine: one keep-alive agent that
// presents the pod's workload identity (its SVID) over mTLS and trusts only the engine's CA. The bundle
// puller and the decision-log shipper share it, so both speak as the same workload.
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

/** PEM contents for mTLS to the engine: the engine's CA, and this workload's certificate and key. */
export interface EngineTls {
  ca?: string;
  cert?: string;
  key?: string;
}

/** One answer from the engine, body read whole. */
export interface EngineResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** The field in which the engine's bundle server names the revision of the bundle it answers with. */
export const REVISION_HEADER = 'x-warden-revision';

/**
 * The ETag to long-poll on when a bundle answer is another engine replica's build of the revision in
 * force (its own bytes and ETag), or undefined when the answer is to be verified and loaded. Shared by
 * the sidecar and the webhook. The field is not signed, but believing it can only keep the verified
 * bundle in force.
 */
export function sameRevisionEtag(res: EngineResponse, inForce: string | undefined): string | undefined {
  const tag = res.headers.etag;
  return res.status === 200 && inForce !== undefined && typeof tag === 'string' && res.headers[REVISION_HEADER] === inForce ? tag : undefined;
}

/** What one request sends. */
export interface EngineRequest {
  method?: string;
  headers?: Record<string, string>;
  body?: Uint8Array;
  /** Aborts the request (and a long poll in progress). */
  signal?: AbortSignal;
}

/** A configuration mistake in the connection's settings, written for the operator. */
export class EngineConnectionError extends Error {
  override name = 'EngineConnectionError';
}

/** Requests to one engine base URL over a shared agent. */
export class EngineConnection {
  readonly base: URL;
  private agent: HttpAgent | HttpsAgent;
  /** Agents replaced by setTls: destroyed at a later rotation once their requests have finished, or by close(). */
  private retired: Array<HttpAgent | HttpsAgent> = [];

  constructor(base: string | URL, tls: EngineTls = {}) {
    try {
      this.base = new URL(String(base));
    } catch {
      throw new EngineConnectionError(`engine URL ${JSON.stringify(String(base))} is not a URL; use e.g. https://warden-engine.warden.svc:8443`);
    }
    if (this.base.protocol !== 'https:' && this.base.protocol !== 'http:') throw new EngineConnectionError(`engine URL ${this.base.href} must be http:// or https://`);
    this.agent = this.agentFor(tls);
  }

  private agentFor(tls: EngineTls): HttpAgent | HttpsAgent {
    const https = this.base.protocol === 'https:';
    if ((tls.cert === undefined) !== (tls.key === undefined)) throw new EngineConnectionError('the engine client certificate and its key go together');
    // A client certificate over plain HTTP would be silently unused: the engine would then refuse the logs.
    if (!https && (tls.cert || tls.ca)) throw new EngineConnectionError(`engine URL ${this.base.href} is plain http, but TLS credentials were given; use https://`);
    return https ? new HttpsAgent({ keepAlive: true, ...tls }) : new HttpAgent({ keepAlive: true });
  }

  /**
   * Present a rotated certificate (or trust a rotated engine CA) from the next request on. Requests in
   * flight (a bundle long poll) finish on their connection; idle connections of the old ones close now.
   */
  setTls(tls: EngineTls): void {
    const next = this.agentFor(tls);
    const old = this.agent;
    this.agent = next;
    for (const sockets of Object.values(old.freeSockets)) for (const s of sockets ?? []) s.destroy();
    // Agents from earlier rotations whose requests have all finished are done with.
    const busy = (a: HttpAgent | HttpsAgent) => Object.values(a.sockets).some((list) => (list?.length ?? 0) > 0);
    for (const a of this.retired) if (!busy(a)) a.destroy();
    this.retired = [...this.retired.filter(busy), old];
  }

  /** Send one request to `path` (relative to the base URL) and read the whole answer. */
  request(path: string, req: EngineRequest = {}): Promise<EngineResponse> {
    // Relative to the base *folder*, so an engine behind a path prefix (https://host/engine) works too.
    const url = new URL(path.replace(/^\/+/, ''), this.base.href.endsWith('/') ? this.base : `${this.base.href}/`);
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const r = send(url, { method: req.method ?? 'GET', headers: req.headers ?? {}, agent: this.agent, ...(req.signal ? { signal: req.signal } : {}) }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      });
      r.on('error', reject);
      r.end(req.body);
    });
  }

  /** Close idle keep-alive sockets. */
  close(): void {
    this.agent.destroy();
    for (const a of this.retired.splice(0)) a.destroy();
  }
}
