/**
 * What the knex and `pg.Pool` adapters share: `pg.Client#query` with all its overloads, run on a
 * loan. Text and config queries go through the loan (so the pool times them out, marks broken
 * connections and publishes `db-pool:query`); submittables (pg-cursor, pg-query-stream,
 * pg-copy-streams) need the driver itself, so they go to the raw client and are traced here.
 */
import type pg from 'pg';
import { queryChannel, tracingActive, type QueryMessage, type ServerInfo } from '../channels.js';
import { sqlStateOf } from '../pool/connection.js';
import { serverInfo } from '../pool/connection-factory.js';
import { internalPoolConfig } from '../internal-config.js';
import type { PoolSource } from './pool-source.js';
import { ConnectionRevokedError } from '../errors.js';
import { driverCallRunner } from '../trace-context.js';
import type { PooledConnection, QueryInput } from '../pool/pooled-connection.js';

type QueryCallback = (err: Error | null, result?: pg.QueryResult) => void;

/** The driver hooks a submittable may implement (pg calls them as the server answers). */
interface SubmittableHooks extends pg.Submittable {
  text?: unknown;
  values?: unknown;
  cursor?: { text?: unknown; values?: unknown };
  handleDataRow?: (...args: unknown[]) => unknown;
  handleCommandComplete?: (msg: { text?: string }, ...rest: unknown[]) => unknown;
  handleReadyForQuery?: (...args: unknown[]) => unknown;
  handleError?: (err: unknown, ...rest: unknown[]) => unknown;
}

export function isSubmittable(value: unknown): value is pg.Submittable {
  return typeof value === 'object' && value !== null && typeof (value as { submit?: unknown }).submit === 'function';
}

/** Where a pool's queries go, for the query messages of submittables (as the core reports it). */
function serverInfoOf(db: PoolSource, poolId: string): ServerInfo {
  try {
    return serverInfo(internalPoolConfig(db, poolId));
  } catch {
    return { serverAddress: undefined, serverPort: undefined, database: undefined };
  }
}

/** Who is asking: the pool, and how to describe its server. */
export interface LoanQueryContext {
  readonly db: PoolSource;
  readonly poolId: string;
}

function revoked(poolId: string): ConnectionRevokedError {
  return new ConnectionRevokedError(poolId, 'it was already released by its holder');
}

/**
 * `client.query(...)` on a loan, with pg's overloads: `(text | config, values?, callback?)` returns a
 * promise, or calls the callback; `(submittable, ...)` returns the submittable. A released loan
 * (`undefined`, or released) refuses to run anything.
 */
export function queryOnLoan(ctx: LoanQueryContext, loan: PooledConnection | undefined, args: unknown[]): unknown {
  const [input, second, third] = args;
  if (isSubmittable(input)) {
    if (!loan || loan.released) throw revoked(ctx.poolId);
    return submitOnLoan(ctx, loan, input, second, third);
  }
  const callback = (typeof third === 'function' ? third : typeof second === 'function' ? second : undefined) as QueryCallback | undefined;
  const values = typeof second === 'function' || second === undefined || second === null ? undefined : (second as unknown[]);
  const result = loan && !loan.released ? loan.query(input as QueryInput, values) : Promise.reject(revoked(ctx.poolId));
  if (!callback) return result;
  // Like pg: the callback runs outside the promise chain, so an exception in it is not swallowed.
  result.then(
    (res) => process.nextTick(callback, null, res),
    (err: Error) => process.nextTick(callback, err),
  );
  return undefined;
}

/** Sends a submittable on the loan's raw client; traced on `db-pool:query` while anyone listens. */
function submitOnLoan<T extends pg.Submittable>(ctx: LoanQueryContext, loan: PooledConnection, s: T, second: unknown, third: unknown): T {
  const raw = loan.client as unknown as { query(s: unknown, a?: unknown, b?: unknown): unknown };
  const runner = driverCallRunner();
  const send = () => raw.query(s, second, third);
  if (!tracingActive(queryChannel)) {
    if (runner === undefined) send();
    else runner(send);
    return s;
  }
  const hooks = s as unknown as SubmittableHooks;
  const text = hooks.text ?? hooks.cursor?.text;
  const values = hooks.values ?? hooks.cursor?.values;
  const msg: QueryMessage = {
    poolId: ctx.poolId,
    connectionId: loan.connectionId,
    loanId: loan.id,
    text: typeof text === 'string' ? text : '',
    valuesCount: Array.isArray(values) ? values.length : 0,
    ...serverInfoOf(ctx.db, ctx.poolId),
  };
  const finished = new Promise<void>((resolve, reject) => {
    let settled = false;
    // Rows as they arrive: a cursor's CommandComplete only counts its last batch.
    let rows = 0;
    let tagCount: number | undefined;
    const settle = (err?: unknown): void => {
      if (settled) return;
      settled = true;
      if (err === undefined) {
        const count = rows > 0 ? rows : tagCount;
        if (count !== undefined) msg.rowCount = count;
        resolve();
      } else {
        const sqlState = sqlStateOf(err);
        if (sqlState !== undefined) msg.sqlState = sqlState;
        reject(err);
      }
    };
    wrapHook(hooks, 'handleDataRow', () => {
      rows++;
    });
    wrapHook(hooks, 'handleCommandComplete', (m: unknown) => {
      const tag = (m as { text?: unknown } | undefined)?.text;
      if (typeof tag === 'string') {
        const parts = tag.split(' ');
        msg.command = parts[0];
        const n = Number(parts[parts.length - 1]);
        if (parts.length > 1 && Number.isFinite(n)) tagCount = n;
      }
    });
    wrapHook(hooks, 'handleError', (err: unknown) => settle(err ?? new Error('query failed')));
    wrapHook(hooks, 'handleReadyForQuery', () => settle());
  });
  queryChannel
    .tracePromise(() => {
      if (runner === undefined) send();
      else runner(send);
      return finished;
    }, msg)
    .catch(() => {
      // The submittable reports its own error to its reader; this promise only feeds the channel.
    });
  return s;
}

/** Calls `after` once the submittable's own hook has run (instance-level; submittables are single use). */
function wrapHook(
  target: SubmittableHooks,
  name: 'handleDataRow' | 'handleCommandComplete' | 'handleError' | 'handleReadyForQuery',
  after: (first: unknown) => void,
): void {
  const original = target[name] as ((this: unknown, ...args: unknown[]) => unknown) | undefined;
  if (typeof original !== 'function') return;
  const wrapped = function (this: unknown, ...args: unknown[]): unknown {
    try {
      return original.apply(this, args);
    } finally {
      after(args[0]);
    }
  };
  (target as unknown as Record<string, unknown>)[name] = wrapped;
}

/**
 * For proxies over a `pg.Client`: a property read on the client, methods bound to it (pg's methods
 * keep their state on `this`, which must be the client, never the proxy).
 */
export function clientMember(target: object, key: PropertyKey, bound: Map<PropertyKey, { fn: unknown; bound: unknown }>): unknown {
  const value: unknown = Reflect.get(target, key, target);
  if (typeof value !== 'function' || Object.hasOwn(target, key)) return value;
  const cached = bound.get(key);
  if (cached && cached.fn === value) return cached.bound;
  const b = (value as (...a: unknown[]) => unknown).bind(target);
  bound.set(key, { fn: value, bound: b });
  return b;
}
