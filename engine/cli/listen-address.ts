// `host:port` / `:port` / `port` flags, parsed once for every command that listens.
import { UserError } from './user-error.js';

/** A parsed listen address. */
export interface ListenAddress {
  host: string;
  port: number;
}

/** Parse `--listen`-style values; the default host is loopback so nothing is exposed by accident. */
export function parseListenAddress(flag: string, value: string, defaultHost = '127.0.0.1'): ListenAddress {
  const m = /^(?:(\[[^\]]+\]|[^:]*):)?(\d{1,5})$/.exec(value.trim());
  const port = Number(m?.[2]);
  if (!m || port > 65535) throw new UserError(`${flag} ${JSON.stringify(value)} is not an address; use host:port, :port or port (e.g. 127.0.0.1:8080)`);
  const host = (m[1] ?? '').replace(/^\[|\]$/g, '') || defaultHost;
  return { host, port };
}
