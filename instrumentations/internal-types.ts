/** Types shared by the modules of DbPoolInstrumentation; not exported from the package. */
import type { Attributes, Counter, Histogram, Span, SpanContext } from '@opentelemetry/api';

/** What the instrumentation records into: meter instruments, or the per-pool store's. */
export interface Instruments {
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

/** Span and metric attributes of one statement on one pool, built once and shared (frozen). */
export interface QueryAttrs {
  spanName: string;
  span: Attributes;
  metric: Attributes;
  serverAddress: string | undefined;
  serverPort: number | undefined;
  database: string | undefined;
  /** `metric` plus the failure attributes, by failure (see failedQueryAttrs); bounded. */
  failures: Map<string, Attributes> | undefined;
}

/** A statement in flight: its span (when it has one), its start (performance.now()) and its attributes. */
export interface QueryRecord {
  span: Span | undefined;
  start: number;
  attrs: QueryAttrs;
}

/** The loan now holding a physical connection, and the span context of that loan's acquire. */
export interface LoanTrace {
  loanId: number;
  spanContext: SpanContext;
  /** The loan's acquire wait, when it had no acquire span: it goes on the loan's first statement span. */
  waitMs: number | undefined;
}

/** A channel subscription of the instrumentation, undone by disable(). */
export interface Subscription {
  unsubscribe(): void;
}
