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
 */
import dc from 'node:diagnostics_channel';
import {
  context,
  isSpanContextValid,
  SpanKind,
  trace,
  ValueType,
  type Attributes,
  type BatchObservableCallback,
  type BatchObservableResult,
  type Context,
  type Counter,
  type Histogram,
  type Meter,
  type Observable,
  type ObservableUpDownCounter,
  type Span,
  type SpanContext,
} from '@opentelemetry/api';
import { InstrumentationBase } from '@opentelemetry/instrumentation';
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
import { releaseTraceIdProvider, retainTraceIdProvider } from '../src/trace-context.js';
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
import type { DbPoolInstrumentationConfig, QueryTextMode } from './types.js';
import {
  acquireErrorMessage,
  dropOldestIfFull,
  errorType,
  markError,
  MAX_ATTR_VARIANTS,
  MAX_RETIRED_POOLS,
  MAX_TRACKED_LOANS,
  seconds,
  withSortedKeys,
} from './utils.js';
import { PACKAGE_NAME, PACKAGE_VERSION } from './version.js';

/** The spec's buckets for `db.client.operation.duration` (seconds). */
export const OPERATION_DURATION_BUCKETS: readonly number[] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10];
/** Buckets for the pool's create / wait / use times (seconds): a free connection is lent in well under a millisecond. */
export const POOL_TIME_BUCKETS: readonly number[] = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60];

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
  count: ObservableUpDownCounter;
  idleMax: ObservableUpDownCounter;
  idleMin: ObservableUpDownCounter;
  max: ObservableUpDownCounter;
  pendingRequests: ObservableUpDownCounter;
  pendingCreates: ObservableUpDownCounter;
  /** The gauges observed with the pool's own attributes (all but `count`). */
  poolGauges: readonly ObservableUpDownCounter[];
}

interface Observation {
  meter: Meter;
  callback: BatchObservableCallback;
  observables: Observable[];
}

/** Attribute sets of one pool, built once (frozen and shared). */
class PoolAttrs {
  readonly pool: Attributes;
  readonly idle: Attributes;
  readonly used: Attributes;
  readonly #poolId: string;
  /** `with()`'s sets: attribute key, then value. */
  #variants: Map<string, Map<string, Attributes>> | undefined;

  constructor(poolId: string) {
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
  /**
   * Key of this instance's state for an operation in flight (its span, or its query record),
   * kept on the channel message itself: a WeakMap entry set and deleted per operation costs a
   * hash-table insert and delete each time, and ephemeron work in every collection.
   */
  declare private _slot: symbol | undefined;
  declare private _poolAttrs: Map<string, PoolAttrs> | undefined;
  /**
   * Pools removed or closed. The SDK keeps exporting the last value of an attribute set an
   * observable instrument stops observing (cumulative temporality), so these are observed as 0.
   */
  declare private _retiredPools: Set<string> | undefined;
  /** Set by setConfig() (which the base constructor calls): cached span attributes depend on the config. */
  declare private _queryAttrs: WeakMap<QueryDescription, Map<string, QueryAttrs>>;
  /** Per physical connection: the loan now holding it and the span context of that loan's acquire. */
  declare private _loanTraces: Map<number, LoanTrace> | undefined;
  /** The acquire span whose synchronous part is running (a connect started now is its child). */
  declare private _acquiringPool: string | undefined;
  declare private _acquiringSpan: Span | undefined;
  declare private _queryText: QueryTextMode;
  declare private _acquireSpansOn: boolean;
  declare private _connectSpansOn: boolean;

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
    this._acquireSpansOn = config.acquireSpans !== false;
    this._connectSpansOn = config.connectSpans !== false;
    // Cached span attributes depend on the config.
    this._queryAttrs = new WeakMap();
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
  }

  /** (Re)creates the instruments on the current meter; called again by setMeterProvider(). */
  protected override _updateMetricInstruments(): void {
    const meter = this.meter;
    const previous = this._observation;
    if (previous) previous.meter.removeBatchObservableCallback(previous.callback, previous.observables);

    const poolTime = (name: string, description: string) =>
      meter.createHistogram(name, {
        description,
        unit: 's',
        valueType: ValueType.DOUBLE,
        advice: { explicitBucketBoundaries: [...POOL_TIME_BUCKETS] },
      });
    const gauge = (name: string, description: string, unit: string) =>
      meter.createObservableUpDownCounter(name, { description, unit, valueType: ValueType.INT });
    const counter = (name: string, description: string, unit: string) =>
      meter.createCounter(name, { description, unit, valueType: ValueType.INT });

    const m: Instruments = {
      operationDuration: meter.createHistogram(METRIC_DB_CLIENT_OPERATION_DURATION, {
        description: 'Duration of database client operations.',
        unit: 's',
        valueType: ValueType.DOUBLE,
        advice: { explicitBucketBoundaries: [...OPERATION_DURATION_BUCKETS] },
      }),
      createTime: poolTime(METRIC_DB_CLIENT_CONNECTION_CREATE_TIME, 'The time it took to create a new connection.'),
      waitTime: poolTime(METRIC_DB_CLIENT_CONNECTION_WAIT_TIME, 'The time it took to obtain an open connection from the pool.'),
      useTime: poolTime(METRIC_DB_CLIENT_CONNECTION_USE_TIME, 'The time between borrowing a connection and returning it to the pool.'),
      timeouts: counter(
        METRIC_DB_CLIENT_CONNECTION_TIMEOUTS,
        'The number of connection timeouts that have occurred trying to obtain a connection from the pool.',
        '{timeout}',
      ),
      acquireErrors: counter(METRIC_DB_POOL_ACQUIRE_ERRORS, 'Acquires that failed, by error.type (ACQUIRE_TIMEOUT, QUEUE_FULL, CONNECTION_FAILED, POOL_CLOSED).', '{error}'),
      createErrors: counter(METRIC_DB_POOL_CONNECTION_CREATE_ERRORS, 'Connect attempts that failed, by error.type (SQLSTATE or driver code).', '{error}'),
      discarded: counter(METRIC_DB_POOL_CONNECTION_DISCARDED, 'Connections closed on release instead of going back to the pool, by reason.', '{connection}'),
      slowQueries: counter(METRIC_DB_POOL_SLOW_QUERIES, 'Queries slower than the pool\'s slowQueryThresholdMs.', '{query}'),
      leaks: counter(METRIC_DB_POOL_LEAKS, 'Loans held past leakDetectionThresholdMs (suspected) or taken back (reclaimed).', '{connection}'),
      events: counter(METRIC_DB_POOL_EVENTS, 'Pool lifecycle events (created, removed, closed, resized, restarted, connection-error, unreachable, recovering, recovered, failed-over, failed-back, recovery-failed, circuit-open, circuit-closed).', '{event}'),
      count: gauge(METRIC_DB_CLIENT_CONNECTION_COUNT, 'The number of connections that are currently in state described by the state attribute.', '{connection}'),
      idleMax: gauge(METRIC_DB_CLIENT_CONNECTION_IDLE_MAX, 'The maximum number of idle open connections allowed.', '{connection}'),
      idleMin: gauge(METRIC_DB_CLIENT_CONNECTION_IDLE_MIN, 'The minimum number of idle open connections allowed.', '{connection}'),
      max: gauge(METRIC_DB_CLIENT_CONNECTION_MAX, 'The maximum number of open connections allowed.', '{connection}'),
      pendingRequests: gauge(
        METRIC_DB_CLIENT_CONNECTION_PENDING_REQUESTS,
        'The number of current pending requests for an open connection.',
        '{request}',
      ),
      pendingCreates: gauge(METRIC_DB_POOL_CONNECTION_PENDING_CREATES, 'Connections being opened, including ones waiting out a reconnect backoff.', '{connection}'),
      poolGauges: [],
    };
    m.poolGauges = [m.idleMax, m.idleMin, m.max, m.pendingRequests, m.pendingCreates];
    const observables: Observable[] = [m.count, ...m.poolGauges];
    const callback: BatchObservableCallback = (result) => this._observePools(result, m);
    meter.addBatchObservableCallback(callback, observables);
    this._instruments = m;
    this._observation = { meter, callback, observables };
  }

  // ---------------------------------------------------------------------------------------------
  // Observed from the live pools
  // ---------------------------------------------------------------------------------------------

  private _observePools(result: BatchObservableResult, m: Instruments): void {
    if (!this._subscriptions) return; // disabled: report nothing
    const retired = this._retiredPools;
    for (const s of livePoolStatuses()) {
      const a = this._attrsOf(s.poolId);
      result.observe(m.count, s.idle, a.idle);
      result.observe(m.count, s.active, a.used);
      result.observe(m.idleMax, s.max, a.pool);
      result.observe(m.idleMin, s.min, a.pool);
      result.observe(m.max, s.max, a.pool);
      result.observe(m.pendingRequests, s.waiting, a.pool);
      result.observe(m.pendingCreates, s.pendingCreates, a.pool);
      if (retired !== undefined && retired.size > 0) retired.delete(s.poolId); // re-created under the same id
    }
    if (retired === undefined) return;
    for (const poolId of retired) {
      const a = this._attrsOf(poolId);
      result.observe(m.count, 0, a.idle);
      result.observe(m.count, 0, a.used);
      for (const o of m.poolGauges) result.observe(o, 0, a.pool);
    }
  }

  private _attrsOf(poolId: string): PoolAttrs {
    const cache = (this._poolAttrs ??= new Map());
    let a = cache.get(poolId);
    if (a === undefined) {
      a = new PoolAttrs(poolId);
      cache.set(poolId, a);
    }
    return a;
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
    if (!this._acquireSpansOn) return;
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
    if (m.connectionId !== undefined && m.loanId !== undefined) this._trackLoan(m.connectionId, m.loanId, spanContext);
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

  private _trackLoan(connectionId: number, loanId: number, spanContext: SpanContext | undefined): void {
    const loans = this._loanTraces!;
    if (spanContext === undefined || !isSpanContextValid(spanContext)) {
      loans.delete(connectionId);
      return;
    }
    const entry = loans.get(connectionId);
    if (entry !== undefined) {
      entry.loanId = loanId;
      entry.spanContext = spanContext;
      return;
    }
    dropOldestIfFull(loans, MAX_TRACKED_LOANS);
    loans.set(connectionId, { loanId, spanContext });
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
    const d = describeQuery(m.text);
    const attrs = this._attrsOfQuery(m, d);
    let span: Span | undefined;
    const parent = this._parent(context.active());
    if (parent !== undefined) {
      span = this.tracer.startSpan(attrs.spanName, { kind: SpanKind.CLIENT, attributes: attrs.span }, parent);
      if (span.isRecording()) {
        span.setAttribute(ATTR_DB_POOL_CONNECTION_ID, m.connectionId);
        span.setAttribute(ATTR_DB_POOL_QUERY_VALUES_COUNT, m.valuesCount);
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
    this._instruments!.operationDuration.record(
      seconds(durationMs),
      type === undefined ? rec.attrs.metric : failedQueryAttrs(rec.attrs, type, m.sqlState),
    );

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

  /** Runs a user's hook: one that throws is logged and changes nothing else. */
  private _runHook<I>(name: 'requestHook' | 'responseHook', hook: (span: Span, info: I) => void, span: Span, info: I): void {
    try {
      hook(span, info);
    } catch (err) {
      this._diag.error(`${name} threw`, err);
    }
  }

  /** Span and metric attributes of a statement on a pool, built on first use and shared after. */
  private _attrsOfQuery(m: QueryMessage, d: QueryDescription): QueryAttrs {
    const cache = this._queryAttrs;
    let byPool = cache.get(d);
    if (byPool === undefined) {
      byPool = new Map();
      cache.set(d, byPool);
    }
    let a = byPool.get(m.poolId);
    if (a !== undefined && a.serverAddress === m.serverAddress && a.serverPort === m.serverPort && a.database === m.database) {
      return a;
    }
    const metric = serverAttrs(m);
    if (d.operation !== undefined) metric[ATTR_DB_OPERATION_NAME] = d.operation;
    if (d.collection !== undefined) metric[ATTR_DB_COLLECTION_NAME] = d.collection;
    const span: Attributes = { ...metric };
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
    byPool.set(m.poolId, a);
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
      const retired = (this._retiredPools ??= new Set());
      dropOldestIfFull(retired, MAX_RETIRED_POOLS);
      retired.add(m.poolId);
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
