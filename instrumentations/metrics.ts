/**
 * The metric side of DbPoolInstrumentation: its instruments (the meter's, or the producer mode's
 * store's, pool-metrics.ts), the per-pool attribute sets every measurement uses (PoolAttrs), the
 * gauges observed from the live pools, and the counters of rare outcomes started at 0. The channel
 * handlers (spans.ts) record into `_instruments` with `_attrsOf(poolId)`.
 *
 * DbPoolInstrumentation is built as a chain of classes, one file a job: this one (metrics), then
 * spans.ts (the channel handlers), then instrumentation.ts (config, enable/disable, subscriptions).
 * A chain rather than helper objects, so a channel message still costs one method call on one
 * object whose fields are all its own: no extra object, closure or indirection per query.
 */
import type { Attributes, BatchObservableCallback, BatchObservableResult, Meter, ObservableUpDownCounter } from '@opentelemetry/api';
import { InstrumentationBase } from '@opentelemetry/instrumentation';
import type { QueryDescription } from '../src/index.js';
import { livePoolStatuses } from '../src/internal.js';
import type { Instruments, QueryAttrs, Subscription } from './internal-types.js';
import type { HeldValues } from './held-values.js';
import { PoolAttrs } from './pool-attrs.js';
import {
  GAUGE_FIELDS,
  METRICS,
  PoolMetricStore,
  ZERO_COUNTERS_MAX_POOLS,
  zeroSeriesOf,
  type GaugeField,
  type MetricSpec,
  type PoolMetricSource,
} from './pool-metrics.js';
import { ServerBudgetGauges } from './server-budget-metrics.js';
import type { DbPoolInstrumentationConfig, MetricsExportMode } from './types.js';
import { POOL_NAME_OTHER } from './utils.js';
import { PACKAGE_NAME, PACKAGE_VERSION } from './version.js';

/** The meter mode's gauges and the batch callback observing them. */
interface Observation {
  meter: Meter;
  callback: BatchObservableCallback;
  gauges: Record<GaugeField, ObservableUpDownCounter>;
}

/** Gauge readings summed over the pools that share one attribute set, in GAUGE_FIELDS order but `count` split: idle, used, then the rest. */
type GaugeSums = number[];

/** DbPoolInstrumentation's metric recording; see the file's comment for why it is a base class. */
export abstract class DbPoolInstrumentationMetrics extends InstrumentationBase<DbPoolInstrumentationConfig> {
  // InstrumentationBase's constructor calls setConfig(), _updateMetricInstruments() and enable()
  // before field initializers would run (and would then reset them), so every field here is
  // `declare`d (no emitted initializer) and initialised lazily; see DbPoolInstrumentation.
  /** The channel subscriptions while enabled (instrumentation.ts); undefined while disabled. */
  declare protected _subscriptions: Subscription[] | undefined;
  declare protected _instruments: Instruments | undefined;
  declare private _observation: Observation | undefined;
  /** The server's connection budget: observable gauges on the meter, in both export modes (server-budget-metrics.ts). */
  declare private _budgetGauges: ServerBudgetGauges | undefined;
  /**
   * Metric attribute sets by pool id. Meter mode: at most `maxPoolSeries` entries, never dropped
   * (the SDK keeps their series anyway); pool ids past the cap share `_otherAttrs`. Producer mode:
   * the pools the store has series for, dropped with them.
   */
  declare protected _poolAttrs: Map<string, PoolAttrs> | undefined;
  declare protected _otherAttrs: PoolAttrs | undefined;
  /**
   * Span and metric attributes of statements, by pool id (the real one), then description. Reset
   * by setConfig() (which the base constructor calls): cached span attributes depend on the config.
   * A pool's entry goes when the pool is removed or closed; bounded by MAX_QUERY_ATTR_POOLS.
   */
  declare protected _queryAttrs: Map<string, WeakMap<QueryDescription, QueryAttrs>>;
  declare protected _exportMode: MetricsExportMode;
  declare protected _maxPoolSeries: number;
  /** Producer mode: the per-pool aggregation behind `metricProducer`. */
  declare protected _store: PoolMetricStore | undefined;
  /** The statement path's histogram values, held until the next collection (held-values.ts). Created by enable(). */
  declare protected _held: HeldValues | undefined;

  /** The server-budget gauges (server-budget-metrics.ts), created on first use. */
  protected _budgetGaugesOf(): ServerBudgetGauges {
    return (this._budgetGauges ??= new ServerBudgetGauges(
      () => this._subscriptions !== undefined,
      () => this._maxPoolSeries,
    ));
  }

  /** The producer mode's store, created on first use. */
  protected _storeOf(): PoolMetricStore {
    if (this._store !== undefined) return this._store;
    const source: PoolMetricSource = {
      observeLivePools: (observe) => this._observeForStore(observe),
      forget: (poolId) => this._forgetPool(poolId),
    };
    return (this._store = new PoolMetricStore(source, { name: PACKAGE_NAME, version: PACKAGE_VERSION }));
  }

  /**
   * (Re)creates the instruments on the current meter; called again by setMeterProvider(). In
   * producer mode the instruments are the store's and the meter is not used.
   */
  protected override _updateMetricInstruments(): void {
    // What was recorded against the instruments going away goes to them first.
    this._held?.flush();
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
    // A collection starts: the held histogram values go to the SDK now, before it reads its storages.
    this._held?.flush();
    if (!this._subscriptions) return; // disabled: report nothing
    const { sums, live } = this._gaugeSums();
    const observe = (field: GaugeField, value: number, attributes: Attributes) => result.observe(gauges[field], value, attributes);
    const zeros: GaugeSums = [0, 0, 0, 0, 0, 0, 0];
    const report = (a: PoolAttrs) => {
      const g = sums.get(a);
      if (g !== undefined) a.gauged = true;
      if (a.gauged) DbPoolInstrumentationMetrics._emitGauges(a, g ?? zeros, observe);
    };
    for (const a of this._poolAttrs?.values() ?? []) report(a);
    if (this._otherAttrs !== undefined) report(this._otherAttrs);
    this._pruneQueryAttrs(live);
  }

  /** Producer mode: the live pools' gauges for the store (none while disabled), and the live pool ids. */
  private _observeForStore(observe: (field: GaugeField, value: number, attributes: Attributes) => void): ReadonlySet<string> {
    this._held?.flush();
    const { sums, live } = this._gaugeSums();
    if (this._subscriptions) for (const [a, g] of sums) DbPoolInstrumentationMetrics._emitGauges(a, g, observe);
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
  protected _attrsOf(poolId: string): PoolAttrs {
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
}
