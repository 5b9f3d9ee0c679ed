/**
 * What a pool reports and how its owner configures its failure behaviour: the types ManagedPool's
 * callers name (the facade, ops/, routing/, the admin endpoint).
 */
import type pg from 'pg';
import type { LeakMessage, SlowQueryMessage } from '../channels.js';
import type { PoolState } from '../errors.js';

/** A live snapshot of a pool's connections and callers. */
export interface PoolStatus extends PoolState {
  poolId: string;
  min: number;
  /** Connections being opened (including ones waiting out a reconnect backoff). */
  pendingCreates: number;
  /** Connect attempts and failures since the pool was created. */
  connectAttempts: number;
  connectFailures: number;
  /** Message of the last connect failure, cleared by a success. */
  lastConnectError: string | undefined;
  /** Circuit breaker: 'open' fails calls at once with CIRCUIT_OPEN while the server is unreachable. */
  circuit: 'closed' | 'open' | 'half-open';
  closed: boolean;
}

/** One connection as `getConnectionDetails` shows it. */
export interface ConnectionInfo {
  id: number;
  /** 'active' (lent), 'idle', or 'broken' (closing). */
  state: 'active' | 'idle' | 'broken';
  /** PostgreSQL backend pid. */
  processId: number | undefined;
  createdAt: string;
  /** How long the current loan has lasted (0 when idle). */
  activeDurationMs: number;
  useCount: number;
  /** The last statement, sanitized. */
  lastQuery: string | undefined;
  /** Stack of the code holding it, when leak detection is on. */
  stackTrace?: string;
  /** Trace id active when it was acquired, when a tracer is registered. */
  traceId?: string;
  loanId?: number;
}

/** A loan reported by leak detection. */
export interface LeakReport extends LeakMessage {}

/** Callbacks from a pool to its owner. */
export interface PoolHooks {
  /**
   * A connection reported an error or closed on its own. `idle`: it was in the pool, lent to
   * nobody (it has already left the pool's counts).
   */
  onConnectionError?(poolId: string, connectionId: number, error: Error | undefined, detail: { idle: boolean; client: pg.Client }): void;
  /** A connection of the pool was closed (idle timeout, lifetime, maxUses, broken, pool closed...). */
  onConnectionClosed?(poolId: string, connectionId: number, client: pg.Client): void;
  onLeak?(report: LeakReport): void;
  onSlowQuery?(report: SlowQueryMessage): void;
  /** A connect failed while the pool holds no connection: the server looks unreachable. */
  onUnreachable?(err: Error): void;
  /** A loan was released with statements still in flight; its connection is held back until they are answered. */
  onReleasedWithPending?(report: PendingReleaseReport): void;
}

/** A release with statements still in flight (usually a missing `await`). */
export interface PendingReleaseReport {
  poolId: string;
  connectionId: number;
  loanId: number;
  /** Statements sent on the connection and not yet answered when it was released. */
  pendingStatements: number;
  /** Stack of the acquiring code, when leak detection is on. */
  stack: string | undefined;
}

/** How a pool behaves when its server is unreachable. */
export interface FailureBehaviour {
  /**
   * Fail waiting callers at once with CONNECTION_FAILED when a connect fails and the pool holds no
   * connection. Off for pools with a backup: their callers wait for the failover instead.
   */
  failFast: boolean;
  /** Open the circuit after this many consecutive connect failures with no connection; 0 never. */
  circuitThreshold: number;
  /** An open circuit lets one call through (half-open) after this long. */
  circuitResetMs: number;
}
