import test, { type ExecutionContext } from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import { leakChannel } from '../../src/index.js';
import { DbPoolInstrumentation, startPrometheusExporter } from '../../instrumentations/index.js';
import { eventually, newDb } from '../support/helpers.js';
import { useAsyncContext } from '../support/instrumentation-helpers.js';

/** Series name -> label names, from a Prometheus text exposition. */
function parseExposition(text: string): Map<string, Set<string>> {
  const series = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? /.exec(line);
    if (!m) throw new Error(`unparsable exposition line: ${line}`);
    const labels = series.get(m[1]!) ?? new Set<string>();
    for (const pair of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"/g)) labels.add(pair[1]!);
    series.set(m[1]!, labels);
  }
  return series;
}

/** The series names listed in the README's series table (first column, in backticks). */
function documentedSeries(): string[] {
  const doc = readFileSync(new URL('../../docs/opentelemetry.md', import.meta.url), 'utf8');
  const section = doc.split('<!-- series:start -->')[1]?.split('<!-- series:end -->')[0];
  if (section === undefined) throw new Error('docs/opentelemetry.md has no series table markers');
  const names: string[] = [];
  for (const line of section.split('\n')) {
    const m = /^\|\s*`([a-z_:][a-z0-9_:]*)`/.exec(line);
    if (m) names.push(m[1]!);
  }
  return names;
}

/** A workload that makes every series appear: queries, errors, a timeout, waiting, discards, a failing server. */
async function workload(t: ExecutionContext): Promise<void> {
  const db = newDb(t, {
    web: { max: 3, min: 1 },
    reports: { max: 2, min: 0, acquireTimeoutMs: 5_000, slowQueryThresholdMs: 10, leakDetectionThresholdMs: 40 },
    down: { connection: { host: '127.0.0.1', port: 1, user: 'x', database: 'x' }, max: 1, min: 0, acquireTimeoutMs: 300 },
  });
  for (let i = 0; i < 10; i++) await db.query('web', 'SELECT $1::int AS n', [i]);
  await db.query('reports', 'SELECT 2');
  await Promise.all(Array.from({ length: 5 }, () => db.query('reports', 'SELECT 1')));
  await t.throwsAsync(db.query('web', 'SELECT * FROM missing_table_for_prometheus'));
  // An acquire timeout while all three connections are held (the short timeout is set once they are
  // open: under load a first connect can take longer than 200 ms).
  const held = await Promise.all([db.acquire('web'), db.acquire('web'), db.acquire('web')]);
  await db.updatePoolConfig('web', { acquireTimeoutMs: 200 });
  await t.throwsAsync(db.acquire('web'));
  // Released mid-transaction: discarded.
  await held[0]!.query('BEGIN');
  for (const c of held) c.release();
  await t.throwsAsync(db.query('down', 'SELECT 1'));
  // A slow query, and a loan held past the leak threshold (both reported by the core).
  // Listening before the acquire: on a loaded machine the report can come before the query returns.
  let leaks = 0;
  const onLeak = () => void leaks++;
  leakChannel.subscribe(onLeak);
  const conn = await db.acquire('reports');
  await conn.query('SELECT pg_sleep(0.02)');
  const leakSeen = await eventually(() => leaks > 0, 10_000);
  leakChannel.unsubscribe(onLeak);
  conn.release();
  t.true(leakSeen);
}

test.serial('the /metrics endpoint shows every documented series after a workload, and nothing undocumented', async (t) => {
  useAsyncContext();
  const prom = await startPrometheusExporter({ port: 0, host: '127.0.0.1' });
  t.teardown(() => prom.shutdown());
  t.regex(prom.url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
  t.not(prom.port, 0);

  await workload(t);
  const res = await fetch(prom.url);
  t.is(res.status, 200);
  t.regex(res.headers.get('content-type') ?? '', /text\/plain/);
  const text = await res.text();
  const series = parseExposition(text);

  if (process.env.DUMP_SERIES) {
    writeFileSync(
      process.env.DUMP_SERIES,
      `${[...series]
        .map(([n, l]) => `${n}\t${[...l].sort().join(',')}`)
        .sort()
        .join('\n')}\n`,
    );
    writeFileSync(`${process.env.DUMP_SERIES}.raw`, text);
  }

  const documented = documentedSeries();
  t.true(documented.length >= 20, `documented: ${documented.length}`);
  for (const name of documented) t.true(series.has(name), `documented series ${name} is scraped`);
  const ours = [...series.keys()].filter((n) => n.startsWith('db_'));
  for (const name of ours) t.true(documented.includes(name), `scraped series ${name} is documented`);

  // Labels are bounded: pool, state, operation, collection, error type ... never SQL or values.
  t.false(text.includes('missing_table_for_prometheus = '), 'no SQL text');
  t.false(/\$1|SELECT \$|::int/.test(text), 'no statement text in labels');
  t.regex(text, /db_client_connection_count\{db_client_connection_pool_name="web",db_client_connection_state="used",[^}]*\} 0/);
  t.regex(text, /db_client_connection_max\{db_client_connection_pool_name="web",[^}]*\} 3/);
  t.regex(text, /db_client_connection_timeouts_total\{db_client_connection_pool_name="web",[^}]*\} 1/);
  t.regex(text, /db_client_operation_duration_bucket\{[^}]*db_client_connection_pool_name="web"[^}]*le="0\.001"\}/);
  t.regex(text, /db_client_operation_duration_count\{[^}]*db_client_connection_pool_name="web"[^}]*\} 10/);
});

test.serial('prefix, an existing instrumentation, a taken port, and shutdown', async (t) => {
  useAsyncContext();
  const instrumentation = new DbPoolInstrumentation();
  t.teardown(() => instrumentation.disable());
  const prom = await startPrometheusExporter({ port: 0, prefix: 'myapp', instrumentation, serviceName: 'orders' });
  t.is(prom.instrumentation, instrumentation);
  const db = newDb(t, { pref: { max: 1, min: 0 } });
  await db.query('pref', 'SELECT 1');
  const text = await (await fetch(prom.url)).text();
  t.regex(text, /^myapp_db_client_operation_duration_count\{/m);
  t.regex(text, /target_info\{[^}]*service_name="orders"/);
  t.is((await fetch(prom.url.replace('/metrics', '/other'))).status, 404);

  await t.throwsAsync(startPrometheusExporter({ port: prom.port }), { code: 'EADDRINUSE' } as never);

  await prom.shutdown();
  await prom.shutdown(); // twice is fine
  t.true(instrumentation.isEnabled(), 'an instrumentation passed in stays enabled');
  await t.throwsAsync(fetch(prom.url));
});
