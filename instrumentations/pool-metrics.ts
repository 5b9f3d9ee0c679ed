/**
 * The instrumentation's metrics, described once, and a store that aggregates them per pool and
 * hands them to metric readers as a `MetricProducer` (the `metricsExport: 'producer'` mode of
 * DbPoolInstrumentation).
 *
 * Why a store of our own: `@opentelemetry/sdk-metrics` (2.x) never forgets an attribute set under
 * cumulative temporality, which Prometheus needs. A synchronous instrument exports every set it
 * was ever given on every collection, and an observable one keeps exporting the last value of a
 * set its callback stopped reporting (open-telemetry/opentelemetry-js#4096); neither frees the
 * memory, and there is no API to delete a set. Every pool id that ever reached an SDK instrument
 * therefore stays, as series and as heap, until the MeterProvider shuts down. The store keeps a
 * pool's series only while the pool lives: a removed pool's series are exported by one more
 * collection (its last counts), then dropped, so the export and the memory follow the live pools.
 *
 * Only types come from sdk-metrics: the producer works with any reader that takes
 * `metricProducers` (PrometheusExporter, PeriodicExportingMetricReader, or any MetricReader).
 */
import { ValueType, type Attributes, type Counter, type HrTime, type Histogram } from '@opentelemetry/api';
import { millisToHrTime } from './otel-helpers.js';
import type { Resource } from '@opentelemetry/resources';
import type {
  AggregationTemporality,
  CollectionResult,
  DataPoint,
  DataPointType,
  Histogram as HistogramPoint,
  InstrumentType,
  MetricData,
  MetricProducer,
} from '@opentelemetry/sdk-metrics';
import {
  ATTR_DB_CLIENT_CONNECTION_POOL_NAME,
  ATTR_DB_POOL_DISCARD_REASON,
  ATTR_DB_POOL_LEAK_KIND,
  ATTR_ERROR_TYPE,
  METRIC_DB_CLIENT_CONNECTION_COUNT,
  METRIC_DB_CLIENT_CONNECTION_CREATE_TIME,
  METRIC_DB_CLIENT_CONNECTION_IDLE_MAX,
  METRIC_DB_CLIENT_CONNECTION_IDLE_MIN,
  METRIC_DB_CLIENT_CONNECTION_MAX,
  METRIC_DB_CLIENT_CONNECTION_PENDING_REQUESTS,
  METRIC_DB_CLIENT_CONNECTION_TIMEOUTS,
  METRIC_DB_CLIENT_CONNECTION_USE_TIME,
  METRIC_DB_CLIENT_CONNECTION_WAIT_TIME,
  METRIC_DB_CLIENT_OPERATION_DURATION,
  METRIC_DB_POOL_ACQUIRE_ERRORS,
  METRIC_DB_POOL_CONNECTION_CREATE_ERRORS,
  METRIC_DB_POOL_CONNECTION_DISCARDED,
  METRIC_DB_POOL_CONNECTION_PENDING_CREATES,
  METRIC_DB_POOL_EVENTS,
  METRIC_DB_POOL_LEAKS,
  METRIC_DB_POOL_SLOW_QUERIES,
} from './semconv.js';
import type { DbPoolErrorCode, LeakMessage } from '../src/index.js';
import { MAX_GONE_POOLS } from './utils.js';

/** The spec's buckets for `db.client.operation.duration` (seconds). */
export const OPERATION_DURATION_BUCKETS: readonly number[] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10];
/** Buckets for the pool's create / wait / use times (seconds): a free connection is lent in well under a millisecond. */
export const POOL_TIME_BUCKETS: readonly number[] = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60];

export type MetricKind = 'histogram' | 'counter' | 'gauge';

/** One instrument: what the meter is asked for, and what the producer describes. */
export interface MetricSpec {
  readonly name: string;
  readonly kind: MetricKind;
  readonly description: string;
  readonly unit: string;
  readonly valueType: ValueType;
  /** Histograms: bucket boundaries. */
  readonly boundaries?: readonly number[];
}

const histogram = (name: string, description: string, boundaries: readonly number[]): MetricSpec => ({
  name,
  kind: 'histogram',
  description,
  unit: 's',
  valueType: ValueType.DOUBLE,
  boundaries,
});
const counter = (name: string, description: string, unit: string): MetricSpec => ({ name, kind: 'counter', description, unit, valueType: ValueType.INT });
const gauge = (name: string, description: string, unit: string): MetricSpec => ({ name, kind: 'gauge', description, unit, valueType: ValueType.INT });

/** Every instrument of the instrumentation, by its field name in the instrumentation. */
export const METRICS = {
  operationDuration: histogram(METRIC_DB_CLIENT_OPERATION_DURATION, 'Duration of database client operations.', OPERATION_DURATION_BUCKETS),
  createTime: histogram(METRIC_DB_CLIENT_CONNECTION_CREATE_TIME, 'The time it took to create a new connection.', POOL_TIME_BUCKETS),
  waitTime: histogram(METRIC_DB_CLIENT_CONNECTION_WAIT_TIME, 'The time it took to obtain an open connection from the pool.', POOL_TIME_BUCKETS),
  useTime: histogram(METRIC_DB_CLIENT_CONNECTION_USE_TIME, 'The time between borrowing a connection and returning it to the pool.', POOL_TIME_BUCKETS),
  timeouts: counter(
    METRIC_DB_CLIENT_CONNECTION_TIMEOUTS,
    'The number of connection timeouts that have occurred trying to obtain a connection from the pool.',
    '{timeout}',
  ),
  acquireErrors: counter(
    METRIC_DB_POOL_ACQUIRE_ERRORS,
    'Acquires that failed, by error.type (ACQUIRE_TIMEOUT, QUEUE_FULL, CONNECTION_FAILED, POOL_CLOSED).',
    '{error}',
  ),
  createErrors: counter(METRIC_DB_POOL_CONNECTION_CREATE_ERRORS, 'Connect attempts that failed, by error.type (SQLSTATE or driver code).', '{error}'),
  discarded: counter(METRIC_DB_POOL_CONNECTION_DISCARDED, 'Connections closed on release instead of going back to the pool, by reason.', '{connection}'),
  slowQueries: counter(METRIC_DB_POOL_SLOW_QUERIES, "Queries slower than the pool's slowQueryThresholdMs.", '{query}'),
  leaks: counter(METRIC_DB_POOL_LEAKS, 'Loans held past leakDetectionThresholdMs (suspected) or taken back (reclaimed).', '{connection}'),
  events: counter(
    METRIC_DB_POOL_EVENTS,
    'Pool lifecycle events (created, removed, closed, resized, restarted, connection-error, unreachable, recovering, recovered, failed-over, failed-back, recovery-failed, circuit-open, circuit-closed).',
    '{event}',
  ),
  count: gauge(METRIC_DB_CLIENT_CONNECTION_COUNT, 'The number of connections that are currently in state described by the state attribute.', '{connection}'),
  idleMax: gauge(METRIC_DB_CLIENT_CONNECTION_IDLE_MAX, 'The maximum number of idle open connections allowed.', '{connection}'),
  idleMin: gauge(METRIC_DB_CLIENT_CONNECTION_IDLE_MIN, 'The minimum number of idle open connections allowed.', '{connection}'),
  max: gauge(METRIC_DB_CLIENT_CONNECTION_MAX, 'The maximum number of open connections allowed.', '{connection}'),
  pendingRequests: gauge(METRIC_DB_CLIENT_CONNECTION_PENDING_REQUESTS, 'The number of current pending requests for an open connection.', '{request}'),
  pendingCreates: gauge(METRIC_DB_POOL_CONNECTION_PENDING_CREATES, 'Connections being opened, including ones waiting out a reconnect backoff.', '{connection}'),
} as const satisfies Record<string, MetricSpec>;

export type MetricField = keyof typeof METRICS;
/** The gauges: observed from the live pools, never recorded. */
export type GaugeField = 'count' | 'idleMax' | 'idleMin' | 'max' | 'pendingRequests' | 'pendingCreates';

/**
 * Counter series every pool has from the start, at 0, whatever it did. A counter series created by
 * its first event starts at 1, so `increase()` cannot see that event, and a dashboard panel reading
 * it shows "No data" until then; these are the outcomes the dashboard and the rules of grafana/
 * read. Connect errors (`error.type` is the SQLSTATE or driver code) and lifecycle events have no
 * such closed set and are not included. Meter mode: the instrumentation adds 0 to each when it
 * first sees a pool (its `created` event, or the first collection that observes it). Producer mode:
 * the store exports them with every pool it exports (see {@link zeroSeriesOf}).
 */
export const ZERO_COUNTERS = {
  /** `db_pool.acquire.errors` per `error.type`: the codes an acquire fails with. */
  acquireErrorTypes: ['ACQUIRE_TIMEOUT', 'QUEUE_FULL', 'CONNECTION_FAILED', 'CIRCUIT_OPEN', 'POOL_CLOSED'],
  /** `db_pool.leaks` per `db_pool.leak.kind`. */
  leakKinds: ['suspected', 'reclaimed'],
  /** `db_pool.connection.discarded` per `db_pool.discard.reason` (ReleaseMessage.reason). */
  discardReasons: ['error', 'broken', 'in-transaction', 'expired', 'revoked', 'closing', 'statements-pending'],
} as const satisfies {
  acquireErrorTypes: readonly DbPoolErrorCode[];
  leakKinds: readonly LeakMessage['kind'][];
  discardReasons: readonly string[];
};

/**
 * Meter mode: pool ids past this many (in the order the instrumentation first saw them) get no
 * zero series. sdk-metrics limits an instrument to 2 000 attribute sets by default, and the seven
 * discard reasons' zeros alone would reach it at 286 pool ids (the default `maxPoolSeries` is 200).
 * Producer mode has no such limit: every pool gets them.
 */
export const ZERO_COUNTERS_MAX_POOLS = 250;

/** The counters with zero series. */
export type ZeroField = 'timeouts' | 'acquireErrors' | 'leaks' | 'discarded' | 'slowQueries';

/**
 * A pool's zero series (ZERO_COUNTERS): instrument field and attributes. The store builds them at
 * each collection rather than keeping them, so a removed pool waiting for a collection costs no more.
 */
export function zeroSeriesOf(poolId: string): Array<[ZeroField, Attributes]> {
  const pool = Object.freeze({ [ATTR_DB_CLIENT_CONNECTION_POOL_NAME]: poolId });
  const withKey = (key: string, value: string) => Object.freeze({ [ATTR_DB_CLIENT_CONNECTION_POOL_NAME]: poolId, [key]: value });
  const out: Array<[ZeroField, Attributes]> = [['timeouts', pool]];
  for (const type of ZERO_COUNTERS.acquireErrorTypes) out.push(['acquireErrors', withKey(ATTR_ERROR_TYPE, type)]);
  for (const kind of ZERO_COUNTERS.leakKinds) out.push(['leaks', withKey(ATTR_DB_POOL_LEAK_KIND, kind)]);
  for (const reason of ZERO_COUNTERS.discardReasons) out.push(['discarded', withKey(ATTR_DB_POOL_DISCARD_REASON, reason)]);
  // Slow statements whose operation is not known count under the pool alone: its own series.
  out.push(['slowQueries', pool]);
  return out;
}

/** The gauges, in the order they are observed. */
export const GAUGE_FIELDS: readonly GaugeField[] = ['count', 'idleMax', 'idleMin', 'max', 'pendingRequests', 'pendingCreates'];

/** Where the store reads what it does not record: the live pools. */
export interface PoolMetricSource {
  /**
   * Reports the gauges of the live pools through `observe` (nothing while the instrumentation is
   * disabled) and returns the ids of the pools alive now, whose series are kept.
   */
  observeLivePools(observe: (field: GaugeField, value: number, attributes: Attributes) => void): ReadonlySet<string>;
  /** The store dropped a pool's series (it is gone): forget what was cached for it. */
  forget(poolId: string): void;
}

interface HistogramState {
  readonly counts: number[];
  count: number;
  sum: number;
  min: number;
  max: number;
}

interface Series {
  readonly attributes: Attributes;
  readonly start: HrTime;
  /** Counters: the sum; histograms: the state. */
  value: number | HistogramState;
}

/** One instrument's series of one pool: by attributes object (they are built once and shared), then by content. */
class InstrumentSeries {
  readonly byObject = new WeakMap<Attributes, Series>();
  readonly byKey = new Map<string, Series>();
}

/** Everything recorded for one pool id. */
class PoolSeries {
  readonly start: HrTime = millisToHrTime(Date.now());
  readonly instruments = new Map<MetricField, InstrumentSeries>();
  /** The gauge points observed at the last collection while the pool lived (exported as 0 once it is gone). */
  gauges: [GaugeField, Attributes][] | undefined;
  /** Collection that observed `gauges`. */
  gaugedAt = 0;
}

// sdk-metrics enums, by value (only their types are imported).
const DATA_POINT_HISTOGRAM = 0 as DataPointType.HISTOGRAM;
const DATA_POINT_SUM = 3 as DataPointType.SUM;
const CUMULATIVE = 1 as AggregationTemporality.CUMULATIVE;
const INSTRUMENT_TYPE: Record<MetricKind, InstrumentType> = {
  histogram: 'HISTOGRAM' as InstrumentType.HISTOGRAM,
  counter: 'COUNTER' as InstrumentType.COUNTER,
  gauge: 'OBSERVABLE_UP_DOWN_COUNTER' as InstrumentType.OBSERVABLE_UP_DOWN_COUNTER,
};

/** MetricReader keeps the SDK's resource and ignores a producer's: this one stands in for it. */
export const NO_RESOURCE: Resource = {
  attributes: {},
  merge: (other) => other ?? NO_RESOURCE,
  getRawAttributes: () => [],
};

/** A stable key for attributes whose object is not cached (same scheme as sdk-metrics: sorted entries as JSON). */
function attributesKey(attributes: Attributes): string {
  return JSON.stringify(
    Object.keys(attributes)
      .sort()
      .map((k) => [k, attributes[k]]),
  );
}

/** First bucket whose upper bound is >= value (buckets are (previous, bound]); the last bucket is +Inf. */
function bucketOf(boundaries: readonly number[], value: number): number {
  let lo = 0;
  let hi = boundaries.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (boundaries[mid]! < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Per-pool aggregation of the instrumentation's histograms and counters, exported (with the live
 * pools' gauges) as cumulative data through {@link PoolMetricStore.collect}. A pool id absent from
 * the registry at a collection is exported by that collection (counters and histograms at their
 * last values, gauges at 0) and then dropped: its series stop, and memory is released. With
 * several readers, the first to collect after a pool went away gets its last values.
 */
export class PoolMetricStore implements MetricProducer {
  readonly #pools = new Map<string, PoolSeries>();
  /**
   * Pools reported removed or closed, oldest first, until a collection drops them. Without any
   * collection (no reader attached), past MAX_GONE_POOLS the oldest are dropped unexported.
   */
  readonly #gone = new Set<string>();
  readonly #source: PoolMetricSource;
  readonly #scope: { name: string; version: string };
  readonly #descriptors = new Map<MetricField, MetricData['descriptor']>();
  #collections = 0;

  constructor(source: PoolMetricSource, scope: { name: string; version: string }) {
    this.#source = source;
    this.#scope = scope;
    for (const [field, spec] of Object.entries(METRICS) as [MetricField, MetricSpec][]) {
      const descriptor = {
        name: spec.name,
        description: spec.description,
        unit: spec.unit,
        valueType: spec.valueType,
        type: INSTRUMENT_TYPE[spec.kind],
        advice: spec.boundaries ? { explicitBucketBoundaries: [...spec.boundaries] } : {},
      };
      this.#descriptors.set(field, Object.freeze(descriptor));
    }
  }

  /** Pools with series now (live, or gone and not yet collected). */
  get poolCount(): number {
    return this.#pools.size;
  }

  /** A pool was removed or closed: its series go at the next collection (or sooner, see #gone). */
  retire(poolId: string): void {
    this.#gone.delete(poolId);
    this.#gone.add(poolId);
    if (this.#gone.size <= MAX_GONE_POOLS) return;
    const oldest = this.#gone.values().next().value as string;
    this.#gone.delete(oldest);
    if (this.#pools.delete(oldest)) this.#source.forget(oldest);
  }

  /** A pool id was created (again): it is not gone. */
  revive(poolId: string): void {
    this.#gone.delete(poolId);
  }

  /** An API Histogram that records into the store. */
  histogram(field: MetricField): Histogram {
    const boundaries = METRICS[field].boundaries ?? [];
    return {
      record: (value: number, attributes?: Attributes) => {
        // Negative or NaN values are dropped, as the SDK's histograms do.
        if (!(value >= 0) || attributes === undefined) return;
        const s = this.#series(field, attributes, () => ({
          counts: new Array<number>(boundaries.length + 1).fill(0),
          count: 0,
          sum: 0,
          min: Infinity,
          max: -Infinity,
        }));
        const h = s.value as HistogramState;
        h.count++;
        h.sum += value;
        if (value < h.min) h.min = value;
        if (value > h.max) h.max = value;
        h.counts[bucketOf(boundaries, value)]!++;
      },
    };
  }

  /** An API Counter that records into the store. */
  counter(field: MetricField): Counter {
    return {
      add: (value: number, attributes?: Attributes) => {
        // A monotonic sum: negative or NaN increments are dropped (as the SDK does).
        if (!(value >= 0) || attributes === undefined) return;
        const s = this.#series(field, attributes, () => 0);
        (s.value as number) += value;
      },
    };
  }

  #series(field: MetricField, attributes: Attributes, initial: () => number | HistogramState): Series {
    const poolId = String(attributes[ATTR_DB_CLIENT_CONNECTION_POOL_NAME] ?? '');
    let pool = this.#pools.get(poolId);
    if (pool === undefined) {
      pool = new PoolSeries();
      this.#pools.set(poolId, pool);
    }
    let inst = pool.instruments.get(field);
    if (inst === undefined) {
      inst = new InstrumentSeries();
      pool.instruments.set(field, inst);
    }
    let s = inst.byObject.get(attributes);
    if (s !== undefined) return s;
    const key = attributesKey(attributes);
    s = inst.byKey.get(key);
    if (s === undefined) {
      s = { attributes: Object.isFrozen(attributes) ? attributes : Object.freeze({ ...attributes }), start: millisToHrTime(Date.now()), value: initial() };
      inst.byKey.set(key, s);
    }
    inst.byObject.set(attributes, s);
    return s;
  }

  /** Cumulative data of every pool with series, plus the live pools' gauges; then drops the pools that are gone. */
  async collect(): Promise<CollectionResult> {
    return this.collectNow();
  }

  /** {@link collect}, synchronously. */
  collectNow(): CollectionResult {
    const now = millisToHrTime(Date.now());
    const collection = ++this.#collections;
    const points = new Map<MetricField, DataPoint<number | HistogramPoint>[]>();
    const add = (field: MetricField, p: DataPoint<number | HistogramPoint>) => {
      let list = points.get(field);
      if (list === undefined) points.set(field, (list = []));
      list.push(p);
    };
    const live = this.#source.observeLivePools((field, value, attributes) => {
      const poolId = String(attributes[ATTR_DB_CLIENT_CONNECTION_POOL_NAME] ?? '');
      let pool = this.#pools.get(poolId);
      if (pool === undefined) {
        pool = new PoolSeries();
        this.#pools.set(poolId, pool);
      }
      if (pool.gaugedAt !== collection) {
        pool.gaugedAt = collection;
        pool.gauges = [];
      }
      pool.gauges!.push([field, attributes]);
      add(field, { startTime: pool.start, endTime: now, attributes, value });
    });
    for (const [poolId, pool] of this.#pools) {
      for (const [field, inst] of pool.instruments) {
        for (const s of inst.byKey.values()) {
          const v = s.value;
          add(field, {
            startTime: s.start,
            endTime: now,
            attributes: s.attributes,
            value:
              typeof v === 'number'
                ? v
                : {
                    buckets: { boundaries: [...(METRICS[field].boundaries ?? [])], counts: [...v.counts] },
                    count: v.count,
                    sum: v.sum,
                    min: v.count > 0 ? v.min : undefined,
                    max: v.count > 0 ? v.max : undefined,
                  },
          });
        }
      }
      // The counters of rare outcomes at 0 until their first event (ZERO_COUNTERS).
      for (const [field, attributes] of zeroSeriesOf(poolId)) {
        if (pool.instruments.get(field)?.byKey.has(attributesKey(attributes))) continue;
        add(field, { startTime: pool.start, endTime: now, attributes, value: 0 });
      }
      if (!live.has(poolId)) {
        // Gone: exported this once (its last counts, its gauges at 0), now forgotten. The 0s let
        // an alert tell a pool removed on purpose (last value 0) from one that vanished.
        for (const [field, attributes] of pool.gauges ?? []) add(field, { startTime: pool.start, endTime: now, attributes, value: 0 });
        this.#pools.delete(poolId);
        this.#source.forget(poolId);
      }
    }
    this.#gone.clear();
    const metrics: MetricData[] = [];
    for (const field of Object.keys(METRICS) as MetricField[]) {
      const dataPoints = points.get(field);
      if (dataPoints === undefined) continue;
      const descriptor = this.#descriptors.get(field)!;
      if (METRICS[field].kind === 'histogram') {
        metrics.push({
          descriptor,
          aggregationTemporality: CUMULATIVE,
          dataPointType: DATA_POINT_HISTOGRAM,
          dataPoints: dataPoints as DataPoint<HistogramPoint>[],
        });
      } else {
        metrics.push({
          descriptor,
          aggregationTemporality: CUMULATIVE,
          dataPointType: DATA_POINT_SUM,
          dataPoints: dataPoints as DataPoint<number>[],
          isMonotonic: METRICS[field].kind === 'counter',
        });
      }
    }
    return {
      resourceMetrics: { resource: NO_RESOURCE, scopeMetrics: metrics.length > 0 ? [{ scope: { ...this.#scope }, metrics }] : [] },
      errors: [],
    };
  }
}
