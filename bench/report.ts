/** Medians, ranges, paired ratios and markdown tables for bench/run.ts. */

export function median(xs: readonly number[]): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

export function mean(xs: readonly number[]): number {
  const v = xs.filter((x) => Number.isFinite(x));
  return v.length === 0 ? NaN : v.reduce((a, b) => a + b, 0) / v.length;
}

/** Sample standard deviation (n − 1). */
export function stdev(xs: readonly number[]): number {
  const v = xs.filter((x) => Number.isFinite(x));
  if (v.length < 2) return NaN;
  const m = mean(v);
  return Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / (v.length - 1));
}

export function range(xs: readonly number[]): [number, number] {
  const v = xs.filter((x) => Number.isFinite(x));
  return v.length === 0 ? [NaN, NaN] : [Math.min(...v), Math.max(...v)];
}

/** Per-repetition ratios a[i] / b[i]: both measured in the same repetition, back to back. */
export function paired(a: readonly number[], b: readonly number[], op: (x: number, y: number) => number = (x, y) => x / y): number[] {
  const n = Math.min(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(op(a[i]!, b[i]!));
  return out;
}

/** A number with about three significant digits, thousands separated by a thin space. */
export function fmt(x: number, digits?: number): string {
  if (!Number.isFinite(x)) return 'n/a';
  // Counts (0, 10, 200 statements) print as counts; measured values get about three digits.
  const d = digits ?? (Math.abs(x) >= 100 || (Number.isInteger(x) && (x === 0 || Math.abs(x) >= 10)) ? 0 : Math.abs(x) >= 10 ? 1 : 2);
  const s = x.toFixed(d);
  const [int, frac] = s.split('.');
  const grouped = int!.replace(/\B(?=(\d{3})+(?!\d))/g, '\u2009');
  return frac === undefined ? grouped : `${grouped}.${frac}`;
}

/** "median (min–max)". */
export function spread(xs: readonly number[], digits?: number): string {
  const [lo, hi] = range(xs);
  if (!Number.isFinite(lo)) return 'n/a';
  if (xs.length < 2) return fmt(median(xs), digits);
  return `${fmt(median(xs), digits)} (${fmt(lo, digits)}–${fmt(hi, digits)})`;
}

export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}
