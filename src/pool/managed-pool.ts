/**
 * One named pool: a generic-pool pool of `pg` connections, plus what generic-pool lacks — paced
 * reconnects whose failure reaches waiters, loans that can be released only once, connections
 * that are never reused after an error or inside a transaction, timeouts that describe the pool,
 * in-process metrics, slow-query and leak reports, live resizing, and the `db-pool:*` channels.
 */
import { createPool, type Pool as GenericPool } from 'generic-pool';
import type pg from 'pg';
import { acquireChannel, poolChannel, tracingActive, type AcquireMessage, type LeakMessage, type PoolEventMessage } from '../channels.js';
import { redactDeep, type ResolvedPoolConfig } from '../config/config.js';
import { setRef, sqlStateOf } from './connection.js';
import { callerStack } from './caller-stack.js';
import { ConnectionFactory } from './connection-factory.js';
import { CircuitOpenError, ConnectionFailedError, PoolClosedError, QueryAbortedError } from '../errors.js';
import { evictNow, installEvictor, refreshTables, setLimits, stopEvictor } from './generic-pool-internals.js';
import { LeakDetector } from './leak-detector.js';
import { type DetailedMetrics, PoolMetrics, type QueryMetrics } from './metrics.js';
import { BudgetReader } from './budget-reader.js';
import { CircuitBreaker } from './circuit-breaker.js';
import { IdleEviction } from './idle-eviction.js';
import { publishLeak, publishRelease } from './loan-events.js';
import { Lender, PRIORITY_RANGE } from './lender.js';
import { connectionDetails, detailedMetrics, type LoadProfile, loadProfile, poolMetrics, queryMetrics, type ReportInputs } from './pool-reports.js';
import { type Done, StatementRunner } from './statement-runner.js';
import type { PooledConnection, CallLimits, LentConnection, LoanOwner, QueryInput, QueryResult } from './pooled-connection.js';
import { registerBudget, ServerBudgetTracker, unregisterBudget, type ServerBudget } from './server-budget.js';
import { PoolStats } from '../stats/pool-stats.js';
import type { SlowQuery } from '../stats/slow-query-log.js';
import type { ConnectionInfo, FailureBehaviour, PoolHooks, PoolStatus } from './pool-types.js';

export type { ConnectionInfo, FailureBehaviour, LeakReport, PendingReleaseReport, PoolHooks, PoolStatus } from './pool-types.js';

const DEFAULT_BEHAVIOUR: FailureBehaviour = { failFast: true, circuitThreshold: 0, circuitResetMs: 1_000 };

const EVICTION_INTERVAL_MS = 5_000;
/** How often generic-pool's per-borrow tables get fresh copies (see refreshTables). */
const TABLE_REFRESH_MS = 1_000;
/** How long a connection released with statements in flight waits for them before it is closed. */
const PENDING_RELEASE_WAIT_MS = 30_000;

export class ManagedPool implements LoanOwner {
  #config: ResolvedPoolConfig;
  readonly #factory: ConnectionFactory;
  readonly #gpool: GenericPool<LentConnection>;
  /** Lends connections to callers, queues those who wait, times them out. */
  readonly #lender: Lender;
  readonly #leaks: LeakDetector;
  #stats: PoolStats;
  #closing: Promise<void> | undefined;
  readonly #behaviour: FailureBehaviour;
  readonly #circuit: CircuitBreaker;
  readonly #statements: StatementRunner;
  /** Connections released with statements in flight, lent to nobody until those are answered. */
  readonly #heldBack = new Set<LentConnection>();
  readonly #tableTimer: NodeJS.Timeout;
  /** Closes idle connections when their idle timeout or lifetime ends, and decides in eviction passes. */
  readonly #eviction: IdleEviction;
  /** What the pool knows of its server's connection budget (see server-budget.ts). */
  readonly #budget: ServerBudgetTracker;
  readonly #budgetReader: BudgetReader;

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
    this.#circuit = new CircuitBreaker(behaviour);
    this.#statements = new StatementRunner(poolId, {
      config: () => this.#config,
      stats: () => this.#stats,
      onSlowQuery: (report) => this.hooks.onSlowQuery?.(report),
      server: () => this.#factory.server,
    });
    this.#stats = stats ? stats.withWindow(config.metricsWindowMs) : new PoolStats(config.metricsWindowMs);
    this.#factory = new ConnectionFactory(poolId, config, {
      onCreateFailure: (err) => this.#onCreateFailure(err),
      onCreateSuccess: () => {
        if (this.#circuit.close()) this.publish('circuit-closed');
      },
      readBudget: (client, noConnection) => this.#budgetReader.onConnect(client, noConnection),
      onBroken: (conn, err) => this.#onBroken(conn, err),
      onClosed: (conn) => this.hooks.onConnectionClosed?.(poolId, conn.id, conn.client),
    });
    this.#gpool = createPool(this.#factory, {
      min: config.min,
      max: config.max,
      maxWaitingClients: config.maxWaitingClients,
      // No acquireTimeoutMillis: the pool times waiters out itself (see Lender).
      // Tested on borrow by the Lender (see there).
      testOnBorrow: false,
      priorityRange: PRIORITY_RANGE,
      // Lend the most recently released connection (as pg.Pool and HikariCP do): under light load
      // the others stay idle and are closed after idleTimeoutMs, and a session's state (temporary
      // tables, SET) is usually seen by the caller's next statement.
      fifo: false,
      evictionRunIntervalMillis: EVICTION_INTERVAL_MS,
      numTestsPerEvictionRun: Math.max(3, config.max),
      autostart: true,
    });
    this.#eviction = new IdleEviction(this.#gpool, this.#factory.budgetReads, {
      config: () => this.#config,
      closing: () => this.#closing !== undefined,
    });
    installEvictor<LentConnection>(this.#gpool, (pooled, available) => this.#eviction.shouldEvict(pooled.obj, pooled.lastIdleTime, available));
    this.#lender = new Lender(poolId, this.#gpool, {
      loanOwner: this,
      config: () => this.#config,
      stats: () => this.#stats,
      connectFailure: () => (this.#factory.backoff.failures > 0 ? this.#factory.lastError : undefined),
      check: (conn) => this.#factory.check(conn),
    });
    // generic-pool reports these as events too; they are handled in the factory.
    this.#gpool.on('factoryCreateError', () => {});
    this.#gpool.on('factoryDestroyError', () => {});
    this.#leaks = new LeakDetector({
      loans: () => this.loans(),
      onSuspected: (loan, held) => this.#reportLeak(loan, held, 'suspected'),
      onReclaim: (loan, held) => this.#reclaim(loan, held),
    });
    this.#leaks.configure(config.leakDetectionThresholdMs, config.leakReclaimMs);
    // Replaced once now, before any code has run hot on them: V8 treats a field never reassigned
    // as constant and deoptimises generic-pool's code when the first refresh reassigns it.
    refreshTables(this.#gpool);
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
    this.#budgetReader = new BudgetReader(this.#budget, this.#factory, this.#gpool, {
      busy: () => this.#closing !== undefined || this.#lender.waiters.size > 0,
      statementTimeoutMs: () => Math.max(1_000, Math.min(5_000, this.#config.acquireTimeoutMs)),
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
      ...this.#lender.state(),
      min: g.min,
      pendingCreates: this.#factory.pendingCreates,
      connectAttempts: this.#factory.attempts,
      connectFailures: this.#factory.failures,
      lastConnectError: this.#factory.lastError?.message,
      circuit: this.#circuit.state,
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
    // Settled from outside the executor, so that a leak report's caller stack has no promise frame.
    let resolve!: (loan: PooledConnection) => void;
    let reject!: (err: Error) => void;
    const loan = new Promise<PooledConnection>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.lend(options?.limits, resolve, reject, options?.failFast ?? false);
    return loan;
  }

  /**
   * {@link acquire} with callbacks, for a caller that goes on with the loan at once (db.query).
   * Exactly one of the two is called, `onError` possibly before this returns. Traced, the acquire
   * channel gets what node's tracePromise would publish for a promise of the loan: start and end
   * around the call, then error (on failure), asyncStart and asyncEnd when it is answered, and
   * `onLoan` / `onError` after them.
   */
  lend(limits: CallLimits | undefined, onLoan: (loan: PooledConnection) => void, onError: (err: Error) => void, failFast = false): void {
    if (this.#closing) {
      onError(new PoolClosedError(this.poolId));
      return;
    }
    if (limits?.signal?.aborted) {
      onError(new QueryAbortedError(this.poolId, limits.signal.reason));
      return;
    }
    const open = !this.#circuit.admits();
    const stack = open || !this.#leaks.capturesStacks ? undefined : callerStack();
    if (!tracingActive(acquireChannel)) {
      if (open) onError(this.#circuitError());
      else this.#lender.lend(undefined, stack, failFast, limits, onLoan, onError);
      return;
    }
    const msg: AcquireMessage = {
      poolId: this.poolId,
      pendingAtStart: this.#lender.waiters.size,
      mustWait: this.#gpool.available === 0,
    };
    // An answer during start (only a failure can come that soon) waits for end, as a promise's would.
    let early: Error | undefined;
    let starting = true;
    const failed = (err: Error) => {
      if (starting) {
        early = err;
        return;
      }
      msg.error = err;
      acquireChannel.error.publish(msg);
      acquireChannel.asyncStart.publish(msg);
      acquireChannel.asyncEnd.publish(msg);
      onError(err);
    };
    const lent = (loan: PooledConnection) => {
      // As tracePromise does (the message type leaves it out).
      (msg as { result?: unknown }).result = loan;
      acquireChannel.asyncStart.publish(msg);
      acquireChannel.asyncEnd.publish(msg);
      onLoan(loan);
    };
    acquireChannel.start.runStores(msg, () => {
      try {
        if (open) failed(this.#circuitError());
        else this.#lender.lend(msg, stack, failFast, limits, lent, failed);
      } finally {
        acquireChannel.end.publish(msg);
      }
    });
    starting = false;
    if (early !== undefined) failed(early);
  }

  #circuitError(): CircuitOpenError {
    return new CircuitOpenError(this.poolId, this.#factory.lastError);
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
    if (this.#circuit.connectFailed(this.#factory.backoff.failures)) {
      this.#stats.totals.circuitOpens++;
      this.publish('circuit-open', { error: err.message });
    }
    if (this.#lender.waiters.size > 0) {
      const failure =
        this.#circuit.state === 'open'
          ? new CircuitOpenError(this.poolId, err)
          : new ConnectionFailedError(this.poolId, this.#factory.target(), this.#factory.attempts, err);
      this.#lender.waiters.fail(failure, b.failFast ? undefined : (w) => w.failFast);
    }
    this.hooks.onUnreachable?.(err);
  }

  /**
   * Hands every waiting caller to `next` (restartPool): they are served by the new pool instead of
   * waiting for this one to drain.
   */
  transferWaitersTo(next: ManagedPool): number {
    return this.#lender.transferTo(next);
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
    publishRelease(this.poolId, loan, now, reason, pendingStatements);
    if (reason) {
      this.#gpool.destroy(conn).catch(() => {});
      return;
    }
    if (this.#config.allowExitOnIdle) setRef(conn.client, false);
    // Only a release of what generic-pool has not lent rejects: checked first, so the usual
    // release needs no handler on its (resolved) promise, which cost a promise and a microtask.
    if (this.#gpool.isBorrowedResource(conn)) void this.#gpool.release(conn);
    const idleTimeout = this.#config.idleTimeoutMs;
    const idleAt = idleTimeout > 0 && this.#gpool.available > this.#config.min ? now + idleTimeout : Infinity;
    this.#eviction.schedule(Math.min(idleAt, conn.expiresAt));
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

  // ---------------------------------------------------------------- query

  /** @internal Called by {@link PooledConnection.query}. */
  runQuery<R extends pg.QueryResultRow>(loan: PooledConnection, input: QueryInput, values?: unknown[]): Promise<QueryResult<R>> {
    return this.#statements.run<R>(loan, input, values);
  }

  /** @internal {@link runQuery} answering `done` instead of a promise (db.query's path). */
  runQueryThen<R extends pg.QueryResultRow>(loan: PooledConnection, input: QueryInput, values: unknown[] | undefined, done: Done): void {
    this.#statements.runThen<R>(loan, input, values, done);
  }

  // ---------------------------------------------------------------- leaks

  #reportLeak(loan: PooledConnection, heldMs: number, kind: LeakMessage['kind']): void {
    if (kind === 'suspected') this.#stats.totals.leaksReported++;
    else this.#stats.totals.leaksReclaimed++;
    this.hooks.onLeak?.(publishLeak(this.poolId, loan, heldMs, kind));
  }

  /** Takes a loan back: its holder's next use fails with CONNECTION_REVOKED; the pool refills. */
  #reclaim(loan: PooledConnection, heldMs: number): void {
    if (!this.#revoke(loan, `held for ${Math.round(heldMs)} ms, longer than leakReclaimMs`)) return;
    this.#reportLeak(loan, heldMs, 'reclaimed');
    publishRelease(this.poolId, loan, Date.now(), 'revoked');
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
    return poolMetrics(PoolMetrics, this.#reportInputs());
  }

  getDetailedMetrics(): DetailedMetrics {
    // Asked for in detail: the server's backends are read in the background when stale.
    if (this.#budget.settingsDue || this.#budget.backendsDue()) void this.refreshServerBudget();
    return detailedMetrics(this.#reportInputs());
  }

  #reportInputs(): ReportInputs {
    return {
      poolId: this.poolId,
      stats: this.#stats,
      status: this.status(),
      leaksSuspected: this.#leaks.suspectedCount(),
      budget: this.#budget.snapshot(),
      connectionsCreated: this.#factory.created,
      connectionsClosed: this.#factory.closed,
    };
  }

  getQueryMetrics(topLimit = 20): QueryMetrics {
    return queryMetrics(this.poolId, this.#stats, topLimit);
  }

  /** Load over the window from loan hold times (Little's law). */
  loadProfile(): LoadProfile {
    return loadProfile(this.#stats, this.#config.max);
  }

  getSlowQueries(limit = 10): SlowQuery[] {
    return this.#stats.slowLog.slowest(limit);
  }

  getConnectionDetails(): ConnectionInfo[] {
    return connectionDetails(this.#factory.connections);
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
   * Reads what is due of the server's budget on an idle connection of the pool (see BudgetReader):
   * never waits for a connection, never opens one; never rejects.
   */
  refreshServerBudget(): Promise<void> {
    return this.#budgetReader.refresh();
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
    this.#eviction.evictAllIdle();
    const idleClosed = idleBefore - this.#gpool.available;
    const leaksReclaimed = this.#leaks.reclaimSuspected();
    this.#factory.resetFailures();
    this.#stats.clearTransient();
    return { idleClosed: Math.max(0, idleClosed), leaksReclaimed, errorsCleared: true };
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
      this.#lender.waiters.fail(new PoolClosedError(this.poolId));
      stopEvictor(g);
    }
    await g.clear();
    this.#lender.waiters.stop();
    clearInterval(this.#tableTimer);
    this.#eviction.stop();
    // Lifetime totals outlive this pool object (restartPool hands the stats on).
    this.#stats.totals.connectionsCreated += this.#factory.created;
    this.#stats.totals.connectionsClosed += this.#factory.closed;
  }
}
