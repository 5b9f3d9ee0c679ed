/**
 * Metric series of removed pools (dynamic per-tenant pool ids): 2 000 pools created, some used,
 * and removed must not leave 2 000 pools' worth of series, and heap, behind.
 *
 * sdk-metrics keeps every attribute set an instrument was ever given (cumulative temporality, which
 * Prometheus needs), observable instruments included, and cannot delete one. So:
 * - `startPrometheusExporter` (and `metricsExport: 'producer'`) export through the
 *   instrumentation's own per-pool store: a removed pool's series go after one more scrape;
 * - the default meter mode caps the pool ids given series of their own (`maxPoolSeries`, 200);
 *   later pool ids share the pool name `_OTHER`.
 *
 * Each churn creates pools lazily (min 0), runs statements on every 40th (a real connection, a
 * failing statement), and removes them; figures are printed with t.log.
 */
import test, { type ExecutionContext } from 'ava';
import { context, metrics, propagation, trace } from '@opentelemetry/api';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { DataPointType, MeterProvider, type Histogram, type MetricData, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { settledMemory } from '../support/gc.js';
import { DbPoolInstrumentation, PACKAGE_NAME, startPrometheusExporter, type DbPoolInstrumentationConfig } from '../../instrumentations/index.js';
import { METRICS } from '../../instrumentations/pool-metrics.js';
import { leakChannel, slowQueryChannel, type DatabasePool, type LeakMessage, type SlowQueryMessage } from '../../src/index.js';
import { databaseUrl, newDb } from '../support/helpers.js';
import { PullMetricReader, useAsyncContext } from '../support/instrumentation-helpers.js';

// Instrumentations subscribe to process-wide channels and the heap is the process's: one at a time.

const POOL = 'db.client.connection.pool.name';
const CHURN = 2_000;
/** Heap growth allowed for a churn of CHURN pools (after a full GC). */
const HEAP_BOUND_MB = 10;

/** Creates `n` pools `<prefix>_<i>` lazily, runs three statements on every `useEvery`-th, removes each; `between` every 100 pools. */
async function churn(db: DatabasePool, prefix: string, n: number, between?: () => Promise<unknown>, useEvery = 40): Promise<void> {
  for (let i = 0; i < n; i++) {
    const id = `${prefix}_${i}`;
    await db.createPool(id, { connection: { connectionString: databaseUrl() }, min: 0, max: 1 });
    if (i % useEvery === 0) {
      await db.query(id, 'SELECT 1');
      await db.query(id, 'SELECT relname FROM pg_catalog.pg_class WHERE oid = $1', [1259]);
      await db.query(id, 'SELECT * FROM missing_table_for_series').catch(() => {});
    }
    await db.removePool(id);
    if (between !== undefined && i % 100 === 99) await between();
  }
}

/** A pool that stays, with some use: its series are the ones that should remain. */
async function steadyPool(t: ExecutionContext, id: string): Promise<DatabasePool> {
  const db = newDb(t, { [id]: { max: 2, min: 0 } });
  await db.query(id, 'SELECT 1');
  await db.query(id, 'SELECT * FROM missing_table_for_series').catch(() => {});
  return db;
}

/**
 * The pool metrics this file is about (pool-metrics.ts): other metrics of the instrumentation (the
 * server-budget gauges, read in the background) are left out of counts and comparisons, though
 * no series of a removed pool may appear anywhere.
 */
const POOL_METRICS = new Set<string>(Object.values(METRICS).map((m) => m.name));
/** Their Prometheus names start with one of these (names as the exporter writes them). */
const POOL_SERIES = [...POOL_METRICS].map((n) => n.replace(/\./g, '_'));
const isPoolSeries = (line: string) => POOL_SERIES.some((n) => line.startsWith(n) && /^[{_ ]/.test(line.slice(n.length)));

/** Series lines of a Prometheus scrape (no comments). */
function seriesLines(text: string): string[] {
  return text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
}

/** Data points of our scope, and the distinct pool names among them. */
function census(rm: ResourceMetrics): { points: number; pools: Set<string> } {
  let points = 0;
  const pools = new Set<string>();
  for (const sm of rm.scopeMetrics) {
    if (sm.scope.name !== PACKAGE_NAME) continue;
    for (const m of sm.metrics) {
      if (!POOL_METRICS.has(m.descriptor.name)) continue;
      points += m.dataPoints.length;
      for (const p of m.dataPoints) pools.add(String(p.attributes[POOL]));
    }
  }
  return { points, pools };
}

async function collectOf(reader: PullMetricReader): Promise<ResourceMetrics> {
  const { resourceMetrics, errors } = await reader.collect();
  if (errors.length > 0) throw errors[0];
  return resourceMetrics;
}

/** An instrumentation with in-memory spans and a pull reader (given its producer in producer mode). */
function instrumented(t: ExecutionContext, config: DbPoolInstrumentationConfig = {}) {
  useAsyncContext();
  const spans = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
  const instrumentation = new DbPoolInstrumentation(config);
  const reader = new PullMetricReader(config.metricsExport === 'producer' ? { metricProducers: [instrumentation.metricProducer] } : {});
  const meterProvider = new MeterProvider({ readers: [reader] });
  instrumentation.setTracerProvider(tracerProvider);
  instrumentation.setMeterProvider(meterProvider);
  t.teardown(async () => {
    instrumentation.disable();
    await tracerProvider.shutdown();
    await meterProvider.shutdown();
  });
  return { instrumentation, reader, spans, collect: () => collectOf(reader) };
}

test.serial(`startPrometheusExporter: ${CHURN} pools created, used and removed leave no series and no heap behind`, async (t) => {
  const prom = await startPrometheusExporter({ port: 0 });
  t.teardown(() => prom.shutdown());
  const scrape = async () => seriesLines(await (await fetch(prom.url)).text());
  const db = await steadyPool(t, 'series_steady');

  // Warm up (lazily created caches, code paths), then the baseline.
  await churn(db, 'warm', 100, scrape);
  await scrape();
  const before = await scrape();
  const heapBefore = (await settledMemory()).heapMb;

  const t0 = performance.now();
  let peak = 0;
  await churn(db, 'tenant', CHURN, async () => (peak = Math.max(peak, (await scrape()).length)));
  const churnMs = performance.now() - t0;
  await churn(db, 'tenant_last', 1); // removed after the last scrape of the churn
  const lastScrape = await scrape(); // the pools removed since the previous scrape, once
  const after = await scrape();
  const heapAfter = (await settledMemory()).heapMb;

  const growth = heapAfter - heapBefore;
  const ownBefore = before.filter(isPoolSeries).length;
  const ownAfter = after.filter(isPoolSeries).length;
  t.log(
    `series: ${before.length} before, ${after.length} after ${CHURN} pools (pool metrics: ${ownBefore} → ${ownAfter}; largest scrape during the churn ${peak}, ` +
      `first scrape after it ${lastScrape.length}); heap ${heapBefore.toFixed(1)} → ${heapAfter.toFixed(1)} MB ` +
      `(growth ${growth.toFixed(1)} MB); churn ${Math.round(churnMs)} ms`,
  );
  t.deepEqual(
    after.filter((l) => l.includes('tenant_') || l.includes('warm_')),
    [],
    'no series of a removed pool',
  );
  t.is(ownAfter, ownBefore, 'the series count does not grow with removed pools');
  t.true(after.length <= before.length + 10, `all series: ${before.length} → ${after.length}`);
  t.true(
    after.some((l) => l.includes('series_steady')),
    'the live pool keeps its series',
  );
  t.true(
    lastScrape.some(
      (l) => /^db_pool_events_total\{.*tenant_last_0.*event="removed"/.test(l) || /^db_pool_events_total\{.*event="removed".*tenant_last_0/.test(l),
    ),
    "a removed pool's last counts are scraped once",
  );
  t.true(growth < HEAP_BOUND_MB, `heap growth ${growth.toFixed(1)} MB`);
});

test.serial(`meter mode (the default): ${CHURN} pool ids, series bounded by maxPoolSeries, later ids under _OTHER`, async (t) => {
  const otel = instrumented(t);
  const db = await steadyPool(t, 'meter_steady');
  await churn(db, 'warm', 100, otel.collect);
  const heapBefore = (await settledMemory()).heapMb;

  await churn(db, 'tenant_a', CHURN / 2, otel.collect);
  const half = census(await otel.collect());
  await churn(db, 'tenant_b', CHURN / 2, otel.collect);
  const full = census(await otel.collect());
  const heapAfter = (await settledMemory()).heapMb;
  const growth = heapAfter - heapBefore;
  t.log(
    `data points: ${half.points} after ${CHURN / 2} pools, ${full.points} after ${CHURN}; pool names ${full.pools.size}; ` +
      `heap ${heapBefore.toFixed(1)} → ${heapAfter.toFixed(1)} MB (growth ${growth.toFixed(1)} MB)`,
  );
  t.is(full.points, half.points, 'no new series once the cap is reached');
  t.is(full.pools.size, 200 + 1, '200 pool ids (the default maxPoolSeries) plus _OTHER');
  t.true(full.pools.has('_OTHER'));
  t.false(
    [...full.pools].some((p) => p.startsWith('tenant_b')),
    'pool ids past the cap have no series of their own',
  );
  t.true(growth < HEAP_BOUND_MB, `heap growth ${growth.toFixed(1)} MB`);

  // A pool created now: metrics under _OTHER, spans under its id.
  const late = newDb(t, { meter_late: { max: 1, min: 0 } });
  await late.query('meter_late', 'SELECT 1');
  const m = await otel.collect();
  const names = census(m).pools;
  t.false(names.has('meter_late'));
  t.true(
    otel.spans.getFinishedSpans().some((s) => s.attributes[POOL] === 'meter_late'),
    'spans carry the real pool id',
  );
});

test.serial('maxPoolSeries: a small cap, and Infinity for none', async (t) => {
  const capped = instrumented(t, { maxPoolSeries: 3 });
  const db = newDb(t, {});
  await churn(db, 'cap', 10, undefined, 1);
  const c = census(await capped.collect());
  t.deepEqual([...c.pools].sort(), ['_OTHER', 'cap_0', 'cap_1', 'cap_2']);
  capped.instrumentation.disable();

  const uncapped = instrumented(t, { maxPoolSeries: Infinity });
  await churn(db, 'nocap', 300, undefined, 1_000);
  t.is(census(await uncapped.collect()).pools.size, 300);
});

test.serial("producer mode: a removed pool's last values (gauges at 0) are exported once, then its series are gone", async (t) => {
  const otel = instrumented(t, { metricsExport: 'producer' });
  const db = newDb(t, { gone: { max: 1, min: 0 }, stays: { max: 1, min: 0 } });
  await db.query('gone', 'SELECT 1');
  await db.query('stays', 'SELECT 1');
  const first = census(await otel.collect());
  t.true(first.pools.has('gone') && first.pools.has('stays'));

  await db.query('gone', 'SELECT 2');
  await db.removePool('gone');
  const last = await otel.collect();
  const duration = last.scopeMetrics[0]!.metrics.find((x) => x.descriptor.name === 'db.client.operation.duration')!;
  const gonePoint = duration.dataPoints.find((p) => p.attributes[POOL] === 'gone')!;
  t.is((gonePoint.value as Histogram).count, 2, 'the statement run after the previous collection is counted');
  const events = last.scopeMetrics[0]!.metrics.find((x) => x.descriptor.name === 'db_pool.events')!;
  t.true(events.dataPoints.some((p) => p.attributes[POOL] === 'gone' && p.attributes['db_pool.event'] === 'removed' && p.value === 1));
  const gauges = last.scopeMetrics[0]!.metrics.find((x) => x.descriptor.name === 'db.client.connection.max')!;
  t.is(gauges.dataPoints.find((p) => p.attributes[POOL] === 'gone')?.value, 0, "a removed pool's gauges read 0, once");
  t.is(gauges.dataPoints.find((p) => p.attributes[POOL] === 'stays')?.value, 1);

  const next = census(await otel.collect());
  t.false(next.pools.has('gone'));
  t.true(next.pools.has('stays'));

  // Re-created under the same id: starts again from 0.
  await db.createPool('gone', { connection: { connectionString: databaseUrl() }, max: 1, min: 0 });
  await db.query('gone', 'SELECT 1');
  const again = await otel.collect();
  const d2 = again.scopeMetrics[0]!.metrics.find((x) => x.descriptor.name === 'db.client.operation.duration')!;
  t.is((d2.dataPoints.find((p) => p.attributes[POOL] === 'gone')!.value as Histogram).count, 1);
});

test.serial(`producer mode with no reader collecting: ${CHURN} removed pools do not pile up`, async (t) => {
  const otel = instrumented(t, { metricsExport: 'producer' });
  const db = newDb(t, {});
  await churn(db, 'warm', 100);
  await otel.collect();
  const heapBefore = (await settledMemory()).heapMb;
  await churn(db, 'nocollect', CHURN);
  const heapAfter = (await settledMemory()).heapMb;
  const growth = heapAfter - heapBefore;
  const c = census(await otel.collect());
  t.log(`heap ${heapBefore.toFixed(1)} → ${heapAfter.toFixed(1)} MB (growth ${growth.toFixed(1)} MB); first collection: ${c.pools.size} pool names`);
  // At most the last 1 000 removed pools wait for a collection (MAX_GONE_POOLS).
  t.true(c.pools.size <= 1_000, `${c.pools.size} pools in the first collection`);
  t.true(growth < HEAP_BOUND_MB, `heap growth ${growth.toFixed(1)} MB`);
  t.is(census(await otel.collect()).pools.size, 0);
});

/** What a metric shows that does not depend on timing: descriptor, kind, and per attribute set the count or value. */
function comparable(rm: ResourceMetrics): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const sm of rm.scopeMetrics) {
    if (sm.scope.name !== PACKAGE_NAME) continue;
    for (const m of sm.metrics as MetricData[]) {
      if (!POOL_METRICS.has(m.descriptor.name)) continue;
      const d = m.descriptor as MetricData['descriptor'] & { type?: string };
      const points = (m.dataPoints as { attributes: Record<string, unknown>; value: unknown }[])
        .map((p) => {
          const attrs = JSON.stringify(Object.entries(p.attributes).sort(([a], [b]) => a.localeCompare(b)));
          const v =
            m.dataPointType === DataPointType.HISTOGRAM
              ? `count ${(p.value as Histogram).count} buckets ${(p.value as Histogram).buckets.boundaries.join(',')}`
              : p.value;
          return `${attrs} = ${String(v)}`;
        })
        .sort();
      out[d.name] = {
        scope: `${sm.scope.name}@${sm.scope.version}`,
        unit: d.unit,
        description: d.description,
        valueType: d.valueType,
        type: d.type,
        dataPointType: m.dataPointType,
        temporality: m.aggregationTemporality,
        monotonic: 'isMonotonic' in m ? m.isMonotonic : undefined,
        points,
      };
    }
  }
  return out;
}

test.serial('producer mode exports what meter mode exports (data points, and the Prometheus series and metadata)', async (t) => {
  const meter = instrumented(t);
  const producer = instrumented(t, { metricsExport: 'producer' });
  const db = newDb(t, { same: { max: 1, min: 0, acquireTimeoutMs: 200 } });
  await db.query('same', 'SELECT 1');
  await db.query('same', 'SELECT relname FROM pg_catalog.pg_class WHERE oid = $1', [1259]);
  await t.throwsAsync(db.query('same', 'SELECT * FROM missing_table_for_series'));
  const held = await db.acquire('same');
  await t.throwsAsync(db.acquire('same'), { code: 'ACQUIRE_TIMEOUT' } as never);
  await held.query('BEGIN');
  held.release(); // in a transaction: discarded
  slowQueryChannel.publish({
    poolId: 'same',
    connectionId: 1,
    text: 'SELECT * FROM t WHERE id = ?',
    fingerprint: '0123456789abcdef',
    durationMs: 1500,
    at: Date.now(),
    error: undefined,
    sqlState: undefined,
    traceId: undefined,
  } satisfies SlowQueryMessage);
  leakChannel.publish({
    poolId: 'same',
    connectionId: 1,
    loanId: 1,
    heldMs: 60_000,
    acquiredAt: Date.now() - 60_000,
    stack: undefined,
    traceId: undefined,
    kind: 'suspected',
  } satisfies LeakMessage);

  const [a, b] = [await meter.collect(), await producer.collect()];
  const ca = comparable(a);
  t.true(Object.keys(ca).length >= 15, Object.keys(ca).join(', '));
  t.deepEqual(comparable(b), ca);

  // The Prometheus text of both: the same series (names and labels) and the same HELP/TYPE/UNIT lines.
  const serializer = new PrometheusSerializer();
  const shapeOf = (rm: ResourceMetrics) =>
    serializer
      .serialize(rm)
      .split('\n')
      .filter((l) => isPoolSeries(l.replace(/^# (HELP|TYPE|UNIT) /, '')))
      .map((l) => (l.startsWith('#') ? l : l.replace(/ \S+( \d+)?$/, '')))
      .sort();
  const pa = shapeOf(a);
  t.true(pa.length > 50);
  t.deepEqual(shapeOf(b), pa);

  // And through a real PrometheusExporter given the producer.
  const exporter = new PrometheusExporter({ preventServerStart: true, metricProducers: [producer.instrumentation.metricProducer] });
  const mp = new MeterProvider({ readers: [exporter] });
  t.teardown(() => mp.shutdown());
  const viaExporter = await exporter.collect();
  t.deepEqual(shapeOf(viaExporter.resourceMetrics), pa);
});

test.serial('metricProducer produces nothing in meter mode; setConfig switches the mode', async (t) => {
  const otel = instrumented(t);
  const db = newDb(t, { switch: { max: 1, min: 0 } });
  await db.query('switch', 'SELECT 1');
  const viaProducer = await otel.instrumentation.metricProducer.collect();
  t.deepEqual(viaProducer.resourceMetrics.scopeMetrics, []);

  otel.instrumentation.setConfig({ metricsExport: 'producer' });
  await db.query('switch', 'SELECT 1');
  const after = await otel.instrumentation.metricProducer.collect();
  const duration = after.resourceMetrics.scopeMetrics[0]!.metrics.find((m) => m.descriptor.name === 'db.client.operation.duration')!;
  t.is((duration.dataPoints[0]!.value as Histogram).count, 1, 'recorded from the switch on');
});

test.serial('producer mode under NodeSDK: the reader given metricProducer exports the pools, a removed one goes', async (t) => {
  const reset = () => {
    trace.disable();
    metrics.disable();
    context.disable();
    propagation.disable();
  };
  reset();
  t.teardown(reset);
  const instrumentation = new DbPoolInstrumentation({ metricsExport: 'producer' });
  const reader = new PullMetricReader({ metricProducers: [instrumentation.metricProducer] });
  const sdk = new NodeSDK({
    serviceName: 'series-test',
    autoDetectResources: false,
    spanProcessors: [new SimpleSpanProcessor(new InMemorySpanExporter())],
    metricReaders: [reader],
    instrumentations: [instrumentation],
  });
  sdk.start();
  t.teardown(async () => {
    await sdk.shutdown();
    instrumentation.disable();
  });
  const db = newDb(t, { sdk_a: { max: 2, min: 0 }, sdk_b: { max: 2, min: 0 } });
  await db.query('sdk_a', 'SELECT 1');
  await db.query('sdk_b', 'SELECT 1');
  const first = await collectOf(reader);
  t.is(first.resource.attributes['service.name'], 'series-test', "the SDK's resource");
  t.deepEqual([...census(first).pools].sort(), ['sdk_a', 'sdk_b']);
  await db.removePool('sdk_b');
  await collectOf(reader);
  t.deepEqual([...census(await collectOf(reader)).pools], ['sdk_a']);
});
