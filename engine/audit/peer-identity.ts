// Who is calling the engine: the SPIFFE ID in the URI SAN of a verified mTLS client certificate.
// Never a header — a caller could set one.
import type { IncomingMessage } from 'node:http';
import { TLSSocket } from 'node:tls';

/** An authenticated caller. */
export interface Peer {
  principal: string;
}

/** Finds the caller of a request, or undefined when it presented no verifiable identity. */
export type Identify = (req: IncomingMessage) => Promise<Peer | undefined>;

/** Identify by the one `spiffe://` URI SAN of a client certificate the TLS server verified. */
export const spiffePeer: Identify = (req) => {
  const socket = req.socket;
  if (!(socket instanceof TLSSocket) || !socket.authorized) return Promise.resolve(undefined);
  const san = socket.getPeerCertificate().subjectaltname ?? '';
  const ids = san
    .split(/,\s*/)
    .filter((entry) => entry.startsWith('URI:spiffe://'))
    .map((entry) => entry.slice('URI:'.length));
  // More than one SPIFFE ID is ambiguous; the SPIFFE X.509-SVID spec allows exactly one.
  return Promise.resolve(ids.length === 1 ? { principal: ids[0]! } : undefined);
};
