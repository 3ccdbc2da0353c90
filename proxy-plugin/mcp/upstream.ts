// The MCP handler's way to the upstream server: plain node:http with keep-alive, nothing in between.
import { Agent, request, type IncomingMessage } from 'node:http';
import { MAX_RESPONSE_HEAD_BYTES } from '../http1.js';
import type { Upstream } from './handler.js';

/** Forward to one upstream origin (http://host:port), resolving with the response head, body unread. */
export function httpUpstream(base: string, agent: Agent = new Agent({ keepAlive: true })): Upstream {
  const u = new URL(base);
  if (u.protocol !== 'http:') throw new Error(`MCP upstream ${base}: only http:// upstreams inside the pod are supported`);
  return (r) =>
    new Promise<IncomingMessage>((ok, fail) => {
      const out = request({ host: u.hostname, port: u.port, method: r.method, path: r.target, headers: r.headers, agent, maxHeaderSize: MAX_RESPONSE_HEAD_BYTES }, ok);
      out.on('error', fail);
      out.end(r.body);
    });
}
