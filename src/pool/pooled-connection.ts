/**
 * A loan: the handle a caller gets from `acquire`. It lends a {@link Connection} exactly once;
 * `release` is idempotent, and once released (or revoked) the handle refuses to run anything, so a
 * late holder can never touch a session that someone else now holds.
 */
import type pg from 'pg';
import type { Connection } from './connection.js';
import { ConnectionRevokedError } from '../errors.js';

/** A connection of the pool: the loan it holds is one of these. */
export type LentConnection = Connection<PooledConnection>;

/** What `query` accepts: SQL text, or a `pg` query config (`{ text, values, rowMode, name, types }`). */
export type QueryInput = string | pg.QueryConfig;
/** A `pg` result: `{ rows, rowCount, fields, command }`. */
export type QueryResult<R extends pg.QueryResultRow = Record<string, unknown>> = pg.QueryResult<R>;

/**
 * The limits of one call (`db.query`, `transaction`, `withConnection` with `{ timeoutMs, signal }`):
 * its acquire and every statement it runs end by `deadline`, or when `signal` aborts.
 */
export interface CallLimits {
  /** The call's `timeoutMs`, for messages; undefined when only a signal was given. */
  readonly timeoutMs: number | undefined;
  /** `performance.now()` time by which the call ends; Infinity without a timeout. */
  readonly deadline: number;
  readonly signal: AbortSignal | undefined;
}

/** The side of the pool a loan talks to (implemented by the pool). */
export interface LoanOwner {
  readonly poolId: string;
  runQuery<R extends pg.QueryResultRow>(loan: PooledConnection, input: QueryInput, values?: unknown[]): Promise<QueryResult<R>>;
  releaseLoan(loan: PooledConnection, err: Error | boolean | undefined): void;
}

export class PooledConnection {
  #state: 'lent' | 'released' | 'revoked' = 'lent';
  #revokedReason = '';
  /** @internal The limits of the call this loan serves (set by `query` / `transaction` / `withConnection`). */
  limits: CallLimits | undefined = undefined;

  /** @internal Built by the pool. */
  constructor(
    private readonly owner: LoanOwner,
    /** @internal */ readonly connection: LentConnection,
    /** Id of this loan; unique within the process. */
    readonly id: number,
    /** When the loan started (ms since epoch). */
    readonly acquiredAt: number,
    /** Stack of the acquiring code, when leak detection is on. */
    readonly stack?: string,
    /** Trace id active when it was acquired, when leak detection is on and a tracer is registered. */
    readonly traceId?: string,
  ) {}

  /** The pool this loan belongs to. */
  get poolId(): string {
    return this.owner.poolId;
  }

  /** Id of the physical connection (stable across loans). */
  get connectionId(): number {
    return this.connection.id;
  }

  /** PostgreSQL backend pid of the connection. */
  get processId(): number | undefined {
    return this.connection.processId;
  }

  /** True once released or revoked. */
  get released(): boolean {
    return this.#state !== 'lent';
  }

  /**
   * Runs a statement on this connection. Values are always sent as bound parameters.
   *
   * @example
   * const conn = await db.acquire('main');
   * try { await conn.query('UPDATE t SET n = n + 1 WHERE id = $1', [id]); } finally { conn.release(); }
   */
  query<R extends pg.QueryResultRow = Record<string, unknown>>(input: QueryInput, values?: unknown[]): Promise<QueryResult<R>> {
    if (this.#state !== 'lent') return Promise.reject(this.#usedAfterEnd());
    return this.owner.runQuery<R>(this, input, values);
  }

  /**
   * Gives the connection back. Pass an error (or `true`) to have it closed instead of reused.
   * Calling it again is a no-op.
   */
  release(err?: Error | boolean): void {
    if (this.#state !== 'lent') return;
    this.#state = 'released';
    this.owner.releaseLoan(this, err);
  }

  /**
   * The underlying `pg.Client`, for APIs that need the driver object itself (cursors, streams,
   * COPY). Work done through it is not timed out, measured or traced by this library.
   */
  get client(): pg.Client {
    if (this.#state !== 'lent') throw this.#usedAfterEnd();
    return this.connection.client;
  }

  /** @internal The pool took the loan back; the holder's next use fails with CONNECTION_REVOKED. */
  revoke(reason: string): boolean {
    if (this.#state !== 'lent') return false;
    this.#state = 'revoked';
    this.#revokedReason = reason;
    return true;
  }

  #usedAfterEnd(): Error {
    return new ConnectionRevokedError(this.owner.poolId, this.#state === 'revoked' ? this.#revokedReason : 'it was already released by its holder');
  }
}
