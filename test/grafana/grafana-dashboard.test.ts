/**
 * grafana/db-pool-dashboard.json checked without Grafana: the JSON Schema generated from
 * `@grafana/schema` (test/support/grafana-dashboard.schema.json, extra keys documented in
 * test/support/grafana-schema-types.ts), the panel plugins' option types, what Grafana's import
 * needs, unique panel ids, no overlapping grid positions, variables chained and all defined, and
 * every query parsed by promtool. The provisioning and docker-compose files are checked too.
 * test/grafana/grafana-live.test.ts runs the same queries against a live Prometheus.
 */
import test from 'ava';
import { Ajv, type ValidateFunction } from 'ajv';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { defaultDashboard } from '@grafana/schema/dist/esm/raw/dashboard/x/Dashboard_types.gen';
import {
  allPanels,
  allRules,
  BUILTIN_VARIABLES,
  dashboardQueries,
  dataPanels,
  dbIdentifiers,
  documentedSeries,
  fileOf,
  formatRegexValue,
  loadDashboard,
  isServerLevel,
  recordedNames,
  referencedVariables,
  substitute,
  type GridPos,
  type PanelJson,
} from '../support/grafana-dashboard.js';
import { generatedFrom, SCHEMA_FILE } from '../support/grafana-schema-generate.js';
import { requireTool, run, tempDir, withTools } from '../support/prometheus-tools.js';

const dashboard = loadDashboard();
const schema = JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')) as { $comment: string; definitions: Record<string, unknown> };

const ajv = new Ajv({ allErrors: true, strict: false });
ajv.addSchema(schema, 'grafana');
const validators = new Map<string, ValidateFunction>();
function validator(definition: string): ValidateFunction {
  let v = validators.get(definition);
  if (v === undefined) {
    v = ajv.compile({ $ref: `grafana#/definitions/${definition}` });
    validators.set(definition, v);
  }
  return v;
}

function errorsOf(v: ValidateFunction): string {
  return (v.errors ?? [])
    .map((e) => `${e.instancePath || '/'} ${e.message}${e.params && 'additionalProperty' in e.params ? `: ${String(e.params.additionalProperty)}` : ''}`)
    .join('\n');
}

test('the schema was generated from the installed @grafana/schema', (t) => {
  t.true(
    schema.$comment.includes(generatedFrom()),
    `${SCHEMA_FILE} says "${schema.$comment}"; the installed version is ${generatedFrom()}: run npx tsx test/support/grafana-schema-generate.ts`,
  );
});

test('the dashboard is a valid Grafana dashboard model (JSON Schema from @grafana/schema, no unknown keys)', (t) => {
  const validate = validator('DashboardFile');
  t.true(validate(dashboard), errorsOf(validate));
  // The schema does catch a misspelled key.
  const broken = structuredClone(dashboard) as unknown as { panels: Array<Record<string, unknown>> };
  broken.panels[1]!.descripton = 'typo';
  t.false(validate(broken));
  t.regex(errorsOf(validate), /descripton/);
});

const PANEL_TYPES: Record<string, { options: string; custom?: string }> = {
  stat: { options: 'StatOptions' },
  timeseries: { options: 'TimeSeriesOptions', custom: 'TimeSeriesCustom' },
  heatmap: { options: 'HeatmapOptions', custom: 'HeatmapCustom' },
  'state-timeline': { options: 'StateTimelineOptions', custom: 'StateTimelineCustom' },
};

test('panel options and custom field config match their plugin types', (t) => {
  for (const p of dataPanels(dashboard)) {
    const types = PANEL_TYPES[p.type];
    t.truthy(types, `panel ${p.id} "${p.title}": type ${p.type} is one of ${Object.keys(PANEL_TYPES).join(', ')}`);
    if (!types) continue;
    const options = validator(types.options);
    t.true(options(p.options ?? {}), `panel ${p.id} "${p.title}" options:\n${errorsOf(options)}`);
    const custom = p.fieldConfig?.defaults.custom;
    if (types.custom) {
      const check = validator(types.custom);
      t.true(check(custom ?? {}), `panel ${p.id} "${p.title}" fieldConfig.defaults.custom:\n${errorsOf(check)}`);
    } else {
      t.is(custom, undefined, `panel ${p.id} "${p.title}": a ${p.type} panel has no custom field config`);
    }
  }
});

test('importable and provisionable: __inputs, __requires, fixed uid, id null, current schemaVersion, data source variable', (t) => {
  t.is(dashboard.uid, 'db-pool-otel');
  t.is(dashboard.id, null);
  t.is(dashboard.schemaVersion as number | undefined, defaultDashboard.schemaVersion, "@grafana/schema's current schemaVersion");
  t.deepEqual(
    dashboard.__inputs.map((i) => [i.name, i.type, i.pluginId]),
    [['DS_PROMETHEUS', 'datasource', 'prometheus']],
  );
  const requires = new Set(dashboard.__requires.map((r) => `${r.type}:${r.id}`));
  t.true(requires.has('grafana:grafana'));
  t.true(requires.has('datasource:prometheus'));
  for (const p of dataPanels(dashboard)) t.true(requires.has(`panel:${p.type}`), `__requires lists panel ${p.type}`);
  // ${DS_PROMETHEUS} (replaced by "Import dashboard") only seeds the data source variable, so the same
  // file also works provisioned, where the variable falls back to the default Prometheus.
  const text = JSON.stringify(dashboard.panels) + JSON.stringify(dashboard.annotations);
  t.false(text.includes('DS_PROMETHEUS'), 'panels use ${datasource}, not the import input');
  const ds = dashboard.templating.list[0]!;
  t.is(ds.type, 'datasource');
  t.is(ds.query, 'prometheus');
  t.is(JSON.stringify((ds as unknown as { current: unknown }).current), JSON.stringify({ text: '${DS_PROMETHEUS}', value: '${DS_PROMETHEUS}' }));
});

test('panel ids are unique, and no two panels overlap on the 24-column grid', (t) => {
  const ids = allPanels(dashboard).map((p) => p.id);
  t.is(new Set(ids).size, ids.length, `duplicate ids: ${ids.filter((id, i) => ids.indexOf(id) !== i).join(', ')}`);
  t.true(ids.every((id) => Number.isInteger(id) && id > 0));

  const overlaps = (a: GridPos, b: GridPos) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
  const checkLayout = (panels: PanelJson[], where: string) => {
    for (const p of panels) {
      const g = p.gridPos;
      t.true(g.x >= 0 && g.y >= 0 && g.w > 0 && g.h > 0 && g.x + g.w <= 24, `${where}: panel ${p.id} "${p.title}" inside the grid: ${JSON.stringify(g)}`);
    }
    for (let i = 0; i < panels.length; i++) {
      for (let j = i + 1; j < panels.length; j++) {
        t.false(overlaps(panels[i]!.gridPos, panels[j]!.gridPos), `${where}: panels ${panels[i]!.id} and ${panels[j]!.id} overlap`);
      }
    }
  };
  // As displayed: the top level, collapsed rows closed.
  checkLayout(dashboard.panels, 'top level');
  // A collapsed row's panels, as laid out when it is opened: below the row, not overlapping each other;
  // the row is last, so opening it moves nothing else.
  const collapsed = dashboard.panels.filter((p) => p.type === 'row' && p.collapsed);
  for (const row of collapsed) {
    t.true(row === dashboard.panels.at(-1), `collapsed row "${row.title}" is the last panel`);
    checkLayout(row.panels ?? [], `row "${row.title}"`);
    for (const p of row.panels ?? []) t.true(p.gridPos.y > row.gridPos.y, `panel ${p.id} is below its row`);
  }
  // Open rows hold no panels of their own (Grafana keeps them at the top level).
  for (const row of dashboard.panels.filter((p) => p.type === 'row' && !p.collapsed)) t.deepEqual(row.panels, []);
  // Rows by concern, the stat row on top.
  t.deepEqual(
    dashboard.panels.filter((p) => p.type === 'row').map((p) => p.title),
    [
      'Overview',
      'Connections',
      'Acquire',
      'Queries',
      'Slow queries and leaks',
      'Health and failovers',
      'Fleet connection budget',
      'Per instance: what the alerts evaluate',
    ],
  );
  const topRow = dashboard.panels.filter((p) => p.type !== 'row' && p.gridPos.y === 1);
  t.true(topRow.length >= 7 && topRow.every((p) => p.type === 'stat'), 'a row of stat panels on top');
});

test('variables are chained data source -> job -> instance -> pool; every variable used is defined, every one defined is used', (t) => {
  const vars = dashboard.templating.list;
  t.deepEqual(
    vars.map((v) => v.name),
    ['datasource', 'job', 'instance', 'pool'],
  );
  const defined = new Set(vars.map((v) => v.name));
  for (const [i, v] of vars.entries()) {
    if (v.type !== 'query') continue;
    t.is(v.datasource?.uid, '${datasource}', `${v.name} queries the chosen data source`);
    t.true(v.multi && v.includeAll && v.allValue === '.*', `${v.name}: multi-value with All (.*) for fleet views`);
    const refs = referencedVariables(String(v.query));
    t.deepEqual(
      refs,
      vars.slice(1, i).map((w) => w.name),
      `${v.name} narrows by every broader variable`,
    );
  }
  // Every $variable anywhere in the dashboard is defined (or a Grafana built-in, or the import input).
  const used = new Set<string>();
  const walk = (value: unknown, path: string) => {
    if (typeof value === 'string') {
      for (const name of referencedVariables(value)) {
        used.add(name);
        t.true(defined.has(name) || BUILTIN_VARIABLES.has(name) || name === 'DS_PROMETHEUS', `${path}: $${name} is defined`);
      }
    } else if (Array.isArray(value))
      value.forEach((v, i) => {
        walk(v, `${path}[${i}]`);
      });
    else if (value !== null && typeof value === 'object') for (const [k, v] of Object.entries(value)) walk(v, `${path}.${k}`);
  };
  walk(
    {
      panels: dashboard.panels,
      templating: dashboard.templating,
      annotations: dashboard.annotations,
      links: (dashboard as unknown as { links: unknown }).links,
    },
    'dashboard',
  );
  for (const name of defined) t.true(used.has(name), `$${name} is used`);
});

test('every panel says what it shows and what to do when red, with a unit, thresholds and the chosen data source', (t) => {
  for (const p of dataPanels(dashboard)) {
    const where = `panel ${p.id} "${p.title}"`;
    t.true((p.description ?? '').length >= 120, `${where}: a description`);
    t.true((p.description ?? '').includes('\n\n'), `${where}: description says what to do (second paragraph)`);
    t.truthy(p.fieldConfig?.defaults.unit, `${where}: unit`);
    t.true((p.fieldConfig?.defaults.thresholds?.steps.length ?? 0) >= 1, `${where}: thresholds`);
    t.is(p.datasource?.uid, '${datasource}', `${where}: data source`);
    t.true((p.targets ?? []).length >= 1, `${where}: queries`);
    for (const target of p.targets ?? []) t.is(target.datasource?.uid, '${datasource}', `${where} ${target.refId}: data source`);
  }
});

test('queries: rates over $__rate_interval, every selector narrowed by job, instance and pool, only documented series and recorded rules', (t) => {
  const { series, labels } = documentedSeries();
  const recorded = new Set(
    allRules()
      .filter((r) => r.record)
      .map((r) => r.record!),
  );
  for (const q of dashboardQueries(dashboard)) {
    const expr = q.expr;
    for (const m of expr.matchAll(/\b(rate|irate|increase)\(([^()[\]]*)\[([^\]]+)\]/g)) {
      t.is(m[3], '$__rate_interval', `${q.where}: ${m[1]}() over [$__rate_interval]`);
    }
    for (const id of dbIdentifiers(expr)) t.true(series.has(id) || labels.has(id), `${q.where}: ${id} is a documented series or label`);
    for (const name of recordedNames(expr)) t.true(recorded.has(name), `${q.where}: ${name} is a recording rule of prometheus-alerts.yml`);
    if (q.kind === 'variable') continue;
    for (const m of expr.matchAll(/([a-z_:][a-z0-9_:]*)\{([^}]*)\}/g)) {
      const [, metric, matchers] = m;
      t.true(matchers!.includes('job=~"$job"') && matchers!.includes('instance=~"$instance"'), `${q.where}: ${metric} narrowed by $job and $instance`);
      if (metric !== 'up') t.regex(matchers!, /(db_client_connection_pool_name|\bpool)=~"\$pool"/, `${q.where}: ${metric} narrowed by $pool`);
    }
  }
  // The fleet view aggregates by pool; the per-instance row drills down.
  const byPool = dataPanels(dashboard).filter((p) => (p.targets ?? []).some((x) => /by \((db_client_connection_pool_name|pool)\b/.test(x.expr)));
  t.true(byPool.length >= 20, `panels aggregated by pool: ${byPool.length}`);
});

withTools(test, ['promtool'])('every query parses: promtool checks them all as recording rules', async (t) => {
  const promtool = requireTool('promtool');
  const dir = tempDir(t, 'db-pool-dashboard-');
  const queries = dashboardQueries(dashboard);
  const rules = queries.map((q, i) => {
    let expr = substitute(q.expr, {
      variables: {
        job: formatRegexValue('All'),
        instance: formatRegexValue(['app-1:9464', 'app-2.example:9464']),
        pool: formatRegexValue(['orders', 'reports']),
      },
      rateInterval: '1m',
      interval: '15s',
      range: '1h',
    });
    if (q.kind === 'variable') {
      // label_values(selector, label): the selector is what Prometheus evaluates.
      expr = /^label_values\((.*),\s*[A-Za-z_]+\)$/s.exec(expr)![1]!;
    }
    return { record: `dashboard_query_${i}`, expr };
  });
  const file = join(dir, 'dashboard-queries.yml');
  writeFileSync(file, stringifyYaml({ groups: [{ name: 'dashboard', rules }] }));
  const r = await run(promtool, ['check', 'rules', file]);
  const failures = [...r.stderr.matchAll(/dashboard_query_(\d+)/g)].map((m) => queries[Number(m[1])]!.where);
  t.is(r.code, 0, `promtool rejects: ${failures.join('; ')}\n${r.stdout}\n${r.stderr}`);
  t.regex(r.stdout, new RegExp(`SUCCESS: ${queries.length} rules found`));
  t.true(queries.length >= 45, `queries: ${queries.length}`);
});

withTools(test, ['promtool'])('provisioning, Alertmanager and docker-compose files: valid, and pointing at files that exist', async (t) => {
  const ds = parseYaml(readFileSync(fileOf('grafana/provisioning/datasources/prometheus.yml'), 'utf8')) as {
    apiVersion: number;
    datasources: Array<{ type: string; url: string; isDefault: boolean; jsonData: { timeInterval: string } }>;
  };
  t.is(ds.apiVersion, 1);
  t.is(ds.datasources[0]!.type, 'prometheus');
  t.true(ds.datasources[0]!.isDefault, "the default Prometheus: what the provisioned dashboard's data source variable picks");
  const boards = parseYaml(readFileSync(fileOf('grafana/provisioning/dashboards/db-pool.yml'), 'utf8')) as {
    apiVersion: number;
    providers: Array<{ type: string; options: { path: string } }>;
  };
  t.is(boards.apiVersion, 1);
  t.is(boards.providers[0]!.type, 'file');
  const boardsPath = boards.providers[0]!.options.path;

  const compose = parseYaml(readFileSync(fileOf('examples/docker-compose.yml'), 'utf8')) as {
    services: Record<string, { volumes?: string[] }>;
  };
  t.deepEqual(Object.keys(compose.services).sort(), ['alertmanager', 'demo', 'grafana', 'postgres', 'prometheus']);
  const mounts = Object.values(compose.services).flatMap((s) => s.volumes ?? []);
  for (const m of mounts) {
    const [host] = m.split(':');
    if (!host!.startsWith('.')) continue;
    t.true(existsSync(resolve(dirname(fileOf('examples/docker-compose.yml')), host!)), `docker-compose mounts ${host}, which exists`);
  }
  t.true(
    mounts.some((m) => m.includes(`db-pool-dashboard.json:${boardsPath}/`)),
    'the dashboard is mounted where the provider looks',
  );
  t.true(
    mounts.some((m) => m.includes('prometheus-alerts.yml:/etc/prometheus/rules/prometheus-alerts.yml')),
    'the rules are mounted where prometheus.yml loads them',
  );

  const promtool = requireTool('promtool');
  const r = await run(promtool, ['check', 'config', '--syntax-only', fileOf('examples/prometheus.yml')]);
  t.is(r.code, 0, `${r.stdout}\n${r.stderr}`);
  const promConfig = parseYaml(readFileSync(fileOf('examples/prometheus.yml'), 'utf8')) as { global: { scrape_interval: string }; rule_files: string[] };
  t.deepEqual(promConfig.rule_files, ['/etc/prometheus/rules/prometheus-alerts.yml']);
  t.is(ds.datasources[0]!.jsonData.timeInterval, promConfig.global.scrape_interval, 'Grafana knows the scrape interval ($__rate_interval)');
});

/** The top-level panels of an open row: below it, above the next row. */
function rowPanels(title: string): PanelJson[] {
  const rows = dashboard.panels.filter((p) => p.type === 'row');
  const row = rows.find((r) => r.title === title);
  if (row === undefined) return [];
  const next = rows.find((r) => r.gridPos.y > row.gridPos.y);
  return dashboard.panels.filter((p) => p.type !== 'row' && p.gridPos.y > row.gridPos.y && (next === undefined || p.gridPos.y < next.gridPos.y));
}

test('the Fleet connection budget row: per server limit, reserved, fleet max and open, per-instance share; fleet-wide queries read only server-level recordings', (t) => {
  const panels = rowPanels('Fleet connection budget');
  t.true(panels.length >= 3, `panels in the row: ${panels.length}`);
  const exprs = panels.flatMap((p) => (p.targets ?? []).map((x) => ({ where: `panel ${p.id} "${p.title}" ${x.refId}`, expr: x.expr })));
  const read = new Set(exprs.flatMap((e) => recordedNames(e.expr)));
  for (const name of [
    'server:db_pool_server_connection_limit:max',
    'server:db_pool_server_connection_reserved:max',
    'server:db_pool_server_connection_usable:max',
    'server:db_pool_server_connection_pool_max:sum',
    'server:db_pool_server_connection_pool_open:sum',
  ]) {
    t.true(read.has(name), `the row shows ${name}`);
  }
  for (const e of exprs) {
    // The server is shared by every job and instance: a query not narrowed to the selection reads
    // only the per-server recordings; whatever reads raw series is narrowed (checked above too).
    const raw = dbIdentifiers(e.expr).filter((id) => id.startsWith('db_pool_server_'));
    if (raw.length === 0) t.true(recordedNames(e.expr).every(isServerLevel), `${e.where}: reads only server: recordings`);
    else t.regex(e.expr, /job=~"\$job", instance=~"\$instance", db_client_connection_pool_name=~"\$pool"/, `${e.where}: narrowed to the selection`);
  }
  // The per-instance share: grouped by instance and server.
  t.true(
    exprs.some((e) => /sum by \(job, instance, server_address, server_port\) \(db_pool_server_connection_pool_max\{/.test(e.expr)),
    'a per-instance share',
  );
});
