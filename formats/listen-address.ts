// `host:port` / `:port` / `port` values (--listen, --admin, the listener of an --inbound), parsed once:
// the sidecar binds what the webhook checked, so both must read the same string the same way.
import { UserError } from './user-error.js';

/** A parsed listen address. */
export interface ListenAddress {
  host: string;
  port: number;
}

/** The address a value names, or undefined when it is not one; the default host is loopback so nothing is exposed by accident. */
export function listenAddress(value: string, defaultHost = '127.0.0.1'): ListenAddress | undefined {
  const m = /^(?:(\[[^\]]+\]|[^:]*):)?(\d{1,5})$/.exec(value.trim());
  const port = Number(m?.[2]);
  if (!m || port > 65535) return undefined;
  return { host: (m[1] ?? '').replace(/^\[|\]$/g, '') || defaultHost, port };
}

/** Parse a `--listen`-style flag; throws a UserError naming the flag when the value is not an address. */
export function parseListenAddress(flag: string, value: string, defaultHost = '127.0.0.1'): ListenAddress {
  const a = listenAddress(value, defaultHost);
  if (!a) throw new UserError(`${flag} ${JSON.stringify(value)} is not an address; use host:port, :port or port (e.g. 127.0.0.1:8080)`);
  return a;
}
