/**
 * One named pool: a generic-pool pool of `pg` connections, plus what generic-pool lacks — paced
 * reconnects whose failure reaches waiters, loans that can be released only once, connections
 * that are never reused after an error or inside a transaction, timeouts that describe the pool,
 * in-process metrics, slow-query and leak reports, live resizing, and the `db-pool:*` channels.
 */
import { createPool, type Pool as GenericPool } from 'generic-pool';
import type pg from 'pg';
import {
  acquireChannel,
  leakChannel,
  poolChannel,
  queryChannel,
  releaseChannel,
  slowQueryChannel,
  tracingActive,
  type AcquireMessage,
  type LeakMessage,
  type PoolEventMessage,
  type QueryMessage,
  type ReleaseMessage,
  type SlowQueryMessage,
} from '../channels.js';
import { redactDeep, type ResolvedPoolConfig } from '../config/config.js';
import { isConnectionLevelError, sqlStateOf } from './connection.js';
import { ConnectionFactory, sendCancel } from './connection-factory.js';
import {
  AcquireTimeoutError,
  CircuitOpenError,
  ConnectionFailedError,
  ConnectionRevokedError,
  DbPoolError,
  InvalidQueryError,
  PoolClosedError,
  QueryAbortedError,
  QueryTimeoutError,
  QueueFullError,
  TransactionRolledBackError,
  type PoolState,
} from '../errors.js';
import { evictNow, idleResources, installEvictor, refreshTables, setLimits, stopEvictor, withdrawQueuedRequests } from './generic-pool-internals.js';
import { LeakDetector } from './leak-detector.js';
import { DetailedMetrics, PoolMetrics, type PoolMetricsFields, QueryMetrics } from './metrics.js';
import { PooledConnection, type CallLimits, type LentConnection, type LoanOwner, type QueryInput, type QueryResult } from './pooled-connection.js';
import {
  BUDGET_BACKENDS_SQL,
  BUDGET_SETTINGS_SQL,
  registerBudget,
  ServerBudgetTracker,
  unregisterBudget,
  type BudgetSettingsRow,
  type ServerBudget,
} from './server-budget.js';
import { PoolStats } from '../stats/pool-stats.js';
import { failureSummary, type SlowQuery } from '../stats/slow-query-log.js';
import type { WindowSummary } from '../stats/windowed-histogram.js';
import { activeTraceId, driverCallRunner, runDriverCall } from '../trace-context.js';

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

const DEFAULT_BEHAVIOUR: FailureBehaviour = { failFast: true, circuitThreshold: 0, circuitResetMs: 1_000 };

interface Waiter {
  /** Fail this caller on a connect failure even when the pool keeps callers waiting (probes). */
  failFast: boolean;
  /** When it times out with ACQUIRE_TIMEOUT (performance.now() time). */
  deadline: number;
  /** Set when the call's own timeoutMs ends the wait before acquireTimeoutMs: expiring is QUERY_TIMEOUT. */
  callTimeoutMs?: number | undefined;
  resolve(loan: PooledConnection): void;
  reject(err: Error): void;
  /** The generic-pool request behind it, to withdraw it when the caller is failed or moved. */
  request?: Promise<LentConnection>;
  /** Links of the waiter list. */
  prev: Waiter | undefined;
  next: Waiter | undefined;
  /** In the list, i.e. not yet served, failed or moved: whoever takes it off the list settles it. */
  queued: boolean;
}

/**
 * The callers waiting for a connection, oldest first, as a list linked through the waiters
 * themselves. Not a Set: an entry added and deleted on every acquire makes V8 rehash the Set's
 * table every few operations, and once that table has been promoted to the old generation
 * (the pool sat idle through two young-generation collections) each rehash allocates there,
 * turning steady load into back-to-back full collections.
 */
class WaiterList implements Iterable<Waiter> {
  #head: Waiter | undefined;
  #tail: Waiter | undefined;
  size = 0;

  constructor(
    /** Called when the list goes from empty to one waiter, and back to empty. */
    private readonly onOccupied: (occupied: boolean) => void = () => {},
  ) {}

  add(w: Waiter): void {
    w.prev = this.#tail;
    w.next = undefined;
    if (this.#tail) this.#tail.next = w;
    else this.#head = w;
    this.#tail = w;
    w.queued = true;
    if (this.size++ === 0) this.onOccupied(true);
  }

  delete(w: Waiter): void {
    if (!w.queued) return;
    if (w.prev) w.prev.next = w.next;
    else this.#head = w.next;
    if (w.next) w.next.prev = w.prev;
    else this.#tail = w.prev;
    w.prev = w.next = undefined;
    w.queued = false;
    if (--this.size === 0) this.onOccupied(false);
  }

  /** Oldest first; the current waiter may be deleted during the iteration. */
  *[Symbol.iterator](): Iterator<Waiter> {
    for (let w = this.#head; w; ) {
      const next = w.next;
      yield w;
      w = next;
    }
  }
}

/** The pool's state and its two windows, read at one instant for a metrics object. */
interface MetricsSnapshot {
  now: number;
  s: PoolStatus;
  acquire: WindowSummary;
  q: WindowSummary;
}

let nextLoanId = 1;
const EVICTION_INTERVAL_MS = 5_000;
/** A timer can fire this much before its deadline (millisecond rounding): still on time. */
const TIMER_SLACK_MS = 1;
/** How often generic-pool's per-borrow tables get fresh copies (see refreshTables). */
const TABLE_REFRESH_MS = 1_000;
/** How long a statement cancelled by its call's deadline or signal may take to answer before its connection is discarded. */
const CANCEL_GRACE_MS = 2_000;
/** How long a connection released with statements in flight waits for them before it is closed. */
const PENDING_RELEASE_WAIT_MS = 30_000;
/** First stack frame outside this package: where the caller took the connection. */
const OWN_DIR = ownDirectory();

export class ManagedPool implements LoanOwner {
  #config: ResolvedPoolConfig;
  readonly #factory: ConnectionFactory;
  readonly #gpool: GenericPool<LentConnection>;
  // The acquire-timeout timer stays set after its waiters are served (no churn); while nobody
  // waits it must not keep the process alive (a DatabasePool never closed still lets it exit).
  readonly #waiters = new WaiterList((occupied) => {
    if (occupied) this.#timeoutTimer?.ref();
    else this.#timeoutTimer?.unref();
  });
  readonly #leaks: LeakDetector;
  #stats: PoolStats;
  #closing: Promise<void> | undefined;
  /** Set during cleanupPool: the evictor closes every idle connection. */
  #evictAllIdle = false;
  readonly #behaviour: FailureBehaviour;
  #circuit: 'closed' | 'open' | 'half-open' = 'closed';
  #circuitOpenedAt = 0;
  /**
   * Acquire timeouts: one timer per pool, set for the earliest deadline of the waiting callers,
   * instead of generic-pool's timer per acquire (set and cleared even when a connection is free).
   */
  #timeoutTimer: NodeJS.Timeout | undefined;
  #timeoutAt = Infinity;
  /** Connections released with statements in flight, lent to nobody until those are answered. */
  readonly #heldBack = new Set<LentConnection>();
  readonly #tableTimer: NodeJS.Timeout;
  /** Closes idle connections when their idle timeout or lifetime ends (see #scheduleEviction). */
  #evictionTimer: NodeJS.Timeout | undefined;
  #evictionAt = Infinity;
  /** What the pool knows of its server's connection budget (see server-budget.ts). */
  readonly #budget: ServerBudgetTracker;
  #budgetRead: Promise<void> | undefined;
  /** A connect is reading the settings (see #readBudgetOnConnect). */
  #budgetOnConnect = false;

  constructor(
    readonly poolId: string,
    config: ResolvedPoolConfig,
    private readonly hooks: PoolHooks = {},
    /** Carried over from the pool this one replaces (restartPool), so history survives a restart. */
    stats?: PoolStats,
    behaviour: FailureBehaviour = DEFAULT_BEHAVIOUR,
  ) {
    this.#config = config;
    this.#behaviour = behaviour;
    this.#stats = stats ? stats.withWindow(config.metricsWindowMs) : new PoolStats(config.metricsWindowMs);
    this.#factory = new ConnectionFactory(poolId, config, {
      onCreateFailure: (err) => this.#onCreateFailure(err),
      onCreateSuccess: () => this.#closeCircuit(),
      readBudget: (client, noConnection) => this.#readBudgetOnConnect(client, noConnection),
      onBroken: (conn, err) => this.#onBroken(conn, err),
      onClosed: (conn) => this.hooks.onConnectionClosed?.(poolId, conn.id, conn.client),
    });
    this.#gpool = createPool(this.#factory, {
      min: config.min,
      max: config.max,
      maxWaitingClients: config.maxWaitingClients,
      // No acquireTimeoutMillis: the pool times waiters out itself (#expireWaiters).
      testOnBorrow: true,
      // Lend the most recently released connection (as pg.Pool and HikariCP do): under light load
      // the others stay idle and are closed after idleTimeoutMs, and a session's state (temporary
      // tables, SET) is usually seen by the caller's next statement.
      fifo: false,
      evictionRunIntervalMillis: EVICTION_INTERVAL_MS,
      numTestsPerEvictionRun: Math.max(3, config.max),
      autostart: true,
    });
    installEvictor<LentConnection>(this.#gpool, (pooled, available) => this.#shouldEvict(pooled.obj, pooled.lastIdleTime, available));
    // generic-pool reports these as events too; they are handled in the factory.
    this.#gpool.on('factoryCreateError', () => {});
    this.#gpool.on('factoryDestroyError', () => {});
    this.#leaks = new LeakDetector({
      loans: () => this.loans(),
      onSuspected: (loan, held) => this.#reportLeak(loan, held, 'suspected'),
      onReclaim: (loan, held) => this.#reclaim(loan, held),
    });
    this.#leaks.configure(config.leakDetectionThresholdMs, config.leakReclaimMs);
    this.#tableTimer = setInterval(() => refreshTables(this.#gpool), TABLE_REFRESH_MS);
    this.#tableTimer.unref();
    const server = this.#factory.server;
    this.#budget = new ServerBudgetTracker({
      poolId,
      serverAddress: server.serverAddress ?? 'localhost',
      serverPort: server.serverPort ?? 5432,
      database: server.database,
      via: config.transactionPooling ? 'pooler' : 'server',
      claims: () => ({ max: this.#gpool.max, open: Math.max(0, this.#gpool.size - this.#factory.pendingCreates) }),
      refreshBudget: () => this.refreshServerBudget(),
    });
    registerBudget(this.#budget);
  }

  /** The validated config in force (with secrets; use {@link redactedConfig} to show it). */
  get config(): ResolvedPoolConfig {
    return this.#config;
  }

  /** @internal The measurements, handed to the pool that replaces this one. */
  get stats(): PoolStats {
    return this.#stats;
  }

  redactedConfig(): ResolvedPoolConfig {
    return redactDeep(this.#config);
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  status(): PoolStatus {
    const g = this.#gpool;
    return {
      poolId: this.poolId,
      ...this.#state(),
      min: g.min,
      pendingCreates: this.#factory.pendingCreates,
      connectAttempts: this.#factory.attempts,
      connectFailures: this.#factory.failures,
      lastConnectError: this.#factory.lastError?.message,
      circuit: this.#circuit,
      closed: this.closed,
    };
  }

  /** At least one connection is open (lent or idle), not just being opened. */
  hasOpenConnection(): boolean {
    return this.#gpool.size - this.#factory.pendingCreates > 0;
  }

  /** Loans currently out. */
  *loans(): IterableIterator<PooledConnection> {
    // Each lent connection holds its loan: no per-loan Map entry (see WaiterList for why).
    for (const conn of this.#factory.connections) if (conn.loan) yield conn.loan;
  }

  // ---------------------------------------------------------------- acquire

  /**
   * Lends a connection: an idle one, a new one, or the next one released, in FIFO order. Rejects
   * with ACQUIRE_TIMEOUT (carrying the pool state and the last connect error), QUEUE_FULL,
   * CONNECTION_FAILED (the server cannot be reached and the pool has no connection) or POOL_CLOSED.
   */
  acquire(options?: { failFast?: boolean; limits?: CallLimits | undefined }): Promise<PooledConnection> {
    if (this.#closing) return Promise.reject(new PoolClosedError(this.poolId));
    const failFast = options?.failFast ?? false;
    const limits = options?.limits;
    if (limits?.signal?.aborted) return Promise.reject(new QueryAbortedError(this.poolId, limits.signal.reason));
    // An open circuit fails the call at once; it is still an acquire that failed (CIRCUIT_OPEN), for the channel.
    const open = this.#circuit !== 'closed' && !this.#passCircuit();
    const stack = open || !this.#leaks.capturesStacks ? undefined : callerStack();
    if (!tracingActive(acquireChannel)) return open ? Promise.reject(this.#circuitError()) : this.#acquire(undefined, stack, failFast, limits);
    const msg: AcquireMessage = {
      poolId: this.poolId,
      pendingAtStart: this.#waiters.size,
      mustWait: this.#gpool.available === 0,
    };
    return acquireChannel.tracePromise(() => (open ? Promise.reject(this.#circuitError()) : this.#acquire(msg, stack, failFast, limits)), msg);
  }

  #circuitError(): CircuitOpenError {
    return new CircuitOpenError(this.poolId, this.#factory.lastError);
  }

  #acquire(msg: AcquireMessage | undefined, stack: string | undefined, failFast: boolean, limits?: CallLimits): Promise<PooledConnection> {
    const started = performance.now();
    // Wall-clock start only for the channel message (servedByLoanId compares it with returnedAt).
    const startedAt = msg ? Date.now() : 0;
    const traceId = stack !== undefined ? activeTraceId() : undefined;
    return new Promise<PooledConnection>((resolveLoan, rejectLoan) => {
      let resolve = resolveLoan;
      let reject = rejectLoan;
      const ownDeadline = started + this.#config.acquireTimeoutMs;
      const callEndsFirst = limits !== undefined && limits.deadline < ownDeadline;
      const signal = limits?.signal;
      if (signal) {
        // A waiter whose signal aborts leaves the queue at once; the listener goes when it settles.
        const onAbort = () => {
          if (!waiter.queued) return;
          for (const w of this.#takeWaiters([waiter])) w.reject(new QueryAbortedError(this.poolId, signal.reason));
        };
        signal.addEventListener('abort', onAbort, { once: true });
        const off = () => signal.removeEventListener('abort', onAbort);
        resolve = (loan) => (off(), resolveLoan(loan));
        reject = (err) => (off(), rejectLoan(err));
      }
      const waiter: Waiter = {
        failFast,
        deadline: callEndsFirst ? limits.deadline : ownDeadline,
        callTimeoutMs: callEndsFirst ? limits.timeoutMs : undefined,
        resolve: (loan) => resolve(loan),
        reject: (err) => reject(err),
        request: undefined,
        prev: undefined,
        next: undefined,
        queued: false,
      };
      this.#waiters.add(waiter);
      if (waiter.deadline < this.#timeoutAt) this.#armTimeouts(waiter.deadline, started);
      waiter.request = this.#gpool.acquire();
      waiter.request.then(
        (conn) => {
          if (!waiter.queued) {
            // Its caller was already failed or moved: put the connection straight back.
            this.#gpool.release(conn).catch(() => {});
            return;
          }
          this.#waiters.delete(waiter);
          resolve(this.#lend(conn, started, startedAt, msg, stack, traceId));
        },
        (err: Error) => {
          if (!waiter.queued) return;
          const state = this.#state();
          this.#waiters.delete(waiter);
          reject(this.#acquireError(err, state));
        },
      );
    });
  }

  #lend(
    conn: LentConnection,
    started: number,
    startedAt: number,
    msg: AcquireMessage | undefined,
    stack: string | undefined,
    traceId: string | undefined,
  ): PooledConnection {
    const loanId = nextLoanId++;
    const now = performance.now();
    const waitMs = now - started;
    this.#stats.acquire.record(waitMs, false, now);
    this.#stats.totals.acquires++;
    if (msg) {
      msg.connectionId = conn.id;
      msg.loanId = loanId;
      msg.waitMs = waitMs;
      // Served by a connection someone released while we waited: remember whom we waited behind.
      if (msg.mustWait && conn.loanId !== 0 && conn.returnedAt >= startedAt) msg.servedByLoanId = conn.loanId;
    }
    conn.loanId = loanId;
    conn.useCount++;
    if (this.#config.allowExitOnIdle) setRef(conn.client, true);
    const loan = new PooledConnection(this, conn, loanId, Date.now(), stack, traceId);
    conn.loan = loan;
    return loan;
  }

  #state(): PoolState {
    const g = this.#gpool;
    return { total: g.size, active: g.borrowed, idle: g.available, waiting: this.#waiters.size, max: g.max };
  }

  #acquireError(err: Error, state: PoolState): Error {
    if (err.name === 'TimeoutError') return this.#timeoutError(state);
    if (err.message === 'max waitingClients count exceeded') return new QueueFullError(this.poolId, state.waiting);
    if (err.message === 'pool is draining and cannot accept work') return new PoolClosedError(this.poolId);
    return err;
  }

  #timeoutError(state: PoolState): AcquireTimeoutError {
    this.#stats.acquireTimeouts.add();
    this.#stats.totals.acquireTimeouts++;
    const cause = this.#factory.backoff.failures > 0 ? this.#factory.lastError : undefined;
    return new AcquireTimeoutError(this.poolId, this.#config.acquireTimeoutMs, state, cause);
  }

  #armTimeouts(at: number, now: number): void {
    if (this.#timeoutTimer !== undefined) clearTimeout(this.#timeoutTimer);
    this.#timeoutAt = at;
    this.#timeoutTimer = setTimeout(() => this.#expireWaiters(), Math.max(0, Math.ceil(at - now)));
    if (this.#waiters.size === 0) this.#timeoutTimer.unref();
  }

  /**
   * The timeout timer fired: callers waiting past their deadline fail with ACQUIRE_TIMEOUT (their
   * requests leave generic-pool's queue); the timer is set again for the next deadline, if any.
   */
  #expireWaiters(): void {
    this.#timeoutTimer = undefined;
    this.#timeoutAt = Infinity;
    const now = performance.now();
    const expired: Waiter[] = [];
    let next = Infinity;
    for (const w of this.#waiters) {
      if (w.deadline <= now + TIMER_SLACK_MS) expired.push(w);
      else if (w.deadline < next) next = w.deadline;
    }
    if (expired.length > 0) {
      // The state as the expired callers saw it: they still count as waiting.
      const state = this.#state();
      for (const w of this.#takeWaiters(expired)) {
        w.reject(w.callTimeoutMs !== undefined ? new QueryTimeoutError(this.poolId, w.callTimeoutMs, 'timeoutMs') : this.#timeoutError(state));
      }
    }
    if (next !== Infinity) this.#armTimeouts(next, now);
  }

  /**
   * A connect failed. When the pool holds no connection at all, nobody waiting can be served until
   * the server is back: fail them now with the cause instead of letting them wait out the timeout.
   */
  #onCreateFailure(err: Error): void {
    // Too many connections: remembered (auto-tuning backs off); any failure means a reconnect follows.
    if (sqlStateOf(err) === '53300') this.#budget.noteTooManyConnections();
    this.#budget.markReconnect();
    if (this.hasOpenConnection()) return;
    const b = this.#behaviour;
    if (b.circuitThreshold > 0 && this.#factory.backoff.failures >= b.circuitThreshold && this.#circuit !== 'open') {
      this.#circuit = 'open';
      this.#circuitOpenedAt = Date.now();
      this.#stats.totals.circuitOpens++;
      this.publish('circuit-open', { error: err.message });
    }
    if (this.#circuit === 'half-open') {
      // The trial call failed: open again for another reset period.
      this.#circuit = 'open';
      this.#circuitOpenedAt = Date.now();
    }
    if (this.#waiters.size > 0) {
      const failure =
        this.#circuit === 'open' ? new CircuitOpenError(this.poolId, err) : new ConnectionFailedError(this.poolId, this.#target(), this.#factory.attempts, err);
      this.#failWaiters(failure, b.failFast ? undefined : (w) => w.failFast);
    }
    this.hooks.onUnreachable?.(err);
  }

  /** In an open circuit, one call goes through after `circuitResetMs` (half-open) to try the server. */
  #passCircuit(): boolean {
    if (this.#circuit === 'open' && Date.now() - this.#circuitOpenedAt >= this.#behaviour.circuitResetMs) {
      this.#circuit = 'half-open';
      return true;
    }
    return false;
  }

  #closeCircuit(): void {
    if (this.#circuit === 'closed') return;
    this.#circuit = 'closed';
    this.publish('circuit-closed');
  }

  /**
   * Takes these waiters off the list (they are the caller's to settle now) and their requests out
   * of generic-pool's queue; a request served anyway is handed straight back (see #acquire).
   */
  #takeWaiters(waiters: Iterable<Waiter>): Waiter[] {
    const taken: Waiter[] = [];
    const requests = new Set<Promise<unknown>>();
    for (const w of waiters) {
      this.#waiters.delete(w);
      if (w.request) requests.add(w.request);
      taken.push(w);
    }
    withdrawQueuedRequests(this.#gpool, requests);
    return taken;
  }

  /** Fails waiting callers (all, or those `which` picks). */
  #failWaiters(err: Error, which?: (w: Waiter) => boolean): void {
    const picked = which ? [...this.#waiters].filter(which) : [...this.#waiters];
    for (const w of this.#takeWaiters(picked)) w.reject(err);
  }

  /**
   * Hands every waiting caller to `next` (restartPool): they are served by the new pool instead of
   * waiting for this one to drain.
   */
  transferWaitersTo(next: ManagedPool): number {
    const moved = this.#takeWaiters([...this.#waiters]);
    for (const w of moved) next.acquire().then(w.resolve, w.reject);
    return moved.length;
  }

  #target(): string {
    const s = this.#factory.server;
    return `${s.serverAddress}:${s.serverPort}${s.database ? `/${s.database}` : ''}`;
  }

  // ---------------------------------------------------------------- release

  /** @internal Called by {@link PooledConnection.release}. */
  releaseLoan(loan: PooledConnection, err: Error | boolean | undefined): void {
    const conn = loan.connection;
    if (conn.loan === loan) conn.loan = undefined;
    const now = Date.now();
    conn.returnedAt = now;
    this.#stats.holds.record(now - loan.acquiredAt);
    const pending = err ? 0 : conn.pendingStatements();
    if (pending > 0 && conn.broken === undefined) {
      this.#holdBack(loan, pending, now);
      return;
    }
    this.#giveBack(loan, err ? 'error' : undefined, now);
  }

  /** Returns the connection to the pool, or closes it when it is not fit to be lent again. */
  #giveBack(loan: PooledConnection, forced: string | undefined, now: number, pendingStatements?: number): void {
    const conn = loan.connection;
    let reason = forced;
    if (reason === undefined) {
      const r = conn.reusable(now);
      if (!r.ok) reason = r.reason;
      // Shrunk below its size: close surplus connections as they come back.
      else if (this.#gpool.size > this.#config.max) reason = 'resized';
      else if (this.#config.maxUses > 0 && conn.useCount >= this.#config.maxUses) reason = 'max-uses';
    }
    this.#publishRelease(loan, now, reason, pendingStatements);
    if (reason) {
      this.#gpool.destroy(conn).catch(() => {});
      return;
    }
    if (this.#config.allowExitOnIdle) setRef(conn.client, false);
    this.#gpool.release(conn).catch(() => {});
    const idleTimeout = this.#config.idleTimeoutMs;
    const idleAt = idleTimeout > 0 && this.#gpool.available > this.#config.min ? now + idleTimeout : Infinity;
    this.#scheduleEviction(Math.min(idleAt, conn.expiresAt));
  }

  /**
   * One timer per pool, set for the earliest moment an idle connection passes its idle timeout or
   * lifetime, so idle connections are closed on time (not at the next 5 s eviction pass). A
   * release sets it only when it is not already set earlier: no timer churn under load.
   */
  #scheduleEviction(at: number): void {
    if (at >= this.#evictionAt || this.#closing) return;
    clearTimeout(this.#evictionTimer);
    this.#evictionAt = at;
    this.#evictionTimer = setTimeout(() => this.#evictDue(), Math.max(1, Math.ceil(at - Date.now())));
    // Idle connections keep the process alive unless allowExitOnIdle; so does their timer.
    if (this.#config.allowExitOnIdle) this.#evictionTimer.unref();
  }

  #evictDue(): void {
    this.#evictionTimer = undefined;
    this.#evictionAt = Infinity;
    this.#evictIdle();
  }

  /** An eviction pass now, then the timer for the next deadline of the idle connections left. */
  #evictIdle(): void {
    if (this.#closing) return;
    evictNow(this.#gpool);
    const idleTimeout = this.#config.idleTimeoutMs;
    const aboveMin = this.#gpool.available > this.#config.min;
    const now = Date.now();
    let next = Infinity;
    for (const r of idleResources<LentConnection>(this.#gpool)) {
      let at = r.obj.expiresAt;
      if (idleTimeout > 0 && aboveMin) at = Math.min(at, r.lastIdleTime + idleTimeout);
      // Due but answering the pool's budget statement (eviction waits for it): looked at again
      // as soon as it has answered.
      const reading = at <= now + TIMER_SLACK_MS ? this.#factory.budgetReads.get(r.obj) : undefined;
      if (reading) void reading.then(() => this.#evictIdle());
      else if (at < next) next = at;
    }
    if (next !== Infinity) this.#scheduleEviction(next);
  }

  /**
   * A connection reported an error or closed. Idle, it leaves the pool at once (pg.Pool's
   * counts drop at once too); lent, its holder sees the error and the release closes it.
   */
  #onBroken(conn: LentConnection, err: Error | undefined): void {
    // Lent to nobody: in the pool, or borrowed by the pool itself for a moment (server budget read).
    const idle = conn.loan === undefined && !this.#heldBack.has(conn) && this.#factory.connections.has(conn);
    if (idle) evictNow(this.#gpool);
    this.hooks.onConnectionError?.(this.poolId, conn.id, err, { idle, client: conn.client });
  }

  /**
   * Released with statements still in flight (a missing `await`): the transaction status is stale
   * until they are answered (a queued `BEGIN` reads as idle), so the connection is lent to nobody
   * until then, and judged afterwards. Answered within the bound and idle: back to the pool;
   * otherwise it is closed. The holder is told, naming the loan.
   */
  #holdBack(loan: PooledConnection, pending: number, now: number): void {
    const conn = loan.connection;
    this.#heldBack.add(conn);
    this.hooks.onReleasedWithPending?.({
      poolId: this.poolId,
      connectionId: conn.id,
      loanId: loan.id,
      pendingStatements: pending,
      stack: loan.stack,
    });
    const timeoutMs = this.#config.queryTimeoutMs > 0 ? this.#config.queryTimeoutMs + 1_000 : PENDING_RELEASE_WAIT_MS;
    void conn.whenAnswered(timeoutMs).then((answered) => {
      if (!this.#heldBack.delete(conn)) return; // closed meanwhile: already destroyed
      this.#giveBack(loan, answered ? undefined : 'statements-pending', answered ? Date.now() : now, pending);
    });
  }

  #publishRelease(loan: PooledConnection, now: number, reason: string | undefined, pendingStatements?: number): void {
    if (!releaseChannel.hasSubscribers) return;
    const msg: ReleaseMessage = {
      poolId: this.poolId,
      connectionId: loan.connection.id,
      loanId: loan.id,
      useMs: now - loan.acquiredAt,
      destroyed: reason !== undefined,
      reason,
      pendingStatements,
    };
    releaseChannel.publish(msg);
  }

  // ---------------------------------------------------------------- query

  /** @internal Called by {@link PooledConnection.query}. */
  async runQuery<R extends pg.QueryResultRow>(loan: PooledConnection, input: QueryInput, values?: unknown[]): Promise<QueryResult<R>> {
    const bad = invalidQuery(input, values);
    if (bad !== undefined) throw new InvalidQueryError(this.poolId, bad);
    const limits = loan.limits;
    if (limits !== undefined) {
      // A call already over: nothing is sent.
      if (limits.signal?.aborted) throw new QueryAbortedError(this.poolId, limits.signal.reason);
      if (limits.deadline <= performance.now()) throw new QueryTimeoutError(this.poolId, limits.timeoutMs ?? 0, 'timeoutMs');
    }
    if (!tracingActive(queryChannel)) return this.#send<R>(loan.connection, input, values, undefined, limits);
    const s = this.#factory.server;
    const msg: QueryMessage = {
      poolId: this.poolId,
      connectionId: loan.connection.id,
      loanId: loan.id,
      text: typeof input === 'string' ? input : input.text,
      standardConformingStrings: loan.connection.standardConformingStrings,
      valuesCount: values?.length ?? (typeof input === 'string' ? 0 : (input.values?.length ?? 0)),
      serverAddress: s.serverAddress,
      serverPort: s.serverPort,
      database: s.database,
    };
    return queryChannel.tracePromise(() => this.#send<R>(loan.connection, input, values, msg, limits), msg);
  }

  async #send<R extends pg.QueryResultRow>(
    conn: LentConnection,
    input: QueryInput,
    values: unknown[] | undefined,
    msg: QueryMessage | undefined,
    limits?: CallLimits,
  ): Promise<QueryResult<R>> {
    const text = typeof input === 'string' ? input : input.text;
    conn.noteQuery(text);
    const timeoutMs = this.#config.queryTimeoutMs;
    const started = performance.now();
    // Behind a transaction pooler the next statement may reach another server session, where a
    // statement prepared by name does not exist: send it unnamed (parsed each time, still bound).
    const sent = this.#config.transactionPooling && typeof input === 'object' && input.name ? { ...input, name: undefined } : input;
    const runner = driverCallRunner();
    const pending =
      runner === undefined ? conn.client.query<R>(sent as pg.QueryConfig, values) : runner(() => conn.client.query<R>(sent as pg.QueryConfig, values));
    try {
      const res =
        limits !== undefined
          ? await this.#withinCall(conn, pending, timeoutMs, limits)
          : timeoutMs > 0
            ? await this.#withTimeout(conn, pending, timeoutMs)
            : await pending;
      if (msg) {
        msg.rowCount = res.rowCount;
        msg.command = res.command;
      }
      // COMMIT (END, PREPARE TRANSACTION) on a failed transaction is answered with ROLLBACK:
      // nothing was committed, so the caller must not see a success.
      if (res.command === 'ROLLBACK' && !ROLLBACK_STATEMENT.test(text)) {
        const first = conn.txFailure;
        conn.txFailure = undefined;
        throw new TransactionRolledBackError(this.poolId, first);
      }
      if (conn.txFailure !== undefined && conn.client.getTransactionStatus?.() === 'I') conn.txFailure = undefined;
      this.#recordQuery(conn, text, started, undefined);
      return res;
    } catch (caught) {
      let err = caught;
      if (err instanceof TransactionRolledBackError) {
        this.#recordQuery(conn, text, started, err);
        throw err;
      }
      // Timeouts and aborts mark the connection themselves when it cannot be reused.
      if (!(err instanceof QueryTimeoutError) && !(err instanceof QueryAbortedError) && isConnectionLevelError(err)) conn.markBroken('error');
      // The pool took the connection back (drain timeout of removePool/restartPool/close, leak
      // reclaim) while this statement ran: say so with a typed error, not pg's bare termination.
      if (conn.broken === 'revoked' && !(err instanceof DbPoolError)) {
        err = new ConnectionRevokedError(this.poolId, conn.revokedReason ?? 'the pool took it back', err);
      }
      const sqlState = sqlStateOf(err);
      // Inside a transaction block the first failure aborts it. (Its ReadyForQuery, which turns the
      // status to 'E', can arrive after the caller got the error: 'T' counts too.)
      if (sqlState !== undefined && conn.txFailure === undefined) {
        const tx = conn.client.getTransactionStatus?.();
        if (tx === 'T' || tx === 'E') conn.txFailure = sqlState;
      }
      this.#recordQuery(conn, text, started, err, sqlState);
      if (msg && sqlState) msg.sqlState = sqlState;
      throw err;
    }
  }

  #recordQuery(conn: LentConnection, text: string, started: number, err: unknown, sqlState?: string): void {
    const now = performance.now();
    const ms = now - started;
    const failed = err !== undefined;
    const stats = this.#stats;
    stats.queries.record(ms, failed, now);
    stats.totals.queries++;
    // Described once per statement, under the session's standard_conforming_strings when it was sent.
    const d = conn.describeFinished(text);
    stats.statements.record(d.fingerprint, d.sanitized, ms, failed);
    if (failed) {
      stats.totals.errors++;
      stats.countError(sqlState ?? (err as { code?: string }).code ?? 'unknown');
    }
    const threshold = this.#config.slowQueryThresholdMs;
    if (threshold > 0 && ms >= threshold) {
      const report: SlowQueryMessage = {
        poolId: this.poolId,
        connectionId: conn.id,
        text: d.sanitized,
        fingerprint: d.fingerprint,
        durationMs: ms,
        at: Date.now(),
        error: failed ? failureSummary(err) : undefined,
        sqlState,
        traceId: activeTraceId(),
      };
      stats.slowLog.add(report);
      stats.slowQueries.add(1, now);
      if (slowQueryChannel.hasSubscribers) slowQueryChannel.publish(report);
      this.hooks.onSlowQuery?.(report);
    }
  }

  #withTimeout<T>(conn: LentConnection, pending: Promise<T>, timeoutMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        // The server may still be running it: the connection is cancelled and closed on release.
        conn.markBroken('timeout');
        reject(new QueryTimeoutError(this.poolId, timeoutMs));
      }, timeoutMs);
      pending.then(
        (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        (e: unknown) => {
          clearTimeout(timer);
          reject(e);
        },
      );
    });
  }

  /**
   * A statement of a call with limits. The pool's `queryTimeoutMs` keeps its meaning (the connection
   * is discarded). The call's deadline and signal cancel the statement on the server instead and
   * wait for its answer, so the connection comes back clean: the caller gets QUERY_TIMEOUT /
   * QUERY_ABORTED when the server cancelled it — but the result when it finished anyway (a write
   * that committed is not reported as failed). No answer within CANCEL_GRACE_MS: the connection
   * is discarded.
   */
  #withinCall<T>(conn: LentConnection, pending: Promise<T>, queryTimeoutMs: number, limits: CallLimits): Promise<T> {
    const callMs = limits.deadline - performance.now();
    if (queryTimeoutMs > 0 && queryTimeoutMs <= callMs && !limits.signal) return this.#withTimeout(conn, pending, queryTimeoutMs);
    return new Promise<T>((resolve, reject) => {
      const signal = limits.signal;
      let stop: (() => Error) | undefined;
      let cancelled: Promise<void> | undefined;
      let graceTimer: NodeJS.Timeout | undefined;
      const cleanup = () => {
        clearTimeout(callTimer);
        clearTimeout(poolTimer);
        clearTimeout(graceTimer);
        signal?.removeEventListener('abort', onAbort);
      };
      const cancel = (why: () => Error) => {
        if (stop !== undefined) return;
        stop = why;
        clearTimeout(callTimer);
        clearTimeout(poolTimer);
        cancelled = sendCancel(conn);
        graceTimer = setTimeout(() => {
          conn.markBroken('timeout');
          cleanup();
          reject(why());
        }, CANCEL_GRACE_MS);
      };
      const onAbort = () => cancel(() => new QueryAbortedError(this.poolId, signal!.reason));
      const callTimer =
        callMs < Infinity
          ? setTimeout(() => cancel(() => new QueryTimeoutError(this.poolId, limits.timeoutMs ?? Math.round(callMs), 'timeoutMs')), Math.max(0, callMs))
          : undefined;
      // The pool's own limit, when it comes first: its usual meaning (the connection is discarded).
      const poolTimer =
        queryTimeoutMs > 0 && queryTimeoutMs < callMs
          ? setTimeout(() => {
              if (stop !== undefined) return;
              cleanup();
              conn.markBroken('timeout');
              reject(new QueryTimeoutError(this.poolId, queryTimeoutMs));
            }, queryTimeoutMs)
          : undefined;
      signal?.addEventListener('abort', onAbort, { once: true });
      // Once a cancel is sent, nothing settles (so nothing can reuse the connection) before the
      // server has taken it: a cancel arriving late would hit the next statement on the session.
      const settle = (fn: () => void) => {
        cleanup();
        if (cancelled === undefined) fn();
        else void cancelled.then(fn);
      };
      pending.then(
        (v) => settle(() => resolve(v)),
        (e: unknown) =>
          settle(() => {
            if (stop !== undefined && sqlStateOf(e) === '57014') {
              const err = stop();
              (err as { cause?: unknown }).cause ??= e;
              reject(err);
            } else reject(e);
          }),
      );
    });
  }

  // ---------------------------------------------------------------- leaks

  #reportLeak(loan: PooledConnection, heldMs: number, kind: LeakMessage['kind']): void {
    const report: LeakReport = {
      poolId: this.poolId,
      connectionId: loan.connection.id,
      loanId: loan.id,
      heldMs,
      acquiredAt: loan.acquiredAt,
      stack: loan.stack,
      traceId: loan.traceId,
      kind,
    };
    if (kind === 'suspected') this.#stats.totals.leaksReported++;
    else this.#stats.totals.leaksReclaimed++;
    if (leakChannel.hasSubscribers) leakChannel.publish(report);
    this.hooks.onLeak?.(report);
  }

  /** Takes a loan back: its holder's next use fails with CONNECTION_REVOKED; the pool refills. */
  #reclaim(loan: PooledConnection, heldMs: number): void {
    if (!this.#revoke(loan, `held for ${Math.round(heldMs)} ms, longer than leakReclaimMs`)) return;
    this.#reportLeak(loan, heldMs, 'reclaimed');
    this.#publishRelease(loan, Date.now(), 'revoked');
  }

  /** Revokes a loan (false when it already ended) and destroys its connection, which nobody may use again. */
  #revoke(loan: PooledConnection, reason: string): boolean {
    if (!loan.revoke(reason)) return false;
    const conn = loan.connection;
    if (conn.loan === loan) conn.loan = undefined;
    conn.revokedReason ??= reason;
    conn.markBroken('revoked');
    this.#gpool.destroy(conn).catch(() => {});
    return true;
  }

  // ---------------------------------------------------------------- measurements

  getMetrics(): PoolMetrics {
    return this.#metrics(PoolMetrics, this.#snapshot());
  }

  getDetailedMetrics(): DetailedMetrics {
    // Asked for in detail: the server's backends are read in the background when stale.
    if (this.#budget.settingsDue || this.#budget.backendsDue()) void this.refreshServerBudget();
    // One reading of the state and the windows serves both parts (same instant, summed once).
    const snap = this.#snapshot();
    const m = this.#metrics(DetailedMetrics, snap);
    const { s, acquire, q: queries } = snap;
    m.minConnections = s.min;
    m.pendingCreates = s.pendingCreates;
    m.acquireLatencyP95 = acquire.p95;
    m.acquireLatencyMax = acquire.max;
    m.latencyMean = queries.mean;
    m.latencyMax = queries.max;
    m.queriesInWindow = queries.count;
    m.errorsInWindow = queries.errors;
    m.lastConnectError = s.lastConnectError ?? null;
    const t = this.#stats.totals;
    m.totals = {
      acquires: t.acquires,
      acquireTimeouts: t.acquireTimeouts,
      queries: t.queries,
      errors: t.errors,
      slowQueries: this.#stats.slowLog.total,
      leaksReported: t.leaksReported,
      leaksReclaimed: t.leaksReclaimed,
      connectionsCreated: this.#factory.created + t.connectionsCreated,
      connectionsClosed: this.#factory.closed + t.connectionsClosed,
      connectAttempts: s.connectAttempts,
      connectFailures: s.connectFailures,
      circuitOpens: t.circuitOpens,
      failovers: t.failovers,
      failbacks: t.failbacks,
      recoveries: t.recoveries,
    };
    return m;
  }

  #snapshot(): MetricsSnapshot {
    const now = performance.now();
    return { now, s: this.status(), acquire: this.#stats.acquire.summary(now), q: this.#stats.queries.summary(now) };
  }

  #metrics<M extends PoolMetrics>(Kind: new (fields: PoolMetricsFields) => M, { now, s, acquire, q }: MetricsSnapshot): M {
    const m = new Kind({
      poolId: this.poolId,
      windowSeconds: this.#stats.windowMs / 1000,
      connectionUtilization: s.max > 0 ? s.active / s.max : 0,
      activeConnections: s.active,
      idleConnections: s.idle,
      totalConnections: s.total,
      maxConnections: s.max,
      waitingQueueLength: s.waiting,
      acquireLatencyP50: acquire.p50,
      acquireLatencyP99: acquire.p99,
      acquireTimeouts: this.#stats.acquireTimeouts.total(now),
      queriesPerSecond: q.count / q.seconds,
      latencyP50: q.p50,
      latencyP95: q.p95,
      latencyP99: q.p99,
      errorRate: q.count > 0 ? q.errors / q.count : 0,
      slowQueriesCount: this.#stats.slowQueries.total(now),
      leakedConnections: this.#leaks.suspectedCount(),
      timestamp: new Date().toISOString(),
    });
    m.serverBudget = this.#budget.snapshot();
    return m;
  }

  // ---------------------------------------------------------------- the server's connection budget

  /** The server's connection budget as this pool last read it, with this process's claims on it; null until read. */
  serverBudget(): ServerBudget | null {
    return this.#budget.snapshot();
  }

  /** @internal What the pool knows of its server's budget (auto-tuning reads the last 53300 from it). */
  get budgetTracker(): ServerBudgetTracker {
    return this.#budget;
  }

  /**
   * Reads what is due of the server's budget (the backends when older than BACKENDS_REFRESH_MS;
   * the settings when reading them on connect failed a while ago) on an idle connection of the
   * pool. Never waits for a connection, never opens one: with none idle now it reads nothing and
   * the values keep their time. One read at a time; never rejects.
   */
  refreshServerBudget(): Promise<void> {
    this.#budgetRead ??= this.#readBudget()
      .catch((err: unknown) => this.#budget.applyFailure(this.#factory.scrub(err)))
      .finally(() => {
        this.#budgetRead = undefined;
      });
    return this.#budgetRead;
  }

  /**
   * On a new connection, before anyone is lent it: the settings, when the pool has never read them
   * or reconnected (its connects failed, or it held no connection). One read at a time. A server
   * that does not answer within the budget statement's timeout, or drops the connection, fails the
   * connect attempt; a statement error (a server without these settings) is kept, and the connect stands.
   */
  async #readBudgetOnConnect(client: pg.Client, noConnection: boolean): Promise<void> {
    const b = this.#budget;
    if (noConnection) b.markReconnect();
    if (!b.settingsDue || this.#budgetOnConnect) return;
    this.#budgetOnConnect = true;
    try {
      b.applySettings((await this.#budgetQuery<BudgetSettingsRow>(client, BUDGET_SETTINGS_SQL)).rows[0]!);
    } catch (err) {
      if (isConnectionLevelError(err)) throw err;
      b.applyFailure(this.#factory.scrub(err), true);
    } finally {
      this.#budgetOnConnect = false;
    }
  }

  async #readBudget(): Promise<void> {
    const b = this.#budget;
    const settings = b.settingsDue;
    if (!settings && (!b.known || !b.backendsDue())) return;
    const conn = this.#idleForBudget();
    if (conn === undefined) return;
    // The connection stays idle in the pool (its counts unchanged); a caller that takes it meanwhile
    // waits for the answer (validate), and eviction leaves it alone until then.
    const read = (async () => {
      try {
        if (settings) b.applySettings((await this.#budgetQuery<BudgetSettingsRow>(conn.client, BUDGET_SETTINGS_SQL)).rows[0]!);
        else b.applyBackends((await this.#budgetQuery<{ backends: number }>(conn.client, BUDGET_BACKENDS_SQL)).rows[0]!.backends);
      } catch (err) {
        if (err instanceof BudgetTimeoutError) conn.markBroken('timeout');
        else if (isConnectionLevelError(err)) conn.markBroken('error');
        b.applyFailure(this.#factory.scrub(err), settings);
      } finally {
        this.#factory.budgetReads.delete(conn);
      }
    })();
    this.#factory.budgetReads.set(conn, read);
    await read;
    // Broken (or timed out) meanwhile: closed now rather than at its next borrow.
    if (!conn.reusable(Date.now()).ok) evictNow(this.#gpool);
  }

  /**
   * An idle connection for the pool's own statement: the one returned longest ago (callers get the
   * most recent first), none while callers wait. Never a new one.
   */
  #idleForBudget(): LentConnection | undefined {
    if (this.#closing || this.#waiters.size > 0) return undefined;
    const now = Date.now();
    let pick: LentConnection | undefined;
    for (const r of idleResources<LentConnection>(this.#gpool)) if (!this.#factory.budgetReads.has(r.obj) && r.obj.reusable(now).ok) pick = r.obj;
    return pick;
  }

  /** One statement of the pool's own on `client`, abandoned after a few seconds (BudgetTimeoutError: close the connection). */
  #budgetQuery<R extends pg.QueryResultRow>(client: pg.Client, sql: string): Promise<pg.QueryResult<R>> {
    const timeoutMs = Math.max(1_000, Math.min(5_000, this.#config.acquireTimeoutMs));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new BudgetTimeoutError(timeoutMs)), timeoutMs);
      runDriverCall(() => client.query<R>(sql)).then(
        (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        (e: unknown) => {
          clearTimeout(timer);
          reject(e);
        },
      );
    });
  }

  getQueryMetrics(topLimit = 20): QueryMetrics {
    const now = performance.now();
    const q = this.#stats.queries.summary(now);
    return new QueryMetrics({
      poolId: this.poolId,
      windowSeconds: this.#stats.windowMs / 1000,
      queriesPerSecond: q.count / q.seconds,
      latencyP50: q.p50,
      latencyP95: q.p95,
      latencyP99: q.p99,
      latencyMean: q.mean,
      latencyMax: q.max,
      errorRate: q.count > 0 ? q.errors / q.count : 0,
      slowQueriesCount: this.#stats.slowQueries.total(now),
      errorsByCode: Object.fromEntries(this.#stats.errorsByCode),
      topStatements: this.#stats.statements.top(topLimit),
      statementsTracked: this.#stats.statements.size,
      statementsEvicted: this.#stats.statements.evicted,
      timestamp: new Date().toISOString(),
    });
  }

  /**
   * Load over the window from loan hold times (Little's law): arrival rate of loans, mean hold time,
   * and the mean number of connections in use.
   */
  loadProfile(): { acquiresPerSecond: number; meanHoldMs: number; meanInUse: number; averageUtilization: number } {
    const h = this.#stats.holds.summary();
    const acquiresPerSecond = h.count / h.seconds;
    const meanInUse = (h.mean * h.count) / 1000 / h.seconds;
    return { acquiresPerSecond, meanHoldMs: h.mean, meanInUse, averageUtilization: this.#config.max > 0 ? meanInUse / this.#config.max : 0 };
  }

  getSlowQueries(limit = 10): SlowQuery[] {
    return this.#stats.slowLog.slowest(limit);
  }

  getConnectionDetails(): ConnectionInfo[] {
    const now = Date.now();
    return [...this.#factory.connections]
      .sort((a, b) => a.id - b.id)
      .map((conn) => {
        const loan = conn.loan;
        const info: ConnectionInfo = {
          id: conn.id,
          state: conn.broken ? 'broken' : loan ? 'active' : 'idle',
          processId: conn.processId,
          createdAt: new Date(conn.createdAt).toISOString(),
          activeDurationMs: loan ? now - loan.acquiredAt : 0,
          useCount: conn.useCount,
          lastQuery: conn.lastQuery?.sanitized,
        };
        if (loan) {
          info.loanId = loan.id;
          if (loan.stack) info.stackTrace = loan.stack;
          if (loan.traceId) info.traceId = loan.traceId;
        }
        return info;
      });
  }

  // ---------------------------------------------------------------- live changes

  /**
   * Applies a validated config to the running pool: limits at once (raising max serves waiters,
   * lowering it closes idle surplus now and busy surplus on release), timeouts from the next
   * acquire / query, leak limits from the next scan.
   */
  reconfigure(next: ResolvedPoolConfig): void {
    const prev = this.#config;
    this.#config = next;
    this.#factory.reconfigure(next);
    this.#stats = this.#stats.withWindow(next.metricsWindowMs);
    this.#leaks.configure(next.leakDetectionThresholdMs, next.leakReclaimMs);
    setLimits(this.#gpool, { min: next.min, max: next.max, maxWaitingClients: next.maxWaitingClients });
    if (next.max < prev.max || next.idleTimeoutMs < prev.idleTimeoutMs) evictNow(this.#gpool);
    this.publish('resized', { min: next.min, max: next.max });
  }

  /**
   * cleanupPool: closes every idle connection (the pool refills to `min` with fresh ones), takes
   * back loans held past the leak threshold, and forgets transient errors (connect backoff,
   * windowed error counts).
   */
  cleanup(): { idleClosed: number; leaksReclaimed: number; errorsCleared: boolean } {
    const idleBefore = this.#gpool.available;
    this.#evictAllIdle = true;
    try {
      evictNow(this.#gpool);
    } finally {
      this.#evictAllIdle = false;
    }
    const idleClosed = idleBefore - this.#gpool.available;
    const leaksReclaimed = this.#leaks.reclaimSuspected();
    this.#factory.resetFailures();
    this.#stats.clearTransient();
    return { idleClosed: Math.max(0, idleClosed), leaksReclaimed, errorsCleared: true };
  }

  /**
   * Decides, per idle connection in an eviction pass: broken or expired ones go; idle ones above
   * `min` go after `idleTimeoutMs`; surplus above a lowered `max` goes; cleanup closes all.
   */
  #shouldEvict(conn: LentConnection, lastIdleTime: number, availableCount: number): boolean {
    const now = Date.now();
    if (this.#evictAllIdle) return true;
    // Running the pool's budget statement (statements pending): judged once it has answered.
    if (this.#factory.budgetReads.has(conn)) return false;
    if (!conn.reusable(now).ok) return true;
    if (this.#gpool.size > this.#config.max) return true;
    const idleTimeout = this.#config.idleTimeoutMs;
    // The eviction timer fires at the deadline, give or take the timers' millisecond rounding.
    return idleTimeout > 0 && now - lastIdleTime >= idleTimeout - TIMER_SLACK_MS && availableCount > this.#config.min;
  }

  publish(event: PoolEventMessage['event'], detail?: Record<string, unknown>): void {
    if (poolChannel.hasSubscribers) poolChannel.publish({ poolId: this.poolId, event, detail } satisfies PoolEventMessage);
  }

  // ---------------------------------------------------------------- close

  /**
   * Stops lending and closes the pool: loans out are waited for (up to `drainTimeoutMs`), then
   * revoked; idle connections are closed. Safe to call twice.
   */
  close(drainTimeoutMs = 30_000): Promise<void> {
    // A closing pool claims no part of its server's budget any more.
    unregisterBudget(this.#budget);
    this.#closing ??= this.#close(drainTimeoutMs);
    return this.#closing;
  }

  async #close(drainTimeoutMs: number): Promise<void> {
    const g = this.#gpool;
    this.#leaks.stop();
    let timer: NodeJS.Timeout | undefined;
    const drained = g.drain().then(() => true);
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), drainTimeoutMs);
    });
    const clean = await Promise.race([drained, timedOut]);
    clearTimeout(timer);
    this.#factory.close();
    if (!clean) {
      for (const loan of [...this.loans()]) this.#revoke(loan, 'the pool was closed before it was released');
      for (const conn of this.#heldBack) {
        conn.markBroken('revoked');
        this.#gpool.destroy(conn).catch(() => {});
      }
      this.#heldBack.clear();
      this.#failWaiters(new PoolClosedError(this.poolId));
      stopEvictor(g);
    }
    await g.clear();
    clearTimeout(this.#timeoutTimer);
    this.#timeoutTimer = undefined;
    clearInterval(this.#tableTimer);
    clearTimeout(this.#evictionTimer);
    this.#evictionTimer = undefined;
    // Lifetime totals outlive this pool object (restartPool hands the stats on).
    this.#stats.totals.connectionsCreated += this.#factory.created;
    this.#stats.totals.connectionsClosed += this.#factory.closed;
  }
}

/** The server did not answer the pool's budget statement in time (the connection is not used again). */
class BudgetTimeoutError extends Error {
  constructor(timeoutMs: number) {
    super(`the server did not answer the pool's connection-budget statement within ${timeoutMs} ms`);
    this.name = 'BudgetTimeoutError';
  }
}

/** Statements whose answer is ROLLBACK by design (any other statement answered so failed to commit). */
const ROLLBACK_STATEMENT = /^\s*(?:rollback|abort)\b/i;

/** What is wrong with a query call's arguments, or undefined when pg can send it. */
function invalidQuery(input: unknown, values: unknown): string | undefined {
  if (typeof input !== 'string') {
    if (typeof input !== 'object' || input === null) return `the statement must be a string or a query config, got ${input === null ? 'null' : typeof input}`;
    if (typeof (input as { submit?: unknown }).submit === 'function') return 'a submittable (cursor, stream) needs the driver: use loan.client.query(...)';
    const text = (input as { text?: unknown }).text;
    if (typeof text !== 'string') return `the query config's text must be a string, got ${text === null ? 'null' : typeof text}`;
    const own = (input as { values?: unknown }).values;
    if (own !== undefined && own !== null && !Array.isArray(own)) return `the query config's values must be an array, got ${typeof own}`;
  }
  if (values !== undefined && values !== null && !Array.isArray(values)) return `values must be an array, got ${typeof values}`;
  return undefined;
}

/** pg's Client#ref / #unref: whether the connection's socket keeps the process alive. */
function setRef(client: pg.Client, ref: boolean): void {
  const c = client as unknown as { ref?: () => void; unref?: () => void };
  try {
    if (ref) c.ref?.();
    else c.unref?.();
  } catch {
    // no socket (closing): nothing to keep alive
  }
}

/** The stack of whoever called into the package, without the package's own frames. */
function callerStack(): string {
  const holder: { stack?: string } = {};
  Error.captureStackTrace(holder);
  const lines = (holder.stack ?? '').split('\n').slice(1);
  const outside = lines.filter((l) => !OWN_DIR || !l.includes(OWN_DIR));
  return (outside.length > 0 ? outside : lines).map((l) => l.trim()).join('\n');
}

/** The package's `src/` directory: this module lives in `src/pool/`, the facade one level up. */
function ownDirectory(): string | undefined {
  const frame = new Error().stack?.split('\n')[1] ?? '';
  const m = /\(?((?:file:\/\/)?\/[^():]+)\/[^/():]+\/[^/():]+:\d+:\d+\)?$/.exec(frame.trim());
  return m?.[1];
}
