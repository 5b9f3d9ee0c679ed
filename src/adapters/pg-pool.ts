/**
 * `pgPool(db, poolId)`: a `pg.Pool` face over one pool of a `DatabasePool`, for libraries that
 * take a `pg.Pool` (Kysely, Drizzle, knex 3.3's `connectionPool`, ...).
 *
 * - It is a `pg.Pool` subclass named `PgCompatiblePool` (Drizzle tells pools from clients by
 *   `instanceof pg.Pool` or a constructor name containing "Pool"); pg's own pooling is never used.
 * - `connect()` lends a connection from the pool. The client object is the same for the same
 *   physical connection on every loan (Kysely keys per-connection setup on it): a proxy of the
 *   `pg.Client` whose queries run through the loan (pool timeouts, broken-connection handling,
 *   `db-pool:query`), and whose `release(err?)` gives the loan back (a truthy argument closes the
 *   connection instead). A second `release()` of the same loan is a no-op.
 * - `query(textOrConfig, values?, callback?)` runs one statement on a loan; query config objects
 *   (`rowMode`, `types`, `name`) reach pg untouched.
 * - `end()` ends this face only (later `connect()` calls fail); the pool stays open, owned by the
 *   `DatabasePool`.
 * - `on('error')` reports the pool's connections that died on their own (killed, network), the
 *   same events as `db.on('connectionError')`.
 *
 * As with `pg.Pool`, the client object outlives the loan: calling `release()` on it after the
 * connection was lent again releases the new holder's loan. Release each loan once.
 */
import { EventEmitter } from 'node:events';
import pg from 'pg';
import { internalPoolConfig, type DatabasePool, type DatabasePoolEvents } from '../database-pool.js';
import { DbPoolError } from '../errors.js';
import type { PooledConnection, QueryInput } from '../pooled-connection.js';
import { clientMember, isSubmittable, queryOnLoan, type LoanQueryContext } from './loan-query.js';

/** The DatabasePool behind each face (read by the count getters, defined outside the class). */
const dbOf = new WeakMap<object, DatabasePool>();

/** One physical connection as the faces show it. */
interface FaceClient {
  readonly raw: pg.Client;
  readonly proxy: pg.PoolClient;
  /** The loan it is on now (through a face), if any. */
  loan: PooledConnection | undefined;
  /** The face that lent it. */
  face: PgCompatiblePool | undefined;
}

/** Per physical connection, shared by every face (the object identity Kysely relies on). */
const faceClients = new WeakMap<pg.Client, FaceClient>();

function faceClient(ctx: LoanQueryContext, raw: pg.Client): FaceClient {
  let fc = faceClients.get(raw);
  if (fc) return fc;
  const bound = new Map<PropertyKey, { fn: unknown; bound: unknown }>();
  const query = (...args: unknown[]): unknown => queryOnLoan(ctx, state.loan, args);
  const release = (err?: Error | boolean): void => {
    const loan = state.loan;
    if (!loan) return;
    const face = state.face;
    state.loan = undefined;
    state.face = undefined;
    loan.release(err instanceof Error ? err : Boolean(err));
    face?.emit('release', err instanceof Error ? err : undefined, state.proxy);
  };
  const proxy = new Proxy(raw, {
    get(target, key) {
      if (key === 'query') return query;
      if (key === 'release') return release;
      return clientMember(target, key, bound);
    },
  }) as pg.PoolClient;
  const state: FaceClient = { raw, proxy, loan: undefined, face: undefined };
  fc = state;
  faceClients.set(raw, fc);
  return fc;
}

type ConnectCallback = (err: Error | undefined, client: pg.PoolClient | undefined, done: (release?: Error | boolean) => void) => void;

/** The `pg.Pool` face; see {@link pgPool}. */
export class PgCompatiblePool extends pg.Pool {
  readonly #db: DatabasePool;
  readonly #ctx: LoanQueryContext;
  /** The pool this face lends from. */
  readonly poolId: string;
  #forwarding = false;
  /** Physical connections this face has lent before (for 'connect' events). */
  readonly #seen = new WeakSet<pg.Client>();
  readonly #forward = (e: DatabasePoolEvents['connectionError'][0]): void => {
    if (e.poolId === this.poolId && e.error) this.emit('error', e.error);
  };

  constructor(db: DatabasePool, poolId: string) {
    const cfg = internalPoolConfig(db, poolId);
    // pg's options object, for code that reads it; nothing here opens a connection.
    super({ max: cfg.max, min: cfg.min, idleTimeoutMillis: cfg.idleTimeoutMs, connectionTimeoutMillis: cfg.acquireTimeoutMs, application_name: cfg.applicationName });
    this.#db = db;
    dbOf.set(this, db);
    this.poolId = poolId;
    this.#ctx = { db, poolId };
    // Listen to the DatabasePool only while someone listens for 'error' here (no leak per face).
    const self = this as EventEmitter;
    self.on('newListener', (event: string | symbol) => {
      if (event === 'error' && !this.#forwarding) {
        this.#forwarding = true;
        this.#db.on('connectionError', this.#forward);
      }
    });
    self.on('removeListener', (event: string | symbol) => {
      if (event === 'error' && this.#forwarding && this.listenerCount('error') === 0) {
        this.#forwarding = false;
        this.#db.off('connectionError', this.#forward);
      }
    });
  }

  /** Lends a connection; give it back with `client.release()` (or `release(err)` to close it). */
  override connect(): Promise<pg.PoolClient>;
  override connect(callback: ConnectCallback): void;
  override connect(callback?: ConnectCallback): Promise<pg.PoolClient> | void {
    const lending = this.#connect();
    if (!callback) return lending;
    lending.then(
      (client) => callback(undefined, client, client.release),
      (err: Error) => callback(err, undefined, () => {}),
    );
  }

  async #connect(): Promise<pg.PoolClient> {
    if (this.ended) {
      throw new DbPoolError('POOL_CLOSED', `This pg.Pool face of pool "${this.poolId}" was ended (end() was called); the pool itself is still open`);
    }
    const loan = await this.#db.acquire(this.poolId);
    const raw = loan.client;
    const fc = faceClient(this.#ctx, raw);
    fc.loan = loan;
    fc.face = this;
    if (!this.#seen.has(raw)) {
      this.#seen.add(raw);
      this.emit('connect', fc.proxy);
    }
    this.emit('acquire', fc.proxy);
    return fc.proxy;
  }

  /** Ends this face: later `connect()` / `query()` calls fail. The pool itself stays open. */
  override end(): Promise<void>;
  override end(callback: () => void): void;
  override end(callback?: () => void): Promise<void> | void {
    (this as { ending: boolean }).ending = true;
    (this as { ended: boolean }).ended = true;
    if (this.#forwarding) {
      this.#forwarding = false;
      this.#db.off('connectionError', this.#forward);
    }
    if (callback) {
      process.nextTick(callback);
      return;
    }
    return Promise.resolve();
  }
}

// pg's `query` overloads and count getters, implemented over the pool (assigned on the prototype:
// TypeScript cannot override an overload set or a declared property with one implementation).
Object.defineProperties(PgCompatiblePool.prototype, {
  query: {
    configurable: true,
    writable: true,
    value: function query(this: PgCompatiblePool, ...args: unknown[]): unknown {
      const [input, second, third] = args;
      if (isSubmittable(input)) {
        throw new TypeError('pool.query() does not take a cursor or stream (pg.Pool does not release it either): use pool.connect() and client.query()');
      }
      const callback = (typeof third === 'function' ? third : typeof second === 'function' ? second : undefined) as
        | ((err: Error | null, res?: pg.QueryResult) => void)
        | undefined;
      const values = typeof second === 'function' ? undefined : (second as unknown[] | undefined);
      const running = (async () => {
        const client = await this.connect();
        try {
          return await (client.query(input as QueryInput, values) as Promise<pg.QueryResult>);
        } finally {
          client.release();
        }
      })();
      if (!callback) return running;
      running.then(
        (res) => process.nextTick(callback, null, res),
        (err: Error) => process.nextTick(callback, err),
      );
      return undefined;
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
export function pgPool(db: DatabasePool, poolId: string): PgCompatiblePool {
  return new PgCompatiblePool(db, poolId);
}
