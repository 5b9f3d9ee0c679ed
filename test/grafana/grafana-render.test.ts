/**
 * `db-pool grafana` and its renderer (src/cli/grafana-render.ts): the dashboard, the rules and their
 * promtool tests rendered for a metric prefix, the OTLP naming and a runbook URL.
 *
 * - The renderer's series list is the instrumentation's instruments (pool-metrics.ts) and the
 *   documented series table (docs/opentelemetry.md); the OTLP names follow Prometheus' translation
 *   (cases from prometheus/otlptranslator's own tests, and the table's instruments and units).
 * - Rendered without options, the files are the shipped ones.
 * - Rendered copies, written by the CLI: `promtool check rules` (lint fatal) and `promtool test rules`
 *   pass on them, every dashboard query parses, no shipped series name is left, and every runbook
 *   link goes to the given base.
 * - Bad options are usage errors (exit 2, nothing written); the human output is escaped.
 *
 * test/grafana/grafana-live.test.ts runs the prefix-rendered dashboard and rules against a live Prometheus.
 */
import test from 'ava';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { METRICS } from '../../instrumentations/pool-metrics.js';
import { writeGrafanaCopies } from '../../src/cli/grafana-command.js';
import { run as cli } from '../../src/cli/main.js';
import {
  DEFAULT_RUNBOOK_BASE,
  INSTRUMENTS,
  renderDashboard,
  renderRulesFile,
  seriesBaseName,
  seriesMapping,
  seriesNames,
  type InstrumentSpec,
  type MetricNaming,
} from '../../src/cli/grafana-render.js';
import {
  allRules,
  DASHBOARD_FILE,
  dashboardQueries,
  documentedSeries,
  documentedSeriesTable,
  fileOf,
  formatRegexValue,
  loadDashboard,
  loadRules,
  recordedNames,
  RULES_FILE,
  RULES_TEST_FILE,
  substitute,
  type DashboardJson,
} from '../support/grafana-dashboard.js';
import { requireTool, run, tempDir, withTools } from '../support/prometheus-tools.js';

/** Runs the CLI in this process; its output and exit code. */
async function runCli(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await cli(args, { cwd, env: {}, stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s) });
  return { code, stdout, stderr };
}

test('the renderer knows every instrument of the instrumentation, with its kind and unit', (t) => {
  const mine = new Map(INSTRUMENTS.map((i) => [i.name, i]));
  for (const spec of Object.values(METRICS)) {
    t.deepEqual(mine.get(spec.name), { name: spec.name, kind: spec.kind, unit: spec.unit }, `${spec.name} as pool-metrics.ts declares it`);
  }
  // The server-budget gauges (server-budget-metrics.ts) are checked against the table below.
  t.is(INSTRUMENTS.length, Object.keys(METRICS).length + 5);
});

test('prometheus naming: the series are exactly the documented table, each from its instrument', (t) => {
  const table = documentedSeriesTable();
  const rendered = INSTRUMENTS.flatMap((i) => seriesNames(i).map((series) => ({ series, type: i.kind, instrument: i.name, unit: i.unit })));
  t.deepEqual(
    [...rendered].sort((a, b) => a.series.localeCompare(b.series)),
    [...table].sort((a, b) => a.series.localeCompare(b.series)),
  );
  // Without prefix or OTLP naming nothing is renamed.
  for (const [from, to] of seriesMapping()) t.is(to, from);
});

/** The OTLP name of a documented series, derived from the table's own columns: words of the instrument, `seconds` for s, `total` for counters. */
function otlpNameOf(row: { series: string; type: string; instrument: string; unit: string }): string {
  const unit = row.unit === 's' ? ['seconds'] : /^\{[a-z]+\}$/.test(row.unit) ? [] : undefined;
  if (unit === undefined) throw new Error(`${row.series}: unit ${row.unit} not covered by this test`);
  const base = [...row.instrument.split(/[._]/), ...unit, ...(row.type === 'counter' ? ['total'] : [])].join('_');
  return row.type === 'histogram' ? `${base}${/_(bucket|count|sum)$/.exec(row.series)![0]}` : base;
}

test('otlp naming: every documented series renamed as Prometheus names OTLP metrics (unit suffixes, counters in _total, {annotations} add nothing)', (t) => {
  const mapping = seriesMapping({ naming: 'otlp' });
  const table = documentedSeriesTable();
  t.is(mapping.size, table.length);
  for (const row of table) t.is(mapping.get(row.series), otlpNameOf(row), `${row.series} (${row.instrument}, ${row.unit}, ${row.type})`);
  // The ones that change, spelled out.
  t.is(mapping.get('db_client_operation_duration_bucket'), 'db_client_operation_duration_seconds_bucket');
  t.is(mapping.get('db_client_connection_wait_time_count'), 'db_client_connection_wait_time_seconds_count');
  t.is(mapping.get('db_client_connection_create_time_sum'), 'db_client_connection_create_time_seconds_sum');
  t.is(mapping.get('db_client_connection_use_time_bucket'), 'db_client_connection_use_time_seconds_bucket');
  // And some that do not.
  t.is(mapping.get('db_client_connection_timeouts_total'), 'db_client_connection_timeouts_total');
  t.is(mapping.get('db_pool_acquire_errors_total'), 'db_pool_acquire_errors_total');
  t.is(mapping.get('db_client_connection_count'), 'db_client_connection_count');
  t.is(mapping.get('db_pool_server_connection_pool_max'), 'db_pool_server_connection_pool_max');
  // With a prefix (the Collector's namespace) first.
  t.is(seriesMapping({ naming: 'otlp', prefix: 'myapp' }).get('db_client_operation_duration_sum'), 'myapp_db_client_operation_duration_seconds_sum');
  t.is(seriesMapping({ prefix: 'myapp' }).get('db_pool_leaks_total'), 'myapp_db_pool_leaks_total');
});

test("otlp naming follows Prometheus' translation (cases of prometheus/otlptranslator's MetricNamer tests)", (t) => {
  const cases: Array<[name: string, unit: string, kind: InstrumentSpec['kind'], want: string, prefix?: string]> = [
    ['request_duration', 's', 'histogram', 'request_duration_seconds'],
    ['requests', '', 'counter', 'requests_total'],
    ['requests_total', '', 'counter', 'requests_total'],
    ['items', '1', 'counter', 'items_total'],
    ['response_time', 'ms', 'gauge', 'response_time_milliseconds'],
    ['response_time_seconds', 's', 'gauge', 'response_time_seconds'],
    ['memory_usage', 'By', 'gauge', 'memory_usage_bytes'],
    ['requests', '1/s', 'gauge', 'requests_per_second'],
    ['throughput', 'By/s', 'gauge', 'throughput_bytes_per_second'],
    ['custom_metric', 'custom_unit', 'gauge', 'custom_metric_custom_unit'],
    ['custom_metric', '{custom}', 'gauge', 'custom_metric'],
    ['custom_metric', 'By/{custom}', 'gauge', 'custom_metric_bytes'],
    ['metric__with__multiple__underscores', 'unit__multiple__underscores', 'gauge', 'metric_with_multiple_underscores_unit_multiple_underscores'],
    ['custom_metric', 'unit@with#special/chars', 'gauge', 'custom_metric_unit_with_special_per_chars'],
    ['requests', '1/s', 'counter', 'app_requests_per_second_total', 'app'],
    ['123_requests', '', 'counter', 'app_123_requests_total', 'app'],
    ['uptime', 'd', 'gauge', 'uptime_days'],
  ];
  for (const [name, unit, kind, want, prefix] of cases) t.is(seriesBaseName({ name, unit, kind }, 'otlp', prefix), want, `${name} (${unit}, ${kind})`);
});

test('rendered without options, the files are the shipped ones', (t) => {
  for (const file of [RULES_FILE, RULES_TEST_FILE]) {
    const text = readFileSync(file, 'utf8');
    t.is(renderRulesFile(text), text);
  }
  const dashboard = readFileSync(DASHBOARD_FILE, 'utf8');
  t.deepEqual(JSON.parse(renderDashboard(dashboard)), JSON.parse(dashboard));
  // The shipped files link where the renderer's default says.
  t.true(readFileSync(RULES_FILE, 'utf8').includes(`${DEFAULT_RUNBOOK_BASE}/docs/runbooks.md#runbook-pooldown`));
  const pkg = JSON.parse(readFileSync(fileOf('package.json'), 'utf8')) as { repository: { url: string } };
  t.is(`${pkg.repository.url.replace(/^git\+/, '').replace(/\.git$/, '')}/blob/main`, DEFAULT_RUNBOOK_BASE);
});

interface Variant {
  name: string;
  args: string[];
  prefix: string;
  naming: MetricNaming;
  runbookBase: string;
}

const VARIANTS: Variant[] = [
  {
    name: 'prefix myapp, OTLP naming, own runbook base',
    args: ['--prefix', 'myapp', '--naming', 'otlp', '--runbook-base', 'https://runbooks.example.com/platform/db-pool/'],
    prefix: 'myapp',
    naming: 'otlp',
    runbookBase: 'https://runbooks.example.com/platform/db-pool',
  },
  { name: 'prefix myapp', args: ['--prefix', 'myapp'], prefix: 'myapp', naming: 'prometheus', runbookBase: DEFAULT_RUNBOOK_BASE },
];

for (const v of VARIANTS) {
  withTools(test, ['promtool'])(
    `db-pool grafana (${v.name}): promtool check and test pass on the copies; no shipped name left, links to the base`,
    async (t) => {
      const promtool = requireTool('promtool');
      const dir = join(tempDir(t, 'db-pool-grafana-'), 'out');
      const r = await runCli(['grafana', '--out', 'out', ...v.args], join(dir, '..'));
      t.is(r.code, 0, r.stderr);
      t.is(r.stderr, '');
      t.deepEqual(readdirSync(dir).sort(), ['db-pool-dashboard.json', 'prometheus-alerts.test.yml', 'prometheus-alerts.yml']);
      t.true(r.stdout.includes(`wrote 3 files to ${dir}:`), r.stdout);
      t.true(r.stdout.includes(`runbooks: ${v.runbookBase}/docs/runbooks.md#runbook-<alert>`), r.stdout);

      // promtool on the copies, as a user would run it.
      const check = await run(promtool, ['check', 'rules', '--lint=all', '--lint-fatal', join(dir, 'prometheus-alerts.yml')]);
      t.is(check.code, 0, `${check.stdout}\n${check.stderr}`);
      const shippedRules = allRules();
      t.regex(check.stdout, new RegExp(`SUCCESS: ${shippedRules.length} rules found`));
      const unit = await run(promtool, ['test', 'rules', 'prometheus-alerts.test.yml'], { cwd: dir });
      t.is(unit.code, 0, `${unit.stdout}\n${unit.stderr}`);
      t.regex(unit.stdout, /SUCCESS/);

      // Every series name in the copies is a renamed one; what the shipped files read is gone.
      const mapping = seriesMapping({ prefix: v.prefix, naming: v.naming });
      const renamedSeries = new Set(mapping.values());
      const { labels } = documentedSeries();
      const rules = allRules(loadRules(join(dir, 'prometheus-alerts.yml')));
      const dashboard = loadDashboard(join(dir, 'db-pool-dashboard.json'));
      const exprs = [
        ...rules.map((r) => ({ where: `rule ${r.record ?? r.alert}`, expr: r.expr })),
        ...dashboardQueries(dashboard).map((q) => ({ where: q.where, expr: q.expr })),
      ];
      let seen = 0;
      for (const { where, expr } of exprs) {
        const bare = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
        for (const id of bare.match(/(?<![A-Za-z0-9_:])[a-z_][a-z0-9_]*(?![A-Za-z0-9_:(])/g) ?? []) {
          if (!id.includes('db_')) continue;
          seen++;
          t.true(renamedSeries.has(id) || labels.has(id), `${where}: ${id} is a rendered series or a documented label`);
        }
        for (const rec of recordedNames(expr))
          t.true(v.prefix === '' || rec.split(':')[1]!.startsWith(`${v.prefix}_db_`), `${where}: recording ${rec} carries the prefix`);
      }
      t.true(seen > 100, `series and labels read: ${seen}`);
      for (const [from, to] of mapping) {
        if (from === to) continue;
        const pattern = new RegExp(`(?<![A-Za-z0-9_:])${from}(?![A-Za-z0-9_:])`);
        for (const f of ['prometheus-alerts.yml', 'prometheus-alerts.test.yml', 'db-pool-dashboard.json']) {
          t.false(pattern.test(readFileSync(join(dir, f), 'utf8')), `${f} still reads ${from}`);
        }
      }

      // Runbook links: every alert's, and every link of the dashboard, under the base.
      for (const rule of rules.filter((r) => r.alert)) {
        t.is(rule.annotations?.runbook_url, `${v.runbookBase}/docs/runbooks.md#runbook-${rule.alert!.toLowerCase()}`);
      }
      const dashboardText = readFileSync(join(dir, 'db-pool-dashboard.json'), 'utf8');
      const links = [...dashboardText.matchAll(/https?:\/\/[^\s"')]+/g)].map((m) => m[0].replace(/[.,]$/, ''));
      t.true(links.length >= 20, `dashboard links: ${links.length}`);
      for (const link of links) t.true(link.startsWith(`${v.runbookBase}/docs/`), `dashboard link ${link}`);
      const testFile = parseYaml(readFileSync(join(dir, 'prometheus-alerts.test.yml'), 'utf8')) as {
        tests: Array<{ alert_rule_test?: Array<{ exp_alerts: Array<{ exp_annotations?: Record<string, string> }> }> }>;
      };
      const expected = testFile.tests
        .flatMap((g) => g.alert_rule_test ?? [])
        .flatMap((a) => a.exp_alerts)
        .map((a) => a.exp_annotations?.runbook_url)
        .filter(Boolean);
      t.true(
        expected.length >= 13 && expected.every((u) => u!.startsWith(`${v.runbookBase}/docs/runbooks.md#runbook-`)),
        'the unit tests expect the rendered links',
      );

      // Its own uid and title, so it imports next to the shipped dashboard.
      const shipped = loadDashboard();
      t.not(dashboard.uid, shipped.uid);
      t.true(dashboard.uid.length <= 40);
      t.true(dashboard.title.startsWith(shipped.title) && dashboard.title.includes(v.prefix));

      // Every dashboard query parses.
      const queryRules = dashboardQueries(dashboard).map((q, i) => {
        let expr = substitute(q.expr, {
          variables: { job: '.*', instance: formatRegexValue(['app-1:9464']), pool: formatRegexValue(['orders']) },
          rateInterval: '1m',
          interval: '15s',
          range: '1h',
        });
        if (q.kind === 'variable') expr = /^label_values\((.*),\s*[A-Za-z_]+\)$/s.exec(expr)![1]!;
        return { record: `dashboard_query_${i}`, expr };
      });
      const queriesFile = join(dir, '..', 'queries.yml');
      writeFileSync(queriesFile, stringifyYaml({ groups: [{ name: 'dashboard', rules: queryRules }] }));
      const parsed = await run(promtool, ['check', 'rules', queriesFile]);
      t.is(parsed.code, 0, `${parsed.stdout}\n${parsed.stderr}`);
    },
  );
}

test('db-pool grafana --json: where it wrote, with the options and the renamed series', async (t) => {
  const dir = tempDir(t, 'db-pool-grafana-json-');
  const r = await runCli(['grafana', '--json', '--out', dir, '--naming', 'otlp'], '/');
  t.is(r.code, 0, r.stderr);
  const body = JSON.parse(r.stdout) as {
    out: string;
    prefix: string;
    naming: string;
    runbookBase: string;
    files: Array<{ name: string; path: string }>;
    renamed: Record<string, string>;
  };
  t.like(body, { out: dir, prefix: '', naming: 'otlp', runbookBase: DEFAULT_RUNBOOK_BASE });
  t.deepEqual(
    body.files.map((f) => f.path),
    ['db-pool-dashboard.json', 'prometheus-alerts.yml', 'prometheus-alerts.test.yml'].map((f) => join(dir, f)),
  );
  t.is(body.renamed.db_client_operation_duration_bucket, 'db_client_operation_duration_seconds_bucket');
  t.is(body.renamed.db_client_connection_count, undefined, 'only the names that change');
  // The uid of an OTLP copy without prefix.
  t.is((JSON.parse(readFileSync(join(dir, 'db-pool-dashboard.json'), 'utf8')) as DashboardJson).uid, 'db-pool-otel-otlp');
});

test('db-pool grafana: bad options are usage errors (exit 2), and nothing is written', async (t) => {
  const dir = tempDir(t, 'db-pool-grafana-bad-');
  const bad: Array<[string[], RegExp]> = [
    [['--prefix', 'my-app'], /prefix must be a metric name part/],
    [['--prefix', '1app'], /prefix must be a metric name part/],
    [['--prefix', '__app'], /prefix must be a metric name part/],
    [['--naming', 'statsd'], /Allowed choices are prometheus, otlp/],
    [['--runbook-base', 'not a url'], /runbook base must be an absolute http\(s\) URL/],
    [['--runbook-base', 'ftp://example.com/docs'], /must start with http:\/\/ or https:\/\//],
    [['--runbook-base', 'https://example.com/x#frag'], /no query or fragment/],
    [['--runbook-base', 'https://example.com/x?a=1'], /no query or fragment/],
    [['--runbook-base', 'https://user:secret@example.com/x'], /must not hold credentials/],
  ];
  for (const [args, message] of bad) {
    const out = join(dir, 'out');
    const r = await runCli(['grafana', '--out', out, ...args], dir);
    t.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, message, args.join(' '));
    t.false(r.stderr.includes('secret'), 'a credential is not echoed');
    t.deepEqual(readdirSync(dir), [], `${args.join(' ')}: nothing written`);
  }
  const missing = await runCli(['grafana'], dir);
  t.is(missing.code, 2);
  t.regex(missing.stderr, /required option '--out <dir>'/);
});

test("db-pool grafana: --out may not be the package's own grafana/ directory", async (t) => {
  // A copy of grafana/ stands for the package's, so nothing of the checkout is at risk.
  const from = tempDir(t, 'db-pool-grafana-from-');
  for (const f of ['db-pool-dashboard.json', 'prometheus-alerts.yml', 'prometheus-alerts.test.yml'])
    writeFileSync(join(from, f), readFileSync(fileOf(`grafana/${f}`)));
  const err = await t.throwsAsync(writeGrafanaCopies({ out: '.', prefix: 'myapp' }, from, from));
  t.is((err as { exitCode?: number }).exitCode, 2);
  t.regex(err!.message, /is the package's own grafana\/ directory/);
  t.is(readFileSync(join(from, 'prometheus-alerts.yml'), 'utf8'), readFileSync(RULES_FILE, 'utf8'), 'left as it was');
});

test('db-pool grafana: the human output escapes what it shows (a directory name with control characters)', async (t) => {
  const dir = tempDir(t, 'db-pool-grafana-esc-');
  const name = 'out\u001b]0;pwned\u0007\nforged line';
  mkdirSync(join(dir, name));
  const r = await runCli(['grafana', '--out', name], dir);
  t.is(r.code, 0, r.stderr);
  t.false(/[\u0000-\u0009\u000b-\u001f\u007f]/.test(r.stdout), 'no control character but line feeds');
  t.false(
    r.stdout.split('\n').some((l) => l.startsWith('forged line')),
    'no forged line',
  );
  t.true(r.stdout.includes('out\\x1b]0;pwned\\x07\\nforged line'), r.stdout);
  t.deepEqual(readdirSync(join(dir, name)).sort(), ['db-pool-dashboard.json', 'prometheus-alerts.test.yml', 'prometheus-alerts.yml']);
});
