/**
 * The dashboard, the alert and recording rules and their promtool tests of `grafana/`, rendered for
 * the way an application's metrics reach Prometheus (`db-pool grafana` writes the copies):
 *
 * - a metric name prefix: `startPrometheusExporter({ prefix: 'myapp' })`, or the `namespace` of
 *   the OpenTelemetry Collector's Prometheus exporter, puts `myapp_` before every series name;
 * - the naming: `prometheus`, the names the JS Prometheus exporter writes (the files as shipped),
 *   or `otlp`, the names Prometheus gives metrics that arrive over OTLP (its OTLP receiver, or the
 *   Collector's `prometheus` / `prometheusremotewrite` exporters) with its default translation
 *   strategy `UnderscoreEscapingWithSuffixes`: the unit becomes a suffix (`s` gives `_seconds`, a
 *   `{connection}`-style annotation gives nothing) and counters end in `_total`;
 * - where the runbooks are: `<base>/docs/runbooks.md#runbook-<alert>`, by default this package's
 *   repository on GitHub.
 *
 * Recording rules are named `level:metric:operation`; with a prefix their metric part gets it too
 * (`instance_pool:myapp_db_client_connection_utilization:ratio`), so copies rendered for different
 * prefixes can be loaded into one Prometheus side by side. Alert names do not change (the runbook
 * anchors are made of them). With a prefix or the OTLP naming the dashboard gets its own uid and
 * title, so it can be imported next to the shipped one.
 *
 * Pure: text in, text out; no OpenTelemetry import (the series list below is checked against the
 * instrumentation's instruments and the documented series table by test/grafana/grafana-render.test.ts).
 */

/** How series are named in Prometheus: as the JS Prometheus exporter writes them, or as Prometheus translates OTLP. */
export type MetricNaming = 'prometheus' | 'otlp';

export const METRIC_NAMINGS: readonly MetricNaming[] = ['prometheus', 'otlp'];

export interface GrafanaRenderOptions {
  /** Metric name prefix, without the trailing `_` (`myapp` gives `myapp_db_client_...`). */
  prefix?: string | undefined;
  /** Where `docs/runbooks.md` is published, without a trailing slash. Default {@link DEFAULT_RUNBOOK_BASE}. */
  runbookBase?: string | undefined;
  /** Default `prometheus`. */
  naming?: MetricNaming | undefined;
}

/** The package's repository on GitHub: the runbook links of the shipped files are `<this>/docs/runbooks.md#runbook-<alert>`. */
export const DEFAULT_RUNBOOK_BASE = 'https://github.com/db-pool-otel/db-pool-otel/blob/main';

/** The dashboard's uid as shipped. */
export const DASHBOARD_UID = 'db-pool-otel';

export type InstrumentKind = 'histogram' | 'counter' | 'gauge';

export interface InstrumentSpec {
  /** OpenTelemetry instrument name. */
  readonly name: string;
  readonly kind: InstrumentKind;
  /** UCUM unit as the instrument declares it. */
  readonly unit: string;
}

/** Every instrument of `db-pool-otel/instrumentation` (pool-metrics.ts, server-budget-metrics.ts). */
export const INSTRUMENTS: readonly InstrumentSpec[] = [
  { name: 'db.client.operation.duration', kind: 'histogram', unit: 's' },
  { name: 'db.client.connection.create_time', kind: 'histogram', unit: 's' },
  { name: 'db.client.connection.wait_time', kind: 'histogram', unit: 's' },
  { name: 'db.client.connection.use_time', kind: 'histogram', unit: 's' },
  { name: 'db.client.connection.timeouts', kind: 'counter', unit: '{timeout}' },
  { name: 'db_pool.acquire.errors', kind: 'counter', unit: '{error}' },
  { name: 'db_pool.connection.create_errors', kind: 'counter', unit: '{error}' },
  { name: 'db_pool.connection.discarded', kind: 'counter', unit: '{connection}' },
  { name: 'db_pool.slow_queries', kind: 'counter', unit: '{query}' },
  { name: 'db_pool.leaks', kind: 'counter', unit: '{connection}' },
  { name: 'db_pool.events', kind: 'counter', unit: '{event}' },
  { name: 'db.client.connection.count', kind: 'gauge', unit: '{connection}' },
  { name: 'db.client.connection.idle.max', kind: 'gauge', unit: '{connection}' },
  { name: 'db.client.connection.idle.min', kind: 'gauge', unit: '{connection}' },
  { name: 'db.client.connection.max', kind: 'gauge', unit: '{connection}' },
  { name: 'db.client.connection.pending_requests', kind: 'gauge', unit: '{request}' },
  { name: 'db_pool.connection.pending_creates', kind: 'gauge', unit: '{connection}' },
  { name: 'db_pool.server.connection.limit', kind: 'gauge', unit: '{connection}' },
  { name: 'db_pool.server.connection.reserved', kind: 'gauge', unit: '{connection}' },
  { name: 'db_pool.server.connection.backends', kind: 'gauge', unit: '{connection}' },
  { name: 'db_pool.server.connection.pool_max', kind: 'gauge', unit: '{connection}' },
  { name: 'db_pool.server.connection.pool_open', kind: 'gauge', unit: '{connection}' },
];

/** Units Prometheus' OTLP translation spells out (prometheus/otlptranslator); others are used as they are. */
const OTLP_UNITS: Record<string, string> = {
  d: 'days',
  h: 'hours',
  min: 'minutes',
  s: 'seconds',
  ms: 'milliseconds',
  us: 'microseconds',
  ns: 'nanoseconds',
  By: 'bytes',
  KiBy: 'kibibytes',
  MiBy: 'mebibytes',
  GiBy: 'gibibytes',
  TiBy: 'tebibytes',
  KBy: 'kilobytes',
  MBy: 'megabytes',
  GBy: 'gigabytes',
  TBy: 'terabytes',
  m: 'meters',
  V: 'volts',
  A: 'amperes',
  J: 'joules',
  W: 'watts',
  g: 'grams',
  Cel: 'celsius',
  Hz: 'hertz',
  '1': '',
  '%': 'percent',
};
const OTLP_PER_UNITS: Record<string, string> = { s: 'second', m: 'minute', h: 'hour', d: 'day', w: 'week', mo: 'month', y: 'year' };

/** `<main>[/<per>]` of a unit as OTLP translation suffixes; `{...}` annotations give none. */
function otlpUnitTokens(unit: string): string[] {
  const [main = '', per] = unit.split(/\/(.*)/s, 2).map((u) => u.trim());
  const clean = (u: string) =>
    u
      .replace(/[^a-zA-Z0-9:]/g, '_')
      .replace(/__+/g, '_')
      .replace(/^_+|_+$/g, '');
  const tokens: string[] = [];
  if (main !== '' && !/[{}]/.test(main)) {
    const t = clean(OTLP_UNITS[main] ?? main);
    if (t !== '') tokens.push(t);
  }
  if (per !== undefined && per !== '' && !/[{}]/.test(per)) {
    const t = clean(OTLP_PER_UNITS[per] ?? per);
    if (t !== '') tokens.push(`per_${t}`);
  }
  return tokens;
}

/**
 * The Prometheus name of an instrument (a histogram's base name, before `_bucket`, `_count`,
 * `_sum`).
 *
 * - `prometheus` (`@opentelemetry/exporter-prometheus`): characters other than letters, digits
 *   and `_` become `_`, runs of `_` one; the prefix and `_` before it; a counter gets `_total`.
 *   The unit is not used.
 * - `otlp` (Prometheus' `UnderscoreEscapingWithSuffixes`, prometheus/otlptranslator): the name
 *   split at every character but letters, digits and `:`; the unit's word added unless the name
 *   has it already (`s`: `seconds`, `By/s`: `bytes_per_second`; an annotation such as
 *   `{connection}`: nothing); a counter's `total` moved to the end; the prefix (the Collector's
 *   `namespace`) first. (Gauges of unit `1` would also get `_ratio`; no instrument has that unit.)
 */
export function seriesBaseName(instrument: InstrumentSpec, naming: MetricNaming = 'prometheus', prefix = ''): string {
  if (naming === 'prometheus') {
    const name = `${prefix === '' ? '' : `${prefix}_`}${instrument.name.replace(/[^a-z0-9_]/gi, '_').replace(/_{2,}/g, '_')}`;
    return instrument.kind === 'counter' && !name.endsWith('_total') ? `${name}_total` : name;
  }
  let tokens = instrument.name.split(/[^a-zA-Z0-9:]+/).filter((t) => t !== '');
  for (const unit of otlpUnitTokens(instrument.unit)) if (!tokens.includes(unit)) tokens.push(unit);
  if (instrument.kind === 'counter') tokens = [...tokens.filter((t) => t !== 'total'), 'total'];
  if (prefix !== '') tokens.unshift(prefix);
  const name = tokens.join('_');
  return /^[0-9]/.test(name) ? `_${name}` : name;
}

/** The series names Prometheus stores for an instrument: a histogram's three, or the one. */
export function seriesNames(instrument: InstrumentSpec, options: GrafanaRenderOptions = {}): string[] {
  const base = seriesBaseName(instrument, options.naming, options.prefix ?? '');
  return instrument.kind === 'histogram' ? [`${base}_bucket`, `${base}_count`, `${base}_sum`] : [base];
}

/** Shipped series name (the files in grafana/) → the name under `options`, for every series of every instrument. */
export function seriesMapping(options: GrafanaRenderOptions = {}): Map<string, string> {
  const map = new Map<string, string>();
  for (const instrument of INSTRUMENTS) {
    const from = seriesNames(instrument);
    const to = seriesNames(instrument, options);
    from.forEach((name, i) => {
      map.set(name, to[i]!);
    });
  }
  return map;
}

/** Thrown for an option that cannot be rendered (the CLI's usage error). */
export class GrafanaRenderError extends Error {
  override name = 'GrafanaRenderError';
}

const PREFIX = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
/** What a runbook base may contain: URL characters that need no quoting in YAML, JSON or a Prometheus template. */
const SAFE_URL = /^[A-Za-z0-9\-._~:/@!$&'()*+,;=%]+$/;

/** Checks and normalizes the options (the base without a trailing slash); throws GrafanaRenderError. */
export function normalizeOptions(options: GrafanaRenderOptions): Required<GrafanaRenderOptions> {
  const naming = options.naming ?? 'prometheus';
  if (!METRIC_NAMINGS.includes(naming)) throw new GrafanaRenderError(`naming must be one of ${METRIC_NAMINGS.join(', ')}`);
  const prefix = options.prefix ?? '';
  if (prefix !== '' && (!PREFIX.test(prefix) || prefix.startsWith('__') || prefix.length > 100)) {
    throw new GrafanaRenderError('prefix must be a metric name part: letters, digits and _, not starting with a digit or __ (e.g. myapp)');
  }
  let runbookBase = DEFAULT_RUNBOOK_BASE;
  if (options.runbookBase !== undefined) {
    let url: URL;
    try {
      url = new URL(options.runbookBase);
    } catch {
      throw new GrafanaRenderError('runbook base must be an absolute http(s) URL, e.g. https://git.example.com/platform/db-pool-otel/-/blob/main');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new GrafanaRenderError('runbook base must start with http:// or https://');
    if (url.username !== '' || url.password !== '')
      throw new GrafanaRenderError('runbook base must not hold credentials (the links are shown to everyone who sees an alert)');
    if (url.search !== '' || url.hash !== '' || options.runbookBase.includes('#') || options.runbookBase.includes('?')) {
      throw new GrafanaRenderError('runbook base must have no query or fragment: /docs/runbooks.md#runbook-<alert> is appended to it');
    }
    runbookBase = url.href.replace(/\/+$/, '');
    if (!SAFE_URL.test(runbookBase))
      throw new GrafanaRenderError('runbook base has characters that must be percent-encoded (quotes, spaces, braces, backslashes, ...)');
  }
  return { prefix, runbookBase, naming };
}

/** Identifiers of PromQL (metric, label and recording-rule names), with what may not touch them on either side. */
const IDENTIFIER = /(?<![A-Za-z0-9_:])[A-Za-z_:][A-Za-z0-9_:]*(?![A-Za-z0-9_:])/g;
/** A recording rule's name, `level:metric:operation`, of ours (the metric part starts with `db_`). */
const RECORDED = /^([a-zA-Z_][a-zA-Z0-9_]*):(db_[a-zA-Z0-9_]*):([a-zA-Z0-9_]+)$/;

/** One rendering: what to replace in any text of the files. */
interface Renderer {
  readonly options: Required<GrafanaRenderOptions>;
  text(s: string): string;
}

function renderer(options: GrafanaRenderOptions): Renderer {
  const o = normalizeOptions(options);
  const names = seriesMapping(o);
  const identity = o.prefix === '' && o.naming === 'prometheus';
  const docsFrom = `${DEFAULT_RUNBOOK_BASE}/docs/`;
  const docsTo = `${o.runbookBase}/docs/`;
  return {
    options: o,
    text(s: string): string {
      let out = identity
        ? s
        : s.replace(IDENTIFIER, (id) => {
            const renamed = names.get(id);
            if (renamed !== undefined) return renamed;
            const rec = o.prefix === '' ? null : RECORDED.exec(id);
            return rec === null ? id : `${rec[1]}:${o.prefix}_${rec[2]}:${rec[3]}`;
          });
      if (docsTo !== docsFrom) out = out.split(docsFrom).join(docsTo);
      return out;
    },
  };
}

/** grafana/prometheus-alerts.yml (or its promtool test file) rendered for `options`. */
export function renderRulesFile(text: string, options: GrafanaRenderOptions = {}): string {
  return renderer(options).text(text);
}

/** grafana/db-pool-dashboard.json rendered for `options` (pretty-printed JSON). */
export function renderDashboard(text: string, options: GrafanaRenderOptions = {}): string {
  const r = renderer(options);
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') return r.text(v);
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    return v;
  };
  const dashboard = walk(JSON.parse(text)) as Record<string, unknown>;
  const { prefix, naming } = r.options;
  if (prefix !== '' || naming !== 'prometheus') {
    // Its own uid (at most 40 characters) and title: importable next to the shipped one.
    const variant = [naming === 'otlp' ? 'otlp' : '', prefix].filter(Boolean).join('-');
    dashboard.uid = `${DASHBOARD_UID}-${variant}`.slice(0, 40);
    const label = [prefix === '' ? '' : `prefix ${prefix}`, naming === 'otlp' ? 'OTLP naming' : ''].filter(Boolean).join(', ');
    dashboard.title = `${String(dashboard.title)} (${label})`;
  }
  return `${JSON.stringify(dashboard, null, 2)}\n`;
}

/** The shipped files, by name. */
export const GRAFANA_FILES = {
  dashboard: 'db-pool-dashboard.json',
  rules: 'prometheus-alerts.yml',
  rulesTest: 'prometheus-alerts.test.yml',
} as const;

export type GrafanaFiles = Record<keyof typeof GRAFANA_FILES, string>;

/** All three files rendered for `options`; throws GrafanaRenderError for an option that cannot be. */
export function renderGrafana(files: GrafanaFiles, options: GrafanaRenderOptions = {}): { files: GrafanaFiles; options: Required<GrafanaRenderOptions> } {
  const normalized = normalizeOptions(options);
  return {
    files: {
      dashboard: renderDashboard(files.dashboard, normalized),
      rules: renderRulesFile(files.rules, normalized),
      rulesTest: renderRulesFile(files.rulesTest, normalized),
    },
    options: normalized,
  };
}
