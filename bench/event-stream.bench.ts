// What the MCP handler's event-stream parser (proxy-plugin/mcp/event-stream.ts) costs for one long event
// that a server sends in small pieces, as a slow or hostile one may: the work must grow with the event's
// length, not its square (a 4 MiB event in 256-character pieces took 49 s before 2026-12-06, 27 ms after).
// Beside it, the same event in one piece, in the same run. In process: the parser alone.
// Run: npx tsx bench/event-stream.bench.ts
import { fileURLToPath } from 'node:url';
import { SseParser } from '../proxy-plugin/mcp/event-stream.js';
import { median, type Figure } from './figure.js';

const PIECE = 256;

// Milliseconds to parse one event of `chars` data characters sent in pieces of `piece` characters.
function parse(chars: number, piece: number): number {
  const p = new SseParser();
  const text = 'x'.repeat(piece);
  const t = performance.now();
  p.push('event: message\ndata: ');
  for (let sent = 0; sent < chars; sent += piece) p.push(text);
  if (p.push('\n\n').length !== 1) throw new Error('the parser did not give back the one event');
  return performance.now() - t;
}

/** Run the benchmark and return its figures. */
export async function run(): Promise<Figure[]> {
  const figures: Figure[] = [];
  for (const mib of [1, 4]) {
    const chars = mib * 1024 * 1024;
    const pieces: number[] = [];
    const whole: number[] = [];
    for (let r = 0; r < 5; r++) {
      pieces.push(parse(chars, PIECE));
      whole.push(parse(chars, chars));
    }
    figures.push(
      { suite: 'event-stream', name: `${mib} MiB event in ${PIECE}-character pieces`, value: median(pieces), unit: 'ms', detail: `median of 5; ${(median(pieces) / mib).toFixed(1)} ms per MiB; ${(median(pieces) / median(whole)).toFixed(1)}× the same event in one piece (${median(whole).toFixed(1)} ms), same run` },
    );
  }
  return figures;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) for (const f of await run()) console.log(`${f.name}: ${f.value.toFixed(1)} ${f.unit} (${f.detail})`);
