/**
 * The types of the DatabasePool contract that its plug-ins (the knex and pg.Pool adapters, the admin
 * endpoint) share with it: call options and events. They live below the facade so a plug-in can name
 * them without importing the facade.
 */
import type pg from 'pg';
import type { SlowQueryMessage } from './channels.js';
import type { LeakReport, PendingReleaseReport } from './pool/managed-pool.js';

/** Isolation levels accepted by `DatabasePool.transaction`. */
export type IsolationLevel = 'READ UNCOMMITTED' | 'READ COMMITTED' | 'REPEATABLE READ' | 'SERIALIZABLE';

export interface TransactionOptions extends CallOptions {
  isolationLevel?: IsolationLevel | Lowercase<IsolationLevel>;
  /** READ ONLY; runs on a read replica when the pool has healthy ones. */
  readOnly?: boolean;
}

/**
 * Limits of one call, its wait for a connection included. When one is reached the running
 * statement is cancelled on the server (a CancelRequest, as `pg_cancel_backend`) and its answer
 * awaited, so the connection goes back to the pool clean.
 */
export interface CallOptions {
  /** The whole call ends within this many ms: QUERY_TIMEOUT (the pool's `queryTimeoutMs` still applies per statement). */
  timeoutMs?: number;
  /** Aborting it ends the call: QUERY_ABORTED, with the signal's reason as `cause`. */
  signal?: AbortSignal;
}

/** Options of `DatabasePool.query`. */
export interface QueryOptions extends CallOptions {
  /** The statement only reads: send it to a healthy read replica when the pool has one. */
  readOnly?: boolean;
}

/** Events emitted by `DatabasePool`. */
export interface DatabasePoolEvents {
  /**
   * A connection reported an error or closed on its own (killed, network); it will not be reused.
   * `idle`: it was in the pool, lent to nobody (it has already left the counts). `client` (not
   * enumerable: dumps don't show it) is the raw `pg.Client`, for identification only.
   */
  connectionError: [{ poolId: string; connectionId: number; error: Error | undefined; idle: boolean; client: pg.Client }];
  /** A connection was closed (idle timeout, lifetime, maxUses, broken, pool closed); `client` as in connectionError. */
  connectionClosed: [{ poolId: string; connectionId: number; client: pg.Client }];
  /** A loan held past `leakDetectionThresholdMs` (kind 'suspected', once per loan) or taken back ('reclaimed'). */
  leak: [LeakReport];
  /** A query slower than `slowQueryThresholdMs`. */
  slowQuery: [SlowQueryMessage];
  /**
   * A loan was released with statements still in flight (a missing `await`). Its connection is
   * lent to nobody until they are answered, then checked (closed if it is inside a transaction).
   */
  releasedWithPending: [PendingReleaseReport];
  /** Auto-recovery moved: recovering, recovered, failed-over, failed-back, recovery-failed. */
  recovery: [{ poolId: string; event: string; detail: Record<string, unknown> }];
}
