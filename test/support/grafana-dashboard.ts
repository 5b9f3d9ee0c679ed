/**
 * Reading grafana/: the dashboard's panels and queries, Grafana's variable interpolation for
 * Prometheus, the alert rules file, and the series table the README documents.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';

export const ROOT = new URL('../../', import.meta.url);
export const fileOf = (path: string): string => new URL(path, ROOT).pathname;
export const DASHBOARD_FILE = fileOf('grafana/db-pool-dashboard.json');
export const RULES_FILE = fileOf('grafana/prometheus-alerts.yml');
export const RULES_TEST_FILE = fileOf('grafana/prometheus-alerts.test.yml');

export interface Target {
  refId: string;
  expr: string;
  legendFormat?: string;
  format?: string;
  datasource?: { type?: string; uid?: string };
  [key: string]: unknown;
}

export interface GridPos {
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface PanelJson {
  id: number;
  type: string;
  title: string;
  description?: string;
  gridPos: GridPos;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  options?: Record<string, unknown>;
  fieldConfig?: {
    defaults: Record<string, unknown> & { custom?: Record<string, unknown>; unit?: string; thresholds?: { steps: unknown[] } };
    overrides: unknown[];
  };
  panels?: PanelJson[];
  collapsed?: boolean;
}

export interface VariableJson {
  name: string;
  type: string;
  query?: unknown;
  allValue?: string;
  multi?: boolean;
  includeAll?: boolean;
  datasource?: { type?: string; uid?: string };
}

export interface DashboardJson {
  uid: string;
  title: string;
  schemaVersion: number;
  id: null;
  __inputs: Array<{ name: string; type: string; pluginId?: string }>;
  __requires: Array<{ type: string; id: string }>;
  panels: PanelJson[];
  templating: { list: VariableJson[] };
  annotations: { list: Array<Record<string, unknown> & { expr?: string; name: string }> };
}

export function loadDashboard(path = DASHBOARD_FILE): DashboardJson {
  return JSON.parse(readFileSync(path, 'utf8')) as DashboardJson;
}

/** Every panel, rows included, with the panels inside collapsed rows. */
export function allPanels(d: DashboardJson): PanelJson[] {
  const out: PanelJson[] = [];
  for (const p of d.panels) {
    out.push(p);
    for (const child of p.panels ?? []) out.push(child);
  }
  return out;
}

/** Panels that show data (not rows). */
export function dataPanels(d: DashboardJson): PanelJson[] {
  return allPanels(d).filter((p) => p.type !== 'row');
}

export interface DashboardQuery {
  /** Where it is, for messages: `panel 12 "Pool utilization" A`, `variable pool`, `annotation Pool events`. */
  where: string;
  kind: 'panel' | 'variable' | 'annotation';
  expr: string;
  panel?: PanelJson;
  target?: Target;
}

/** Every PromQL expression in the dashboard: panel targets, query variables, annotation queries. */
export function dashboardQueries(d: DashboardJson): DashboardQuery[] {
  const out: DashboardQuery[] = [];
  for (const p of dataPanels(d)) {
    for (const target of p.targets ?? []) out.push({ where: `panel ${p.id} "${p.title}" ${target.refId}`, kind: 'panel', expr: target.expr, panel: p, target });
  }
  for (const v of d.templating.list) {
    if (v.type === 'query') out.push({ where: `variable ${v.name}`, kind: 'variable', expr: String(v.query) });
  }
  for (const a of d.annotations.list) {
    if (typeof a.expr === 'string') out.push({ where: `annotation ${a.name}`, kind: 'annotation', expr: a.expr });
  }
  return out;
}

/** Grafana's built-in variables that may appear in Prometheus queries (and `$__all`, its All value). */
export const BUILTIN_VARIABLES = new Set([
  '__all',
  '__rate_interval',
  '__interval',
  '__interval_ms',
  '__range',
  '__range_s',
  '__range_ms',
  '__from',
  '__to',
  '__dashboard',
  '__org',
  '__user',
]);

/** Variable names referenced in a string: `$name`, `${name}`, `${name:format}`, `[[name]]`. */
export function referencedVariables(text: string): string[] {
  const names = new Set<string>();
  for (const m of text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)|\[\[([A-Za-z_][A-Za-z0-9_]*)(?::[^\]]*)?\]\]/g)) {
    names.add((m[1] ?? m[2] ?? m[3])!);
  }
  return [...names];
}

/**
 * A multi-value / include-All variable's value as Grafana's Prometheus data source interpolates it
 * into a regex matcher: regex metacharacters escaped (with the backslash doubled for the PromQL
 * string), several values as `(a|b)`, All as the variable's allValue.
 */
export function formatRegexValue(values: string[] | 'All', allValue = '.*'): string {
  if (values === 'All') return allValue;
  const escaped = values.map((v) => v.replace(/[$^*{}[\]'+?.()|\\]/g, '\\\\$&'));
  return escaped.length === 1 ? escaped[0]! : `(${escaped.join('|')})`;
}

export interface Substitution {
  variables: Record<string, string>;
  rateInterval: string;
  interval: string;
  range: string;
}

/** Replaces the dashboard's variables and Grafana's built-ins in an expression. */
export function substitute(expr: string, s: Substitution): string {
  const builtins: Record<string, string> = {
    __rate_interval: s.rateInterval,
    __interval: s.interval,
    __range: s.range,
  };
  return expr.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (whole, a?: string, b?: string) => {
    const name = (a ?? b)!;
    const value = builtins[name] ?? s.variables[name];
    if (value === undefined) throw new Error(`no value for $${name} in ${expr}`);
    return value;
  });
}

/** `label_values(selector, label)` split into its parts (the Prometheus data source's variable query). */
export function parseLabelValues(query: string): { selector: string; label: string } {
  const m = /^label_values\(\s*(.+)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)$/s.exec(query.trim());
  if (!m) throw new Error(`not a label_values() query: ${query}`);
  return { selector: m[1]!.trim(), label: m[2]! };
}

// ---------------------------------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------------------------------

export interface Rule {
  record?: string;
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface RulesFile {
  groups: Array<{ name: string; interval?: string; rules: Rule[] }>;
}

export function loadRules(path = RULES_FILE): RulesFile {
  return parseYaml(readFileSync(path, 'utf8')) as RulesFile;
}

export function allRules(rules: RulesFile = loadRules()): Rule[] {
  return rules.groups.flatMap((g) => g.rules);
}

// ---------------------------------------------------------------------------------------------------
// The documented series
// ---------------------------------------------------------------------------------------------------

/** Series names and label names from the README's series table (between the series markers). */
export function documentedSeries(): { series: Set<string>; labels: Set<string> } {
  const doc = readFileSync(fileOf('docs/opentelemetry.md'), 'utf8');
  const section = doc.split('<!-- series:start -->')[1]?.split('<!-- series:end -->')[0];
  if (section === undefined) throw new Error('docs/opentelemetry.md has no <!-- series:start --> ... <!-- series:end --> table');
  const series = new Set<string>();
  const labels = new Set<string>(['db_client_connection_pool_name']);
  for (const line of section.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    const name = /^`([a-z_:][a-z0-9_:]*)`$/.exec(cells[1] ?? '')?.[1];
    if (name === undefined) continue;
    series.add(name);
    for (const m of (cells[3] ?? '').matchAll(/`([a-z_][a-z0-9_]*)`/g)) labels.add(m[1]!);
  }
  return { series, labels };
}

export interface DocumentedSeriesRow {
  /** The Prometheus series, e.g. `db_client_operation_duration_bucket`. */
  series: string;
  type: 'histogram' | 'counter' | 'gauge';
  /** The instrument and its unit (a histogram's _count and _sum rows: their _bucket row's). */
  instrument: string;
  unit: string;
}

/** The rows of the series table (target_info, which is no instrument of ours, left out). */
export function documentedSeriesTable(): DocumentedSeriesRow[] {
  const doc = readFileSync(fileOf('docs/opentelemetry.md'), 'utf8');
  const section = doc.split('<!-- series:start -->')[1]?.split('<!-- series:end -->')[0] ?? '';
  const rows: DocumentedSeriesRow[] = [];
  let last: DocumentedSeriesRow | undefined;
  for (const line of section.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    const series = /^`([a-z_:][a-z0-9_:]*)`$/.exec(cells[1] ?? '')?.[1];
    if (series === undefined || series === 'target_info') continue;
    const type = cells[2] as DocumentedSeriesRow['type'];
    const m = /^`([a-z_.]+)` \(([^)]+)\)$/.exec(cells[4] ?? '');
    const histogramPart = /_(count|sum)$/.test(series) && type === 'histogram';
    if (m === null && !(histogramPart && last !== undefined)) throw new Error(`docs/opentelemetry.md: no instrument (unit) for ${series}: ${cells[4]}`);
    const row: DocumentedSeriesRow = { series, type, instrument: m?.[1] ?? last!.instrument, unit: m?.[2] ?? last!.unit };
    rows.push(row);
    last = row;
  }
  return rows;
}

/** `db_*` identifiers in a PromQL expression (metric or label names), string literals left out. */
export function dbIdentifiers(expr: string): string[] {
  const bare = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/[a-z_]+:[a-z0-9_]+:[a-z0-9_]+/g, ' ');
  return [...new Set(bare.match(/\bdb_[a-z0-9_]+\b/g) ?? [])];
}

/** Recording-rule names (`level:metric:operation`) used in an expression. */
export function recordedNames(expr: string): string[] {
  return [...new Set(expr.replace(/"(?:[^"\\]|\\.)*"/g, '""').match(/\b[a-z_]+:[a-z0-9_]+:[a-z0-9_]+\b/g) ?? [])];
}

/** Recorded series of the per-server level (`server:...`): the whole fleet, every job and instance. */
export const isServerLevel = (recorded: string): boolean => recorded.startsWith('server:');
