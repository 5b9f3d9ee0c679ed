/**
 * A subclass of knex's PostgreSQL client whose connections are loans from a `DatabasePool` pool.
 *
 * knex gets, per loan, a KnexConnection standing for the loan's `pg.Client`: it behaves as the client (knex's
 * `query(config, callback)`, `query(new QueryStream(...))`, `processID` for cancelling, `on(...)`),
 * but queries run through the loan (pool timeouts, broken-connection handling, `db-pool:query`),
 * and knex's bookkeeping (`__knex__disposed`, `__knexTxId`) stays with the loan. Because each
 * loan has its own object, a second release of the same loan (knex #6288: streams) or a release
 * of an object we never lent is a no-op — it can never return a connection someone else now holds.
 * `__knexUid` belongs to the physical connection, so it is stable across loans.
 *
 * What tarn did for knex and is redone here: acquire timeout as `KnexTimeoutError`, `pool.afterCreate`
 * (once per physical connection and knex instance), version detection, `searchPath`, disposal on
 * `__knex__disposed`; knex's `pool.max` caps the connections this knex instance holds at once (the
 * others wait, then fail with KnexTimeoutError, as with tarn) and `pool.acquireTimeoutMillis` bounds
 * that wait (like `acquireConnectionTimeout`). knex's other `pool` settings (min, idle and create
 * timeouts, reaping) belong to the pool: a warning names them; set them in its PoolConfig.
 */
import type pg from 'pg';
import type { ResolvedPoolConfig } from '../config/config.js';
import { internalPoolConfig } from '../internal-config.js';
import type { PoolSource } from './pool-source.js';
import { AcquireTimeoutError } from '../errors.js';
import type { PooledConnection } from '../pool/pooled-connection.js';
import type { KnexParts, KnexPgClientClass, KnexPgClientInternals } from './knex-loader.js';
import { clientMember, queryOnLoan, type LoanQueryContext } from './loan-query.js';
import { clientConfig, connectionTarget } from '../pool/connection-factory.js';

/** knex's `pool.afterCreate`: called once per physical connection before knex first uses it. */
export type KnexAfterCreate = (connection: pg.Client, done: (err?: Error | null, connection?: pg.Client) => void) => void;

/** `__knexUid` per physical connection. */
const knexUids = new WeakMap<pg.Client, string>();
/** The search_path a knex instance set on a physical connection (key of the path list). */
const searchPaths = new WeakMap<pg.Client, string>();

function isKnexKey(key: PropertyKey): key is string {
  return typeof key === 'string' && key.startsWith('__knex') && key !== '__knexUid';
}

/** The prototype of the pg.Client class in use (for `instanceof`), from the first loan. */
let clientPrototype: object | null = null;
/** Reads the member `key` of a connection's client; set in KnexConnection's static block (it reads private fields). */
let memberOf: (connection: object, key: PropertyKey) => unknown;
/** Sets a member of a connection's client; false when `connection` is not a KnexConnection. */
let setMemberOf: (connection: object, key: PropertyKey, value: unknown) => boolean;
/** knex's releaseConnection: ends the loan (closing the connection when knex disposed of it) and gives back its slot; false when not ours. */
let releaseKnexLoan: (connection: unknown) => boolean;
/** The release knex's stream 'close' handler will add is to be ignored; false when not ours. */
let skipNextRelease: (connection: unknown) => boolean;

/**
 * One loan as knex sees it: it behaves as the loan's `pg.Client` (knex's `query(config, callback)`,
 * `query(new QueryStream(...))`, `processID` for cancelling, `on(...)`), but queries run through the
 * loan, and the `__knex*` properties knex sets (`__knex__disposed`, `__knexTxId`) become own
 * properties of this object, so they stay with the loan. A class, not a Proxy per loan: the members
 * knex uses on every statement are on the prototype; anything else falls through to one shared
 * Proxy behind the prototype, which forwards it to the client (methods bound to it: pg keeps its
 * state on `this`). Limits of that fallback: `in` sees the client's methods but not its instance
 * fields, and `delete` of a client field does not reach the client.
 */
class KnexConnection {
  readonly #ctx: LoanQueryContext;
  readonly #loan: PooledConnection;
  readonly #raw: pg.Client;
  readonly #uid: string;
  /** Releases to ignore: the stream 'close' handler's (see `_stream`). */
  #skipReleases = 0;
  /** The slot of knex's `pool.max` this loan holds, given back once. */
  #slot: (() => void) | undefined;
  /** Client methods bound to the client, made when first read through the fallback. */
  #bound: Map<PropertyKey, { fn: unknown; bound: unknown }> | undefined = undefined;

  static {
    memberOf = (connection, key) => {
      if (!(#raw in connection)) return undefined;
      connection.#bound ??= new Map();
      return clientMember(connection.#raw, key, connection.#bound);
    };
    setMemberOf = (connection, key, value) => (#raw in connection ? Reflect.set(connection.#raw, key, value, connection.#raw) : false);
    releaseKnexLoan = (c) => {
      if (typeof c !== 'object' || c === null || !(#raw in c)) return false;
      if (c.#skipReleases > 0) {
        c.#skipReleases--;
        return true;
      }
      const disposed = Object.hasOwn(c, '__knex__disposed') ? (c as unknown as { __knex__disposed: unknown }).__knex__disposed : undefined;
      c.#loan.release(disposed instanceof Error ? disposed : Boolean(disposed));
      const slot = c.#slot;
      c.#slot = undefined;
      slot?.();
      return true;
    };
    skipNextRelease = (c) => {
      if (typeof c !== 'object' || c === null || !(#raw in c)) return false;
      c.#skipReleases++;
      return true;
    };
  }

  /** @param slot the slot of knex's `pool.max` this loan holds (given back with the loan). */

  constructor(ctx: LoanQueryContext, loan: PooledConnection, raw: pg.Client, uid: string, slot: (() => void) | undefined) {
    this.#slot = slot;
    this.#ctx = ctx;
    this.#loan = loan;
    this.#raw = raw;
    this.#uid = uid;
    clientPrototype ??= Object.getPrototypeOf(raw) as object;
  }

  query(...args: unknown[]): unknown {
    return queryOnLoan(this.#ctx, this.#loan, args);
  }

  get __knexUid(): string {
    return this.#uid;
  }
  set __knexUid(_value: string) {
    // belongs to the physical connection: knex's assignment is ignored
  }

  get processID(): number | null {
    return (this.#raw as unknown as { processID: number | null }).processID;
  }
}

Object.setPrototypeOf(
  KnexConnection.prototype,
  new Proxy(
    {},
    {
      get(_target, key, receiver: object) {
        // A `__knex*` property knex has not set (once set it is an own property of the connection).
        if (isKnexKey(key)) return undefined;
        return memberOf(receiver, key);
      },
      set(_target, key, value, receiver: object) {
        if (isKnexKey(key)) return Reflect.defineProperty(receiver, key, { value, writable: true, enumerable: true, configurable: true });
        return setMemberOf(receiver, key, value);
      },
      has(_target, key) {
        return clientPrototype !== null && !isKnexKey(key) && Reflect.has(clientPrototype, key);
      },
      getPrototypeOf() {
        return clientPrototype;
      },
    },
  ),
);

/** A slot-taking caller waiting for knex's `pool.max`. */
interface SlotWaiter {
  grant(): void;
  timer: NodeJS.Timeout | undefined;
}

/**
 * The pool as `knex.client.pool` shows it: tarn's counters, read-only (monitoring code reads them);
 * and knex's `pool.max` for this knex instance: at most that many loans at once, FIFO.
 */
class KnexPoolView {
  #inUse = 0;
  readonly #queue: SlotWaiter[] = [];

  constructor(
    private readonly db: PoolSource,
    readonly poolId: string,
    /** knex's `pool.max`; Infinity when not set. */
    readonly knexMax: number = Infinity,
  ) {}

  /**
   * Takes one of knex's `pool.max` slots; resolves with the function that gives it back (once).
   * Rejects with ACQUIRE_TIMEOUT when none is free within `timeoutMs` (0: waits).
   */
  takeSlot(timeoutMs: number): Promise<() => void> {
    const give = (): (() => void) => {
      this.#inUse++;
      let given = false;
      return () => {
        if (given) return;
        given = true;
        this.#inUse--;
        this.#queue.shift()?.grant();
      };
    };
    if (this.#inUse < this.knexMax && this.#queue.length === 0) return Promise.resolve(give());
    return new Promise<() => void>((resolve, reject) => {
      const waiter: SlotWaiter = {
        grant: () => {
          clearTimeout(waiter.timer);
          resolve(give());
        },
        timer: undefined,
      };
      if (timeoutMs > 0) {
        waiter.timer = setTimeout(() => {
          const at = this.#queue.indexOf(waiter);
          if (at >= 0) this.#queue.splice(at, 1);
          const s = this.db.getPoolStatus(this.poolId);
          reject(
            new AcquireTimeoutError(this.poolId, timeoutMs, {
              total: s.total,
              active: this.#inUse,
              idle: s.idle,
              waiting: this.#queue.length + 1,
              max: this.knexMax,
            }),
          );
        }, timeoutMs);
      }
      this.#queue.push(waiter);
    });
  }

  numUsed(): number {
    return this.db.getPoolStatus(this.poolId).active;
  }
  numFree(): number {
    return this.db.getPoolStatus(this.poolId).idle;
  }
  numPendingAcquires(): number {
    return this.db.getPoolStatus(this.poolId).waiting;
  }
  numPendingCreates(): number {
    return this.db.getPoolStatus(this.poolId).pendingCreates;
  }
  get max(): number {
    return this.db.getPoolStatus(this.poolId).max;
  }
  get min(): number {
    return this.db.getPoolStatus(this.poolId).min;
  }
}

/** The unredacted settings knex's `cancelQuery` connects with; shown redacted when logged. */
const settingsCache = new WeakMap<ResolvedPoolConfig, Record<string, unknown>>();

function knexConnectionSettings(config: ResolvedPoolConfig): Record<string, unknown> {
  let settings = settingsCache.get(config);
  if (settings) return settings;
  const s: Record<string, unknown> = { ...clientConfig(config) };
  delete s.keepAlive;
  // instrumentation-knex reads host / port / database from here (pg lets the URL win anyway).
  const view = connectionView(config);
  for (const key of ['host', 'port', 'database', 'user'] as const) s[key] ??= view[key];
  for (const key of Object.keys(s)) if (s[key] === undefined) delete s[key];
  const redacted = (): Record<string, unknown> => view;
  Object.defineProperty(s, 'toJSON', { value: redacted, enumerable: false });
  Object.defineProperty(s, Symbol.for('nodejs.util.inspect.custom'), { value: redacted, enumerable: false });
  settings = s;
  settingsCache.set(config, settings);
  return settings;
}

/** Host, port, database, user and application name of a pool: nothing secret. */
export function connectionView(config: ResolvedPoolConfig): { host?: string; port?: number; database?: string; user?: string; application_name: string } {
  const view: { host?: string; port?: number; database?: string; user?: string; application_name: string } = { application_name: config.applicationName };
  for (const [key, value] of Object.entries(connectionTarget(config))) if (value !== undefined) Object.assign(view, { [key]: value });
  return view;
}

function searchPathKey(path: unknown): string {
  if (path === undefined || path === null || path === '') return '';
  return JSON.stringify(Array.isArray(path) ? path : [path]);
}

function toKnexTimeout(parts: KnexParts, err: AcquireTimeoutError): Error {
  const e = new parts.KnexTimeoutError(
    `Knex: Timeout acquiring a connection. ${err.message}. The pool is probably full. Are you missing a .transacting(trx) call?`,
  );
  Object.assign(e, {
    cause: err,
    code: err.code,
    poolId: err.poolId,
    total: err.total,
    active: err.active,
    idle: err.idle,
    waiting: err.waiting,
    max: err.max,
  });
  return e;
}

/** The shorter of knex's acquireConnectionTimeout and pool.acquireTimeoutMillis, when either is set. */
function acquireLimit(a: unknown, b: unknown): number | undefined {
  const x = typeof a === 'number' && a > 0 ? a : undefined;
  const y = typeof b === 'number' && b > 0 ? b : undefined;
  return x === undefined ? y : y === undefined ? x : Math.min(x, y);
}

/**
 * Builds the client class for one `knexConfig()` call. `db` and `poolId` live in the closure, so
 * knex's transaction clients (made with `Object.create(client.constructor.prototype)`) reach them too.
 */
export function createKnexClientClass(parts: KnexParts, db: PoolSource, poolId: string): KnexPgClientClass {
  const ctx: LoanQueryContext = { db, poolId };
  /** Physical connections this knex instance has prepared (afterCreate run). */
  const prepared = new WeakSet<pg.Client>();
  let lastSettings: Record<string, unknown> = {};
  const Base = parts.PgClient;

  /** The pool's acquire; knex's `acquireConnectionTimeout` applies when it is the shorter one. */
  function acquireLoan(limit: unknown): Promise<PooledConnection> {
    const acquiring = db.acquire(poolId);
    if (typeof limit !== 'number' || !(limit > 0)) return acquiring;
    let poolLimit: number;
    try {
      poolLimit = internalPoolConfig(db, poolId).acquireTimeoutMs;
    } catch {
      return acquiring;
    }
    if (limit >= poolLimit) return acquiring;
    return new Promise<PooledConnection>((resolve, reject) => {
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        const s = db.getPoolStatus(poolId);
        reject(new AcquireTimeoutError(poolId, limit, { total: s.total, active: s.active, idle: s.idle, waiting: s.waiting, max: s.max }));
      }, limit);
      acquiring.then(
        (loan) => {
          clearTimeout(timer);
          if (timedOut) loan.release();
          else resolve(loan);
        },
        (err: unknown) => {
          clearTimeout(timer);
          if (!timedOut) reject(err);
        },
      );
    });
  }

  /** Whether {@link prepare} has nothing to do (the usual loan: the connection was prepared for this knex before). */
  function isPrepared(client: KnexPgClientInternals, raw: pg.Client): boolean {
    return Boolean(client.version) && prepared.has(raw) && searchPathKey(client.searchPath ?? client.config.searchPath) === (searchPaths.get(raw) ?? '');
  }

  /** Version check, search_path and afterCreate, as tarn's create did them. */
  async function prepare(client: KnexPgClientInternals, proxy: pg.Client, raw: pg.Client): Promise<void> {
    if (!client.version) client.version = await client.checkVersion(proxy);
    const path = client.searchPath ?? client.config.searchPath;
    const wanted = searchPathKey(path);
    const current = searchPaths.get(raw) ?? '';
    if (wanted !== current) {
      if (wanted) await client.setSchemaSearchPath(proxy, path);
      else await proxy.query('RESET search_path');
      if (wanted) searchPaths.set(raw, wanted);
      else searchPaths.delete(raw);
    }
    if (prepared.has(raw)) return;
    const afterCreate = client.config.pool?.afterCreate;
    if (typeof afterCreate === 'function') {
      await new Promise<void>((resolve, reject) => {
        (afterCreate as KnexAfterCreate)(proxy, (err) => (err ? reject(err) : resolve()));
      });
    }
    prepared.add(raw);
  }

  // No #private members below: knex builds transaction and migration clients with
  // Object.create(prototype), and those have no private brand.
  class DbPoolKnexClient extends Base {
    override initializePool(): void {
      if (this.pool) {
        this.logger.warn('The pool has already been initialized');
        return;
      }
      const settings = (this.config.pool ?? {}) as Record<string, unknown>;
      const honoured = new Set(['afterCreate', 'max', 'acquireTimeoutMillis']);
      const ignored = Object.keys(settings).filter((k) => !honoured.has(k) && settings[k] !== undefined);
      if (ignored.length > 0) {
        this.logger.warn(
          `db-pool-otel: knex pool settings ${ignored.join(', ')} are ignored; connections come from pool "${poolId}" (set them in its PoolConfig; knex's pool.max and pool.acquireTimeoutMillis apply)`,
        );
      }
      const max = settings.max;
      if (max !== undefined && (typeof max !== 'number' || !(max >= 1))) {
        throw new TypeError(`db-pool-otel: knex pool.max must be a number of at least 1, got ${String(max)}`);
      }
      this.pool = new KnexPoolView(db, poolId, typeof max === 'number' ? max : Infinity);
      this._ownsPool = false;
    }

    override async acquireConnection(): Promise<unknown> {
      if (!this.pool) throw new Error('Unable to acquire a connection');
      const limit = acquireLimit(
        this.config.acquireConnectionTimeout,
        (this.config.pool as { acquireTimeoutMillis?: unknown } | undefined)?.acquireTimeoutMillis,
      );
      const view = this.pool as KnexPoolView;
      let slot: (() => void) | undefined;
      let loan: PooledConnection;
      try {
        const started = performance.now();
        if (view.knexMax !== Infinity) slot = await view.takeSlot(limit ?? 0);
        loan = await acquireLoan(limit === undefined ? undefined : Math.max(1, Math.ceil(limit - (performance.now() - started))));
      } catch (err) {
        slot?.();
        if (err instanceof AcquireTimeoutError) throw toKnexTimeout(parts, err);
        throw err;
      }
      const raw = loan.client;
      let uid = knexUids.get(raw);
      if (uid === undefined) {
        uid = parts.uniqueId('__knexUid');
        knexUids.set(raw, uid);
      }
      const connection = new KnexConnection(ctx, loan, raw, uid, slot) as unknown as pg.Client;
      try {
        // Checked first: an async call with nothing to do still costs a promise and a turn per loan.
        if (!isPrepared(this, raw)) await prepare(this, connection, raw);
      } catch (err) {
        loan.release(err instanceof Error ? err : true);
        slot?.();
        throw err;
      }
      return connection;
    }

    override releaseConnection(connection: unknown): Promise<void> {
      try {
        releaseKnexLoan(connection);
      } catch {
        // never reject: knex does not await this everywhere
      }
      return Promise.resolve();
    }

    /**
     * knex's stream, with two changes: the query settles when the query stream closes early
     * (destroyed before its end), so knex's own release always runs; and the release knex's
     * stream 'close' handler adds (knex #6288) is skipped, so `.connection(c).stream()` does not
     * hand back a connection its owner still holds.
     */
    override _stream(connection: unknown, obj: { sql?: string; bindings?: unknown[] }, stream: unknown, options?: unknown): Promise<unknown> {
      if (!obj.sql) throw new Error('The query is empty');
      const QueryStream = parts.require('pg-query-stream') as new (
        sql: string,
        bindings: unknown,
        options: unknown,
      ) => NodeJS.ReadableStream & NodeJS.EventEmitter & { destroyed?: boolean };
      const out = stream as NodeJS.WritableStream & NodeJS.EventEmitter & { closed?: boolean; emit(ev: string, ...a: unknown[]): boolean };
      if (connection instanceof KnexConnection && this.releaseConnection === DbPoolKnexClient.prototype.releaseConnection && !out.closed) {
        out.prependOnceListener('close', () => {
          skipNextRelease(connection);
        });
      }
      const sql = obj.sql;
      return new Promise((resolve, reject) => {
        const qs = (connection as { query(s: unknown): unknown }).query(new QueryStream(sql, obj.bindings, options)) as NodeJS.ReadableStream &
          NodeJS.EventEmitter;
        qs.on('error', (error: unknown) => {
          reject(error);
          out.emit('error', error);
        });
        qs.on('end', resolve);
        qs.on('close', resolve);
        qs.pipe(out);
      });
    }

    /** Drops this knex's hold on the pool; the pool belongs to the DatabasePool and stays open. */
    override async destroy(callback?: (err?: unknown) => void): Promise<void> {
      this.pool = undefined;
      if (typeof callback === 'function') callback();
    }
  }

  // knex assigns connectionSettings in its constructor; here it always reads the pool's current
  // settings (they change with updatePoolConfig / restartPool), with the password for cancelQuery.
  Object.defineProperty(DbPoolKnexClient.prototype, 'connectionSettings', {
    configurable: true,
    get(): Record<string, unknown> {
      try {
        lastSettings = knexConnectionSettings(internalPoolConfig(db, poolId));
      } catch {
        // pool removed: keep what we had
      }
      return lastSettings;
    },
    set(_value: unknown) {
      // ignored: the pool's config is the source
    },
  });
  return DbPoolKnexClient;
}
