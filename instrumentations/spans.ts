/**
 * The channel handlers of DbPoolInstrumentation: what each `db-pool:*` message becomes. The
 * acquire, query and connect spans (parents, links between loans, hooks, error status), and the
 * measurements each message carries into the metrics of metrics.ts (wait, use, create and
 * operation times; timeouts, errors, discards, leaks, pool events, slow queries).
 *
 * A class in the chain metrics.ts <- this <- instrumentation.ts (see metrics.ts for why a chain):
 * instrumentation.ts subscribes these handlers in enable(). The query handlers are the per-query
 * hot path: attribute sets come from caches (`_queryAttrs`, PoolAttrs), and an operation's state
 * rides on its channel message (`_put` / `_take`).
 */
import {
  context,
  INVALID_TRACEID,
  isSpanContextValid,
  SpanKind,
  trace,
  type Attributes,
  type Context,
  type Span,
  type SpanContext,
  type SpanOptions,
} from '@opentelemetry/api';
import { describeQuery } from '../src/internal.js';
import type {
  AcquireMessage,
  ConnectMessage,
  LeakMessage,
  PoolEventMessage,
  QueryDescription,
  QueryMessage,
  ReleaseMessage,
  SlowQueryMessage,
} from '../src/index.js';
import type { LoanTrace, QueryAttrs, QueryRecord } from './internal-types.js';
import { DbPoolInstrumentationMetrics } from './metrics.js';
import {
  ATTR_DB_CLIENT_CONNECTION_POOL_NAME,
  ATTR_DB_COLLECTION_NAME,
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
  DB_SYSTEM_NAME_VALUE_POSTGRESQL,
} from './semconv.js';
import type { AcquireSpansMode, QueryTextMode } from './types.js';
import {
  acquireErrorMessage,
  dropOldestIfFull,
  errorType,
  failedQueryAttrs,
  markError,
  MAX_QUERY_ATTR_POOLS,
  MAX_TRACKED_LOANS,
  seconds,
  serverAttrs,
  withSortedKeys,
} from './utils.js';

/** How a session with standard_conforming_strings = off reads '...' strings (a backslash escapes). */
const NON_STANDARD_STRINGS = { standardConformingStrings: false } as const;
/** startSpan's options when the attributes come after sampling: one object each, never changed. */
const CLIENT: SpanOptions = Object.freeze({ kind: SpanKind.CLIENT });
const INTERNAL: SpanOptions = Object.freeze({ kind: SpanKind.INTERNAL });

/** An acquire span's attributes at its start. */
function acquireAttributes(m: AcquireMessage): Attributes {
  return {
    [ATTR_DB_SYSTEM_NAME]: DB_SYSTEM_NAME_VALUE_POSTGRESQL,
    [ATTR_DB_CLIENT_CONNECTION_POOL_NAME]: m.poolId,
    [ATTR_DB_POOL_ACQUIRE_PENDING]: m.pendingAtStart,
    [ATTR_DB_POOL_ACQUIRE_MUST_WAIT]: m.mustWait,
  };
}

/** A query span's attributes at its start: built once per statement shape (see _attrsOfQuery). */
function queryAttributes(a: QueryAttrs): Attributes {
  return a.span;
}

/** A connect span's attributes at its start. */
function connectAttributes(m: ConnectMessage): Attributes {
  const attributes = serverAttrs(m);
  attributes[ATTR_DB_POOL_CONNECT_ATTEMPT] = m.attempt;
  return attributes;
}

/** DbPoolInstrumentation's channel handlers; see the file's comment. */
export abstract class DbPoolInstrumentationSpans extends DbPoolInstrumentationMetrics {
  // `declare`d, as in metrics.ts: InstrumentationBase's constructor runs before field initializers.
  /**
   * Key of this instance's state for an operation in flight (its span, or its query record),
   * kept on the channel message itself: a WeakMap entry set and deleted per operation costs a
   * hash-table insert and delete each time, and ephemeron work in every collection.
   */
  declare protected _slot: symbol | undefined;
  /** Per physical connection: the loan now holding it and the span context of that loan's acquire. */
  declare protected _loanTraces: Map<number, LoanTrace> | undefined;
  /** The acquire span whose synchronous part is running (a connect started now is its child). */
  declare protected _acquiringPool: string | undefined;
  declare protected _acquiringSpan: Span | undefined;
  declare protected _queryText: QueryTextMode;
  declare protected _acquireSpans: AcquireSpansMode;
  declare protected _connectSpansOn: boolean;
  /** The `attributesForSampler` option: attributes passed to startSpan, or set once the span records. */
  declare protected _attributesForSampler: boolean;

  /**
   * Starts a span whose attributes are `attributesOf(source)`: handed to startSpan when the sampler
   * is to see them; otherwise built and set only if the span records (the SDK copies startSpan's
   * attributes before it samples, so a dropped span would pay for them). A function and its
   * argument rather than a closure: nothing is allocated for a span that is dropped.
   */
  private _startSpan<S>(name: string, options: SpanOptions, parent: Context, source: S, attributesOf: (source: S) => Attributes): Span {
    if (this._attributesForSampler) return this.tracer.startSpan(name, { kind: options.kind, attributes: attributesOf(source) }, parent);
    const span = this.tracer.startSpan(name, options, parent);
    if (span.isRecording()) span.setAttributes(attributesOf(source));
    return span;
  }

  /** The span parent for a new operation, or undefined when a parent is required and missing. */
  private _parent(ctx: Context): Context | undefined {
    if (this._config.requireParentSpan && trace.getSpan(ctx) === undefined) return undefined;
    return ctx;
  }

  // ---------------------------------------------------------------------------------------------
  // db-pool:acquire
  // ---------------------------------------------------------------------------------------------

  protected _onAcquireStart(m: AcquireMessage): void {
    // A loan served at once by an idle connection is the common case: its statement span says it all.
    if (this._acquireSpans === 'never' || (this._acquireSpans === 'waited' && !m.mustWait)) return;
    // Synchronously in the caller's async context: context.active() is the caller's.
    const parent = this._parent(context.active());
    if (parent === undefined) return;
    // Under load most acquires wait, and with sampling most of their spans are dropped.
    const span = this._startSpan(`acquire ${m.poolId}`, INTERNAL, parent, m, acquireAttributes);
    this._put(m, span);
    this._acquiringPool = m.poolId;
    this._acquiringSpan = span;
  }

  protected _onAcquireDone(m: AcquireMessage): void {
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

    if (m.waitMs !== undefined) this._held!.record(inst.waitTime, seconds(m.waitMs), attrs.pool);
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
    // The all-zero trace id first: with no tracer provider (metrics only) every loan's context is
    // that one, and isSpanContextValid would run its regular expression on it for each loan.
    if (spanContext === undefined || spanContext.traceId === INVALID_TRACEID || !isSpanContextValid(spanContext)) {
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

  protected _onRelease(m: ReleaseMessage): void {
    const inst = this._instruments!;
    const attrs = this._attrsOf(m.poolId);
    this._held!.record(inst.useTime, seconds(m.useMs), attrs.pool);
    if (m.destroyed) {
      // Nobody can be served by this connection any more.
      this._loanTraces!.delete(m.connectionId);
      inst.discarded.add(1, attrs.with(ATTR_DB_POOL_DISCARD_REASON, m.reason ?? 'unknown'));
    }
  }

  // ---------------------------------------------------------------------------------------------
  // db-pool:query
  // ---------------------------------------------------------------------------------------------

  protected _onQueryStart(m: QueryMessage): void {
    const d = describeQuery(m.text, m.standardConformingStrings === false ? NON_STANDARD_STRINGS : undefined);
    const attrs = this._attrsOfQuery(m, d);
    let span: Span | undefined;
    const parent = this._parent(context.active());
    if (parent !== undefined) {
      span = this._startSpan(attrs.spanName, CLIENT, parent, attrs, queryAttributes);
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

  protected _onQueryDone(m: QueryMessage): void {
    const rec = this._take<QueryRecord>(m);
    if (rec === undefined) return; // started before enable(), or already finished
    const durationMs = performance.now() - rec.start;
    const type = m.error !== undefined ? errorType(m.error, m.sqlState) : undefined;
    this._held!.record(
      this._instruments!.operationDuration,
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

  protected _onConnectStart(m: ConnectMessage): void {
    if (!this._connectSpansOn) return;
    // A connect started inside an acquire's synchronous part was caused by that acquire.
    let ctx = context.active();
    if (this._acquiringSpan !== undefined && this._acquiringPool === m.poolId) ctx = trace.setSpan(ctx, this._acquiringSpan);
    const parent = this._parent(ctx);
    if (parent === undefined) return;
    const span = this._startSpan(`connect ${m.poolId}`, CLIENT, parent, m, connectAttributes);
    this._put(m, span);
  }

  protected _onConnectDone(m: ConnectMessage): void {
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

  protected _onPoolEvent(m: PoolEventMessage): void {
    this._instruments!.events.add(1, this._attrsOf(m.poolId).with(ATTR_DB_POOL_EVENT, m.event));
    if (m.event === 'removed' || m.event === 'closed') {
      // Its held values go before its series are retired (or they would bring them back).
      this._held?.flush();
      this._queryAttrs.delete(m.poolId);
      // Producer mode: the pool's series go at the next collection (see PoolMetricStore).
      if (this._exportMode === 'producer') this._store?.retire(m.poolId);
    } else if (m.event === 'created' && this._exportMode === 'producer') {
      this._store?.revive(m.poolId);
    }
  }

  protected _onLeak(m: LeakMessage): void {
    this._instruments!.leaks.add(1, this._attrsOf(m.poolId).with(ATTR_DB_POOL_LEAK_KIND, m.kind));
  }

  protected _onSlowQuery(m: SlowQueryMessage): void {
    const attrs = this._attrsOf(m.poolId);
    const op = describeQuery(m.text).operation;
    this._instruments!.slowQueries.add(1, op !== undefined ? attrs.with(ATTR_DB_OPERATION_NAME, op) : attrs.pool);
  }
}
