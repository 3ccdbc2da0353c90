// Raw HTTP/1.1 on one loopback connection, for tests that must control every byte (pipelining, framing).
import net from 'node:net';

/** Write `parts` one after the other on one connection and read everything until the other side closes it. */
export function exchange(port: number, ...parts: Array<string | Buffer>): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    const got: Buffer[] = [];
    s.on('data', (d: Buffer) => got.push(d));
    s.on('error', reject);
    s.on('close', () => resolve(Buffer.concat(got).toString('latin1')));
    s.on('connect', () => {
      for (const p of parts) s.write(p);
    });
  });
}

/** The status of every answer in `text`, in order (bodies must hold no status line, and end in a newline or nothing). */
export const statuses = (text: string): number[] => [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));

/** The body of the one answer in `text` (latin1, as exchange reads it), its chunked framing undone. */
export function answerBody(text: string): string {
  const end = text.indexOf('\r\n\r\n');
  const body = text.slice(end + 4);
  if (!/\r\ntransfer-encoding:[ \t]*chunked/i.test(text.slice(0, end))) return body;
  let out = '';
  for (let at = 0; ; ) {
    const line = body.indexOf('\r\n', at);
    const size = parseInt(body.slice(at, line), 16);
    if (!(size > 0)) return out;
    out += body.slice(line + 2, line + 2 + size);
    at = line + 2 + size + 2;
  }
}
