/**
 * The dashboard and the alert rules against a real Prometheus and Alertmanager.
 *
 * In this process: pools under a small workload (queries, failures, slow statements, a timeout, a
 * leak, a discarded connection, a pool whose server refuses connections, resizes) and two metrics
 * endpoints: `startPrometheusExporter({ port: 0 })`, and `startPrometheusExporter({ prefix: 'myapp' })`
 * (every series `myapp_db_...`). Around it: Prometheus on 127.0.0.1 (free port, temporary directory,
 * scrape and evaluation interval 1 s) scraping both (one job each) and loading
 * grafana/prometheus-alerts.yml and a copy rendered for the prefix by `db-pool grafana`'s renderer;
 * Alertmanager (no cluster port) with grafana/alertmanager.yml; a webhook receiver on 127.0.0.1.
 * Asserted: every rule of both evaluates without error; every query of the shipped dashboard, and of
 * the one rendered for the prefix, returns at least one series (variables resolved through the chain,
 * as Grafana would); the panels of rare events have data for a pool that had none (its counters start
 * at 0); and an exhausted pool (max 1, its connection held, callers waiting) reaches the webhook as
 * PoolExhausted on the critical receiver from both rule files (the rendered one with its own runbook
 * link), then resolves when the connection is released.
 *
 * Two documented substitutions keep this under a minute: the rules are a generated copy with every
 * `for:` set to 2s, and in the Alertmanager configuration group_wait and group_interval are 1s and the
 * receivers' URLs point at the local receiver (paths kept). Everything is stopped on every path
 * (t.teardown: SIGTERM, then SIGKILL).
 */
import test, { type ExecutionContext } from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { leakChannel, type DatabasePool, type PooledConnection } from '../../src/index.js';
import { startPrometheusExporter } from '../../instrumentations/index.js';
import { renderDashboard, renderRulesFile } from '../../src/cli/grafana-render.js';
import { eventually, newDb } from '../support/helpers.js';
import {
  allRules,
  dashboardQueries,
  DASHBOARD_FILE,
  fileOf,
  formatRegexValue,
  parseLabelValues,
  RULES_FILE,
  substitute,
  type DashboardJson,
} from '../support/grafana-dashboard.js';
import {
  requireTool,
  withTools,
  startAlertmanager,
  startPrometheus,
  startWebhookReceiver,
  tempDir,
  type RunningPrometheus,
  type WebhookDelivery,
} from '../support/prometheus-tools.js';

/** The `for:` of every rule in the live test's copy of the rules file. */
export const LIVE_FOR = '2s';
const JOB = 'db-pool-live';
/** The job of the exporter with a metric prefix, and what the rendered copies are made for. */
const PREFIX = 'myapp';
const JOB_PREFIXED = 'db-pool-live-myapp';
const RUNBOOK_BASE = 'https://runbooks.example.com/db-pool';

/** grafana/prometheus-alerts.yml with every `for:` replaced by LIVE_FOR. */
export function liveRules(): string {
  const text = readFileSync(RULES_FILE, 'utf8');
  const out = text.replace(/^(\s+for:\s+)\S+\s*$/gm, `$1${LIVE_FOR}`);
  const count = (text.match(/^\s+for:/gm) ?? []).length;
  if (count !== allRules().filter((r) => r.alert).length) throw new Error(`expected one for: per alert, found ${count}`);
  return out;
}

/** grafana/alertmanager.yml with the receivers on the local webhook and 1 s grouping. */
export function liveAlertmanagerConfig(hookUrl: string): string {
  const text = readFileSync(fileOf('grafana/alertmanager.yml'), 'utf8');
  const out = text
    .replace(/url: http:\/\/127\.0\.0\.1:5001(\/\S*)/g, (_m, path: string) => `url: ${hookUrl}${path}`)
    .replace(/^(\s+group_wait:\s+)\S+$/m, '$11s')
    .replace(/^(\s+group_interval:\s+)\S+$/m, '$11s');
  if ((out.match(new RegExp(hookUrl.replace(/[.:/]/g, '\\$&'), 'g')) ?? []).length !== 2)
    throw new Error('expected two receiver URLs in grafana/alertmanager.yml');
  return out;
}

/** Queries on two pools until stopped: reads, a failing statement now and then, a slow one. */
function backgroundWorkload(t: ExecutionContext, db: DatabasePool): void {
  let running = true;
  const loop = async (poolId: string, worker: number) => {
    for (let i = 0; running; i++) {
      try {
        if (i % 10 === 5) await db.query(poolId, 'SELECT 1 / $1::int', [0]);
        else if (i % 15 === 7) await db.query(poolId, 'SELECT pg_sleep(0.02)');
        else await db.query(poolId, 'SELECT $1::int AS n', [i + worker]);
      } catch {
        // the failures are the point
      }
      await sleep(10);
    }
  };
  const loops = [loop('web', 0), loop('web', 1), loop('reports', 0)];
  t.teardown(async () => {
    running = false;
    await Promise.allSettled(loops);
  });
}

/** One-off events, before Prometheus starts: an acquire timeout, a discard, a leak, failed connects, a resize. */
async function eventsWorkload(t: ExecutionContext, db: DatabasePool): Promise<void> {
  // Its one connection is opened at creation (a first connect can take longer than its timeout).
  t.true(await eventually(() => db.getMetrics('tight').idleConnections === 1, 15_000), 'pool tight has its connection');
  const held = await db.acquire('tight');
  await t.throwsAsync(db.acquire('tight'), { code: 'ACQUIRE_TIMEOUT' } as never);
  held.release();

  const inTx = await db.acquire('web');
  await inTx.query('BEGIN');
  inTx.release(); // released inside a transaction: discarded

  let leaks = 0;
  const onLeak = () => void leaks++;
  leakChannel.subscribe(onLeak);
  const leaked = await db.acquire('reports');
  const seen = await eventually(() => leaks > 0, 10_000);
  leakChannel.unsubscribe(onLeak);
  leaked.release();
  t.true(seen, 'a leak was reported');

  await t.throwsAsync(db.query('down', 'SELECT 1'));
  await db.updatePoolConfig('web', { max: 5 });
}

async function waitUntil<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await sleep(100);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

interface RuleState {
  name: string;
  type: 'alerting' | 'recording';
  health: 'ok' | 'err' | 'unknown';
  lastError?: string;
}

async function ruleStates(prom: RunningPrometheus): Promise<RuleState[]> {
  const data = await prom.api<{ groups: Array<{ rules: RuleState[] }> }>('rules');
  return data.groups.flatMap((g) => g.rules);
}

const isPoolExhausted = (status: 'firing' | 'resolved', job: string) => (d: WebhookDelivery) =>
  d.body.alerts.some((a) => a.labels.alertname === 'PoolExhausted' && a.labels.pool === 'exhaust' && a.labels.job === job && a.status === status);

/** The dashboard's variables resolved through the chain, as Grafana does: their values, and as interpolated. */
async function resolveVariables(
  prom: RunningPrometheus,
  dashboard: DashboardJson,
): Promise<{ values: Record<string, string[]>; variables: Record<string, string> }> {
  const values: Record<string, string[]> = {};
  const variables: Record<string, string> = {};
  for (const v of dashboard.templating.list.filter((x) => x.type === 'query')) {
    const { selector, label } = parseLabelValues(substitute(String(v.query), { variables, rateInterval: '1m', interval: '1s', range: '5m' }));
    values[v.name] = await prom.api<string[]>(`label/${label}/values`, { 'match[]': selector });
    variables[v.name] = formatRegexValue(values[v.name]!);
  }
  return { values, variables };
}

/** Every panel and annotation query of `dashboard` with `variables`: the ones that return no series. */
async function emptyQueries(
  prom: RunningPrometheus,
  dashboard: DashboardJson,
  variables: Record<string, string>,
  only?: (expr: string) => boolean,
): Promise<{ count: number; series: number; empty: string[] }> {
  const queries = dashboardQueries(dashboard).filter((q) => q.kind !== 'variable' && (only === undefined || only(q.expr)));
  let series = 0;
  const empty: string[] = [];
  await Promise.all(
    queries.map(async (q) => {
      const expr = substitute(q.expr, { variables, rateInterval: '1m', interval: '1s', range: '5m' });
      const result = await prom.query(expr);
      series += result.length;
      if (result.length === 0) empty.push(`${q.where}: ${expr}`);
    }),
  );
  return { count: queries.length, series, empty };
}

withTools(
  test.serial,
  ['prometheus'],
  ['prometheus-alertmanager', 'alertmanager'],
)('live: every dashboard query returns data, every rule evaluates, PoolExhausted reaches the webhook through Alertmanager', async (t) => {
  t.timeout(60_000, 'the live test must stay under a minute');
  const started = Date.now();
  const since = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
  // Fail at once, with what to install, when a tool is missing.
  requireTool('prometheus');
  requireTool('prometheus-alertmanager', 'alertmanager');

  const dir = tempDir(t, 'db-pool-live-');
  const exporter = await startPrometheusExporter({ port: 0, serviceName: JOB });
  t.teardown(() => exporter.shutdown());
  // The same pools, seen by a second instrumentation whose series are all myapp_db_...
  const prefixed = await startPrometheusExporter({ port: 0, serviceName: JOB_PREFIXED, prefix: PREFIX });
  t.teardown(() => prefixed.shutdown());
  const db = newDb(t, {
    web: { max: 4, min: 1, acquireTimeoutMs: 2_000, slowQueryThresholdMs: 10 },
    reports: { max: 2, min: 0, leakDetectionThresholdMs: 50 },
    tight: { max: 1, min: 1, acquireTimeoutMs: 1_000 },
    exhaust: { max: 1, min: 1, acquireTimeoutMs: 60_000 },
    down: { connection: { host: '127.0.0.1', port: 1, user: 'nobody', database: 'nowhere' }, max: 1, min: 0, acquireTimeoutMs: 300 },
  });
  backgroundWorkload(t, db);

  const hook = await startWebhookReceiver(t);
  const [am] = await Promise.all([startAlertmanager(t, liveAlertmanagerConfig(hook.url), dir), eventsWorkload(t, db)]);
  writeFileSync(join(dir, 'prometheus-alerts.yml'), liveRules());
  // What `db-pool grafana --prefix myapp --runbook-base ...` writes (with the live test's for:).
  const renderOptions = { prefix: PREFIX, runbookBase: RUNBOOK_BASE };
  writeFileSync(join(dir, 'prometheus-alerts-myapp.yml'), renderRulesFile(liveRules(), renderOptions));
  const prom = await startPrometheus(
    t,
    [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      '  evaluation_interval: 1s',
      'rule_files: [prometheus-alerts.yml, prometheus-alerts-myapp.yml]',
      'alerting:',
      '  alertmanagers:',
      `    - static_configs: [{ targets: ['${am.address}'] }]`,
      'scrape_configs:',
      `  - job_name: ${JOB}`,
      `    static_configs: [{ targets: ['127.0.0.1:${exporter.port}'] }]`,
      `  - job_name: ${JOB_PREFIXED}`,
      `    static_configs: [{ targets: ['127.0.0.1:${prefixed.port}'] }]`,
      '',
    ].join('\n'),
    dir,
  );
  const promStarted = Date.now();
  t.log(`${since()}: Prometheus ${prom.url} and Alertmanager ${am.url} ready`);

  // The first scrape comes a few seconds after start; rate() needs two samples.
  await waitUntil('the first scrape', 20_000, async () => ((await prom.query(`up{job=~"${JOB}|${JOB_PREFIXED}"} == 1`)).length === 2 ? true : undefined));
  t.log(`${since()}: first scrape (${((Date.now() - promStarted) / 1000).toFixed(1)} s after Prometheus was ready)`);
  // A lifecycle event between scrapes, for the dashboard's event annotation (increase() > 0).
  await db.updatePoolConfig('web', { max: 6 });
  await waitUntil('three scrapes', 10_000, async () =>
    (await prom.query(`count_over_time(up{job=~"${JOB}|${JOB_PREFIXED}"}[1m]) >= 3`)).length === 2 ? true : undefined,
  );

  // Every rule of both files evaluated, none in error.
  const ruleCount = 2 * allRules().length;
  const states = await waitUntil('every rule evaluated', 10_000, async () => {
    const s = await ruleStates(prom);
    return s.length === ruleCount && s.every((r) => r.health !== 'unknown') ? s : undefined;
  });
  for (const r of states) t.is(r.health, 'ok', `${r.type} rule ${r.name}: ${r.lastError ?? ''}`);
  t.log(`${since()}: ${states.length} rules evaluated, health ok`);

  // The shipped dashboard, and the copy rendered for the prefix: the variables through the chain, as
  // Grafana resolves them, each finds its own job only; then every panel and annotation query returns
  // at least one series.
  const shipped = readFileSync(DASHBOARD_FILE, 'utf8');
  const dashboards: Array<[string, DashboardJson, string, number]> = [
    ['shipped dashboard', JSON.parse(shipped) as DashboardJson, JOB, exporter.port],
    [`dashboard rendered for prefix ${PREFIX}`, JSON.parse(renderDashboard(shipped, renderOptions)) as DashboardJson, JOB_PREFIXED, prefixed.port],
  ];
  for (const [name, dashboard, job, port] of dashboards) {
    const { values, variables } = await resolveVariables(prom, dashboard);
    t.deepEqual(values.job, [job], `${name}: job`);
    t.deepEqual(values.instance, [`127.0.0.1:${port}`], `${name}: instance`);
    t.deepEqual(values.pool, ['down', 'exhaust', 'reports', 'tight', 'web'], `${name}: pool`);
    const all = await emptyQueries(prom, dashboard, variables);
    t.deepEqual(all.empty, [], `${name}: queries without a series`);
    t.true(all.count >= 45, `${name}: ${all.count} queries`);
    t.log(`${since()}: ${name}: ${all.count} queries, ${all.series} series`);

    // A pool that had no timeout, acquire error, leak, discard or slow statement: the panels of those
    // have data all the same (its counters start at 0), and increase() will see its first one.
    const rareEvents = /(timeouts_total|acquire_errors_total|leaks_total|connection_discarded_total|slow_queries_total)\{/;
    const quiet = await emptyQueries(prom, dashboard, { ...variables, pool: 'exhaust' }, (expr) => rareEvents.test(expr));
    t.true(quiet.count >= 5, `${name}: ${quiet.count} queries of rare events`);
    t.deepEqual(quiet.empty, [], `${name}: queries of rare events without a series for pool exhaust`);
  }

  // Exhaust a pool: its one connection held, three callers waiting.
  const held = await db.acquire('exhaust');
  const waiting: Array<Promise<PooledConnection | undefined>> = Array.from({ length: 3 }, () =>
    db.acquire('exhaust').then(
      (c) => {
        c.release();
        return c;
      },
      () => undefined,
    ),
  );
  t.true(await eventually(() => db.getMetrics('exhaust').waitingQueueLength === 3, 5_000), 'three callers waiting on pool exhaust');
  const exhaustedAt = Date.now();
  t.log(`${since()}: pool "exhaust" exhausted (1 of 1 lent, 3 waiting)`);

  const [fired, firedPrefixed] = await Promise.all([
    hook.waitFor(isPoolExhausted('firing', JOB), 20_000),
    hook.waitFor(isPoolExhausted('firing', JOB_PREFIXED), 20_000),
  ]);
  const alert = fired.body.alerts.find((a) => a.labels.alertname === 'PoolExhausted')!;
  t.is(fired.path, '/db-pool/critical', 'routed to the critical receiver');
  t.is(fired.body.receiver, 'db-pool-pager');
  t.like(alert.labels, { alertname: 'PoolExhausted', severity: 'critical', pool: 'exhaust', job: JOB, instance: `127.0.0.1:${exporter.port}` });
  t.regex(alert.annotations.summary ?? '', /^Pool exhaust is exhausted on 127\.0\.0\.1:\d+: 3 callers waiting$/);
  t.regex(alert.annotations.description ?? '', /`db-pool connections exhaust`/);
  t.is(alert.annotations.runbook_url, 'https://github.com/db-pool-otel/db-pool-otel/blob/main/docs/runbooks.md#runbook-poolexhausted');
  // The same alert from the rules rendered for the prefix, with their runbook link.
  const alertPrefixed = firedPrefixed.body.alerts.find((a) => a.labels.alertname === 'PoolExhausted')!;
  t.is(firedPrefixed.path, '/db-pool/critical');
  t.like(alertPrefixed.labels, {
    alertname: 'PoolExhausted',
    severity: 'critical',
    pool: 'exhaust',
    job: JOB_PREFIXED,
    instance: `127.0.0.1:${prefixed.port}`,
  });
  t.is(alertPrefixed.annotations.runbook_url, `${RUNBOOK_BASE}/docs/runbooks.md#runbook-poolexhausted`);
  const firingLatency = fired.receivedAt - exhaustedAt;
  const afterFiring = fired.receivedAt - Date.parse(alert.startsAt);
  t.log(
    `${since()}: PoolExhausted at the webhook ${(firingLatency / 1000).toFixed(1)} s after the pool was exhausted ` +
      `(for: ${LIVE_FOR}), ${(afterFiring / 1000).toFixed(1)} s after Prometheus fired it`,
  );

  held.release();
  const releasedAt = Date.now();
  t.true(
    (await Promise.all(waiting)).every((c) => c !== undefined),
    'the waiting callers were served',
  );
  const [resolved] = await Promise.all([
    hook.waitFor(isPoolExhausted('resolved', JOB), 20_000),
    hook.waitFor(isPoolExhausted('resolved', JOB_PREFIXED), 20_000),
  ]);
  t.log(`${since()}: resolved at the webhook ${((resolved.receivedAt - releasedAt) / 1000).toFixed(1)} s after the release`);

  const total = Date.now() - started;
  t.true(total < 60_000, `live test wall time ${total} ms`);
});
