// What a benchmark reports: named figures with units, printed as a table and saved as JSON.

/** One measured figure. `ratio` figures compare against a baseline measured in the same run. */
export interface Figure {
  suite: string;
  name: string;
  value: number;
  unit: string;
  /** Spread or context: e.g. "p25–p75 12.1–13.4 µs over 5 runs". */
  detail?: string;
}

/** A benchmark module exports `run()`; `npm run bench` runs every bench/*.bench.ts. */
export type Benchmark = () => Promise<Figure[]>;

/** Median of numbers (the middle one, or the mean of the two middle ones). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The q-quantile (0..1) by nearest rank. */
export function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

/** Print figures as an aligned table. */
export function printTable(figures: Figure[]): void {
  const rows = figures.map((f) => [f.suite, f.name, formatValue(f.value), f.unit, f.detail ?? '']);
  const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => r[i]!.length), 4));
  for (const r of rows) process.stdout.write(`${r.map((c, i) => (i < 4 ? (i === 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)) : c)).join('  ')}\n`);
}

function formatValue(v: number): string {
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString('en-US');
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toFixed(3);
}
