/**
 * The three ways to run work on a pool id — one statement, a loan lent to a callback, a
 * transaction — and what a call's options mean: its limits (a deadline and an abort signal,
 * validated) and a transaction's BEGIN (isolation level, read only).
 */
import type pg from 'pg';
import { type ConfigIssue, InvalidConfigError, TransactionRolledBackError } from './errors.js';
import type { ManagedPool } from './pool/managed-pool.js';
import type { CallLimits, PooledConnection, QueryInput, QueryResult } from './pool/pooled-connection.js';
import type { CallOptions, TransactionOptions } from './pool-api.js';
import { type ReplicaSet, unreachable } from './routing/replica-set.js';

const ISOLATION_LEVELS = new Set<string>(['READ UNCOMMITTED', 'READ COMMITTED', 'REPEATABLE READ', 'SERIALIZABLE']);

/** The limits of a call from its options (validated), or undefined when it has none. */
export function callLimits(options: CallOptions): CallLimits | undefined {
  const { timeoutMs, signal } = options;
  if (timeoutMs === undefined && signal === undefined) return undefined;
  const issues: ConfigIssue[] = [];
  if (timeoutMs !== undefined && !(typeof timeoutMs === 'number' && Number.isInteger(timeoutMs) && timeoutMs >= 1 && timeoutMs <= 86_400_000)) {
    issues.push({
      path: 'timeoutMs',
      value: typeof timeoutMs === 'number' ? timeoutMs : typeof timeoutMs,
      rule: 'must be a whole number of ms from 1 to 86400000',
    });
  }
  if (
    signal !== undefined &&
    !(typeof signal === 'object' && signal !== null && typeof signal.aborted === 'boolean' && typeof signal.addEventListener === 'function')
  ) {
    issues.push({ path: 'signal', value: typeof signal, rule: 'must be an AbortSignal' });
  }
  if (issues.length > 0) throw new InvalidConfigError(issues);
  return { timeoutMs, deadline: timeoutMs === undefined ? Infinity : performance.now() + timeoutMs, signal };
}

export function beginStatement(options: TransactionOptions): string {
  let sql = 'BEGIN';
  if (options.isolationLevel !== undefined) {
    const level = String(options.isolationLevel).toUpperCase().replace(/_/g, ' ');
    if (!ISOLATION_LEVELS.has(level)) {
      throw new InvalidConfigError([
        { path: 'isolationLevel', value: options.isolationLevel, rule: 'must be READ UNCOMMITTED, READ COMMITTED, REPEATABLE READ or SERIALIZABLE' },
      ]);
    }
    sql += ` ISOLATION LEVEL ${level}`;
  }
  if (options.readOnly !== undefined) {
    if (typeof options.readOnly !== 'boolean') {
      throw new InvalidConfigError([{ path: 'readOnly', value: options.readOnly, rule: 'must be true or false' }]);
    }
    sql += options.readOnly ? ' READ ONLY' : ' READ WRITE';
  }
  return sql;
}

/**
 * One statement on a connection of `pool`, or of a healthy replica when `replicas` is given (a read).
 * The facade validates the options (`callLimits`, `beginStatement`) and looks the pool up first.
 */
export function queryOn<R extends pg.QueryResultRow>(
  pool: ManagedPool,
  replicas: ReplicaSet | undefined,
  limits: CallLimits | undefined,
  text: QueryInput,
  values: unknown[] | undefined,
): Promise<QueryResult<R>> {
  if (replicas !== undefined) return readOnReplica<R>(pool, replicas, limits, text, values);
  // The loan is taken with callbacks and the statement sent from the first one: one promise for
  // the call and one reaction for its answer, instead of an async function awaiting a promise per
  // step (each a microtask hop, and under an AsyncLocalStorage context manager, async-hook work).
  let resolve!: (res: QueryResult<R>) => void;
  let reject!: (err: unknown) => void;
  const call = new Promise<QueryResult<R>>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  pool.lend(
    limits,
    (conn) => {
      conn.limits = limits;
      pool.runQueryThen<R>(conn, text, values, (failed, value) => {
        // As a `finally` would: what release throws (a listener of the facade's events) is what
        // the caller gets; it must not escape into the answer's reaction, an unhandled rejection.
        try {
          conn.release();
        } catch (err) {
          reject(err);
          return;
        }
        if (failed) reject(value);
        else resolve(value as QueryResult<R>);
      });
    },
    reject,
  );
  return call;
}

/** {@link queryOn} on a replica set: a read that lost its replica mid-way runs again on the primary. */
async function readOnReplica<R extends pg.QueryResultRow>(
  pool: ManagedPool,
  replicas: ReplicaSet,
  limits: CallLimits | undefined,
  text: QueryInput,
  values: unknown[] | undefined,
): Promise<QueryResult<R>> {
  const { conn, onReplica } = await replicas.acquire(pool);
  conn.limits = limits;
  try {
    return await conn.query<R>(text, values);
  } catch (err) {
    // Safe to run again: it is a read.
    if (!onReplica || !unreachable(err)) throw err;
  } finally {
    conn.release();
  }
  return queryOn<R>(pool, undefined, limits, text, values);
}

/** A loan of `pool` for `fn`, always given back. */
export async function withLoan<T>(pool: ManagedPool, limits: CallLimits | undefined, fn: (conn: PooledConnection) => Promise<T>): Promise<T> {
  const conn = await pool.acquire({ limits });
  conn.limits = limits;
  try {
    return await fn(conn);
  } finally {
    conn.release();
  }
}

/** `fn` in a transaction (`begin` opens it) on a connection of `pool`, or of a replica when read only: COMMIT, or ROLLBACK and rethrow. */
export async function inTransaction<T>(
  pool: ManagedPool,
  replicas: ReplicaSet | undefined,
  begin: string,
  limits: CallLimits | undefined,
  fn: (tx: PooledConnection) => Promise<T>,
): Promise<T> {
  const conn = replicas ? (await replicas.acquire(pool)).conn : await pool.acquire({ limits });
  conn.limits = limits;
  let began = false;
  try {
    await conn.query(begin);
    began = true;
    const result = await fn(conn);
    await conn.query('COMMIT');
    conn.release();
    return result;
  } catch (err) {
    if (!began || conn.released) {
      conn.release(began ? true : undefined);
      throw err;
    }
    // COMMIT was answered with ROLLBACK: the server already ended the transaction.
    if (err instanceof TransactionRolledBackError) {
      conn.release();
      throw err;
    }
    try {
      // The call's limits may be what ended it: the ROLLBACK itself is not subject to them.
      conn.limits = undefined;
      await conn.query('ROLLBACK');
      conn.release();
    } catch {
      conn.release(true);
    }
    throw err;
  }
}

/** `ready()`: each pool lends a connection (failing fast on a refused connect) that answers `SELECT 1`. */
export async function ready(pools: readonly ManagedPool[]): Promise<void> {
  await Promise.all(
    pools.map(async (pool) => {
      const conn = await pool.acquire({ failFast: true });
      try {
        await conn.query('SELECT 1');
      } finally {
        conn.release();
      }
    }),
  );
}
