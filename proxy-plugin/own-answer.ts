// The answers the sidecar writes itself (denials, refusals, 413, 502, 500): a JSON body with the decision
// id and reasons, never upstream details. The fast path writes them on its raw sockets, node's path with
// writeOwn; both from the same OwnAnswer.
import type { ServerResponse } from 'node:http';
import { denialBody } from './admit.js';
import type { Verdict } from './decide.js';
import { answerHead, type OwnAnswer } from './fast-path.js';
import { DECISION_ID_HEADER } from './upstream-head.js';

// Fields the sidecar sets on its own answers; a policy's denial headers cannot replace them.
const OWN_FIELDS = new Set(['content-type', 'content-length', 'connection', 'transfer-encoding', DECISION_ID_HEADER]);

/** A policy denial or refusal: the policy's extra headers, the decision id, the reasons. */
export function denialAnswer(v: Verdict): OwnAnswer {
  const headers: Array<[string, string]> = Object.entries(v.headers).filter(([name]) => !OWN_FIELDS.has(name.toLowerCase()));
  headers.push(['content-type', 'application/json'], [DECISION_ID_HEADER, v.decisionId]);
  return { status: v.status, headers, body: denialBody(v) };
}

/** The sidecar's own JSON answer: decision id and reasons, never upstream details. */
export function ownAnswer(status: number, decisionId: string | undefined, reason: string): OwnAnswer {
  const headers: Array<[string, string]> = [['content-type', 'application/json']];
  if (decisionId) headers.push([DECISION_ID_HEADER, decisionId]);
  return { status, headers, body: JSON.stringify({ decision_id: decisionId, reasons: [reason] }) };
}

/**
 * A whole response that closes the connection (an upgrade refused before node wrote anything); a field
 * that cannot be written fails closed with a 500, as node's writeHead would.
 */
export function closingAnswer(a: OwnAnswer): string {
  const head = answerHead(a, Buffer.byteLength(a.body), 'connection: close\r\n');
  return head === undefined ? closingAnswer(ownAnswer(500, undefined, 'internal error (fail closed)')) : head + a.body;
}

/** One of the sidecar's own answers on node's path (after a partial answer: the connection is cut). */
export function writeOwn(res: ServerResponse, a: OwnAnswer, close: boolean): void {
  if (res.headersSent) return void res.destroy();
  const body = Buffer.from(a.body, 'utf8');
  res.writeHead(a.status, [...a.headers.flat(), 'content-length', String(body.length), ...(close ? ['connection', 'close'] : [])]).end(body);
}
