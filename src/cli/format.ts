/** Human-readable output of the CLI: aligned tables and number formats. */

type Cell = string | number | boolean | null | undefined;

/** An aligned table with a header row; numeric columns are right-aligned. */
export function table(head: string[], rows: Cell[][]): string {
  const text = rows.map((r) => r.map(cell));
  const widths = head.map((h, i) => Math.max(h.length, ...text.map((r) => r[i]!.length)));
  const numeric = head.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number' || /^-?[\d.]+( ?(ms|s|%))?$/.test(cell(r[i]))));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? (numeric[i] ? c.padStart(widths[i]!) : c) : numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(head), ...text.map(line)].join('\n');
}

/** Aligned `label  value` lines. */
export function keyValues(pairs: [string, Cell][]): string {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${k.padEnd(width)}  ${cell(v)}`).join('\n');
}

function cell(v: Cell): string {
  if (v === null || v === undefined || v === '') return '-';
  return String(v);
}

/** Milliseconds: two decimals under 10, one under 1000, then seconds. */
export function ms(v: unknown): string {
  const n = Number(v);
  if (!Number.isFinite(n)) return '-';
  if (n >= 10_000) return `${(n / 1000).toFixed(1)} s`;
  return `${n.toFixed(n < 10 ? 2 : 1)} ms`;
}

/** A 0..1 ratio as a percentage. */
export function pct(v: unknown): string {
  const n = Number(v);
  return Number.isFinite(n) ? `${(n * 100).toFixed(1)} %` : '-';
}

export function num(v: unknown, digits = 0): string {
  const n = Number(v);
  return Number.isFinite(n) ? n.toFixed(digits) : '-';
}

/** How long ago an ISO timestamp was, e.g. `3m12s`. */
export function age(iso: unknown, now = Date.now()): string {
  const t = Date.parse(String(iso));
  if (!Number.isFinite(t)) return '-';
  return duration(Math.max(0, now - t));
}

/** A duration in ms as `850ms`, `12.3s`, `4m05s`, `2h03m`. */
export function duration(msValue: number): string {
  if (msValue < 1_000) return `${Math.round(msValue)}ms`;
  if (msValue < 60_000) return `${(msValue / 1000).toFixed(1)}s`;
  const s = Math.floor(msValue / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** Cuts a one-line rendering of `text` to `max` characters. */
export function clip(text: unknown, max = 80): string {
  const s = String(text ?? '').replace(/\s+/g, ' ').trim();
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/** `metrics_YYYYmmdd_HHMMSS.json` in local time, the ops guide's export name. */
export function metricsFileName(now: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `metrics_${now.getFullYear()}${p(now.getMonth() + 1)}${p(now.getDate())}_${p(now.getHours())}${p(now.getMinutes())}${p(now.getSeconds())}.json`;
}
