/**
 * Every error the library throws is a `DbPoolError` with a stable `code`, so callers can branch on
 * `err.code` instead of parsing messages. Messages never contain passwords.
 */

/** Stable error codes (part of the public API). */
export type DbPoolErrorCode =
  | 'POOL_NOT_FOUND'
  | 'POOL_EXISTS'
  | 'INVALID_CONFIG'
  | 'ACQUIRE_TIMEOUT'
  | 'QUEUE_FULL'
  | 'POOL_CLOSED'
  | 'CIRCUIT_OPEN'
  | 'QUERY_TIMEOUT'
  | 'CONNECTION_REVOKED'
  | 'CONNECTION_FAILED'
  | 'TRANSACTION_ROLLED_BACK'
  | 'QUERY_ABORTED'
  | 'INVALID_QUERY'
  | 'UNAUTHORIZED';

/** Base class of every error this library throws. */
export class DbPoolError extends Error {
  readonly code: DbPoolErrorCode;
  constructor(code: DbPoolErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** The pool id is not known (never created, or removed). */
export class PoolNotFoundError extends DbPoolError {
  readonly poolId: string;
  constructor(poolId: string) {
    super('POOL_NOT_FOUND', `Pool "${poolId}" does not exist`);
    this.poolId = poolId;
  }
}

/** `createPool` with an id that is already taken. */
export class PoolExistsError extends DbPoolError {
  readonly poolId: string;
  constructor(poolId: string) {
    super('POOL_EXISTS', `Pool "${poolId}" already exists; remove it first or pick another id`);
    this.poolId = poolId;
  }
}

/** One problem found in a configuration. `value` is already redacted when the field is secret. */
export interface ConfigIssue {
  /** Dotted path of the field, e.g. `pools.main.max`. */
  path: string;
  /** The offending value (secrets replaced by `[REDACTED]`), or undefined when missing. */
  value: unknown;
  /** The rule that was broken, in words. */
  rule: string;
}

/** A configuration (or patch) was rejected. Nothing was changed. */
export class InvalidConfigError extends DbPoolError {
  readonly issues: readonly ConfigIssue[];
  constructor(issues: ConfigIssue[], context?: string) {
    const lines = issues.map((i) => `  - ${i.path}: ${i.rule} (got ${describeValue(i.value)})`);
    super(
      'INVALID_CONFIG',
      `Invalid configuration${context ? ` for ${context}` : ''}: ${issues.length} problem${issues.length === 1 ? '' : 's'}\n${lines.join('\n')}`,
    );
    this.issues = issues;
  }
}

function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

/** The state of a pool at one instant, carried by timeout errors so they can be answered. */
export interface PoolState {
  total: number;
  active: number;
  idle: number;
  waiting: number;
  max: number;
}

/** No connection could be lent within `acquireTimeoutMs`. */
export class AcquireTimeoutError extends DbPoolError implements PoolState {
  readonly poolId: string;
  readonly timeoutMs: number;
  readonly total: number;
  readonly active: number;
  readonly idle: number;
  readonly waiting: number;
  readonly max: number;
  constructor(poolId: string, timeoutMs: number, state: PoolState, cause?: unknown) {
    const why = cause instanceof Error ? `; last connection error: ${cause.message}` : '';
    super(
      'ACQUIRE_TIMEOUT',
      `Acquire timeout: no connection from pool "${poolId}" within ${timeoutMs} ms ` +
        `(total ${state.total}, active ${state.active}, idle ${state.idle}, waiting ${state.waiting}, max ${state.max})${why}`,
      cause === undefined ? undefined : { cause },
    );
    this.poolId = poolId;
    this.timeoutMs = timeoutMs;
    this.total = state.total;
    this.active = state.active;
    this.idle = state.idle;
    this.waiting = state.waiting;
    this.max = state.max;
  }
}

/** The waiting queue is at `maxWaitingClients`: rejected at once instead of queueing forever. */
export class QueueFullError extends DbPoolError {
  readonly poolId: string;
  readonly waiting: number;
  constructor(poolId: string, waiting: number) {
    super('QUEUE_FULL', `Pool "${poolId}" has ${waiting} callers waiting (maxWaitingClients); request rejected`);
    this.poolId = poolId;
    this.waiting = waiting;
  }
}

/** The pool (or the whole DatabasePool) is closed or closing. */
export class PoolClosedError extends DbPoolError {
  readonly poolId: string;
  constructor(poolId: string) {
    super('POOL_CLOSED', `Pool "${poolId}" is closed`);
    this.poolId = poolId;
  }
}

/** Calls fail fast while the server is known to be unreachable. */
export class CircuitOpenError extends DbPoolError {
  readonly poolId: string;
  constructor(poolId: string, cause?: unknown) {
    const why = cause instanceof Error ? `: ${cause.message}` : '';
    super('CIRCUIT_OPEN', `Pool "${poolId}" is failing fast: its server is unreachable${why}`, cause === undefined ? undefined : { cause });
    this.poolId = poolId;
  }
}

/**
 * A query ran longer than the pool's `queryTimeoutMs` (its connection is then discarded), or a call
 * ran past its own `timeoutMs` (the statement is cancelled on the server and the connection kept).
 */
export class QueryTimeoutError extends DbPoolError {
  readonly poolId: string;
  readonly timeoutMs: number;
  /** Which limit: the pool's `queryTimeoutMs`, or the call's `timeoutMs`. */
  readonly limit: 'queryTimeoutMs' | 'timeoutMs';
  constructor(poolId: string, timeoutMs: number, limit: 'queryTimeoutMs' | 'timeoutMs' = 'queryTimeoutMs', cause?: unknown) {
    super('QUERY_TIMEOUT', `Query on pool "${poolId}" exceeded ${limit} (${timeoutMs} ms) and was cancelled`, cause === undefined ? undefined : { cause });
    this.poolId = poolId;
    this.timeoutMs = timeoutMs;
    this.limit = limit;
  }
}

/** The call's `signal` was aborted: a waiting acquire gave up, or the running statement was cancelled on the server. `cause` is the signal's reason. */
export class QueryAbortedError extends DbPoolError {
  readonly poolId: string;
  constructor(poolId: string, reason: unknown) {
    super('QUERY_ABORTED', `Query on pool "${poolId}" was aborted by its signal${reason instanceof Error ? `: ${reason.message}` : ''}`, { cause: reason });
    this.poolId = poolId;
  }
}

/** A loan was taken back (leak reclaim, pool removal or restart); the holder may not use it again. */
export class ConnectionRevokedError extends DbPoolError {
  readonly poolId: string;
  constructor(poolId: string, reason: string, cause?: unknown) {
    super('CONNECTION_REVOKED', `This connection of pool "${poolId}" was revoked (${reason}); acquire a new one`, cause === undefined ? undefined : { cause });
    this.poolId = poolId;
  }
}

/**
 * PostgreSQL answered a COMMIT (or END, PREPARE TRANSACTION) with `ROLLBACK`: the transaction had
 * already failed, so nothing was committed. `sqlState` is the SQLSTATE of the statement that failed
 * it, when this connection saw that failure.
 */
export class TransactionRolledBackError extends DbPoolError {
  readonly poolId: string;
  readonly sqlState: string | undefined;
  constructor(poolId: string, sqlState: string | undefined) {
    const first = sqlState ? ` after a statement failed with SQLSTATE ${sqlState}` : ' because it had failed';
    super('TRANSACTION_ROLLED_BACK', `The transaction on pool "${poolId}" was rolled back, not committed,${first}`);
    this.poolId = poolId;
    this.sqlState = sqlState;
  }
}

/** A query call with something that is not SQL text, a query config or a submittable; nothing was sent. */
export class InvalidQueryError extends DbPoolError {
  readonly poolId: string;
  constructor(poolId: string, problem: string) {
    super('INVALID_QUERY', `Query on pool "${poolId}" not sent: ${problem}`);
    this.poolId = poolId;
  }
}

/** New connections cannot be made; `cause` is the driver's error (ECONNREFUSED, 28P01, ...). */
export class ConnectionFailedError extends DbPoolError {
  readonly poolId: string;
  readonly attempts: number;
  constructor(poolId: string, target: string, attempts: number, cause: unknown) {
    const why = cause instanceof Error ? cause.message : String(cause);
    super('CONNECTION_FAILED', `Pool "${poolId}" cannot connect to ${target}: ${why} (${attempts} attempt${attempts === 1 ? '' : 's'} so far)`, { cause });
    this.poolId = poolId;
    this.attempts = attempts;
  }
}

/** Admin endpoint: missing or wrong bearer token. */
export class UnauthorizedError extends DbPoolError {
  constructor(message = 'Missing or invalid bearer token') {
    super('UNAUTHORIZED', message);
  }
}
