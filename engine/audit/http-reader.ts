// The audit log of a running engine, read over its HTTP API (`warden audit … --engine <url>`):
// the same AuditReader the CLI uses on a local store, with optional mTLS client credentials.
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { FilterError, filterToParams, type EventFilter } from './query.js';
import type { AuditReader, Edge, StoredEvent, TopDimension, TopRow } from './store.js';

/** PEM contents for talking to an engine over mTLS. */
export interface ClientTls {
  ca?: string;
  cert?: string;
  key?: string;
}

/** An engine that answered with an error, or could not be reached. */
export class EngineError extends Error {
  override name = 'EngineError';
}

/** AuditReader over an engine's `/audit/*` API. */
export class HttpAuditReader implements AuditReader {
  constructor(
    private readonly base: URL,
    private readonly tls: ClientTls = {},
  ) {}

  private get<T>(path: string, params: URLSearchParams): Promise<T> {
    const url = new URL(`${path}?${params.toString()}`, this.base);
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = send(url, { method: 'GET', headers: { accept: 'application/json' }, ...(url.protocol === 'https:' ? this.tls : {}) }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown;
          try {
            body = JSON.parse(text);
          } catch {
            return reject(new EngineError(`${url.origin} answered ${res.statusCode} with a body that is not JSON`));
          }
          const b = body as { error?: string; parameter?: string };
          if (res.statusCode === 400 && b.parameter) return reject(new FilterError(b.parameter, b.error ?? 'bad parameter'));
          if ((res.statusCode ?? 500) >= 300) return reject(new EngineError(`${url.origin} answered ${res.statusCode}: ${b.error ?? text}`));
          resolve(body as T);
        });
      });
      req.on('error', (err) => reject(new EngineError(`cannot reach the engine at ${url.origin}: ${err.message}`)));
      req.end();
    });
  }

  async query(filter: EventFilter): Promise<StoredEvent[]> {
    return (await this.get<{ events: StoredEvent[] }>('/audit/events', filterToParams(filter))).events;
  }

  async top(by: TopDimension, filter: EventFilter): Promise<TopRow[]> {
    const p = filterToParams(filter);
    p.set('by', by);
    return (await this.get<{ rows: TopRow[] }>('/audit/top', p)).rows;
  }

  async edges(filter: EventFilter): Promise<Edge[]> {
    return (await this.get<{ edges: Edge[] }>('/audit/graph', filterToParams(filter))).edges;
  }

  /** The engine's explanation of one decision (JSON), or undefined when it has no such decision. */
  async explain(decisionId: string): Promise<unknown> {
    try {
      return await this.get<unknown>(`/audit/decisions/${encodeURIComponent(decisionId)}/explain`, new URLSearchParams({ format: 'json' }));
    } catch (err) {
      if (err instanceof EngineError && / answered 404: /.test(err.message)) return undefined;
      throw err;
    }
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
