/**
 * The diagnostics-channel contract: what the pool core publishes, on which channel, with which
 * message. This file is public API (versioned with the package): `instrumentations/` and any user
 * code may subscribe. The core publishes only while a channel has subscribers, so an application
 * without instrumentation pays nothing.
 *
 * Tracing channels (`tracingChannel(name)`) carry one context object through `start`, `end`,
 * `asyncStart`, `asyncEnd` and `error`: fields marked "on end" are filled in before `asyncEnd`, and
 * `error` is set before the `error` event. Plain channels carry one message per event.
 *
 * @example
 * import { tracingChannel } from 'node:diagnostics_channel';
 * import { CHANNELS, type QueryMessage } from 'db-pool-otel';
 * tracingChannel<QueryMessage>(CHANNELS.query).subscribe({
 *   start(m) { console.log('query on', m.poolId, m.connectionId) },
 *   asyncEnd(m) { console.log(m.rowCount, 'rows') },
 *   error(m) { console.log('failed', m.error) },
 *   end() {}, asyncStart() {},
 * });
 */
import dc from 'node:diagnostics_channel';

/** Version of the message shapes below; bumped on any incompatible change. */
export const CHANNELS_VERSION = 1;

/** Channel names. */
export const CHANNELS = {
  /** tracing: {@link AcquireMessage} */
  acquire: 'db-pool:acquire',
  /** tracing: {@link QueryMessage} */
  query: 'db-pool:query',
  /** tracing: {@link ConnectMessage} */
  connect: 'db-pool:connect',
  /** plain: {@link ReleaseMessage} */
  release: 'db-pool:release',
  /** plain: {@link PoolEventMessage} */
  pool: 'db-pool:pool',
  /** plain: leak reports of the core */
  leak: 'db-pool:leak',
  /** plain: slow-query reports of the core */
  slowQuery: 'db-pool:slow-query',
} as const;

/** Where a pool's connections go. */
export interface ServerInfo {
  serverAddress: string | undefined;
  serverPort: number | undefined;
  database: string | undefined;
}

/** `db-pool:acquire` — one lending of a connection. */
export interface AcquireMessage {
  readonly poolId: string;
  /** Callers already waiting when this acquire started. */
  readonly pendingAtStart: number;
  /** False when an idle connection was free at the start (no wait expected). */
  readonly mustWait: boolean;
  /** On end: the physical connection lent. */
  connectionId?: number;
  /** On end: the id of this loan (see {@link ReleaseMessage.loanId}). */
  loanId?: number;
  /** On end: milliseconds from start to the connection being lent. */
  waitMs?: number;
  /**
   * On end, when the caller had to wait and was served by a connection another loan released:
   * that loan's id, so a trace can link a waiter to whoever it waited behind.
   */
  servedByLoanId?: number;
  /** On error: the error (ACQUIRE_TIMEOUT, QUEUE_FULL, CONNECTION_FAILED, POOL_CLOSED...). */
  error?: unknown;
}

/** `db-pool:query` — one statement sent on a lent connection. */
export interface QueryMessage extends ServerInfo {
  readonly poolId: string;
  readonly connectionId: number;
  readonly loanId: number;
  /** The statement as given (may hold literals: use `describeQuery(text)` for the sanitized form). */
  readonly text: string;
  /**
   * The session's `standard_conforming_strings` when it was sent (false: a backslash escapes in
   * '...' strings); pass it to `describeQuery(text, { standardConformingStrings })`. Absent: on.
   */
  readonly standardConformingStrings?: boolean;
  /** Number of bound parameter values. */
  readonly valuesCount: number;
  /** On end: rows returned or affected. */
  rowCount?: number | null;
  /** On end: the command tag's verb (SELECT, INSERT, ...). */
  command?: string;
  /** On error: the error; `sqlState` is its SQLSTATE when the server sent one. */
  error?: unknown;
  sqlState?: string;
}

/** `db-pool:connect` — one attempt to open a physical connection. */
export interface ConnectMessage extends ServerInfo {
  readonly poolId: string;
  /** 1 for the first attempt after a success; counts up through consecutive failures. */
  readonly attempt: number;
  /** On end: the new connection's id. */
  connectionId?: number;
  /** On end: milliseconds the connect took. */
  createMs?: number;
  /** On error: the driver's error. */
  error?: unknown;
}

/** `db-pool:release` — a loan ended. */
export interface ReleaseMessage {
  readonly poolId: string;
  readonly connectionId: number;
  readonly loanId: number;
  /** Milliseconds the connection was lent. */
  readonly useMs: number;
  /** True when the connection was closed instead of going back to the pool. */
  readonly destroyed: boolean;
  /** Why it was closed: 'error', 'broken', 'in-transaction', 'expired', 'revoked', 'closing', 'statements-pending'. */
  readonly reason?: string;
  /**
   * Set when the holder released it with statements still in flight: how many. The connection was
   * lent to nobody until they were answered (this message comes then), and closed if they were not.
   */
  readonly pendingStatements?: number;
}

/** `db-pool:pool` — lifecycle of a pool. */
export interface PoolEventMessage {
  readonly poolId: string;
  readonly event:
    | 'created'
    | 'removed'
    | 'closed'
    | 'resized'
    | 'restarted'
    | 'connection-error'
    | 'unreachable'
    | 'recovering'
    | 'recovered'
    | 'failed-over'
    | 'failed-back'
    | 'recovery-failed'
    | 'circuit-open'
    | 'circuit-closed';
  readonly detail?: Record<string, unknown>;
}

/** `db-pool:leak` — a loan held past `leakDetectionThresholdMs` (once per loan), or reclaimed. */
export interface LeakMessage {
  readonly poolId: string;
  readonly connectionId: number;
  readonly loanId: number;
  /** How long the loan had been held when reported. */
  readonly heldMs: number;
  /** When the loan started (ms since epoch). */
  readonly acquiredAt: number;
  /** Stack of the code that acquired the connection. */
  readonly stack: string | undefined;
  /** Trace id active when the connection was acquired, if a tracer is registered. */
  readonly traceId: string | undefined;
  /** 'suspected' when first reported, 'reclaimed' when taken back after `leakReclaimMs`. */
  readonly kind: 'suspected' | 'reclaimed';
}

/** `db-pool:slow-query` — a query slower than `slowQueryThresholdMs`. */
export interface SlowQueryMessage {
  readonly poolId: string;
  readonly connectionId: number;
  /** Sanitized text (literals replaced) and its fingerprint. */
  readonly text: string;
  readonly fingerprint: string;
  readonly durationMs: number;
  /** When it finished (ms since epoch). */
  readonly at: number;
  /** Error message and SQLSTATE when it failed. */
  readonly error: string | undefined;
  readonly sqlState: string | undefined;
  readonly traceId: string | undefined;
}

/** The channels, created once. Exported for the instrumentation; users normally subscribe by name. */
export const acquireChannel = dc.tracingChannel<AcquireMessage>(CHANNELS.acquire);
export const queryChannel = dc.tracingChannel<QueryMessage>(CHANNELS.query);
export const connectChannel = dc.tracingChannel<ConnectMessage>(CHANNELS.connect);
export const releaseChannel = dc.channel(CHANNELS.release);
export const poolChannel = dc.channel(CHANNELS.pool);
export const leakChannel = dc.channel(CHANNELS.leak);
export const slowQueryChannel = dc.channel(CHANNELS.slowQuery);

/** True when any event of a tracing channel has a subscriber (works on every Node 20 release). */
export function tracingActive<T extends object>(tc: dc.TracingChannel<T, T>): boolean {
  return tc.start.hasSubscribers || tc.end.hasSubscribers || tc.asyncStart.hasSubscribers || tc.asyncEnd.hasSubscribers || tc.error.hasSubscribers;
}
