/**
 * Lending connections of one pool: a caller asks, generic-pool hands over an idle, new or next
 * released connection, and the loan is made; callers who wait are queued (WaitingCallers), timed
 * out at their deadline or their call's own, and withdrawn when they are failed or moved.
 */
import type { Pool as GenericPool } from 'generic-pool';
import type { AcquireMessage } from '../channels.js';
import type { ResolvedPoolConfig } from '../config/config.js';
import { AcquireTimeoutError, PoolClosedError, type PoolState, QueryAbortedError, QueryTimeoutError, QueueFullError } from '../errors.js';
import type { PoolStats } from '../stats/pool-stats.js';
import { activeTraceId } from '../trace-context.js';
import { setRef } from './connection.js';
import { type CallLimits, type LentConnection, type LoanOwner, PooledConnection } from './pooled-connection.js';
import { type Waiter, WaitingCallers } from './waiters.js';

let nextLoanId = 1;

/** generic-pool's queue priorities (0 is served first): a caller asking again after a failed test on borrow goes first. */
const RETRY_PRIORITY = 0;
const FIRST_PRIORITY = 1;
/** The pool's priorityRange: the number of priorities above. */
export const PRIORITY_RANGE = 2;

/** What the lender reads of its pool, at each call (config and stats change on reconfigure). */
export interface LenderOwner {
  /** Whom the loans are released to. */
  loanOwner: LoanOwner;
  config(): ResolvedPoolConfig;
  stats(): PoolStats;
  /** The last connect error while connects are failing (the cause of an acquire timeout). */
  connectFailure(): Error | undefined;
  /** Test on borrow: whether a connection generic-pool hands over may be lent (a promise when that takes a round trip). */
  check(conn: LentConnection): boolean | Promise<boolean>;
}

/**
 * One caller's acquire: its place in the queue, and the two callbacks of its generic-pool request
 * (made once, reused when it asks again), so an acquire makes no other closure.
 */
class LoanRequest implements Waiter {
  request: Promise<unknown> | undefined = undefined;
  prev: Waiter | undefined = undefined;
  next: Waiter | undefined = undefined;
  queued = false;
  readonly served = (conn: LentConnection): void => this.lender.served(this, conn);
  readonly failed = (err: Error): void => this.lender.failed(this, err);

  constructor(
    readonly lender: Lender,
    /** What the loan is made with, from the moment its caller asked (see Lender.lend). */
    readonly started: number,
    readonly startedAt: number,
    readonly msg: AcquireMessage | undefined,
    readonly stack: string | undefined,
    readonly traceId: string | undefined,
    readonly failFast: boolean,
    readonly deadline: number,
    readonly callTimeoutMs: number | undefined,
    readonly resolve: (loan: PooledConnection) => void,
    readonly reject: (err: Error) => void,
  ) {}
}

export class Lender {
  readonly waiters: WaitingCallers;

  constructor(
    readonly poolId: string,
    private readonly gpool: GenericPool<LentConnection>,
    private readonly owner: LenderOwner,
  ) {
    this.waiters = new WaitingCallers(gpool, (expired) => this.#expire(expired));
  }

  /**
   * Lends a connection: an idle one, a new one, or the next one released, in FIFO order of the
   * callers. `msg` is the acquire channel's message when someone traces it. Callbacks, not a
   * promise: db.query goes on with the loan at once (ManagedPool.acquire adds the one promise).
   * `onLoan` runs in the caller's async context (a reaction to generic-pool's promise, registered
   * here), exactly once, or `onError` does.
   */
  lend(
    msg: AcquireMessage | undefined,
    stack: string | undefined,
    failFast: boolean,
    limits: CallLimits | undefined,
    onLoan: (loan: PooledConnection) => void,
    onError: (err: Error) => void,
  ): void {
    const started = performance.now();
    // Wall-clock start only for the channel message (servedByLoanId compares it with returnedAt).
    const startedAt = msg ? Date.now() : 0;
    const traceId = stack !== undefined ? activeTraceId() : undefined;
    let resolve = onLoan;
    let reject = onError;
    const ownDeadline = started + this.owner.config().acquireTimeoutMs;
    const callEndsFirst = limits !== undefined && limits.deadline < ownDeadline;
    const signal = limits?.signal;
    if (signal) {
      // A waiter whose signal aborts leaves the queue at once; the listener goes when it settles.
      const onAbort = () => {
        if (!waiter.queued) return;
        for (const w of this.waiters.take([waiter])) w.reject(new QueryAbortedError(this.poolId, signal.reason));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      const off = () => signal.removeEventListener('abort', onAbort);
      resolve = (loan) => (off(), onLoan(loan));
      reject = (err) => (off(), onError(err));
    }
    const waiter = new LoanRequest(
      this,
      started,
      startedAt,
      msg,
      stack,
      traceId,
      failFast,
      callEndsFirst ? limits.deadline : ownDeadline,
      callEndsFirst ? limits.timeoutMs : undefined,
      resolve,
      reject,
    );
    this.waiters.add(waiter, started);
    this.ask(waiter, FIRST_PRIORITY);
  }

  /** @internal Asks generic-pool for a connection for `w`. */
  ask(w: LoanRequest, priority: number): void {
    const request = this.gpool.acquire(priority);
    w.request = request;
    request.then(w.served, w.failed);
  }

  /**
   * @internal generic-pool handed `w` a connection. Test on borrow, done here rather than by
   * generic-pool (whose testOnBorrow costs several promise hops and two Set updates per borrow even
   * when the answer is known at once). A connection that fails it is closed and the caller asks
   * again ahead of everyone queued after it, as with generic-pool's own test, where the caller
   * kept its place.
   */
  served(w: LoanRequest, conn: LentConnection): void {
    const ok = this.owner.check(conn);
    if (ok === true) this.#lendTo(w, conn);
    else if (ok === false) this.#retry(w, conn);
    else
      ok.then(
        (valid) => (valid ? this.#lendTo(w, conn) : this.#retry(w, conn)),
        // A check that fails to answer fails the connection, as generic-pool's own test did.
        () => this.#retry(w, conn),
      );
  }

  /** @internal generic-pool failed `w`'s request. */
  failed(w: LoanRequest, err: Error): void {
    if (!w.queued) return;
    const state = this.state();
    this.waiters.delete(w);
    w.reject(this.#acquireError(err, state));
  }

  #lendTo(w: LoanRequest, conn: LentConnection): void {
    if (!w.queued) {
      // Its caller was already failed or moved: put the connection straight back.
      this.gpool.release(conn).catch(() => {});
      return;
    }
    this.waiters.delete(w);
    w.resolve(this.#lend(conn, w.started, w.startedAt, w.msg, w.stack, w.traceId));
  }

  #retry(w: LoanRequest, conn: LentConnection): void {
    this.gpool.destroy(conn).catch(() => {});
    if (w.queued) this.ask(w, RETRY_PRIORITY);
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
    this.owner.stats().acquire.record(waitMs, false, now);
    this.owner.stats().totals.acquires++;
    if (msg) {
      msg.connectionId = conn.id;
      msg.loanId = loanId;
      msg.waitMs = waitMs;
      // Served by a connection someone released while we waited: remember whom we waited behind.
      if (msg.mustWait && conn.loanId !== 0 && conn.returnedAt >= startedAt) msg.servedByLoanId = conn.loanId;
    }
    conn.loanId = loanId;
    conn.useCount++;
    if (this.owner.config().allowExitOnIdle) setRef(conn.client, true);
    const loan = new PooledConnection(this.owner.loanOwner, conn, loanId, Date.now(), stack, traceId);
    conn.loan = loan;
    return loan;
  }

  state(): PoolState {
    const g = this.gpool;
    return { total: g.size, active: g.borrowed, idle: g.available, waiting: this.waiters.size, max: g.max };
  }

  #acquireError(err: Error, state: PoolState): Error {
    if (err.name === 'TimeoutError') return this.#timeoutError(state);
    if (err.message === 'max waitingClients count exceeded') return new QueueFullError(this.poolId, state.waiting);
    if (err.message === 'pool is draining and cannot accept work') return new PoolClosedError(this.poolId);
    return err;
  }

  #timeoutError(state: PoolState): AcquireTimeoutError {
    this.owner.stats().acquireTimeouts.add();
    this.owner.stats().totals.acquireTimeouts++;
    const cause = this.owner.connectFailure();
    return new AcquireTimeoutError(this.poolId, this.owner.config().acquireTimeoutMs, state, cause);
  }

  /** Callers past their deadline fail with ACQUIRE_TIMEOUT (or QUERY_TIMEOUT: their call's own limit). */
  #expire(expired: Waiter[]): void {
    // The state as the expired callers saw it: they still count as waiting.
    const state = this.state();
    for (const w of this.waiters.take(expired)) {
      w.reject(w.callTimeoutMs !== undefined ? new QueryTimeoutError(this.poolId, w.callTimeoutMs, 'timeoutMs') : this.#timeoutError(state));
    }
  }

  /**
   * Hands every waiting caller to `next` (restartPool): they are served by the new pool instead of
   * waiting for this one to drain.
   */
  transferTo(next: { acquire(): Promise<PooledConnection> }): number {
    const moved = this.waiters.take([...this.waiters]);
    for (const w of moved) next.acquire().then(w.resolve, w.reject);
    return moved.length;
  }
}
