/**
 * OpenTelemetry instrumentation for db-pool-otel. It patches nothing: `enable()` subscribes to the
 * core's `db-pool:*` diagnostics channels (src/channels.ts) and `disable()` unsubscribes, the way
 * `@opentelemetry/instrumentation-undici` works. With the instrumentation disabled (or absent) the
 * channels have no subscribers and the core publishes nothing.
 *
 * Spans: `acquire <pool>` (INTERNAL), one CLIENT span per query named by its `db.query.summary`,
 * and `connect <pool>` (CLIENT) for each new physical connection. Metrics: the database-client
 * connection-pool instruments of the semantic conventions plus `db_pool.*`; counts, limits and
 * pending requests are observed from the live pools, so they are right for any number of pools
 * and survive a meter provider being replaced.
 *
 * Metrics leave in one of two ways (`metricsExport`):
 * - `'meter'` (default): instruments of the meter provider. sdk-metrics keeps every attribute set
 *   it was ever given, so a pool id's series (and their memory) outlive the pool; the number of
 *   pool ids given their own series is capped by `maxPoolSeries`, later ones share `_OTHER`.
 * - `'producer'`: the instrumentation aggregates per pool itself (pool-metrics.ts) and readers pull
 *   through `metricProducer`; a removed pool's series are exported once more, then dropped.
 *
 * In both, a pool's counters of rare outcomes (acquire timeouts and errors, leaks, discarded
 * connections, slow queries: ZERO_COUNTERS in pool-metrics.ts) are exported at 0 from the start,
 * so Prometheus sees their first event and dashboards have data before it.
 */
import dc from 'node:diagnostics_channel';
import {
  context,
  isSpanContextValid,
  SpanKind,
  trace,
  type Attributes,
  type BatchObservableCallback,
  type BatchObservableResult,
  type Context,
  type Counter,
  type Histogram,
  type Meter,
  type ObservableUpDownCounter,
  type Span,
  type SpanContext,
} from '@opentelemetry/api';
import { suppressTracing } from '@opentelemetry/core';
import { InstrumentationBase, isWrapped } from '@opentelemetry/instrumentation';
import pg from 'pg';
import {
  CHANNELS,
  describeQuery,
  livePoolStatuses,
  type AcquireMessage,
  type ConnectMessage,
  type LeakMessage,
  type PoolEventMessage,
  type QueryDescription,
  type QueryMessage,
  type ReleaseMessage,
  type ServerInfo,
  type SlowQueryMessage,
} from '../src/index.js';
import { releaseDriverCallRunner, releaseTraceIdProvider, retainDriverCallRunner, retainTraceIdProvider, type DriverCallRunner } from '../src/trace-context.js';
import {
  ATTR_DB_CLIENT_CONNECTION_POOL_NAME,
  ATTR_DB_CLIENT_CONNECTION_STATE,
  ATTR_DB_COLLECTION_NAME,
  ATTR_DB_NAMESPACE,
  ATTR_DB_OPERATION_NAME,
  ATTR_DB_POOL_ACQUIRE_MUST_WAIT,
  ATTR_DB_POOL_ACQUIRE_PENDING,
  ATTR_DB_POOL_ACQUIRE_WAIT_MS,
  ATTR_DB_POOL_CONNECT_ATTEMPT,
  ATTR_DB_POOL_CONNECTION_ID,
  ATTR_DB_POOL_DISCARD_REASON,
  ATTR_DB_POOL_EVENT,
  ATTR_DB_POOL_LEAK_KIND,
  ATTR_DB_POOL_LINK_SERVED_BY_LOAN,
  ATTR_DB_POOL_LOAN_ID,
  ATTR_DB_POOL_QUERY_ROW_COUNT,
  ATTR_DB_POOL_QUERY_VALUES_COUNT,
  ATTR_DB_QUERY_SUMMARY,
  ATTR_DB_QUERY_TEXT,
  ATTR_DB_RESPONSE_RETURNED_ROWS,
  ATTR_DB_RESPONSE_STATUS_CODE,
  ATTR_DB_SYSTEM_NAME,
  ATTR_ERROR_TYPE,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  DB_CLIENT_CONNECTION_STATE_VALUE_IDLE,
  DB_CLIENT_CONNECTION_STATE_VALUE_USED,
  DB_SYSTEM_NAME_VALUE_POSTGRESQL,
} from './semconv.js';
import type { MetricProducer, CollectionResult } from '@opentelemetry/sdk-metrics';
import {
  GAUGE_FIELDS,
  METRICS,
  NO_RESOURCE,
  OPERATION_DURATION_BUCKETS,
  POOL_TIME_BUCKETS,
  PoolMetricStore,
  ZERO_COUNTERS_MAX_POOLS,
  zeroSeriesOf,
  type GaugeField,
  type MetricSpec,
  type PoolMetricSource,
} from './pool-metrics.js';
import type { AcquireSpansMode, DbPoolInstrumentationConfig, MetricsExportMode, QueryTextMode } from './types.js';
import { ServerBudgetGauges } from './server-budget-metrics.js';
import {
  acquireErrorMessage,
  DEFAULT_MAX_POOL_SERIES,
  dropOldestIfFull,
  errorType,
  markError,
  MAX_ATTR_VARIANTS,
  MAX_QUERY_ATTR_POOLS,
  MAX_TRACKED_LOANS,
  POOL_NAME_OTHER,
  seconds,
  withSortedKeys,
} from './utils.js';
import { PACKAGE_NAME, PACKAGE_VERSION } from './version.js';

export { OPERATION_DURATION_BUCKETS, POOL_TIME_BUCKETS };

/** What the instrumentation records into: meter instruments, or the per-pool store's. */
interface Instruments {
  operationDuration: Histogram;
  createTime: Histogram;
  waitTime: Histogram;
  useTime: Histogram;
  timeouts: Counter;
  acquireErrors: Counter;
  createErrors: Counter;
  discarded: Counter;
  slowQueries: Counter;
  leaks: Counter;
  events: Counter;
}

/** The meter mode's gauges and the batch callback observing them. */
interface Observation {
  meter: Meter;
  callback: BatchObservableCallback;
  gauges: Record<GaugeField, ObservableUpDownCounter>;
}

/** Gauge readings summed over the pools that share one attribute set, in GAUGE_FIELDS order but `count` split: idle, used, then the rest. */
type GaugeSums = number[];

/**
 * Runs a driver call with tracing suppressed when a pg instrumentation has wrapped the driver (it
 * wraps `Client.prototype.query`; pg's ESM and CommonJS entries share that prototype), so it makes
 * no second span for a statement or connect our spans describe. Otherwise the call runs as is.
 */
const suppressWhenPgPatched: DriverCallRunner = (call) =>
  isWrapped(pg.Client.prototype.query) ? context.with(suppressTracing(context.active()), call) : call();

/** How a session with standard_conforming_strings = off reads '...' strings (a backslash escapes). */
const NON_STANDARD_STRINGS = { standardConformingStrings: false } as const;
const EMPTY_COLLECTION: CollectionResult = { resourceMetrics: { resource: NO_RESOURCE, scopeMetrics: [] }, errors: [] };

/** Attribute sets of one pool's metrics, built once (frozen and shared). */
class PoolAttrs {
  readonly pool: Attributes;
  readonly idle: Attributes;
  readonly used: Attributes;
  /** The pool name on the metrics: the pool id, or POOL_NAME_OTHER past the meter mode's cap. */
  readonly name: string;
  /** Meter mode: its gauges were observed, so they are observed (as 0 when the pool is gone) from now on. */
  gauged = false;
  /** Meter mode: its counters of rare outcomes were started at 0 on the current instruments (ZERO_COUNTERS). */
  zeroed = false;
  /** Whether they are: meter mode, and not past ZERO_COUNTERS_MAX_POOLS pool ids (producer mode: the store does it). */
  zeroable = false;
  readonly #poolId: string;
  /** `with()`'s sets: attribute key, then value. */
  #variants: Map<string, Map<string, Attributes>> | undefined;

  constructor(poolId: string) {
    this.name = poolId;
    this.#poolId = poolId;
    this.pool = Object.freeze({ [ATTR_DB_CLIENT_CONNECTION_POOL_NAME]: poolId });
    this.idle = Object.freeze({
      [ATTR_DB_CLIENT_CONNECTION_POOL_NAME]: poolId,
      [ATTR_DB_CLIENT_CONNECTION_STATE]: DB_CLIENT_CONNECTION_STATE_VALUE_IDLE,
    });
    this.used = Object.freeze({
      [ATTR_DB_CLIENT_CONNECTION_POOL_NAME]: poolId,
      [ATTR_DB_CLIENT_CONNECTION_STATE]: DB_CLIENT_CONNECTION_STATE_VALUE_USED,
    });
  }

  /**
   * The pool's name plus one attribute with a bounded set of values, built once per value (up to
   * MAX_ATTR_VARIANTS a key, then per call). Every key used sorts after the pool name's, so the
   * keys are in sorted order.
   */
  with(key: string, value: string): Attributes {
    const variants = (this.#variants ??= new Map());
    let byValue = variants.get(key);
    if (byValue === undefined) {
      byValue = new Map();
      variants.set(key, byValue);
    }
    let a = byValue.get(value);
    if (a === undefined) {
      a = Object.freeze({ [ATTR_DB_CLIENT_CONNECTION_POOL_NAME]: this.#poolId, [key]: value });
      if (byValue.size < MAX_ATTR_VARIANTS) byValue.set(value, a);
    }
    return a;
  }
}

/** Span and metric attributes of one statement on one pool, built once and shared (frozen). */
interface QueryAttrs {
  spanName: string;
  span: Attributes;
  metric: Attributes;
  serverAddress: string | undefined;
  serverPort: number | undefined;
  database: string | undefined;
  /** `metric` plus the failure attributes, by failure (see failedQueryAttrs); bounded. */
  failures: Map<string, Attributes> | undefined;
}

interface QueryRecord {
  span: Span | undefined;
  start: number;
  attrs: QueryAttrs;
}

interface LoanTrace {
  loanId: number;
  spanContext: SpanContext;
  /** The loan's acquire wait, when it had no acquire span: it goes on the loan's first statement span. */
  waitMs: number | undefined;
}

interface Subscription {
  unsubscribe(): void;
}

interface TracingHandlers<M> {
  start: (m: M) => void;
  /** The operation finished, with `error` set when it failed. */
  done: (m: M) => void;
  /** More work when the synchronous part returns (before `done` when it threw). */
  end?: (m: M) => void;
}

const activeTraceId = (): string | undefined => {
  const ctx = trace.getActiveSpan()?.spanContext();
  return ctx && isSpanContextValid(ctx) ? ctx.traceId : undefined;
};

/**
 * Turns what the pools do into spans and metrics.
 *
 * @example
 * const sdk = new NodeSDK({ instrumentations: [new DbPoolInstrumentation({ queryText: 'sanitized' })] });
 * sdk.start();
 */
export class DbPoolInstrumentation extends InstrumentationBase<DbPoolInstrumentationConfig> {
  // InstrumentationBase's constructor calls setConfig(), _updateMetricInstruments() and enable()
  // before this class's field initializers would run (and would then reset them), so every field
  // touched there is `declare`d (no emitted initializer) and initialised lazily.
  declare private _subscriptions: Subscription[] | undefined;
  declare private _instruments: Instruments | undefined;
  declare private _observation: Observation | undefined;
  /** The server's connection budget: observable gauges on the meter, in both export modes (server-budget-metrics.ts). */
  declare private _budgetGauges: ServerBudgetGauges | undefined;
  /**
   * Key of this instance's state for an operation in flight (its span, or its query record),
   * kept on the channel message itself: a WeakMap entry set and deleted per operation costs a
   * hash-table insert and delete each time, and ephemeron work in every collection.
   */
  declare private _slot: symbol | undefined;
  /**
   * Metric attribute sets by pool id. Meter mode: at most `maxPoolSeries` entries, never dropped
   * (the SDK keeps their series anyway); pool ids past the cap share `_otherAttrs`. Producer mode:
   * the pools the store has series for, dropped with them.
   */
  declare private _poolAttrs: Map<string, PoolAttrs> | undefined;
  declare private _otherAttrs: PoolAttrs | undefined;
  /**
   * Span and metric attributes of statements, by pool id (the real one), then description. Reset
   * by setConfig() (which the base constructor calls): cached span attributes depend on the config.
   * A pool's entry goes when the pool is removed or closed; bounded by MAX_QUERY_ATTR_POOLS.
   */
  declare private _queryAttrs: Map<string, WeakMap<QueryDescription, QueryAttrs>>;
  declare private _exportMode: MetricsExportMode;
  declare private _maxPoolSeries: number;
  /** Producer mode: the per-pool aggregation behind `metricProducer`. */
  declare private _store: PoolMetricStore | undefined;
  declare private _producer: MetricProducer | undefined;
  /** Per physical connection: the loan now holding it and the span context of that loan's acquire. */
  declare private _loanTraces: Map<number, LoanTrace> | undefined;
  /** The acquire span whose synchronous part is running (a connect started now is its child). */
  declare private _acquiringPool: string | undefined;
  declare private _acquiringSpan: Span | undefined;
  declare private _queryText: QueryTextMode;
  declare private _acquireSpans: AcquireSpansMode;
  declare private _connectSpansOn: boolean;
  /** Whether enable() retained the driver-call runner (released by disable()). `declare`: enable() runs inside super(). */
  declare private _suppressing: boolean | undefined;

  constructor(config: DbPoolInstrumentationConfig = {}) {
    super(PACKAGE_NAME, PACKAGE_VERSION, config);
  }

  /** No modules to hook: the core publishes on diagnostics channels. */
  protected override init(): [] {
    return [];
  }

  override setConfig(config: DbPoolInstrumentationConfig = {}): void {
    super.setConfig(config);
    const q = config.queryText;
    this._queryText = q === 'raw' || q === 'off' ? q : 'sanitized';
    const a = config.acquireSpans;
    this._acquireSpans = a === true || a === 'always' ? 'always' : a === false || a === 'never' ? 'never' : 'waited';
    this._connectSpansOn = config.connectSpans !== false;
    // Cached span attributes depend on the config.
    this._queryAttrs = new Map();
    const max = config.maxPoolSeries;
    this._maxPoolSeries = typeof max === 'number' && max >= 0 ? Math.floor(max) : DEFAULT_MAX_POOL_SERIES;
    const mode: MetricsExportMode = config.metricsExport === 'producer' ? 'producer' : 'meter';
    const previous = this._exportMode;
    this._exportMode = mode;
    if (previous !== undefined && previous !== mode) {
      // Recorded so far stays where it went; from now on, the other way.
      this._poolAttrs = undefined;
      this._otherAttrs = undefined;
      this._store = undefined;
      this._updateMetricInstruments();
    }
  }

  /**
   * With `metricsExport: 'producer'`: the pools' metrics, for a metric reader to pull. Pass it to
   * the reader that exports them, e.g. `new PrometheusExporter({ metricProducers: [inst.metricProducer] })`
   * or `new PeriodicExportingMetricReader({ exporter, metricProducers: [inst.metricProducer] })`.
   * The data is cumulative. In the default meter mode it produces nothing (the meter provider's
   * readers export the metrics).
   */
  get metricProducer(): MetricProducer {
    return (this._producer ??= {
      collect: async () =>
        this._exportMode === 'producer'
          ? this._budgetGaugesOf().appendTo(this._storeOf().collectNow(), { name: PACKAGE_NAME, version: PACKAGE_VERSION })
          : EMPTY_COLLECTION,
    });
  }

  /** The server-budget gauges (server-budget-metrics.ts), created on first use. */
  private _budgetGaugesOf(): ServerBudgetGauges {
    return (this._budgetGauges ??= new ServerBudgetGauges(
      () => this._subscriptions !== undefined,
      () => this._maxPoolSeries,
    ));
  }

  /** The producer mode's store, created on first use. */
  private _storeOf(): PoolMetricStore {
    if (this._store !== undefined) return this._store;
    const source: PoolMetricSource = {
      observeLivePools: (observe) => this._observeForStore(observe),
      forget: (poolId) => this._forgetPool(poolId),
    };
    return (this._store = new PoolMetricStore(source, { name: PACKAGE_NAME, version: PACKAGE_VERSION }));
  }

  override enable(): void {
    if (this._subscriptions) return;
    super.enable();
    this._slot ??= Symbol('db-pool-otel instrumentation state');
    this._poolAttrs ??= new Map();
    this._loanTraces ??= new Map();
    const subs: Subscription[] = [];
    subs.push(
      subscribeTracing<AcquireMessage>(CHANNELS.acquire, {
        start: (m) => this._onAcquireStart(m),
        end: () => {
          // The acquire's synchronous part is over: a connect started from now on is not its child.
          this._acquiringPool = undefined;
          this._acquiringSpan = undefined;
        },
        done: (m) => this._onAcquireDone(m),
      }),
      subscribeTracing<QueryMessage>(CHANNELS.query, {
        start: (m) => this._onQueryStart(m),
        done: (m) => this._onQueryDone(m),
      }),
      subscribeTracing<ConnectMessage>(CHANNELS.connect, {
        start: (m) => this._onConnectStart(m),
        done: (m) => this._onConnectDone(m),
      }),
      subscribePlain<ReleaseMessage>(CHANNELS.release, (m) => this._onRelease(m)),
      subscribePlain<PoolEventMessage>(CHANNELS.pool, (m) => this._onPoolEvent(m)),
      subscribePlain<LeakMessage>(CHANNELS.leak, (m) => this._onLeak(m)),
      subscribePlain<SlowQueryMessage>(CHANNELS.slowQuery, (m) => this._onSlowQuery(m)),
    );
    this._subscriptions = subs;
    retainTraceIdProvider(activeTraceId);
    this._suppressing = this.getConfig().suppressDriverSpans !== false;
    if (this._suppressing) retainDriverCallRunner(suppressWhenPgPatched);
  }

  override disable(): void {
    const subs = this._subscriptions;
    if (!subs) return;
    super.disable();
    this._subscriptions = undefined;
    for (const s of subs) s.unsubscribe();
    this._loanTraces?.clear();
    this._acquiringPool = undefined;
    this._acquiringSpan = undefined;
    releaseTraceIdProvider();
    if (this._suppressing) releaseDriverCallRunner();
    this._suppressing = false;
  }

  /**
   * (Re)creates the instruments on the current meter; called again by setMeterProvider(). In
   * producer mode the instruments are the store's and the meter is not used.
   */
  protected override _updateMetricInstruments(): void {
    // Meter mode: gauges on the meter; producer mode: appended to the producer's collections.
    if (this._exportMode === 'producer') this._budgetGaugesOf().detach();
    else this._budgetGaugesOf().attach(this.meter);
    const previous = this._observation;
    if (previous) previous.meter.removeBatchObservableCallback(previous.callback, Object.values(previous.gauges));
    this._observation = undefined;
    // New instruments: every pool's zero series again, on them (at its next event or collection).
    for (const a of this._poolAttrs?.values() ?? []) a.zeroed = false;
    if (this._otherAttrs !== undefined) this._otherAttrs.zeroed = false;

    if (this._exportMode === 'producer') {
      const store = this._storeOf();
      this._instruments = {
        operationDuration: store.histogram('operationDuration'),
        createTime: store.histogram('createTime'),
        waitTime: store.histogram('waitTime'),
        useTime: store.histogram('useTime'),
        timeouts: store.counter('timeouts'),
        acquireErrors: store.counter('acquireErrors'),
        createErrors: store.counter('createErrors'),
        discarded: store.counter('discarded'),
        slowQueries: store.counter('slowQueries'),
        leaks: store.counter('leaks'),
        events: store.counter('events'),
      };
      return;
    }

    const meter = this.meter;
    const options = (spec: MetricSpec) => ({ description: spec.description, unit: spec.unit, valueType: spec.valueType });
    const histogram = (spec: MetricSpec) =>
      meter.createHistogram(spec.name, { ...options(spec), advice: { explicitBucketBoundaries: [...(spec.boundaries ?? [])] } });
    const counter = (spec: MetricSpec) => meter.createCounter(spec.name, options(spec));
    const gauge = (spec: MetricSpec) => meter.createObservableUpDownCounter(spec.name, options(spec));

    this._instruments = {
      operationDuration: histogram(METRICS.operationDuration),
      createTime: histogram(METRICS.createTime),
      waitTime: histogram(METRICS.waitTime),
      useTime: histogram(METRICS.useTime),
      timeouts: counter(METRICS.timeouts),
      acquireErrors: counter(METRICS.acquireErrors),
      createErrors: counter(METRICS.createErrors),
      discarded: counter(METRICS.discarded),
      slowQueries: counter(METRICS.slowQueries),
      leaks: counter(METRICS.leaks),
      events: counter(METRICS.events),
    };
    const gauges = {} as Record<GaugeField, ObservableUpDownCounter>;
    for (const field of GAUGE_FIELDS) gauges[field] = gauge(METRICS[field]);
    const callback: BatchObservableCallback = (result) => this._observePools(result, gauges);
    meter.addBatchObservableCallback(callback, Object.values(gauges));
    this._observation = { meter, callback, gauges };
  }

  // ---------------------------------------------------------------------------------------------
  // Observed from the live pools
  // ---------------------------------------------------------------------------------------------

  /** The live pools' gauge readings, summed by metric attribute set; and the live pool ids. */
  private _gaugeSums(): { sums: Map<PoolAttrs, GaugeSums>; live: Set<string> } {
    const sums = new Map<PoolAttrs, GaugeSums>();
    const live = new Set<string>();
    for (const s of livePoolStatuses()) {
      live.add(s.poolId);
      const a = this._attrsOf(s.poolId);
      let g = sums.get(a);
      if (g === undefined) sums.set(a, (g = [0, 0, 0, 0, 0, 0, 0]));
      g[0]! += s.idle;
      g[1]! += s.active;
      g[2]! += s.max; // idle.max: every connection may be idle
      g[3]! += s.min;
      g[4]! += s.max;
      g[5]! += s.waiting;
      g[6]! += s.pendingCreates;
    }
    return { sums, live };
  }

  /** Reports one attribute set's gauge readings (`count` twice: idle and used). */
  private static _emitGauges(a: PoolAttrs, g: GaugeSums, observe: (field: GaugeField, value: number, attributes: Attributes) => void): void {
    observe('count', g[0]!, a.idle);
    observe('count', g[1]!, a.used);
    for (let i = 1; i < GAUGE_FIELDS.length; i++) observe(GAUGE_FIELDS[i]!, g[i + 1]!, a.pool);
  }

  /**
   * Meter mode's batch callback. sdk-metrics keeps exporting the last value of an attribute set an
   * observable stops reporting, so a pool id once observed is observed from then on: its live
   * readings, or 0 once it is gone (a removed pool would otherwise look busy forever).
   */
  private _observePools(result: BatchObservableResult, gauges: Record<GaugeField, ObservableUpDownCounter>): void {
    if (!this._subscriptions) return; // disabled: report nothing
    const { sums, live } = this._gaugeSums();
    const observe = (field: GaugeField, value: number, attributes: Attributes) => result.observe(gauges[field], value, attributes);
    const zeros: GaugeSums = [0, 0, 0, 0, 0, 0, 0];
    const report = (a: PoolAttrs) => {
      const g = sums.get(a);
      if (g !== undefined) a.gauged = true;
      if (a.gauged) DbPoolInstrumentation._emitGauges(a, g ?? zeros, observe);
    };
    for (const a of this._poolAttrs?.values() ?? []) report(a);
    if (this._otherAttrs !== undefined) report(this._otherAttrs);
    this._pruneQueryAttrs(live);
  }

  /** Producer mode: the live pools' gauges for the store (none while disabled), and the live pool ids. */
  private _observeForStore(observe: (field: GaugeField, value: number, attributes: Attributes) => void): ReadonlySet<string> {
    const { sums, live } = this._gaugeSums();
    if (this._subscriptions) for (const [a, g] of sums) DbPoolInstrumentation._emitGauges(a, g, observe);
    this._pruneQueryAttrs(live);
    // The store keeps its own copies of the attributes: the sets of pools that are gone can go now.
    const attrs = this._poolAttrs;
    if (attrs !== undefined) for (const poolId of attrs.keys()) if (!live.has(poolId)) attrs.delete(poolId);
    return live;
  }

  /** Producer mode: the store dropped a pool's series. */
  private _forgetPool(poolId: string): void {
    this._poolAttrs?.delete(poolId);
    this._queryAttrs.delete(poolId);
  }

  /** Drops cached statement attributes of pools that are gone. */
  private _pruneQueryAttrs(live: ReadonlySet<string>): void {
    for (const poolId of this._queryAttrs.keys()) if (!live.has(poolId)) this._queryAttrs.delete(poolId);
  }

  /**
   * The metric attribute sets of a pool. In meter mode only the first `maxPoolSeries` pool ids get
   * their own (sdk-metrics would keep each one's series for the life of the process); later ones
   * share the `_OTHER` pool name.
   */
  private _attrsOf(poolId: string): PoolAttrs {
    const cache = (this._poolAttrs ??= new Map());
    let a = cache.get(poolId);
    if (a === undefined) {
      if (this._exportMode !== 'producer' && cache.size >= this._maxPoolSeries) {
        if (this._otherAttrs === undefined) {
          this._otherAttrs = new PoolAttrs(POOL_NAME_OTHER);
          this._otherAttrs.zeroable = true;
        }
        a = this._otherAttrs;
      } else {
        a = new PoolAttrs(poolId);
        a.zeroable = this._exportMode !== 'producer' && cache.size < ZERO_COUNTERS_MAX_POOLS;
        cache.set(poolId, a);
      }
    }
    if (!a.zeroed && a.zeroable) this._zeroCounters(a);
    return a;
  }

  /**
   * Meter mode: starts a pool's counters of rare outcomes at 0 (ZERO_COUNTERS), once per pool and
   * set of instruments, and only while enabled: the first timeout, leak or discard is then an
   * increase Prometheus sees, and the dashboard's panels have data before it. (Producer mode: the
   * store exports them with each pool.)
   */
  private _zeroCounters(a: PoolAttrs): void {
    const inst = this._instruments;
    if (inst === undefined || this._subscriptions === undefined || this._exportMode === 'producer') return;
    a.zeroed = true;
    for (const [field, attributes] of zeroSeriesOf(a.name)) inst[field].add(0, attributes);
  }

  /** The span parent for a new operation, or undefined when a parent is required and missing. */
  private _parent(ctx: Context): Context | undefined {
    if (this._config.requireParentSpan && trace.getSpan(ctx) === undefined) return undefined;
    return ctx;
  }

  // ---------------------------------------------------------------------------------------------
  // db-pool:acquire
  // ---------------------------------------------------------------------------------------------

  private _onAcquireStart(m: AcquireMessage): void {
    // A loan served at once by an idle connection is the common case: its statement span says it all.
    if (this._acquireSpans === 'never' || (this._acquireSpans === 'waited' && !m.mustWait)) return;
    // Synchronously in the caller's async context: context.active() is the caller's.
    const parent = this._parent(context.active());
    if (parent === undefined) return;
    const span = this.tracer.startSpan(
      `acquire ${m.poolId}`,
      {
        kind: SpanKind.INTERNAL,
        attributes: {
          [ATTR_DB_SYSTEM_NAME]: DB_SYSTEM_NAME_VALUE_POSTGRESQL,
          [ATTR_DB_CLIENT_CONNECTION_POOL_NAME]: m.poolId,
          [ATTR_DB_POOL_ACQUIRE_PENDING]: m.pendingAtStart,
          [ATTR_DB_POOL_ACQUIRE_MUST_WAIT]: m.mustWait,
        },
      },
      parent,
    );
    this._put(m, span);
    this._acquiringPool = m.poolId;
    this._acquiringSpan = span;
  }

  private _onAcquireDone(m: AcquireMessage): void {
    const inst = this._instruments!;
    const span = this._take<Span>(m);
    const attrs = this._attrsOf(m.poolId);

    if (m.error !== undefined) {
      const type = errorType(m.error);
      if (type === 'ACQUIRE_TIMEOUT') inst.timeouts.add(1, attrs.pool);
      inst.acquireErrors.add(1, attrs.with(ATTR_ERROR_TYPE, type));
      if (span !== undefined) {
        markError(span, type, acquireErrorMessage(m.error, type));
        span.end();
      }
      return;
    }

    if (m.waitMs !== undefined) inst.waitTime.record(seconds(m.waitMs), attrs.pool);
    let spanContext: SpanContext | undefined;
    if (span !== undefined) {
      if (span.isRecording()) {
        if (m.waitMs !== undefined) span.setAttribute(ATTR_DB_POOL_ACQUIRE_WAIT_MS, m.waitMs);
        if (m.connectionId !== undefined) span.setAttribute(ATTR_DB_POOL_CONNECTION_ID, m.connectionId);
        if (m.loanId !== undefined) span.setAttribute(ATTR_DB_POOL_LOAN_ID, m.loanId);
        if (m.servedByLoanId !== undefined && m.connectionId !== undefined) {
          // Waited, and was served by the connection another loan released: link to that loan.
          const behind = this._loanTraces!.get(m.connectionId);
          if (behind !== undefined && behind.loanId === m.servedByLoanId) {
            span.addLink({ context: behind.spanContext, attributes: { [ATTR_DB_POOL_LINK_SERVED_BY_LOAN]: m.servedByLoanId } });
          }
        }
      }
      spanContext = span.spanContext();
      span.end();
    } else {
      // No acquire span (acquireSpans off, or no parent): the caller's span stands for the loan.
      spanContext = trace.getSpan(context.active())?.spanContext();
    }
    if (m.connectionId !== undefined && m.loanId !== undefined)
      this._trackLoan(m.connectionId, m.loanId, spanContext, span === undefined ? m.waitMs : undefined);
  }

  /** Keeps an operation's state on its message, under this instance's own symbol. */
  private _put<S>(m: object, state: S): void {
    (m as Record<symbol, unknown>)[this._slot!] = state;
  }

  /** The state `_put` kept for the message, once (the slot is emptied, not deleted, so the message keeps its shape). */
  private _take<S>(m: object): S | undefined {
    const holder = m as Record<symbol, unknown>;
    const state = holder[this._slot!] as S | undefined;
    if (state !== undefined) holder[this._slot!] = undefined;
    return state;
  }

  private _trackLoan(connectionId: number, loanId: number, spanContext: SpanContext | undefined, waitMs: number | undefined): void {
    const loans = this._loanTraces!;
    if (spanContext === undefined || !isSpanContextValid(spanContext)) {
      loans.delete(connectionId);
      return;
    }
    const entry = loans.get(connectionId);
    if (entry !== undefined) {
      entry.loanId = loanId;
      entry.spanContext = spanContext;
      entry.waitMs = waitMs;
      return;
    }
    dropOldestIfFull(loans, MAX_TRACKED_LOANS);
    loans.set(connectionId, { loanId, spanContext, waitMs });
  }

  // ---------------------------------------------------------------------------------------------
  // db-pool:release
  // ---------------------------------------------------------------------------------------------

  private _onRelease(m: ReleaseMessage): void {
    const inst = this._instruments!;
    const attrs = this._attrsOf(m.poolId);
    inst.useTime.record(seconds(m.useMs), attrs.pool);
    if (m.destroyed) {
      // Nobody can be served by this connection any more.
      this._loanTraces!.delete(m.connectionId);
      inst.discarded.add(1, attrs.with(ATTR_DB_POOL_DISCARD_REASON, m.reason ?? 'unknown'));
    }
  }

  // ---------------------------------------------------------------------------------------------
  // db-pool:query
  // ---------------------------------------------------------------------------------------------

  private _onQueryStart(m: QueryMessage): void {
    const d = describeQuery(m.text, m.standardConformingStrings === false ? NON_STANDARD_STRINGS : undefined);
    const attrs = this._attrsOfQuery(m, d);
    let span: Span | undefined;
    const parent = this._parent(context.active());
    if (parent !== undefined) {
      span = this.tracer.startSpan(attrs.spanName, { kind: SpanKind.CLIENT, attributes: attrs.span }, parent);
      if (span.isRecording()) {
        span.setAttribute(ATTR_DB_POOL_CONNECTION_ID, m.connectionId);
        span.setAttribute(ATTR_DB_POOL_QUERY_VALUES_COUNT, m.valuesCount);
        // The loan's acquire had no span of its own: its wait goes on the loan's first statement.
        const loan = this._loanTraces!.get(m.connectionId);
        if (loan !== undefined && loan.loanId === m.loanId && loan.waitMs !== undefined) {
          span.setAttribute(ATTR_DB_POOL_ACQUIRE_WAIT_MS, loan.waitMs);
          loan.waitMs = undefined;
        }
        const hook = this._config.requestHook;
        if (hook !== undefined) {
          this._runHook('requestHook', hook, span, {
            poolId: m.poolId,
            connectionId: m.connectionId,
            loanId: m.loanId,
            text: m.text,
            description: d,
            valuesCount: m.valuesCount,
            database: m.database,
            serverAddress: m.serverAddress,
            serverPort: m.serverPort,
          });
        }
      }
    }
    this._put<QueryRecord>(m, { span, start: performance.now(), attrs });
  }

  private _onQueryDone(m: QueryMessage): void {
    const rec = this._take<QueryRecord>(m);
    if (rec === undefined) return; // started before enable(), or already finished
    const durationMs = performance.now() - rec.start;
    const type = m.error !== undefined ? errorType(m.error, m.sqlState) : undefined;
    this._instruments!.operationDuration.record(seconds(durationMs), type === undefined ? rec.attrs.metric : failedQueryAttrs(rec.attrs, type, m.sqlState));

    const span = rec.span;
    if (span === undefined) return;
    if (span.isRecording()) {
      if (type !== undefined) {
        if (m.sqlState !== undefined) span.setAttribute(ATTR_DB_RESPONSE_STATUS_CODE, m.sqlState);
        // The server's message can quote values from the statement: the status carries the type only.
        markError(span, type);
      } else if (typeof m.rowCount === 'number') {
        span.setAttribute(ATTR_DB_POOL_QUERY_ROW_COUNT, m.rowCount);
        if (m.command === 'SELECT' || m.command === 'FETCH') span.setAttribute(ATTR_DB_RESPONSE_RETURNED_ROWS, m.rowCount);
      }
      const hook = this._config.responseHook;
      if (hook !== undefined) {
        this._runHook('responseHook', hook, span, {
          poolId: m.poolId,
          connectionId: m.connectionId,
          rowCount: m.rowCount,
          command: m.command,
          error: m.error,
          sqlState: m.sqlState,
          durationMs,
        });
      }
    }
    span.end();
  }

  /**
   * Runs a user's hook: one that throws is logged and changes nothing else. A hook may be `async`
   * (its type returns void, which an async function satisfies): a returned promise, or any
   * thenable, is not waited for, but its rejection is logged the same way instead of becoming an
   * unhandled rejection (which kills the process under Node's default `--unhandled-rejections=throw`).
   */
  private _runHook<I>(name: 'requestHook' | 'responseHook', hook: (span: Span, info: I) => void, span: Span, info: I): void {
    let returned: unknown;
    try {
      returned = (hook as (span: Span, info: I) => unknown)(span, info);
    } catch (err) {
      this._diag.error(`${name} threw`, err);
      return;
    }
    if (returned === undefined || returned === null) return;
    if (typeof returned !== 'object' && typeof returned !== 'function') return;
    try {
      // Read `then` once (a getter may throw, or answer differently the second time).
      const then = (returned as { then?: unknown }).then;
      if (typeof then === 'function') {
        (then as (onFulfilled: undefined, onRejected: (err: unknown) => void) => unknown).call(returned, undefined, (err: unknown) => {
          this._diag.error(`${name} rejected`, err);
        });
      }
    } catch (err) {
      this._diag.error(`${name} returned a thenable that threw`, err);
    }
  }

  /** Span and metric attributes of a statement on a pool, built on first use and shared after. */
  private _attrsOfQuery(m: QueryMessage, d: QueryDescription): QueryAttrs {
    const cache = this._queryAttrs;
    let byDescription = cache.get(m.poolId);
    if (byDescription === undefined) {
      dropOldestIfFull(cache, MAX_QUERY_ATTR_POOLS);
      byDescription = new WeakMap();
      cache.set(m.poolId, byDescription);
    }
    let a = byDescription.get(d);
    if (a !== undefined && a.serverAddress === m.serverAddress && a.serverPort === m.serverPort && a.database === m.database) {
      return a;
    }
    const span = serverAttrs(m);
    if (d.operation !== undefined) span[ATTR_DB_OPERATION_NAME] = d.operation;
    if (d.collection !== undefined) span[ATTR_DB_COLLECTION_NAME] = d.collection;
    // The metric's pool name is the series name (the pool id, or _OTHER past the meter mode's cap).
    const metric: Attributes = { ...span, [ATTR_DB_CLIENT_CONNECTION_POOL_NAME]: this._attrsOf(m.poolId).name };
    if (d.operation !== undefined) span[ATTR_DB_QUERY_SUMMARY] = d.summary;
    if (this._queryText === 'sanitized') span[ATTR_DB_QUERY_TEXT] = d.sanitized;
    else if (this._queryText === 'raw') span[ATTR_DB_QUERY_TEXT] = m.text;
    a = {
      spanName: d.operation !== undefined ? d.summary : DB_SYSTEM_NAME_VALUE_POSTGRESQL,
      span: Object.freeze(span),
      // Sorted once here, so each measurement's attribute hash in sdk-metrics sorts a sorted list.
      metric: Object.freeze(withSortedKeys(metric)),
      serverAddress: m.serverAddress,
      serverPort: m.serverPort,
      database: m.database,
      failures: undefined,
    };
    byDescription.set(d, a);
    return a;
  }

  // ---------------------------------------------------------------------------------------------
  // db-pool:connect
  // ---------------------------------------------------------------------------------------------

  private _onConnectStart(m: ConnectMessage): void {
    if (!this._connectSpansOn) return;
    // A connect started inside an acquire's synchronous part was caused by that acquire.
    let ctx = context.active();
    if (this._acquiringSpan !== undefined && this._acquiringPool === m.poolId) ctx = trace.setSpan(ctx, this._acquiringSpan);
    const parent = this._parent(ctx);
    if (parent === undefined) return;
    const attributes = serverAttrs(m);
    attributes[ATTR_DB_POOL_CONNECT_ATTEMPT] = m.attempt;
    const span = this.tracer.startSpan(`connect ${m.poolId}`, { kind: SpanKind.CLIENT, attributes }, parent);
    this._put(m, span);
  }

  private _onConnectDone(m: ConnectMessage): void {
    const inst = this._instruments!;
    const span = this._take<Span>(m);
    if (m.error !== undefined) {
      const type = errorType(m.error);
      inst.createErrors.add(1, this._attrsOf(m.poolId).with(ATTR_ERROR_TYPE, type));
      if (span !== undefined) {
        // Driver messages can echo connection details: the status carries the type only.
        markError(span, type);
        span.end();
      }
      return;
    }
    if (m.createMs !== undefined) inst.createTime.record(seconds(m.createMs), this._attrsOf(m.poolId).pool);
    if (span !== undefined) {
      if (m.connectionId !== undefined) span.setAttribute(ATTR_DB_POOL_CONNECTION_ID, m.connectionId);
      span.end();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // db-pool:pool, db-pool:leak, db-pool:slow-query
  // ---------------------------------------------------------------------------------------------

  private _onPoolEvent(m: PoolEventMessage): void {
    this._instruments!.events.add(1, this._attrsOf(m.poolId).with(ATTR_DB_POOL_EVENT, m.event));
    if (m.event === 'removed' || m.event === 'closed') {
      this._queryAttrs.delete(m.poolId);
      // Producer mode: the pool's series go at the next collection (see PoolMetricStore).
      if (this._exportMode === 'producer') this._store?.retire(m.poolId);
    } else if (m.event === 'created' && this._exportMode === 'producer') {
      this._store?.revive(m.poolId);
    }
  }

  private _onLeak(m: LeakMessage): void {
    this._instruments!.leaks.add(1, this._attrsOf(m.poolId).with(ATTR_DB_POOL_LEAK_KIND, m.kind));
  }

  private _onSlowQuery(m: SlowQueryMessage): void {
    const attrs = this._attrsOf(m.poolId);
    const op = describeQuery(m.text).operation;
    this._instruments!.slowQueries.add(1, op !== undefined ? attrs.with(ATTR_DB_OPERATION_NAME, op) : attrs.pool);
  }
}

/**
 * The attributes shared by a pool's query and connect spans and query metrics: system and pool,
 * then namespace and server when known. A new object, for the caller to add to.
 */
function serverAttrs(m: ServerInfo & { readonly poolId: string }): Attributes {
  const a: Attributes = {
    [ATTR_DB_SYSTEM_NAME]: DB_SYSTEM_NAME_VALUE_POSTGRESQL,
    [ATTR_DB_CLIENT_CONNECTION_POOL_NAME]: m.poolId,
  };
  if (m.database !== undefined) a[ATTR_DB_NAMESPACE] = m.database;
  if (m.serverAddress !== undefined) a[ATTR_SERVER_ADDRESS] = m.serverAddress;
  if (m.serverPort !== undefined) a[ATTR_SERVER_PORT] = m.serverPort;
  return a;
}

/**
 * A failed statement's metric attributes: `metric` plus `error.type` and, when the server sent
 * one, `db.response.status_code`. Built once per failure (frozen) and kept on the statement's
 * attributes, up to MAX_ATTR_VARIANTS; beyond that built per call.
 */
function failedQueryAttrs(q: QueryAttrs, type: string, sqlState: string | undefined): Attributes {
  const key = sqlState === undefined ? type : `${type}\u0000${sqlState}`;
  const failures = (q.failures ??= new Map());
  let a = failures.get(key);
  if (a !== undefined) return a;
  const attrs: Attributes = { ...q.metric, [ATTR_ERROR_TYPE]: type };
  if (sqlState !== undefined) attrs[ATTR_DB_RESPONSE_STATUS_CODE] = sqlState;
  a = Object.freeze(withSortedKeys(attrs));
  if (failures.size < MAX_ATTR_VARIANTS) failures.set(key, a);
  return a;
}

/** Subscribes `done` to the operation's end: asyncEnd, or end when it threw synchronously (no asyncEnd follows). */
function subscribeTracing<M extends { error?: unknown }>(name: string, { start, done, end }: TracingHandlers<M>): Subscription {
  const channel = dc.tracingChannel<M, M>(name);
  const handlers = {
    start,
    end: (m: M) => {
      end?.(m);
      if (m.error !== undefined) done(m);
    },
    asyncEnd: done,
  };
  // Node 20's TracingChannel.subscribe accepts a partial set of handlers; the types want all five.
  channel.subscribe(handlers as dc.TracingChannelSubscribers<M>);
  return { unsubscribe: () => void channel.unsubscribe(handlers as dc.TracingChannelSubscribers<M>) };
}

function subscribePlain<M>(name: string, onMessage: (m: M) => void): Subscription {
  const listener = (message: unknown) => onMessage(message as M);
  dc.subscribe(name, listener);
  return { unsubscribe: () => void dc.unsubscribe(name, listener) };
}
