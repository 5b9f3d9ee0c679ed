/**
 * Sending a statement on a lent connection: the pool's query timeout, a call's own deadline and
 * abort signal (cancelled on the server, its answer awaited), COMMIT answered with ROLLBACK, the
 * connection marked broken when it must not be reused, and the statement recorded (windows,
 * per-statement stats, errors by code, the slow-query log and channel).
 */
import type pg from 'pg';
import { queryChannel, type QueryMessage, type ServerInfo, slowQueryChannel, type SlowQueryMessage, tracingActive } from '../channels.js';
import type { ResolvedPoolConfig } from '../config/config.js';
import { ConnectionRevokedError, DbPoolError, InvalidQueryError, QueryAbortedError, QueryTimeoutError, TransactionRolledBackError } from '../errors.js';
import type { PoolStats } from '../stats/pool-stats.js';
import { failureSummary } from '../stats/slow-query-log.js';
import { activeTraceId, driverCallRunner } from '../trace-context.js';
import { isConnectionLevelError, sqlStateOf } from './connection.js';
import { sendCancel } from './connection-factory.js';
import type { CallLimits, LentConnection, PooledConnection, QueryInput, QueryResult } from './pooled-connection.js';

/** How long a statement cancelled by its call's deadline or signal may take to answer before its connection is discarded. */
const CANCEL_GRACE_MS = 2_000;

/** What the runner reads of its pool, at each statement (config and stats change on reconfigure). */
export interface StatementOwner {
  config(): ResolvedPoolConfig;
  stats(): PoolStats;
  onSlowQuery(report: SlowQueryMessage): void;
  /** Where the statements go, for the query channel's message. */
  server(): ServerInfo;
}

export class StatementRunner {
  readonly #owner: StatementOwner;

  constructor(
    readonly poolId: string,
    owner: StatementOwner,
  ) {
    this.#owner = owner;
  }

  /** Checks the call, publishes it on the query channel when traced, and sends it. */
  run<R extends pg.QueryResultRow>(loan: PooledConnection, input: QueryInput, values?: unknown[]): Promise<QueryResult<R>> {
    // Not `async`: send's promise is returned as it is (one promise fewer per statement); what the
    // checks throw becomes a rejection, as from an async method.
    try {
      return this.#run<R>(loan, input, values);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #run<R extends pg.QueryResultRow>(loan: PooledConnection, input: QueryInput, values?: unknown[]): Promise<QueryResult<R>> {
    const limits = this.#checked(loan, input, values);
    if (!tracingActive(queryChannel)) return this.send<R>(loan.connection, input, values, undefined, limits);
    const msg = this.#message(loan, input, values);
    return queryChannel.tracePromise(() => this.send<R>(loan.connection, input, values, msg, limits), msg);
  }

  /** The query channel's message for a statement. */
  #message(loan: PooledConnection, input: QueryInput, values: unknown[] | undefined): QueryMessage {
    const s = this.#owner.server();
    return {
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
  }

  /**
   * {@link run} answering `done` (once) instead of a promise, for db.query, which sends the statement
   * from the loan's callback and releases from this one: one promise and one reaction fewer.
   */
  runThen<R extends pg.QueryResultRow>(loan: PooledConnection, input: QueryInput, values: unknown[] | undefined, done: Done): void {
    let limits: CallLimits | undefined;
    try {
      limits = this.#checked(loan, input, values);
    } catch (err) {
      done(true, err);
      return;
    }
    // Traced, the channel gets what tracePromise would publish, in its order: start and end around
    // the send (error before end when it throws), then error, asyncStart and asyncEnd on the answer,
    // whose reaction is registered inside start's stores, as tracePromise's is.
    const msg = tracingActive(queryChannel) ? this.#message(loan, input, values) : undefined;
    const failed = (err: unknown) => {
      if (msg) {
        msg.error = err;
        queryChannel.error.publish(msg);
        queryChannel.asyncStart.publish(msg);
        queryChannel.asyncEnd.publish(msg);
      }
      done(true, err);
    };
    let thrown: { err: unknown } | undefined;
    const sendIt = () => {
      try {
        const sending = this.#start<R>(loan.connection, input, values, limits);
        sending.pending.then(
          (res) => {
            let out: QueryResult<R>;
            try {
              out = this.#answered(sending, res, msg);
            } catch (err) {
              failed(err);
              return;
            }
            if (msg) {
              (msg as { result?: unknown }).result = out;
              queryChannel.asyncStart.publish(msg);
              queryChannel.asyncEnd.publish(msg);
            }
            done(false, out);
          },
          (err: unknown) => failed(this.#failed(sending, err, msg)),
        );
      } catch (err) {
        // Nothing was sent: no async events follow.
        if (msg) {
          msg.error = err;
          queryChannel.error.publish(msg);
        }
        thrown = { err };
      } finally {
        if (msg) queryChannel.end.publish(msg);
      }
    };
    if (msg) queryChannel.start.runStores(msg, sendIt);
    else sendIt();
    if (thrown !== undefined) done(true, thrown.err);
  }

  /** Sends a statement on a lent connection and records it. */
  send<R extends pg.QueryResultRow>(
    conn: LentConnection,
    input: QueryInput,
    values: unknown[] | undefined,
    msg: QueryMessage | undefined,
    limits?: CallLimits,
  ): Promise<QueryResult<R>> {
    let sending: Sending<R>;
    try {
      sending = this.#start<R>(conn, input, values, limits);
    } catch (err) {
      return Promise.reject(err);
    }
    return sending.pending.then(
      (res) => this.#answered(sending, res, msg),
      (err: unknown) => {
        throw this.#failed(sending, err, msg);
      },
    );
  }

  /** The checks of {@link run} that need no message: the call's arguments, and its limits not already over. */
  #checked(loan: PooledConnection, input: QueryInput, values: unknown[] | undefined): CallLimits | undefined {
    const bad = invalidQuery(input, values);
    if (bad !== undefined) throw new InvalidQueryError(this.poolId, bad);
    const limits = loan.limits;
    if (limits !== undefined) {
      // A call already over: nothing is sent.
      if (limits.signal?.aborted) throw new QueryAbortedError(this.poolId, limits.signal.reason);
      if (limits.deadline <= performance.now()) throw new QueryTimeoutError(this.poolId, limits.timeoutMs ?? 0, 'timeoutMs');
    }
    return limits;
  }

  /** Hands the statement to pg, timed by the pool's queryTimeoutMs or the call's limits. */
  #start<R extends pg.QueryResultRow>(conn: LentConnection, input: QueryInput, values: unknown[] | undefined, limits: CallLimits | undefined): Sending<R> {
    const text = typeof input === 'string' ? input : input.text;
    conn.noteQuery(text);
    const timeoutMs = this.#owner.config().queryTimeoutMs;
    const started = performance.now();
    // A config object is copied: given a callback, pg writes it onto the config (a caller's object
    // reused elsewhere would carry ours). Behind a transaction pooler the next statement may reach
    // another server session, where a statement prepared by name does not exist: send it unnamed
    // (parsed each time, still bound).
    const sent = typeof input === 'string' ? input : this.#owner.config().transactionPooling && input.name ? { ...input, name: undefined } : { ...input };
    const pending =
      limits === undefined || poolTimeoutFirst(limits, timeoutMs)
        ? this.#issue<R>(conn, sent, values, timeoutMs)
        : this.#withinCall(conn, this.#issue<R>(conn, sent, values, 0), timeoutMs, limits);
    return { conn, text, started, pending };
  }

  /** The answer: recorded, or a COMMIT answered with ROLLBACK turned into the error it is (thrown). */
  #answered<R extends pg.QueryResultRow>(s: Sending<R>, res: QueryResult<R>, msg: QueryMessage | undefined): QueryResult<R> {
    const { conn, text, started } = s;
    if (msg) {
      msg.rowCount = res.rowCount;
      msg.command = res.command;
    }
    // COMMIT (END, PREPARE TRANSACTION) on a failed transaction is answered with ROLLBACK:
    // nothing was committed, so the caller must not see a success.
    if (res.command === 'ROLLBACK' && !ROLLBACK_STATEMENT.test(text)) {
      const first = conn.txFailure;
      conn.txFailure = undefined;
      const err = new TransactionRolledBackError(this.poolId, first);
      this.#recordQuery(conn, text, started, err);
      throw err;
    }
    if (conn.txFailure !== undefined && conn.client.getTransactionStatus?.() === 'I') conn.txFailure = undefined;
    this.#recordQuery(conn, text, started, undefined);
    return res;
  }

  /** A failure: the connection marked when it cannot be reused, recorded; returns the error the caller gets. */
  #failed<R extends pg.QueryResultRow>(s: Sending<R>, caught: unknown, msg: QueryMessage | undefined): unknown {
    const { conn, text, started } = s;
    let err = caught;
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
    return err;
  }

  #recordQuery(conn: LentConnection, text: string, started: number, err: unknown, sqlState?: string): void {
    const now = performance.now();
    const ms = now - started;
    const failed = err !== undefined;
    const stats = this.#owner.stats();
    stats.queries.record(ms, failed, now);
    stats.totals.queries++;
    // Described once per statement, under the session's standard_conforming_strings when it was sent.
    const d = conn.describeFinished(text);
    stats.statements.record(d.fingerprint, d.sanitized, ms, failed);
    if (failed) {
      stats.totals.errors++;
      stats.countError(sqlState ?? (err as { code?: string }).code ?? 'unknown');
    }
    const threshold = this.#owner.config().slowQueryThresholdMs;
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
      this.#owner.onSlowQuery(report);
    }
  }

  /**
   * Sends the statement with a callback, so that pg makes no promise of its own (it makes two per
   * statement otherwise, and under an AsyncLocalStorage context manager every promise runs async-hook
   * code): the one promise here settles on the answer, or at `timeoutMs` (> 0) with QUERY_TIMEOUT,
   * the connection then marked so that it is cancelled and closed on release.
   */
  #issue<R extends pg.QueryResultRow>(conn: LentConnection, sent: QueryInput, values: unknown[] | undefined, timeoutMs: number): Promise<pg.QueryResult<R>> {
    return new Promise<pg.QueryResult<R>>((resolve, reject) => {
      let onTimeout: (() => void) | undefined;
      let armed = false;
      let timer: NodeJS.Timeout | undefined;
      const onAnswer = (err: Error | null | undefined, res: pg.QueryResult<R>) => {
        if (armed) conn.disarmTimeout(onTimeout!);
        else if (timer !== undefined) clearTimeout(timer);
        if (err) reject(err);
        else resolve(res);
      };
      if (timeoutMs > 0) {
        onTimeout = () => {
          // The server may still be running it: the connection is cancelled and closed on release.
          conn.markBroken('timeout');
          reject(new QueryTimeoutError(this.poolId, timeoutMs));
        };
        armed = conn.armTimeout(timeoutMs, onTimeout);
        if (!armed) timer = setTimeout(onTimeout, timeoutMs);
      }
      const client = conn.client as unknown as CallbackQueryable<R>;
      const call = () => client.query(sent, values, onAnswer);
      try {
        const runner = driverCallRunner();
        if (runner === undefined) call();
        else runner(call);
      } catch (err) {
        // pg throws for a few bad calls before sending anything.
        onAnswer(err as Error, undefined as unknown as pg.QueryResult<R>);
      }
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
}

/**
 * A call whose limits cannot end the statement before the pool's own `queryTimeoutMs` (no signal, a
 * deadline no earlier): timed as any statement, with the pool's timeout and its meaning.
 */
function poolTimeoutFirst(limits: CallLimits, queryTimeoutMs: number): boolean {
  return queryTimeoutMs > 0 && !limits.signal && queryTimeoutMs <= limits.deadline - performance.now();
}

/** How {@link StatementRunner.runThen} answers: `failed` and the error, or the result. */
export type Done = (failed: boolean, value: unknown) => void;

/** A statement handed to pg, and what recording its answer needs. */
interface Sending<R extends pg.QueryResultRow> {
  conn: LentConnection;
  text: string;
  started: number;
  pending: Promise<QueryResult<R>>;
}

/** pg.Client's query in its callback form (its typings' overloads want a string or a typed config). */
interface CallbackQueryable<R extends pg.QueryResultRow> {
  query(config: QueryInput, values: unknown[] | undefined, callback: (err: Error | null | undefined, res: pg.QueryResult<R>) => void): void;
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
