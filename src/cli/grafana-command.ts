/**
 * `db-pool grafana --out DIR`: writes copies of the package's dashboard, alert and recording rules
 * and their promtool tests, rendered for a metric prefix, a runbook URL and the OTLP naming
 * (grafana-render.ts). Needs no admin endpoint: it reads the files shipped in the package.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CliError, EXIT } from './client.js';
import { human, joined, table, type Rendered } from './format.js';
import { GRAFANA_FILES, GrafanaRenderError, renderGrafana, seriesMapping, type GrafanaFiles, type MetricNaming } from './grafana-render.js';

export interface GrafanaCommandOptions {
  out: string;
  prefix?: string;
  runbookBase?: string;
  naming?: string;
}

export interface GrafanaCommandResult {
  out: string;
  prefix: string;
  naming: MetricNaming;
  runbookBase: string;
  /** Where each file was written. */
  files: Array<{ name: string; path: string }>;
  /** Shipped series name → the name the rendered files use (only those that differ). */
  renamed: Record<string, string>;
  counts: { dashboardQueries: number; alerts: number; recordingRules: number };
}

/** This module's file (no `import.meta` in source shared with the CommonJS build). */
function thisFile(): string | undefined {
  if (typeof __filename === 'string') return __filename;
  const original = Error.prepareStackTrace;
  try {
    Error.prepareStackTrace = (_err, frames) => frames;
    const frames = new Error().stack as unknown as NodeJS.CallSite[] | undefined;
    const name = Array.isArray(frames) ? frames[0]?.getFileName() : undefined;
    if (!name) return undefined;
    return name.startsWith('file:') ? fileURLToPath(name) : isAbsolute(name) ? name : undefined;
  } catch {
    return undefined;
  } finally {
    Error.prepareStackTrace = original;
  }
}

/** The package's `grafana/` directory: the nearest one above this module (source checkout or installed package). */
export function packageGrafanaDir(): string {
  const start = thisFile();
  if (start !== undefined) {
    for (let dir = dirname(start); ; dir = dirname(dir)) {
      if (existsSync(join(dir, 'grafana', GRAFANA_FILES.dashboard)) && existsSync(join(dir, 'package.json'))) return join(dir, 'grafana');
      if (dirname(dir) === dir) break;
    }
  }
  throw new CliError(EXIT.failed, "cannot find the package's grafana/ directory next to the CLI (is db-pool-otel installed completely?)");
}

/** Reads the shipped files, renders them and writes them to `out` (created if missing; existing copies are replaced). */
export async function writeGrafanaCopies(options: GrafanaCommandOptions, cwd: string, from: string = packageGrafanaDir()): Promise<GrafanaCommandResult> {
  const out = resolvePath(cwd, options.out);
  if (out === resolvePath(from))
    throw new CliError(EXIT.usage, `grafana: --out ${out} is the package's own grafana/ directory, which it renders from: choose another`);
  const shipped = {} as GrafanaFiles;
  for (const [key, name] of Object.entries(GRAFANA_FILES) as Array<[keyof GrafanaFiles, string]>) {
    try {
      shipped[key] = await readFile(join(from, name), 'utf8');
    } catch (e) {
      throw new CliError(EXIT.failed, `cannot read ${join(from, name)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  let rendered: ReturnType<typeof renderGrafana>;
  try {
    rendered = renderGrafana(shipped, { prefix: options.prefix, runbookBase: options.runbookBase, naming: options.naming as MetricNaming | undefined });
  } catch (e) {
    if (e instanceof GrafanaRenderError) throw new CliError(EXIT.usage, `grafana: ${e.message}`);
    throw e;
  }
  const files: GrafanaCommandResult['files'] = [];
  try {
    await mkdir(out, { recursive: true });
    for (const [key, name] of Object.entries(GRAFANA_FILES) as Array<[keyof GrafanaFiles, string]>) {
      const path = join(out, name);
      await writeFile(path, rendered.files[key], { mode: 0o644 });
      files.push({ name, path });
    }
  } catch (e) {
    throw new CliError(EXIT.failed, `cannot write to ${out}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const renamed: Record<string, string> = {};
  for (const [a, b] of seriesMapping(rendered.options)) if (a !== b) renamed[a] = b;
  const dashboard = JSON.parse(rendered.files.dashboard) as { panels: Array<{ targets?: unknown[]; panels?: Array<{ targets?: unknown[] }> }> };
  const dashboardQueries = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).reduce((n, p) => n + (p.targets?.length ?? 0), 0);
  return {
    out,
    ...rendered.options,
    files,
    renamed,
    counts: {
      dashboardQueries,
      alerts: (rendered.files.rules.match(/^\s+- alert:/gm) ?? []).length,
      recordingRules: (rendered.files.rules.match(/^\s+- record:/gm) ?? []).length,
    },
  };
}

/** The human output of `db-pool grafana`. */
export function grafanaText(r: GrafanaCommandResult): Rendered {
  const naming = r.naming === 'otlp' ? 'OTLP (unit suffixes, as Prometheus translates OTLP)' : 'Prometheus exporter';
  const examples = Object.entries(r.renamed).filter(([a]) => /duration_bucket$|timeouts_total$|connection_max$/.test(a));
  const rulesFile = r.files.find((f) => f.name === GRAFANA_FILES.rules)?.path ?? '';
  return joined([
    human`wrote ${r.files.length} files to ${r.out}:`,
    table(
      ['FILE', 'WHAT'],
      [
        [GRAFANA_FILES.dashboard, `Grafana dashboard, ${r.counts.dashboardQueries} panel queries`],
        [GRAFANA_FILES.rules, `Prometheus rules: ${r.counts.alerts} alerts, ${r.counts.recordingRules} recording rules`],
        [GRAFANA_FILES.rulesTest, 'their unit tests (promtool test rules)'],
      ],
    ),
    human``,
    human`naming:   ${naming}${r.prefix === '' ? '' : `, prefix ${r.prefix}_`}`,
    ...(examples.length === 0 ? [] : [human`series:   ${examples.map(([a, b]) => `${a} -> ${b}`).join(', ')}, ...`]),
    human`runbooks: ${r.runbookBase}/docs/runbooks.md#runbook-<alert>`,
    human`check:    promtool check rules ${rulesFile}`,
    human`          cd ${r.out} && promtool test rules ${GRAFANA_FILES.rulesTest}`,
  ]);
}
