import type { Span } from '@opentelemetry/api';
import type { InstrumentationConfig } from '@opentelemetry/instrumentation';
import type { QueryDescription } from '../src/index.js';

/**
 * How metrics leave the instrumentation: `'meter'`, instruments of the meter provider (any reader
 * of it exports them); `'producer'`, the instrumentation's own per-pool aggregation, pulled by the
 * readers given `instrumentation.metricProducer` (removed pools' series go away).
 */
export type MetricsExportMode = 'meter' | 'producer';

/** What `db.query.text` carries: literals replaced by `?` (default), the statement as given, or nothing. */
export type QueryTextMode = 'sanitized' | 'raw' | 'off';

/** See {@link DbPoolInstrumentationConfig.acquireSpans}. */
export type AcquireSpansMode = 'always' | 'waited' | 'never';

/** Passed to {@link DbPoolInstrumentationConfig.requestHook} when a query span starts. */
export interface DbPoolRequestHookInfo {
  poolId: string;
  connectionId: number;
  loanId: number;
  /** The statement as given to the pool: it may hold literals, never copy it into a span unsanitized. */
  text: string;
  /** Sanitized text, fingerprint, operation, collection and summary of the statement. */
  description: QueryDescription;
  /** Number of bound parameter values (the values themselves are not exposed). */
  valuesCount: number;
  database: string | undefined;
  serverAddress: string | undefined;
  serverPort: number | undefined;
}

/** Passed to {@link DbPoolInstrumentationConfig.responseHook} before a query span ends. */
export interface DbPoolResponseHookInfo {
  poolId: string;
  connectionId: number;
  /** Rows returned or affected (`pg`'s rowCount); undefined when the query failed. */
  rowCount: number | null | undefined;
  /** The command tag's verb (SELECT, INSERT, ...). */
  command: string | undefined;
  /** The error when the query failed. */
  error: unknown;
  /** SQLSTATE when the server sent one. */
  sqlState: string | undefined;
  durationMs: number;
}

/**
 * Hooks return void; an `async` function fits too (its rejection is caught and logged), but it is
 * not waited for: what it sets on the span after its first `await` may land after the span ended.
 */
export type DbPoolRequestHook = (span: Span, info: DbPoolRequestHookInfo) => void;
export type DbPoolResponseHook = (span: Span, info: DbPoolResponseHookInfo) => void;

export interface DbPoolInstrumentationConfig extends InstrumentationConfig {
  /**
   * Only make spans (acquire, query, connect) when the caller has an active span. Metrics are
   * recorded either way. Default false.
   */
  requireParentSpan?: boolean;
  /** `db.query.text`: `'sanitized'` (default: literals replaced by `?`), `'raw'` (as given), `'off'`. */
  queryText?: QueryTextMode;
  /**
   * When an acquire gets an INTERNAL span of its own: `'waited'` (default) when no idle connection
   * was there at once (it queued, or opened a connection), with its link to the loan it waited
   * behind; `'always'`; `'never'`. An acquire without a span puts its wait on the statement span
   * (`db_pool.acquire.wait_ms`); the wait-time histogram records every acquire either way.
   * `true` / `false` mean `'always'` / `'never'`.
   */
  acquireSpans?: AcquireSpansMode | boolean;
  /**
   * Whether the sampler sees a span's attributes. Default false: a span starts with its name, kind
   * and parent, and gets its attributes once the sampler has decided to record it. The SDK copies
   * and checks the attributes passed to `startSpan` before it asks the sampler, so passing them
   * costs every statement that copy, recorded or dropped (with `TraceIdRatioBased(0.1)`, nine in
   * ten for nothing). A query span's name (`db.query.summary`, e.g. `SELECT users`) carries the
   * operation and table for a sampler that decides by name. Set true for a sampler that reads the
   * attributes (`db.operation.name`, `db.collection.name`, `db.query.text`, the pool name...).
   */
  attributesForSampler?: boolean;
  /** One span per physical connect. Default true. */
  connectSpans?: boolean;
  /**
   * Run the driver calls of our statements and connects with tracing suppressed while a pg
   * instrumentation (`@opentelemetry/instrumentation-pg`, enabled by auto-instrumentations-node)
   * has patched `pg`: our query span already describes the statement, sanitized, and the pg span
   * would repeat it with the raw SQL. Default true; false keeps both spans.
   */
  suppressDriverSpans?: boolean;
  /**
   * `'meter'` (default): record into instruments of the meter provider (`setMeterProvider`, or the
   * global one), exported by its readers. The OpenTelemetry SDK keeps every series it was given
   * until the provider shuts down, including a removed pool's, so pool ids are capped by
   * `maxPoolSeries`. `'producer'`: aggregate per pool here and export through
   * {@link DbPoolInstrumentation.metricProducer}, which you pass to your reader
   * (`metricProducers: [instrumentation.metricProducer]`); a removed pool's series are exported by
   * the next collection, then disappear. For dynamic pool ids (a pool per tenant), use `'producer'`.
   */
  metricsExport?: MetricsExportMode;
  /**
   * Meter mode only: how many distinct pool ids get series of their own (default 200). Metrics of
   * later pool ids are recorded under the pool name `_OTHER`, so the SDK's memory and the series
   * count stay bounded however many pools come and go. Spans always carry the real pool id.
   */
  maxPoolSeries?: number;
  /**
   * Called after a query span starts. An error it throws, or a rejection of the promise it returns
   * (an `async` hook), is caught and logged through the OpenTelemetry diagnostic logger; the query
   * and its span are unaffected. The span is not held open for an async hook.
   */
  requestHook?: DbPoolRequestHook;
  /**
   * Called before a query span ends (the span ends right after it returns, not after a promise it
   * returns settles). Errors and rejections are caught and logged, as for `requestHook`.
   */
  responseHook?: DbPoolResponseHook;
}
