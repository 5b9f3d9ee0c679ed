/**
 * Human-readable output of the CLI: aligned tables and number formats, and the one place where
 * text from the endpoint is made safe for a terminal.
 *
 * Everything the endpoint sends is data, not terminal control: C0 and C1 control characters, DEL,
 * the Unicode line and paragraph separators and the bidirectional overrides are shown escaped
 * (`\n`, `\r`, `\t`, `\x1b`, `\x9b`, `\u2028`), so a SQL alias, an error message or a pool
 * field cannot retitle the window, clear the screen, move the cursor or forge a line. Human output
 * is built as {@link Rendered} text — by {@link table}, {@link keyValues} and the {@link human}
 * template, which escape every value put into them, line feeds included — so the only line feeds
 * left are the layout's own; and {@link terminalSafe}, applied where the CLI writes, escapes any
 * control character but the line feed whatever the path.
 */

type Cell = string | number | boolean | null | undefined;

/** C0 and C1 controls, DEL, the line and paragraph separators, the bidirectional controls. */
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
/** The same but the line feed. */
const CONTROLS_BUT_LF = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
/** Those JSON.stringify leaves raw: DEL, C1, the separators and bidirectional controls. */
const JSON_UNESCAPED = /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function escapeChar(c: string): string {
  const named = NAMED[c];
  if (named !== undefined) return named;
  const code = c.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/** `text` with every control character escaped, line feeds included: one line, shown as is otherwise. */
export function escapeControls(text: string): string {
  return text.replace(CONTROLS, escapeChar);
}

/** `text` with every control character but the line feed escaped: the last guard before a write. */
export function terminalSafe(text: string): string {
  return text.replace(CONTROLS_BUT_LF, escapeChar);
}

/** Pretty JSON for `--json`: the same data, with the characters JSON leaves raw written as `\uXXXX`. */
export function jsonText(data: unknown): string {
  return JSON.stringify(data, null, 2).replace(JSON_UNESCAPED, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Text ready for the terminal: the values in it escaped, its line feeds the layout's. */
export class Rendered {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

/**
 * A template for human output: every interpolated value is escaped (line feeds included) unless it
 * is already {@link Rendered}; the template's own text is the layout.
 *
 * @example
 * human`pool ${poolId}: ${changes}`
 */
export function human(strings: TemplateStringsArray, ...values: unknown[]): Rendered {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += shown(values[i]) + strings[i + 1]!;
  return new Rendered(out);
}

/** Rendered parts joined by `separator` (layout: a line feed by default). */
export function joined(parts: readonly Rendered[], separator = '\n'): Rendered {
  return new Rendered(parts.map((p) => p.text).join(separator));
}

function shown(v: unknown): string {
  return v instanceof Rendered ? v.text : escapeControls(String(v));
}

/** An aligned table with a header row; numeric columns are right-aligned. */
export function table(head: string[], rows: Cell[][]): Rendered {
  const text = rows.map((r) => r.map(cell));
  const widths = head.map((h, i) => Math.max(h.length, ...text.map((r) => r[i]!.length)));
  const numeric = head.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number' || /^-?[\d.]+( ?(ms|s|%))?$/.test(cell(r[i]))));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? (numeric[i] ? c.padStart(widths[i]!) : c) : numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return new Rendered([line(head.map(escapeControls)), ...text.map(line)].join('\n'));
}

/** Aligned `label  value` lines (labels and values escaped). */
export function keyValues(pairs: [string, Cell][]): Rendered {
  const labels = pairs.map(([k]) => escapeControls(k));
  const width = Math.max(...labels.map((k) => k.length));
  return new Rendered(pairs.map(([, v], i) => `${labels[i]!.padEnd(width)}  ${cell(v)}`).join('\n'));
}

function cell(v: Cell): string {
  if (v === null || v === undefined || v === '') return '-';
  return escapeControls(String(v));
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

/**
 * Cuts a one-line rendering of `text` to `max` characters: runs of white space (line breaks
 * included) become one space, other control characters are escaped.
 */
export function clip(text: unknown, max = 80): string {
  const s = escapeControls(
    String(text ?? '')
      .replace(/\s+/g, ' ')
      .trim(),
  );
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/** `metrics_YYYYmmdd_HHMMSS.json` in local time, the ops guide's export name. */
export function metricsFileName(now: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `metrics_${now.getFullYear()}${p(now.getMonth() + 1)}${p(now.getDate())}_${p(now.getHours())}${p(now.getMinutes())}${p(now.getSeconds())}.json`;
}
