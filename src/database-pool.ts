/**
 * `DatabasePool`: several named pools in one process, addressed by pool id — the entry point of
 * the library (the ops guide's vocabulary, in camelCase).
 */
import { EventEmitter } from 'node:events';
import type pg from 'pg';
import { poolFromConfigFile } from './config/config-file-loader.js';
import { mergePoolConfig, resolvePoolConfig, resolvePools, validatePoolId, type PoolConfig, type ResolvedPoolConfig } from './config/config.js';
import { DbPoolError, PoolClosedError, PoolExistsError, PoolNotFoundError } from './errors.js';
import type { ConnectionInfo, ManagedPool, PoolStatus } from './pool/managed-pool.js';
import type { DetailedMetrics, PoolMetrics, QueryMetrics } from './pool/metrics.js';
import type { SlowQuery } from './stats/slow-query-log.js';
import type { Knex } from 'knex';
import type { AdminServer, AdminServerOptions } from './admin/admin-server.js';
import { startAdminServer as startAdminEndpoint } from './admin/start.js';
import { restartsPool } from './config/live-settings.js';
import type { DatabasePoolOptions } from './database-pool-options.js';
import { knexConfig as buildKnexConfig, type KnexConfigOptions } from './adapters/knex-config.js';
import { pgPool as buildPgPool, type PgCompatiblePool, type PgPoolFaceOptions } from './adapters/pg-pool.js';
import { PoolRoutes } from './routing/pool-routes.js';
import { beginStatement, callLimits, inTransaction, queryOn, ready, withLoan } from './calls.js';
import { onTransition, poolHooks } from './facade-events.js';
import { AlertEvaluator } from './alerts/alert-evaluator.js';
import type { AlertHandler } from './alerts/alert-handler.js';
import { RECOVERY_DEFAULTS, type RecoveryOptions } from './routing/failover.js';
import { HEALTH_DEFAULTS, deepHealthCheck, healthCheck, type DeepHealthReport, type HealthOptions, type HealthReport } from './ops/health.js';
import type { LeakDiagnosis, PerformanceDiagnosis } from './ops/diagnosis.js';
import {
  AUTO_TUNE_DEFAULTS,
  autoTuneAll,
  decidePoolSize,
  decideTimeouts,
  type PoolSizeDecision,
  type ResolvedAutoTune,
  type TimeoutDecision,
} from './ops/tuning.js';
import type { PooledConnection, QueryInput, QueryResult } from './pool/pooled-connection.js';
import { registerConfigReader } from './internal-config.js';
import type { CallOptions, DatabasePoolEvents, QueryOptions, TransactionOptions } from './pool-api.js';
import { stripUndefined } from './util/object-utils.js';

export type { CallOptions, DatabasePoolEvents, IsolationLevel, QueryOptions, TransactionOptions } from './pool-api.js';
export type { DatabasePoolOptions } from './database-pool-options.js';

/**
 * Named PostgreSQL pools.
 *
 * @example
 * const db = new DatabasePool({ pools: { main: { connection: { connectionString: process.env.DATABASE_URL }, max: 20 } } });
 * const { rows } = await db.query('main', 'SELECT * FROM users WHERE id = $1', [42]);
 * await db.close();
 */
export class DatabasePool extends EventEmitter<DatabasePoolEvents> {
  /** Per pool id: the pool its calls go to, its primary, backup, replicas and recovery. */
  readonly #routes: PoolRoutes;
  readonly #configFile: string | undefined;
  readonly #logger: Pick<Console, 'warn'> | null;
  readonly #health: Required<HealthOptions>;
  readonly #autoTune: ResolvedAutoTune;
  readonly #recovery: Required<RecoveryOptions>;
  readonly #alertHandlers: AlertHandler[];
  #alerts: AlertEvaluator | undefined;
  readonly #adminServers = new Set<AdminServer>();
  #autoTuneTimer: NodeJS.Timeout | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: DatabasePoolOptions = {}) {
    super();
    registerConfigReader(this, (poolId) => this.#get(poolId).config);
    this.#recovery = { ...RECOVERY_DEFAULTS, ...stripUndefined(options.recovery ?? {}) };
    this.#health = { ...HEALTH_DEFAULTS, ...stripUndefined(options.health ?? {}) };
    this.#routes = new PoolRoutes({
      recovery: this.#recovery,
      probeTimeoutMs: this.#health.probeTimeoutMs,
      hooksFor: (pool) => poolHooks(this, this.#logger, pool),
      onTransition: (poolId, event, detail) => onTransition(this, this.#logger, this.#alertHandlers, poolId, event, detail),
    });
    this.#configFile = options.configFile ?? process.env.DB_POOL_CONFIG;
    this.#logger = options.logger === undefined ? console : options.logger;
    this.#autoTune = { ...AUTO_TUNE_DEFAULTS, ...stripUndefined(options.autoTune ?? {}) };
    this.#alertHandlers = options.alertHandlers ?? [];
    // Built before any pool: invalid alert options throw INVALID_CONFIG and nothing is created.
    if (this.#alertHandlers.length > 0) {
      this.#alerts = new AlertEvaluator(this, this.#alertHandlers, { logger: this.#logger, autoStart: false, ...options.alerts });
    }
    // Every pool validated before any is created: an invalid config changes nothing.
    for (const [id, cfg] of resolvePools(options.pools ?? {})) this.#routes.add(id, cfg);
    this.#alerts?.start();
    const every = this.#autoTune.intervalMs;
    if (every !== undefined && every > 0) {
      this.#autoTuneTimer = setInterval(() => void autoTuneAll(this, this.#logger), every);
      this.#autoTuneTimer.unref();
    }
  }

  /**
   * Creates a pool. Resolves at once; connections open in the background (`min` of them) and on demand.
   *
   * @example
   * await db.createPool('analytics', { connection: { host: 'db2', user: 'app', password: process.env.PGPASSWORD, database: 'dw' }, max: 5 });
   */
  async createPool(poolId: string, config: PoolConfig): Promise<void> {
    this.#assertOpen();
    validatePoolId(poolId);
    if (this.#routes.has(poolId)) throw new PoolExistsError(poolId);
    this.#routes.add(poolId, resolvePoolConfig(config, poolId));
  }

  /** Creates a pool from its entry in the config file (`configFile` or env `DB_POOL_CONFIG`). */
  async createPoolFromConfig(poolId: string): Promise<void> {
    this.#assertOpen();
    validatePoolId(poolId);
    if (this.#routes.has(poolId)) throw new PoolExistsError(poolId);
    const cfg = await poolFromConfigFile(this.#configFile, poolId);
    if (this.#routes.has(poolId)) throw new PoolExistsError(poolId);
    this.#routes.add(poolId, cfg);
  }

  /**
   * Removes a pool. New calls get POOL_NOT_FOUND at once; work already started (including callers
   * queued for a connection) finishes first, up to `drainTimeoutMs` (default 30 s), after which
   * remaining loans are revoked.
   */
  async removePool(poolId: string, options: { drainTimeoutMs?: number } = {}): Promise<void> {
    this.#get(poolId);
    await this.#routes.close(poolId, options.drainTimeoutMs, 'removed');
  }

  /** Ids of the pools, in creation order. */
  listPools(): string[] {
    return this.#routes.ids();
  }

  /**
   * Runs one statement on a pooled connection. Values are sent as bound parameters.
   *
   * @example
   * const { rows } = await db.query('main', 'SELECT name FROM users WHERE id = $1', [42]);
   */
  query<R extends pg.QueryResultRow = Record<string, unknown>>(
    poolId: string,
    text: QueryInput,
    values?: unknown[],
    options: QueryOptions = {},
  ): Promise<QueryResult<R>> {
    // Not `async`: queryOn's promise is returned as it is (one promise fewer per query); what the
    // checks throw becomes a rejection, as from an async method.
    try {
      return queryOn<R>(this.#get(poolId), options.readOnly ? this.#routes.replicas(poolId) : undefined, callLimits(options), text, values);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Lends a connection to `fn` and always gives it back, also when `fn` throws.
   *
   * @example
   * await db.withConnection('main', async (conn) => { await conn.query('SET LOCAL ...'); return conn.query('SELECT ...'); });
   */
  async withConnection<T>(poolId: string, fn: (conn: PooledConnection) => Promise<T>, options: CallOptions = {}): Promise<T> {
    const limits = callLimits(options);
    return withLoan(this.#get(poolId), limits, fn);
  }

  /**
   * Runs `fn` in a transaction: COMMIT when it resolves, ROLLBACK (and rethrow) when it throws.
   * When `fn` resolves but the transaction had failed (a statement error it caught), PostgreSQL
   * answers COMMIT with ROLLBACK and this rejects with TRANSACTION_ROLLED_BACK.
   *
   * @example
   * await db.transaction('main', async (tx) => {
   *   await tx.query('UPDATE accounts SET balance = balance - $1 WHERE id = $2', [100, from]);
   *   await tx.query('UPDATE accounts SET balance = balance + $1 WHERE id = $2', [100, to]);
   * }, { isolationLevel: 'SERIALIZABLE' });
   */
  async transaction<T>(poolId: string, fn: (tx: PooledConnection) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    const begin = beginStatement(options);
    const limits = callLimits(options);
    return inTransaction(this.#get(poolId), options.readOnly ? this.#routes.replicas(poolId) : undefined, begin, limits, fn);
  }

  /**
   * Lends a connection; the caller must `release()` it (once; later calls are no-ops).
   *
   * @example
   * const conn = await db.acquire('main');
   * try { await conn.query('SELECT 1'); } finally { conn.release(); }
   */
  acquire(poolId: string): Promise<PooledConnection> {
    try {
      return this.#get(poolId).acquire();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** The pool's settings with defaults filled in and secrets replaced by `[REDACTED]`. */
  getPoolConfig(poolId: string): ResolvedPoolConfig {
    return this.#get(poolId).redactedConfig();
  }

  /**
   * The ops guide's numbers for one pool: utilization, connections, waiting callers, acquire and
   * query percentiles (ms), QPS, error rate, slow queries and leaks over the rolling window.
   *
   * @example
   * const m = db.getMetrics('main');
   * if (m.connectionUtilization > 0.8) console.warn('main is busy', m.toJSON());
   */
  getMetrics(poolId: string): PoolMetrics {
    return this.#get(poolId).getMetrics();
  }

  /** {@link getMetrics} plus lifetime totals, P95s, maxima and connect state. */
  getDetailedMetrics(poolId: string): DetailedMetrics {
    return this.#get(poolId).getDetailedMetrics();
  }

  /** Query-side numbers and the top statements by total time (a client-side pg_stat_statements). */
  getQueryMetrics(poolId: string, options: { limit?: number } = {}): QueryMetrics {
    return this.#get(poolId).getQueryMetrics(options.limit);
  }

  /** The slowest of the pool's recent slow queries, slowest first, with literals removed. */
  getSlowQueries(poolId: string, options: { limit?: number } = {}): SlowQuery[] {
    return this.#get(poolId).getSlowQueries(options.limit ?? 10);
  }

  /** Every connection of the pool: state, age, use count, last statement; for loans, who holds it. */
  getConnectionDetails(poolId: string): ConnectionInfo[] {
    return this.#get(poolId).getConnectionDetails();
  }

  /**
   * Changes a running pool. The patch is validated first (an invalid one throws INVALID_CONFIG and
   * changes nothing). Limits, timeouts and thresholds apply live; a new `connection`,
   * `applicationName`, `backup` or `readReplicas` restarts the pool (see {@link restartPool}).
   *
   * @example
   * await db.updatePoolConfig('main', { max: 40, acquireTimeoutMs: 5_000 });
   */
  async updatePoolConfig(poolId: string, patch: Partial<PoolConfig>): Promise<void> {
    const pool = this.#get(poolId);
    const next = mergePoolConfig(pool.config, patch, poolId);
    const needsRestart = restartsPool(patch);
    if (needsRestart) await this.#routes.restart(poolId, next);
    else this.#routes.reconfigure(poolId, next);
  }

  /**
   * Replaces the pool with a new one built from its config. Callers waiting for a connection are
   * served by the new pool; work in progress finishes on the old one, which then closes.
   */
  async restartPool(poolId: string, options: { drainTimeoutMs?: number } = {}): Promise<void> {
    const pool = this.#get(poolId);
    await this.#routes.restart(poolId, pool.config, options.drainTimeoutMs);
  }

  /**
   * Closes idle connections (the pool refills to `min`), takes back loans held past
   * `leakDetectionThresholdMs`, and clears transient error state.
   */
  async cleanupPool(poolId: string): Promise<{ idleClosed: number; leaksReclaimed: number; errorsCleared: boolean }> {
    return this.#get(poolId).cleanup();
  }

  /**
   * Probes every pool at once with `SELECT 1` (each under `health.probeTimeoutMs`, so one hung
   * server cannot hang the check).
   *
   * @example
   * const h = await db.healthCheck();
   * if (h.status !== 'healthy') console.error(h.unhealthyPools);
   */
  healthCheck(): Promise<HealthReport> {
    return healthCheck(
      [...this.#routes.routed()].map(([, p]) => p),
      this.#health,
    );
  }

  /**
   * Startup check: every pool (or the ones named) lends a connection that answers `SELECT 1`.
   * Fails fast with a typed error: a server that refuses connections (or rejects the login) gives
   * CONNECTION_FAILED at the first failed connect, with the driver's error as `cause`; one that does
   * not answer gives ACQUIRE_TIMEOUT after the pool's `acquireTimeoutMs`; an unknown id POOL_NOT_FOUND.
   *
   * @example
   * const db = new DatabasePool({ pools });
   * await db.ready();               // throws before the service starts taking traffic
   */
  async ready(poolIds: readonly string[] = this.listPools()): Promise<void> {
    await ready(poolIds.map((id) => this.#get(id)));
  }

  /** Connectivity, probe latency, utilization and error rate of one pool against thresholds. */
  deepHealthCheck(poolId: string): Promise<DeepHealthReport> {
    return deepHealthCheck(this.#get(poolId), this.#health);
  }

  /** What is wrong with a pool's performance, how bad, and what to do; with its slowest queries. */
  async diagnosePerformanceIssues(poolId: string): Promise<PerformanceDiagnosis> {
    const pool = this.#get(poolId);
    // Imported when first asked for, not with the package (issue 19, "cheap to import").
    const { diagnosePerformance } = await import('./ops/diagnosis.js');
    return diagnosePerformance(pool);
  }

  /** Loans held suspiciously long, with the stacks that took them. */
  async diagnoseConnectionLeak(poolId: string): Promise<LeakDiagnosis> {
    const pool = this.#get(poolId);
    const { diagnoseLeaks } = await import('./ops/diagnosis.js');
    return diagnoseLeaks(pool);
  }

  /**
   * Applies the sizing rule (see README) and returns what it decided, with Little's law's estimate
   * beside it. `{ apply: false }` only reports.
   */
  async optimizePoolSize(poolId: string, options: { apply?: boolean } = {}): Promise<PoolSizeDecision> {
    const decision = decidePoolSize(this.#get(poolId), this.#autoTune);
    if (options.apply !== false && decision.after !== decision.before)
      await this.updatePoolConfig(poolId, { max: decision.after, min: Math.min(this.#get(poolId).config.min, decision.after) });
    return decision;
  }

  /** Measures probe latency and sets query timeout = max(3 × P95, 1 s), acquire timeout = half of it. */
  async optimizeTimeouts(poolId: string, options: { apply?: boolean } = {}): Promise<TimeoutDecision> {
    const decision = await decideTimeouts(this.#get(poolId), this.#autoTune);
    if (options.apply !== false) await this.updatePoolConfig(poolId, { queryTimeoutMs: decision.queryTimeoutMs, acquireTimeoutMs: decision.acquireTimeoutMs });
    return decision;
  }

  /**
   * A config for `knex()` (knex 3, PostgreSQL) whose connections come from this pool; knex's own pool
   * is not used, and `knex.destroy()` leaves this pool open.
   *
   * @example
   * const k = knex(db.knexConfig('main', { searchPath: ['app', 'public'] }));
   */
  knexConfig(poolId: string, options: KnexConfigOptions = {}): Knex.Config {
    return buildKnexConfig(this, poolId, options);
  }

  /**
   * A `pg.Pool`-compatible face of the pool, for Kysely, Drizzle and other code that expects one.
   *
   * @example
   * const kysely = new Kysely<DB>({ dialect: new PostgresDialect({ pool: db.pgPool('main') }) });
   */
  pgPool(poolId: string, options?: PgPoolFaceOptions): PgCompatiblePool {
    return buildPgPool(this, poolId, options);
  }

  /**
   * Starts the admin HTTP endpoint (JSON; loopback by default; bearer token) that the `db-pool` CLI
   * drives. Closed by `close()`. See the README's Operations section for what exposing it means.
   *
   * @example
   * const admin = await db.startAdminServer({ port: 9000, token: process.env.DB_POOL_ADMIN_TOKEN });
   */
  async startAdminServer(options: AdminServerOptions = {}): Promise<AdminServer> {
    const server = await startAdminEndpoint(this, options);
    this.#adminServers.add(server);
    return server;
  }

  /** Live connection and caller counts of one pool. */
  getPoolStatus(poolId: string): PoolStatus {
    return this.#get(poolId).status();
  }

  /** Closes every pool gracefully (in-flight work finishes first). Safe to call twice. */
  close(options: { drainTimeoutMs?: number } = {}): Promise<void> {
    this.#closing ??= (async () => {
      clearInterval(this.#autoTuneTimer);
      // Stopped first, so closing pools is not taken for incidents resolving. Awaited last: a hung
      // handler is abandoned after alerts.stopTimeoutMs, overlapping the drain.
      const alertsStopped = this.#alerts?.stop();
      await Promise.all([...this.#adminServers].map((s) => s.close().catch(() => {})));
      await Promise.all(this.#routes.ids().map((id) => this.#routes.close(id, options.drainTimeoutMs, 'closed')));
      await alertsStopped;
    })();
    return this.#closing;
  }

  /** What `JSON.stringify` and `console.log` show: ids and redacted configs, never secrets. */
  toJSON(): { pools: Record<string, ResolvedPoolConfig> } {
    const pools: Record<string, ResolvedPoolConfig> = {};
    for (const [id, p] of this.#routes.routed()) pools[id] = p.redactedConfig();
    return { pools };
  }

  #get(poolId: string): ManagedPool {
    const pool = this.#routes.get(poolId);
    if (pool) return pool;
    // Not String(poolId): a non-string id (from untyped callers) may not even convert.
    const shown = typeof poolId === 'string' ? poolId : `(a ${poolId === null ? 'null' : typeof poolId}, not a pool id)`;
    if (this.#closing) throw new PoolClosedError(shown);
    throw new PoolNotFoundError(shown);
  }

  #assertOpen(): void {
    if (this.#closing) throw new DbPoolError('POOL_CLOSED', 'This DatabasePool is closed');
  }
}
