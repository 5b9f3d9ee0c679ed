import type { Span } from '@opentelemetry/api';
import type { InstrumentationConfig } from '@opentelemetry/instrumentation';
import type { QueryDescription } from '../src/index.js';

/** What `db.query.text` carries: literals replaced by `?` (default), the statement as given, or nothing. */
export type QueryTextMode = 'sanitized' | 'raw' | 'off';

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
  /** One INTERNAL span per acquire. Default true; false keeps the wait-time histogram. */
  acquireSpans?: boolean;
  /** One span per physical connect. Default true. */
  connectSpans?: boolean;
  /** Called after a query span starts (errors thrown by it are caught and logged). */
  requestHook?: DbPoolRequestHook;
  /** Called before a query span ends (errors thrown by it are caught and logged). */
  responseHook?: DbPoolResponseHook;
}
