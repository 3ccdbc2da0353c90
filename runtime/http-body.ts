// Bodies on node's HTTP servers, for every part that answers HTTP itself (the sidecar, the MCP
// handler, the webhook, `warden up`'s demo apps): a body read whole up to a limit, a JSON answer
// written whole. One reader, so that every listener bounds what it buffers the same way.
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { jsonText } from './opa-json.js';
import type { OpaJson } from './rego-value.js';

/**
 * A message's body up to `limit` bytes; undefined when it is larger (declared or while streaming). The
 * rest is left unread: answer a request with `connection: close` (node would parse the rest as the
 * next request), and destroy an upstream response.
 */
export function readBody(msg: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  if (Number(msg.headers['content-length']) > limit) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        msg.off('data', onData);
        msg.pause();
        resolve(undefined);
        return;
      }
      chunks.push(c);
    };
    msg.on('data', onData);
    msg.once('end', () => resolve(Buffer.concat(chunks)));
    msg.once('error', reject);
  });
}

/** Answer with `body` as JSON, its length set; `headers` add to (never replace) the content type and length. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: OutgoingHttpHeaders = {}): void {
  sendJsonText(res, status, jsonText(body as OpaJson), headers); // policy results may hold integers beyond 2^53 (bigint)
}

/** Send JSON already written as text. */
export function sendJsonText(res: ServerResponse, status: number, text: string, headers: OutgoingHttpHeaders = {}): void {
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
