/**
 * The generic-pool factory: opens `pg` clients (paced by {@link CreateBackoff}, published on
 * `db-pool:connect`), closes them, and decides on borrow whether an idle one may be lent.
 */
import pg from 'pg';
import type { Factory } from 'generic-pool';
import { connectChannel, tracingActive, type ConnectMessage, type ServerInfo } from '../channels.js';
import { Connection, watchSessionSettings } from './connection.js';
import type { LentConnection } from './pooled-connection.js';
import { CreateBackoff } from './create-backoff.js';
import { secretsOf, type ResolvedPoolConfig } from '../config/config.js';
import { driverCallRunner, runDriverCall } from '../trace-context.js';

/** Connections idle less than this are lent without a `SELECT 1` even with validateOnBorrow (HikariCP's bypass window). */
const VALIDATION_BYPASS_MS = 1_000;
const END_GRACE_MS = 2_000;

export interface FactoryHooks {
  /** A connect attempt failed (the error with secrets scrubbed). */
  onCreateFailure(err: Error): void;
  /** A connect succeeded. */
  onCreateSuccess(): void;
  /** An open connection reported an error or closed on its own. */
  onBroken(conn: LentConnection, err: Error | undefined): void;
  /** A connection left the pool to be closed (called as it leaves, before its `end()`). */
  onClosed?(conn: LentConnection): void;
  /**
   * Runs on a new connection before anyone is lent it (the pool reads its server's connection
   * budget there on its first connection and after a reconnect). `noConnection`: the pool holds no
   * other open connection. A rejection fails the connect attempt.
   */
  readBudget?(client: pg.Client, noConnection: boolean): Promise<void>;
}

export class ConnectionFactory implements Factory<LentConnection> {
  readonly backoff: CreateBackoff;
  readonly server: ServerInfo;
  /** Connects in progress (including ones waiting out a backoff). */
  pendingCreates = 0;
  /** Connect attempts made and failed, since the pool was created. */
  attempts = 0;
  failures = 0;
  /** Every open connection, idle or lent. */
  readonly connections = new Set<LentConnection>();
  /** Idle connections running the pool's server-budget statement, until it is answered (see ManagedPool). */
  readonly budgetReads = new Map<LentConnection, Promise<void>>();
  /** Clients still connecting, so closing the pool can abandon them instead of waiting out a connect timeout. */
  readonly #connecting = new Set<pg.Client>();
  created = 0;
  closed = 0;
  /** The last connect error, with secrets scrubbed from its message; cleared by a success. */
  lastError: Error | undefined;
  #closed = false;
  readonly #secrets: string[];

  constructor(
    readonly poolId: string,
    private config: ResolvedPoolConfig,
    private readonly hooks: FactoryHooks,
  ) {
    this.backoff = new CreateBackoff(50, Math.min(2_000, Math.max(100, config.acquireTimeoutMs / 4)));
    this.server = serverInfo(config);
    this.#secrets = secretsOf(config.connection);
  }

  /** Takes new settings (lifetime, validation, timeouts) for connections made from now on. */
  reconfigure(config: ResolvedPoolConfig): void {
    this.config = config;
  }

  /** `host:port/database`, for errors. */
  target(): string {
    const s = this.server;
    return `${s.serverAddress}:${s.serverPort}${s.database ? `/${s.database}` : ''}`;
  }

  async create(): Promise<LentConnection> {
    this.pendingCreates++;
    try {
      const conn = await this.backoff.run((attempt) => {
        if (this.#closed) return Promise.reject(new Error(`pool "${this.poolId}" is closed`));
        this.attempts++;
        if (!tracingActive(connectChannel)) return this.#connect();
        const msg: ConnectMessage = { poolId: this.poolId, attempt, ...this.server };
        return connectChannel.tracePromise(() => this.#connect(msg), msg);
      });
      this.lastError = undefined;
      this.connections.add(conn);
      this.created++;
      this.hooks.onCreateSuccess();
      return conn;
    } catch (err) {
      this.failures++;
      const scrubbed = this.scrub(err);
      this.lastError = scrubbed;
      this.hooks.onCreateFailure(scrubbed);
      throw scrubbed;
    } finally {
      this.pendingCreates--;
    }
  }

  async #connect(msg?: ConnectMessage): Promise<LentConnection> {
    const started = performance.now();
    const client = new (this.config.Client ?? pg.Client)(clientConfig(this.config));
    // Before connect: a session that starts with standard_conforming_strings = off (role, database
    // or `options` setting) is then read as such from its first statement.
    watchSessionSettings(client);
    // Until a Connection listens, errors land here. The server can send ReadyForQuery and a FATAL
    // (57P01 when it shuts down) in one packet: pg resolves connect() and then emits 'error' in the
    // same tick, before the code after the await runs; unheard, that error would crash the process.
    let early: Error | undefined;
    let endedEarly = false;
    const onEarlyError = (err: Error) => {
      early ??= err;
    };
    const onEarlyEnd = () => {
      endedEarly = true;
    };
    client.on('error', onEarlyError);
    client.on('end', onEarlyEnd);
    this.#connecting.add(client);
    try {
      // The callback form, as pg.Pool calls it (code that wraps Client#connect wraps that one).
      await new Promise<void>((resolve, reject) => {
        const connect = () => client.connect((err: Error | undefined) => (err ? reject(err) : resolve()));
        const runner = driverCallRunner();
        if (runner === undefined) connect();
        else runner(connect);
      });
    } catch (err) {
      endQuietly(client);
      throw err;
    } finally {
      this.#connecting.delete(client);
    }
    if (this.#closed) {
      // The pool closed while this connect was under way.
      await client.end().catch(() => {});
      throw new Error(`pool "${this.poolId}" is closed`);
    }
    const onConnect = this.config.onConnect;
    if (onConnect && early === undefined && !endedEarly) {
      // Once per physical connection, before anyone is lent it.
      try {
        await onConnect(client);
      } catch (err) {
        client.end().catch(() => {});
        throw err;
      }
      if (this.#closed) {
        await client.end().catch(() => {});
        throw new Error(`pool "${this.poolId}" is closed`);
      }
    }
    const readBudget = this.hooks.readBudget;
    if (readBudget && early === undefined && !endedEarly) {
      try {
        await readBudget(client, this.connections.size === 0);
      } catch (err) {
        dropSocket(client); // a server that does not answer would not answer Terminate either
        throw err;
      }
    }
    if (early !== undefined || endedEarly) {
      // Opened and lost at once: a failed connect attempt, retried (with backoff) like any other.
      client.end().catch(() => {});
      throw early ?? new Error('the server closed the connection as soon as it was opened');
    }
    const conn = new Connection(client, this.config.maxLifetimeMs, this.hooks.onBroken);
    client.off('error', onEarlyError);
    client.off('end', onEarlyEnd);
    if (msg) {
      msg.connectionId = conn.id;
      msg.createMs = performance.now() - started;
    }
    return conn;
  }

  async destroy(conn: LentConnection): Promise<void> {
    if (this.connections.delete(conn)) this.closed++;
    this.#reportClosed(conn);
    if (conn.broken === 'timeout') void sendCancel(conn);
    conn.markBroken('ended');
    conn.stopTimer();
    const client = conn.client;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      client.end().catch(() => {}),
      new Promise<void>((resolve) => {
        // A stalled server never answers Terminate: drop the socket instead of waiting forever.
        timer = setTimeout(() => {
          dropSocket(client);
          resolve();
        }, END_GRACE_MS);
      }),
    ]);
    clearTimeout(timer);
  }

  /**
   * Tells the pool a connection left it, as it leaves (the counts no longer include it), the way
   * pg.Pool emits 'remove'. A throw from a listener is rethrown as an uncaught exception, not lost
   * in generic-pool's promise chain.
   */
  #reportClosed(conn: LentConnection): void {
    try {
      this.hooks.onClosed?.(conn);
    } catch (err) {
      process.nextTick(() => {
        throw err;
      });
    }
  }

  /** Test on borrow: answered at once unless a budget read or a validating `SELECT 1` must finish first. */
  check(conn: LentConnection): boolean | Promise<boolean> {
    // An idle connection running the pool's own budget statement is lent once it has answered.
    const reading = this.budgetReads.size > 0 ? this.budgetReads.get(conn) : undefined;
    if (reading !== undefined) return reading.then(() => this.check(conn));
    const now = Date.now();
    if (!conn.reusable(now).ok) return false;
    if (this.config.validateOnBorrow && now - conn.returnedAt > VALIDATION_BYPASS_MS) {
      return runDriverCall(() => conn.client.query('SELECT 1')).then(
        () => true,
        () => {
          conn.markBroken('error');
          return false;
        },
      );
    }
    return true;
  }

  close(): void {
    this.#closed = true;
    this.backoff.close();
    for (const client of this.#connecting) dropSocket(client);
  }

  /** Forgets past connect failures (cleanupPool): the next attempt goes straight through. */
  resetFailures(): void {
    this.backoff.reset();
    this.lastError = undefined;
  }

  /** A copy of `err` whose message has no password in it (driver messages can echo a URL). */
  scrub(err: unknown): Error {
    const e = err instanceof Error ? err : new Error(String(err));
    let message = e.message;
    for (const s of this.#secrets) message = message.split(s).join('[REDACTED]');
    if (message === e.message && !('input' in e)) return e;
    const copy = new Error(message);
    copy.name = e.name;
    const code = (e as { code?: unknown }).code;
    if (code !== undefined) (copy as Error & { code?: unknown }).code = code;
    return copy;
  }
}

/** Ends a client that failed to connect, whatever it is (a `Client` option may be a stand-in). */
function endQuietly(client: pg.Client): void {
  try {
    const ending = (client as { end?: () => Promise<void> | void }).end?.();
    if (ending && typeof ending.catch === 'function') ending.catch(() => {});
  } catch {
    // nothing more to close
  }
}

function dropSocket(client: pg.Client): void {
  (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
}

/** The `pg.Client` settings of a pool's connections. */
export function clientConfig(config: ResolvedPoolConfig): pg.ClientConfig {
  const c = config.connection;
  return {
    connectionString: c.connectionString,
    host: c.host,
    port: c.port,
    user: c.user,
    password: c.password,
    database: c.database,
    ssl: c.ssl,
    application_name: config.applicationName,
    connectionTimeoutMillis: config.acquireTimeoutMs,
    keepAlive: c.keepAlive ?? true,
    keepAliveInitialDelayMillis: c.keepAliveInitialDelayMillis,
    statement_timeout: c.statement_timeout,
    lock_timeout: c.lock_timeout,
    idle_in_transaction_session_timeout: c.idle_in_transaction_session_timeout,
    options: c.options,
    stream: c.stream as pg.ClientConfig['stream'],
  };
}

/** Where a pool connects, from its parts or its URL: nothing secret. Cached per config object. */
export interface ConnectionTarget {
  host: string | undefined;
  port: number | undefined;
  database: string | undefined;
  user: string | undefined;
}

const targets = new WeakMap<ResolvedPoolConfig, ConnectionTarget>();

export function connectionTarget(config: ResolvedPoolConfig): ConnectionTarget {
  let target = targets.get(config);
  if (target) return target;
  const c = config.connection;
  let { host, port, database, user } = c;
  if (c.connectionString) {
    try {
      const u = new URL(c.connectionString);
      host ??= u.hostname || undefined;
      port ??= u.port ? Number(u.port) : undefined;
      database ??= decodeURIComponent(u.pathname.replace(/^\//, '')) || undefined;
      user ??= decodeURIComponent(u.username) || undefined;
    } catch {
      // validated when the pool was created
    }
  }
  target = { host, port, database, user };
  targets.set(config, target);
  return target;
}

/** The server attributes of telemetry (pg's defaults filled in). */
export function serverInfo(config: ResolvedPoolConfig): ServerInfo {
  const t = connectionTarget(config);
  return { serverAddress: t.host ?? 'localhost', serverPort: t.port ?? 5432, database: t.database };
}

/** Asks the server to cancel whatever the connection is running (PostgreSQL's CancelRequest). */
/**
 * Asks the server to cancel the statement running on `conn` (a CancelRequest on a connection of its
 * own, what pg_cancel_backend does). Resolves once the server has taken the request and closed that
 * connection, or after a short bound: from then on the cancel cannot reach a later statement.
 */
export function sendCancel(conn: LentConnection): Promise<void> {
  const pid = conn.processId;
  const client = conn.client as unknown as { secretKey?: number; host?: string; port?: number };
  if (pid === undefined || client.secretKey === undefined || !client.host) return Promise.resolve();
  const con = new pg.Connection() as unknown as {
    connect(port: number | string, host?: string): void;
    cancel(pid: number, key: number): void;
    on(ev: string, fn: (...a: unknown[]) => void): void;
    end(): void;
  };
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, CANCEL_SENT_MS);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    con.on('error', done);
    con.on('end', done);
    con.on('connect', () => con.cancel(pid, client.secretKey!));
    if (client.host!.startsWith('/')) con.connect(`${client.host}/.s.PGSQL.${client.port}`);
    else con.connect(client.port ?? 5432, client.host);
  });
}

/** Longest wait for the server to take a cancel request. */
const CANCEL_SENT_MS = 2_000;
