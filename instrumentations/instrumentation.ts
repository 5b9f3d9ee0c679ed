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
import { context, isSpanContextValid, trace } from '@opentelemetry/api';
import { suppressTracing } from './otel-helpers.js';
import { isWrapped } from '@opentelemetry/instrumentation';
import type { CollectionResult, MetricProducer } from '@opentelemetry/sdk-metrics';
import pg from 'pg';
import type { AcquireMessage, ConnectMessage, LeakMessage, PoolEventMessage, QueryMessage, ReleaseMessage, SlowQueryMessage } from '../src/index.js';
import {
  CHANNELS,
  releaseDriverCallRunner,
  releaseTraceIdProvider,
  retainDriverCallRunner,
  retainTraceIdProvider,
  type DriverCallRunner,
} from '../src/internal.js';
import { HeldValues } from './held-values.js';
import type { Subscription } from './internal-types.js';
import { NO_RESOURCE, OPERATION_DURATION_BUCKETS, POOL_TIME_BUCKETS } from './pool-metrics.js';
import { DbPoolInstrumentationSpans } from './spans.js';
import type { DbPoolInstrumentationConfig, MetricsExportMode } from './types.js';
import { DEFAULT_MAX_POOL_SERIES } from './utils.js';
import { PACKAGE_NAME, PACKAGE_VERSION } from './version.js';

export { OPERATION_DURATION_BUCKETS, POOL_TIME_BUCKETS };

/**
 * Runs a driver call with tracing suppressed when a pg instrumentation has wrapped the driver (it
 * wraps `Client.prototype.query`; pg's ESM and CommonJS entries share that prototype), so it makes
 * no second span for a statement or connect our spans describe. Otherwise the call runs as is.
 */
const suppressWhenPgPatched: DriverCallRunner = (call) =>
  isWrapped(pg.Client.prototype.query) ? context.with(suppressTracing(context.active()), call) : call();

const EMPTY_COLLECTION: CollectionResult = { resourceMetrics: { resource: NO_RESOURCE, scopeMetrics: [] }, errors: [] };

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
export class DbPoolInstrumentation extends DbPoolInstrumentationSpans {
  // InstrumentationBase's constructor calls setConfig(), _updateMetricInstruments() and enable()
  // before this class's field initializers would run (and would then reset them), so every field
  // touched there is `declare`d (no emitted initializer) and initialised lazily. The same holds in
  // the classes it extends (spans.ts, metrics.ts), which hold the channel handlers and the metrics.
  declare private _producer: MetricProducer | undefined;
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
    this._attributesForSampler = config.attributesForSampler === true;
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

  override enable(): void {
    if (this._subscriptions) return;
    super.enable();
    this._slot ??= Symbol('db-pool-otel instrumentation state');
    this._poolAttrs ??= new Map();
    this._loanTraces ??= new Map();
    this._held ??= new HeldValues();
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
    // Recorded while enabled: exported at the next collection like the rest.
    this._held?.flush();
    this._loanTraces?.clear();
    this._acquiringPool = undefined;
    this._acquiringSpan = undefined;
    releaseTraceIdProvider();
    if (this._suppressing) releaseDriverCallRunner();
    this._suppressing = false;
  }
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
