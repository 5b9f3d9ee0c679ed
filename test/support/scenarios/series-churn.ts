/**
 * Series churn: 2 000 short-lived pools (a pool per tenant, say), each created, some used, and
 * removed, with the OpenTelemetry instrumentation on. A removed pool must not leave its metric
 * series, or their heap, behind.
 *
 * Two runs. `startPrometheusExporter` (the instrumentation in producer mode, its own per-pool
 * aggregation read through a MetricProducer): the endpoint is scraped every 100 pools, and after
 * the churn it shows exactly the series it showed before. The default meter mode (instruments of
 * an SDK MeterProvider, which keeps every attribute set for its lifetime): the pool ids given
 * series of their own stop at `maxPoolSeries` (200), later ones share `_OTHER`, so the data
 * points after 2 000 pools equal those after 1 000. Heap after a full GC, before and after each
 * churn, must grow by less than 10 MB.
 */
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { DbPoolInstrumentation, PACKAGE_NAME, startPrometheusExporter } from '../../../instrumentations/index.js';
import { METRICS } from '../../../instrumentations/pool-metrics.js';
import { DatabasePool } from '../../../src/index.js';
import { settledMemory } from '../gc.js';
import { PullMetricReader } from '../otel.js';
import { CallLedger, Checks, eventually, type ScenarioContext, type ScenarioResult } from '../outcomes.js';
import { adminClient, appName, serverConnections } from '../server.js';

const POOLS = 2_000;
/** Every USE_EVERY-th pool runs statements (a real connection); the others are only created and removed. */
const USE_EVERY = 20;
/** A scrape / collection every this many pools, as a scraper would during the churn. */
const SCRAPE_EVERY = 100;
const HEAP_BOUND_MB = 10;
/** The default `maxPoolSeries` of the meter mode. */
const METER_CAP = 200;

/** The per-pool metrics (pool-metrics.ts): the counts compare these; no series of a removed pool may appear in any. */
const POOL_METRICS = new Set<string>(Object.values(METRICS).map((m) => m.name));
const POOL_SERIES = [...POOL_METRICS].map((n) => n.replace(/\./g, '_'));
const isPoolSeries = (line: string) => POOL_SERIES.some((n) => line.startsWith(n) && /^[{_ ]/.test(line.slice(n.length)));

/** Series lines of a Prometheus scrape (no comments). */
function seriesOf(scrape: string): string[] {
  return scrape.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
}

export async function seriesChurnScenario(ctx: ScenarioContext): Promise<ScenarioResult> {
  const started = performance.now();
  const application = appName('series-churn');
  const ledger = new CallLedger();
  const checks = new Checks();
  const figures: Record<string, string | number> = {};
  const db = new DatabasePool({ pools: {}, logger: null });
  const connection = { connectionString: ctx.databaseUrl };
  let used = 0;
  let steadyPools = 0;

  /** Creates `n` pools, runs three statements (one failing) on every USE_EVERY-th, removes each; `between` every SCRAPE_EVERY. */
  const churn = async (prefix: string, n: number, between: () => Promise<unknown>) => {
    for (let i = 0; i < n; i++) {
      const id = `${prefix}_${i}`;
      await db.createPool(id, { connection, min: 0, max: 1, applicationName: application });
      if (i % USE_EVERY === 0) {
        used++;
        await ledger.track(() => db.query(id, 'SELECT 1'), 10_000);
        await ledger.track(() => db.query(id, 'SELECT relname FROM pg_catalog.pg_class WHERE oid = $1', [1259]), 10_000);
        await ledger.track(() => db.query(id, 'SELECT * FROM missing_table_for_series_churn'), 10_000); // 42P01
      }
      await db.removePool(id);
      if (i % SCRAPE_EVERY === SCRAPE_EVERY - 1) await between();
    }
  };
  const steady = async (id: string) => {
    await db.createPool(id, { connection, min: 0, max: 2, applicationName: application });
    steadyPools++;
    await ledger.track(() => db.query(id, 'SELECT 1'), 10_000);
  };

  let leaked = 0;
  const admin = await adminClient(ctx.databaseUrl);
  try {
    // --- producer mode, through the Prometheus endpoint ------------------------------------------
    {
      const prom = await startPrometheusExporter({ port: 0 });
      try {
        const scrapeAll = async () => seriesOf(await (await fetch(prom.url)).text());
        const scrape = async () => (await scrapeAll()).filter(isPoolSeries);
        await steady('churn_steady_p');
        await churn('warm_p', 100, scrape);
        await scrape();
        const before = await scrape();
        const heapBefore = (await settledMemory()).heapMb;
        let peak = 0;
        const t0 = performance.now();
        await churn('tenant_p', POOLS, async () => (peak = Math.max(peak, (await scrape()).length)));
        const churnMs = performance.now() - t0;
        await scrape(); // the pools removed since the last scrape, once
        const everything = await scrapeAll();
        const after = everything.filter(isPoolSeries);
        const heapAfter = (await settledMemory()).heapMb;
        const growth = heapAfter - heapBefore;
        const stale = everything.filter((l) => l.includes('tenant_p_') || l.includes('warm_p_'));
        figures['producer: series before'] = before.length;
        figures[`producer: series after ${POOLS} pools`] = after.length;
        figures['producer: largest scrape during the churn'] = peak;
        figures['producer: heap before / after (MB)'] = `${heapBefore.toFixed(1)} / ${heapAfter.toFixed(1)}`;
        figures['producer: heap growth (MB)'] = growth.toFixed(1);
        figures['producer: churn (ms)'] = Math.round(churnMs);
        ctx.log(`series churn, producer: ${before.length} → ${after.length} series, heap +${growth.toFixed(1)} MB`);
        checks.add(
          `producer mode: the series count after ${POOLS} removed pools equals the count before`,
          after.length === before.length,
          `${before.length} → ${after.length}`,
        );
        checks.add('producer mode: no series of a removed pool is left', stale.length === 0, stale.slice(0, 3).join(' | '));
        checks.add(`producer mode: heap growth < ${HEAP_BOUND_MB} MB`, growth < HEAP_BOUND_MB, `${growth.toFixed(1)} MB`);
        await db.removePool('churn_steady_p');
      } finally {
        await prom.shutdown();
      }
    }

    // --- meter mode (the default), through an SDK MeterProvider ------------------------------------
    {
      const instrumentation = new DbPoolInstrumentation();
      const reader = new PullMetricReader();
      const meterProvider = new MeterProvider({ readers: [reader] });
      instrumentation.setMeterProvider(meterProvider);
      const census = async () => {
        const { resourceMetrics } = await reader.collect();
        let points = 0;
        const pools = new Set<string>();
        for (const sm of resourceMetrics.scopeMetrics) {
          if (sm.scope.name !== PACKAGE_NAME) continue;
          for (const m of sm.metrics) {
            if (!POOL_METRICS.has(m.descriptor.name)) continue;
            points += m.dataPoints.length;
            for (const p of m.dataPoints) pools.add(String(p.attributes['db.client.connection.pool.name']));
          }
        }
        return { points, pools };
      };
      try {
        await steady('churn_steady_m');
        await churn('warm_m', 100, census);
        const heapBefore = (await settledMemory()).heapMb;
        await churn('tenant_m_a', POOLS / 2, census);
        const half = await census();
        await churn('tenant_m_b', POOLS / 2, census);
        const full = await census();
        const heapAfter = (await settledMemory()).heapMb;
        const growth = heapAfter - heapBefore;
        figures[`meter: data points after ${POOLS / 2} / ${POOLS} pools`] = `${half.points} / ${full.points}`;
        figures['meter: pool names exported'] = full.pools.size;
        figures['meter: heap before / after (MB)'] = `${heapBefore.toFixed(1)} / ${heapAfter.toFixed(1)}`;
        figures['meter: heap growth (MB)'] = growth.toFixed(1);
        ctx.log(`series churn, meter: ${half.points} → ${full.points} data points, ${full.pools.size} pool names, heap +${growth.toFixed(1)} MB`);
        checks.add(
          `meter mode: data points after ${POOLS} pools equal those after ${POOLS / 2}`,
          full.points === half.points,
          `${half.points} → ${full.points}`,
        );
        checks.add(
          `meter mode: at most ${METER_CAP} pool names plus _OTHER`,
          full.pools.size <= METER_CAP + 1 && full.pools.has('_OTHER'),
          `${full.pools.size} pool names`,
        );
        checks.add(`meter mode: heap growth < ${HEAP_BOUND_MB} MB`, growth < HEAP_BOUND_MB, `${growth.toFixed(1)} MB`);
      } finally {
        instrumentation.disable();
        await meterProvider.shutdown();
      }
    }

    checks.add(
      'every statement settled: two served and one 42P01 per used pool',
      ledger.hung === 0 && ledger.unexpected(['42P01']).length === 0 && ledger.rejected['42P01'] === used && ledger.served === 2 * used + steadyPools,
      `${ledger.served} served, ${JSON.stringify(ledger.rejected)}, ${ledger.hung} hung`,
    );
  } finally {
    await db.close({ drainTimeoutMs: 2_000 });
    await eventually(async () => (leaked = await serverConnections(admin, application)) === 0, 5_000, 50);
    await admin.end().catch(() => {});
  }
  checks.add('no server connection left after close', leaked === 0, `${leaked} left`);
  return {
    name: 'metric series of removed pools',
    ...ledger.summary(),
    leaked,
    figures,
    checks: checks.list,
    durationMs: performance.now() - started,
  };
}
