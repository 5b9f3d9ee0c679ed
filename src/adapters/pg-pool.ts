/**
 * `pgPool(db, poolId)`: a `pg.Pool` face over one pool of a `DatabasePool`, for libraries that
 * take a `pg.Pool` (Kysely, Drizzle, knex 3.3's `connectionPool`, ...) and code written for one.
 * node-postgres's own pg-pool test suite runs against it (test/adapters/pg-pool-upstream.test.ts, runner in test/support/pg-pool-upstream/).
 *
 * - It is a `pg.Pool` subclass named `PgCompatiblePool` (Drizzle tells pools from clients by
 *   `instanceof pg.Pool` or a constructor name containing "Pool"); pg's own pooling is never used.
 * - `connect()` lends a connection from the pool (most recently released first, like pg.Pool). The
 *   client object is the same for the same physical connection on every loan (Kysely keys
 *   per-connection setup on it): a proxy of the `pg.Client` whose queries run through the loan
 *   (pool timeouts, broken-connection handling, `db-pool:query`). As with pg.Pool, `release` is
 *   per loan: `release(err)` (any truthy argument) closes the connection instead of returning it,
 *   and calling a loan's release a second time throws.
 * - `query(textOrConfig, values?, callback?)` runs one statement on a loan, released with the error
 *   when the statement fails (so, as with pg.Pool, that connection is closed); query config objects
 *   (`rowMode`, `types`, `name`) reach pg untouched. Callbacks run outside any promise chain: an
 *   exception they throw is an uncaught exception, as with pg.Pool.
 * - Events with pg.Pool's arguments: `connect` (client; the first time this face lends a physical
 *   connection), `acquire` (client), `release` (err, client), `remove` (client; a connection of the
 *   pool was closed), `error` (err, client; an idle connection died, `err.client` is set too).
 * - `end()` ends this face only (later `connect()` calls fail; a second `end()` fails like
 *   pg.Pool's); the pool stays open, owned by the `DatabasePool`.
 * - Options of pg.Pool that belong to the face: `Promise`, `verify`, `log`. Pool-wide ones
 *   (`max`, `idleTimeoutMillis`, `maxUses`, `allowExitOnIdle`, `onConnect`, ...) are the pool's
 *   PoolConfig (`max`, `idleTimeoutMs`, `maxUses`, `allowExitOnIdle`, `onConnect`, ...).
 *
 * As with `pg.Pool`, the client object outlives the loan: reading `client.release` after the
 * connection was lent again gives the new holder's release. Keep the release you were given.
 */
import type { EventEmitter } from 'node:events';
import pg from 'pg';
import { internalPoolConfig } from '../internal-config.js';
import type { DatabasePoolEvents } from '../pool-api.js';
import type { PoolSource } from './pool-source.js';
import { DbPoolError } from '../errors.js';
import type { PooledConnection, QueryInput } from '../pool/pooled-connection.js';
import { clientMember, isSubmittable, queryOnLoan, type LoanQueryContext } from './loan-query.js';

/** Options of a face that pg.Pool takes too; the pool-wide ones are the pool's PoolConfig. */
export interface PgPoolFaceOptions {
  /** The promise class `connect()`, `query()` and `end()` return (pg.Pool's `Promise`). */
  Promise?: PromiseConstructorLike;
  /**
   * pg.Pool's `verify(client, done)`: called the first time this face lends a physical
   * connection, before the caller gets it; `done(err)` fails that `connect()` and closes the
   * connection.
   */
  verify?: (client: pg.PoolClient, done: (err?: Error | null) => void) => void;
  /** pg.Pool's `log(message, ...)`: what the face does, as pg.Pool logs it. */
  log?: (...messages: unknown[]) => void;
}

type Release = (err?: Error | boolean) => void;

/** The DatabasePool behind each face (read by the count getters, defined outside the class). */
const dbOf = new WeakMap<object, PoolSource>();

/** One physical connection as the faces show it. */
interface FaceClient {
  readonly raw: pg.Client;
  readonly proxy: pg.PoolClient;
  /** The loan it is on now (through a face), if any. */
  loan: PooledConnection | undefined;
  /** The release of the current (or last) loan: `client.release`. */
  release: Release | undefined;
}

/** Per physical connection, shared by every face (the object identity Kysely relies on). */
const faceClients = new WeakMap<pg.Client, FaceClient>();

function faceClient(ctx: LoanQueryContext, raw: pg.Client): FaceClient {
  let fc = faceClients.get(raw);
  if (fc) return fc;
  const bound = new Map<PropertyKey, { fn: unknown; bound: unknown }>();
  const query = (...args: unknown[]): unknown => queryOnLoan(ctx, state.loan, args);
  const proxy = new Proxy(raw, {
    get(target, key) {
      if (key === 'query') return query;
      if (key === 'release') return state.release;
      return clientMember(target, key, bound);
    },
  }) as pg.PoolClient;
  const state: FaceClient = { raw, proxy, loan: undefined, release: undefined };
  fc = state;
  faceClients.set(raw, fc);
  return fc;
}

type ConnectCallback = (err: Error | undefined, client: pg.PoolClient | undefined, done: Release) => void;
type QueryCallback = (err: Error | undefined, res?: pg.QueryResult) => void;

const NOOP = (): void => {};
const FACE_EVENTS = new Set<string | symbol>(['error', 'remove']);

/** The error the face hands to pg.Pool code: a connect failure is the driver's own error, as pg.Pool gives it. */
function faceError(err: unknown): unknown {
  if (err instanceof DbPoolError && err.code === 'CONNECTION_FAILED' && err.cause instanceof Error) return err.cause;
  return err;
}

/** `face.query(...args)`, bound to the class's private implementation below. */
let runQuery: (face: PgCompatiblePool, args: unknown[]) => unknown;

/** The `pg.Pool` face; see {@link pgPool}. */
export class PgCompatiblePool extends pg.Pool {
  static {
    runQuery = (face, args) => face.#query(args);
  }

  readonly #db: PoolSource;
  readonly #ctx: LoanQueryContext;
  readonly #options: PgPoolFaceOptions;
  /** The pool this face lends from. */
  readonly poolId: string;
  #listening = false;
  /** Physical connections this face has lent before (for 'connect' events and verify). */
  readonly #seen = new WeakSet<pg.Client>();
  readonly #onConnectionError = (e: DatabasePoolEvents['connectionError'][0]): void => {
    // pg.Pool reports the errors of idle clients; a lent client's error reaches its holder.
    if (e.poolId !== this.poolId || !e.idle || !e.error) return;
    const fc = faceClient(this.#ctx, e.client);
    (e.error as Error & { client?: pg.PoolClient }).client = fc.proxy;
    this.emit('error', e.error, fc.proxy);
  };
  readonly #onConnectionClosed = (e: DatabasePoolEvents['connectionClosed'][0]): void => {
    if (e.poolId === this.poolId) this.emit('remove', faceClient(this.#ctx, e.client).proxy);
  };

  constructor(db: PoolSource, poolId: string, options: PgPoolFaceOptions = {}) {
    const cfg = internalPoolConfig(db, poolId);
    // pg's options object, for code that reads it; nothing here opens a connection.
    super({
      max: cfg.max,
      min: cfg.min,
      idleTimeoutMillis: cfg.idleTimeoutMs,
      connectionTimeoutMillis: cfg.acquireTimeoutMs,
      application_name: cfg.applicationName,
      maxUses: cfg.maxUses || undefined,
      allowExitOnIdle: cfg.allowExitOnIdle,
    });
    this.#db = db;
    dbOf.set(this, db);
    this.poolId = poolId;
    this.#ctx = { db, poolId };
    this.#options = { ...options };
    // Listen to the DatabasePool only while someone listens for 'error' or 'remove' here (no leak per face).
    const self = this as EventEmitter;
    self.on('newListener', (event: string | symbol) => {
      if (FACE_EVENTS.has(event) && !this.#listening && !this.ending) this.#listen(true);
    });
    self.on('removeListener', (event: string | symbol) => {
      if (FACE_EVENTS.has(event) && this.#listening && this.listenerCount('error') + this.listenerCount('remove') === 0) this.#listen(false);
    });
  }

  #listen(on: boolean): void {
    this.#listening = on;
    if (on) {
      this.#db.on('connectionError', this.#onConnectionError);
      this.#db.on('connectionClosed', this.#onConnectionClosed);
    } else {
      this.#db.off('connectionError', this.#onConnectionError);
      this.#db.off('connectionClosed', this.#onConnectionClosed);
    }
  }

  #log(...messages: unknown[]): void {
    this.#options.log?.(...messages);
  }

  /** `p` as the face's promise class (pg.Pool's `Promise` option). */
  #promise<T>(p: Promise<T>): Promise<T> {
    const P = this.#options.Promise as (new (executor: (resolve: (v: T) => void, reject: (e: unknown) => void) => void) => Promise<T>) | undefined;
    return P ? new P((resolve, reject) => void p.then(resolve, reject)) : p;
  }

  /** Lends a connection; give it back with `client.release()` (or `release(err)` to close it). */
  override connect(): Promise<pg.PoolClient>;
  override connect(callback: ConnectCallback): void;
  // biome-ignore lint/suspicious/noConfusingVoidType: pg.Pool's own signature
  override connect(callback?: ConnectCallback): Promise<pg.PoolClient> | void {
    const lending = this.#connect();
    if (!callback) return this.#promise(lending.then((l) => l.client));
    // Outside the promise chain, as pg.Pool calls it: a throw in the callback is uncaught.
    lending.then(
      (l) => process.nextTick(callback, undefined, l.client, l.release),
      (err: Error) => process.nextTick(callback, err, undefined, NOOP),
    );
  }

  async #connect(): Promise<{ client: pg.PoolClient; release: Release }> {
    if (this.ending) {
      throw new DbPoolError(
        'POOL_CLOSED',
        `Cannot use a pool after calling end on the pool: this pg.Pool face of pool "${this.poolId}" was ended (end() was called); the pool itself is still open`,
      );
    }
    let loan: PooledConnection;
    try {
      loan = await this.#db.acquire(this.poolId);
    } catch (err) {
      throw faceError(err);
    }
    const raw = loan.client;
    const fc = faceClient(this.#ctx, raw);
    const release = this.#releaseOnce(fc, loan);
    fc.loan = loan;
    fc.release = release;
    const isNew = !this.#seen.has(raw);
    if (isNew) {
      this.#seen.add(raw);
      this.#log('new client connected');
      this.emit('connect', fc.proxy);
    }
    this.emit('acquire', fc.proxy);
    const verify = this.#options.verify;
    if (isNew && verify) {
      const failed = await new Promise<Error | undefined>((resolve) => {
        verify(fc.proxy, (err) => resolve(err ?? undefined));
      });
      if (failed) {
        release(failed);
        throw failed;
      }
    }
    return { client: fc.proxy, release };
  }

  /** The release of one loan: gives it back once; a second call throws, as pg.Pool's does. */
  #releaseOnce(fc: FaceClient, loan: PooledConnection): Release {
    let released = false;
    return (err?: Error | boolean): void => {
      if (released) throw new Error('Release called on client which has already been released to the pool.');
      released = true;
      if (fc.loan === loan) fc.loan = undefined;
      this.emit('release', err, fc.proxy);
      const maxUses = this.#maxUses();
      if (!err && maxUses > 0 && loan.connection.useCount >= maxUses) this.#log('remove expended client');
      loan.release(err instanceof Error ? err : Boolean(err));
    };
  }

  #maxUses(): number {
    try {
      return internalPoolConfig(this.#db, this.poolId).maxUses;
    } catch {
      return 0;
    }
  }

  /** Runs one statement on a loan (see the class notes); `query(callback)` is refused as pg.Pool refuses it. */
  #query(args: unknown[]): unknown {
    let [input, values, callback] = args;
    if (typeof input === 'function') {
      // pg.Pool's guard: the callback hears of the misuse (on the next turn), nothing is sent.
      const cb = input as QueryCallback;
      setImmediate(cb, new Error('Passing a function as the first parameter to pool.query is not supported'));
      return undefined;
    }
    if (isSubmittable(input)) {
      throw new TypeError('pool.query() does not take a cursor or stream (pg.Pool does not release it either): use pool.connect() and client.query()');
    }
    if (typeof values === 'function') {
      callback = values;
      values = undefined;
    }
    const running = (async () => {
      const { client, release } = await this.#connect();
      this.#log('dispatching query');
      let res: pg.QueryResult;
      try {
        res = await (client.query(input as QueryInput, values as unknown[] | undefined) as Promise<pg.QueryResult>);
      } catch (err) {
        this.#log('query dispatched');
        // As pg.Pool does: a connection whose statement failed is closed, not reused.
        release(err instanceof Error ? err : true);
        throw err;
      }
      this.#log('query dispatched');
      release();
      return res;
    })();
    if (typeof callback !== 'function') return this.#promise(running);
    const cb = callback as QueryCallback;
    running.then(
      (res) => process.nextTick(cb, undefined, res),
      (err: Error) => process.nextTick(cb, err),
    );
    return undefined;
  }

  /**
   * Ends this face: later `connect()` / `query()` calls fail, and so does a second `end()` (as
   * with pg.Pool). The pool itself stays open.
   */
  override end(): Promise<void>;
  override end(callback: (err?: Error) => void): void;
  override end(callback?: (err?: Error) => void): Promise<void> | void {
    this.#log('ending');
    if (this.ending) {
      const err = new Error('Called end on pool more than once');
      if (callback) {
        process.nextTick(callback, err);
        return;
      }
      return this.#promise(Promise.reject(err));
    }
    (this as { ending: boolean }).ending = true;
    (this as { ended: boolean }).ended = true;
    if (this.#listening) this.#listen(false);
    if (callback) {
      process.nextTick(callback);
      return;
    }
    return this.#promise(Promise.resolve());
  }
}

// pg's `query` overloads and count getters, implemented over the pool (assigned on the prototype:
// TypeScript cannot override an overload set or a declared property with one implementation).
Object.defineProperties(PgCompatiblePool.prototype, {
  query: {
    configurable: true,
    writable: true,
    value: function query(this: PgCompatiblePool, ...args: unknown[]): unknown {
      return runQuery(this, args);
    },
  },
  totalCount: {
    configurable: true,
    get(this: PgCompatiblePool): number {
      return status(this).total;
    },
  },
  idleCount: {
    configurable: true,
    get(this: PgCompatiblePool): number {
      return status(this).idle;
    },
  },
  waitingCount: {
    configurable: true,
    get(this: PgCompatiblePool): number {
      return status(this).waiting;
    },
  },
  expiredCount: {
    configurable: true,
    get(): number {
      return 0;
    },
  },
});

function status(face: PgCompatiblePool): { total: number; idle: number; waiting: number } {
  const db = dbOf.get(face);
  try {
    return db ? db.getPoolStatus(face.poolId) : { total: 0, idle: 0, waiting: 0 };
  } catch {
    return { total: 0, idle: 0, waiting: 0 };
  }
}

/**
 * A `pg.Pool`-compatible object lending connections from pool `poolId` of `db`. Make one per
 * consumer: `end()` (Kysely calls it on `destroy()`) ends only that face.
 *
 * @example
 * import { Kysely, PostgresDialect } from 'kysely';
 * import Cursor from 'pg-cursor';
 * const kysely = new Kysely<DB>({ dialect: new PostgresDialect({ pool: pgPool(db, 'main'), cursor: Cursor }) });
 *
 * import { drizzle } from 'drizzle-orm/node-postgres';
 * const orm = drizzle({ client: pgPool(db, 'main') });
 */
export function pgPool(db: PoolSource, poolId: string, options?: PgPoolFaceOptions): PgCompatiblePool {
  return new PgCompatiblePool(db, poolId, options);
}
