/**
 * Counters of rare outcomes start at 0: a pool's first scrape already has its acquire timeouts, its
 * acquire errors per known error.type, its leaks per kind, its discarded connections per reason and
 * its slow queries, all at 0, in both export modes of the instrumentation ('producer', what
 * startPrometheusExporter uses by default, and 'meter', the SDK's instruments), for a pool created
 * while the instrumentation runs and for one that existed before it was enabled. So the dashboard's
 * panels have data before the first event, and `increase()` in the rules sees the first one.
 */
import test, { type ExecutionContext } from 'ava';
import { DbPoolInstrumentation, startPrometheusExporter } from '../../instrumentations/index.js';
import { eventually, newDb, uniqueName } from '../support/helpers.js';

/** What a fresh pool must already report, as Prometheus series (the JS exporter's names). */
const ZERO_SERIES: Array<{ name: string; label?: [string, string[]] }> = [
  { name: 'db_client_connection_timeouts_total' },
  { name: 'db_pool_acquire_errors_total', label: ['error_type', ['ACQUIRE_TIMEOUT', 'QUEUE_FULL', 'CONNECTION_FAILED', 'CIRCUIT_OPEN', 'POOL_CLOSED']] },
  { name: 'db_pool_leaks_total', label: ['db_pool_leak_kind', ['suspected', 'reclaimed']] },
  {
    name: 'db_pool_connection_discarded_total',
    label: ['db_pool_discard_reason', ['error', 'broken', 'in-transaction', 'expired', 'revoked', 'closing', 'statements-pending']],
  },
  // No db_operation_name: the pool's own series, which the dashboard and the slow-query ratio read.
  { name: 'db_pool_slow_queries_total' },
];

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition (label values without escapes: pool ids here are plain). */
function parseSamples(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** Asserts every zero series of `pool` is in the scrape, at 0, and says what was missing. */
function assertZeroSeries(t: ExecutionContext, samples: Sample[], pool: string): void {
  const ofPool = samples.filter((s) => s.labels.db_client_connection_pool_name === pool);
  for (const { name, label } of ZERO_SERIES) {
    const series = ofPool.filter((s) => s.name === name);
    if (label === undefined) {
      const own = series.filter((s) => s.labels.db_operation_name === undefined);
      t.is(own.length, 1, `${name}{pool="${pool}"} is scraped once: ${JSON.stringify(series)}`);
      t.is(own[0]?.value, 0, `${name}{pool="${pool}"} is 0`);
      continue;
    }
    const [key, values] = label;
    for (const value of values) {
      const s = series.filter((x) => x.labels[key] === value);
      t.is(s.length, 1, `${name}{pool="${pool}", ${key}="${value}"} is scraped`);
      t.is(s[0]?.value, 0, `${name}{pool="${pool}", ${key}="${value}"} is 0`);
    }
  }
}

async function scrape(url: string): Promise<Sample[]> {
  const res = await fetch(url);
  if (res.status !== 200) throw new Error(`scrape ${url}: ${res.status}`);
  return parseSamples(await res.text());
}

for (const mode of ['producer', 'meter'] as const) {
  test(`${mode} mode: a pool created while the instrumentation runs has its zero series at the first scrape`, async (t) => {
    const instrumentation = new DbPoolInstrumentation({ metricsExport: mode });
    t.teardown(() => instrumentation.disable());
    const prom = await startPrometheusExporter({ port: 0, instrumentation });
    t.teardown(() => prom.shutdown());
    const pool = uniqueName('zero_new');
    // No connection, no query: nothing has happened to the pool but its creation.
    newDb(t, { [pool]: { max: 2, min: 0 } });
    assertZeroSeries(t, await scrape(prom.url), pool);
  });

  test(`${mode} mode: a pool that existed before the instrumentation was enabled gets them at the first collection`, async (t) => {
    const pool = uniqueName('zero_old');
    // Its one connection opened at creation (a first connect may take longer than the acquire timeout).
    const db = newDb(t, { [pool]: { max: 1, min: 1, acquireTimeoutMs: 200 } });
    t.true(await eventually(() => db.getMetrics(pool).idleConnections === 1, 15_000), 'the pool has its connection');
    const instrumentation = new DbPoolInstrumentation({ metricsExport: mode, enabled: false });
    t.teardown(() => instrumentation.disable());
    const prom = await startPrometheusExporter({ port: 0, instrumentation });
    t.teardown(() => prom.shutdown());
    assertZeroSeries(t, await scrape(prom.url), pool);

    // The zeros are counters like any other: the first timeout makes it 1.
    const held = await db.acquire(pool);
    await t.throwsAsync(db.acquire(pool), { code: 'ACQUIRE_TIMEOUT' } as never);
    held.release();
    const after = (await scrape(prom.url)).filter((s) => s.labels.db_client_connection_pool_name === pool);
    t.is(after.find((s) => s.name === 'db_client_connection_timeouts_total')?.value, 1);
    t.is(after.find((s) => s.name === 'db_pool_acquire_errors_total' && s.labels.error_type === 'ACQUIRE_TIMEOUT')?.value, 1);
    t.is(after.find((s) => s.name === 'db_pool_acquire_errors_total' && s.labels.error_type === 'QUEUE_FULL')?.value, 0);
  });
}
