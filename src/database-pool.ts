/**
 * `DatabasePool`: several named pools in one process, addressed by pool id — the entry point of
 * the library (the ops guide's vocabulary, in camelCase).
 */
import { EventEmitter } from 'node:events';
import type pg from 'pg';
import { loadConfigFile } from './config/config-file.js';
import { mergePoolConfig, resolvePoolConfig, validatePoolId, type PoolConfig, type ResolvedPoolConfig } from './config/config.js';
import {
  DbPoolError,
  InvalidConfigError,
  PoolClosedError,
  PoolExistsError,
  PoolNotFoundError,
  TransactionRolledBackError,
  type ConfigIssue,
} from './errors.js';
import { ManagedPool, type ConnectionInfo, type FailureBehaviour, type PoolStatus } from './pool/managed-pool.js';
import type { DetailedMetrics, PoolMetrics, QueryMetrics } from './pool/metrics.js';
import type { SlowQuery } from './stats/slow-query-log.js';
import type { Knex } from 'knex';
import { startAdminServer as startAdminEndpoint, type AdminServer, type AdminServerOptions } from './admin/admin-server.js';
import { LIVE_SETTINGS as LIVE_SETTING_NAMES } from './config/live-settings.js';
import { knexConfig as buildKnexConfig, type KnexConfigOptions } from './adapters/knex-config.js';
import { pgPool as buildPgPool, type PgCompatiblePool, type PgPoolFaceOptions } from './adapters/pg-pool.js';
import { ReplicaSet, unreachable } from './routing/replica-set.js';
import { AlertEvaluator, type AlertEvaluatorOptions } from './alerts/alert-evaluator.js';
import type { AlertHandler } from './alerts/alert-handler.js';
import { FailoverController, RECOVERY_DEFAULTS, type RecoveryOptions } from './routing/failover.js';
import { HEALTH_DEFAULTS, probe, deepHealthCheck, healthCheck, type DeepHealthReport, type HealthOptions, type HealthReport } from './ops/health.js';
import { diagnoseLeaks, diagnosePerformance, type LeakDiagnosis, type PerformanceDiagnosis } from './ops/diagnosis.js';
import {
  AUTO_TUNE_DEFAULTS,
  decidePoolSize,
  decideTimeouts,
  type AutoTuneOptions,
  type PoolSizeDecision,
  type ResolvedAutoTune,
  type TimeoutDecision,
} from './ops/tuning.js';
import type { CallLimits, PooledConnection, QueryInput, QueryResult } from './pool/pooled-connection.js';
import { registerPool, unregisterPool } from './pool/registry.js';
import { registerConfigReader } from './internal-config.js';
import type { CallOptions, DatabasePoolEvents, QueryOptions, TransactionOptions } from './pool-api.js';
import { stripUndefined } from './util/object-utils.js';

export type { CallOptions, DatabasePoolEvents, IsolationLevel, QueryOptions, TransactionOptions } from './pool-api.js';

/** Options of {@link DatabasePool}. */
export interface DatabasePoolOptions {
  /** Pools created at construction, by id. */
  pools?: Record<string, PoolConfig>;
  /** YAML or JSON file for `createPoolFromConfig`; default: env `DB_POOL_CONFIG`. */
  configFile?: string;
  /** Where leak reports and auto-tuning changes are logged; default `console`. Pass `null` for silence. */
  logger?: Pick<Console, 'warn'> | null;
  /** Thresholds of healthCheck / deepHealthCheck. */
  health?: HealthOptions;
  /** Thresholds of optimizePoolSize / optimizeTimeouts; with `intervalMs`, both run periodically. */
  autoTune?: AutoTuneOptions;
  /** Auto-recovery: recreate with backoff, fail over to `backup`, circuit breaker. On by default. */
  recovery?: RecoveryOptions;
  /** Handlers called when a pool's alert conditions hold (see AlertHandler); also told of failovers. */
  alertHandlers?: AlertHandler[];
  /** The in-process alert conditions: evaluation interval, thresholds, durations. */
  alerts?: AlertEvaluatorOptions;
}

/** Settings a running pool takes without a restart (the admin endpoint's patchable ones); changing any other one restarts the pool. */
const LIVE_SETTINGS = new Set<string>(LIVE_SETTING_NAMES);

const ISOLATION_LEVELS = new Set<string>(['READ UNCOMMITTED', 'READ COMMITTED', 'REPEATABLE READ', 'SERIALIZABLE']);

/**
 * Named PostgreSQL pools.
 *
 * @example
 * const db = new DatabasePool({ pools: { main: { connection: { connectionString: process.env.DATABASE_URL }, max: 20 } } });
 * const { rows } = await db.query('main', 'SELECT * FROM users WHERE id = $1', [42]);
 * await db.close();
 */
export class DatabasePool extends EventEmitter<DatabasePoolEvents> {
  readonly #pools = new Map<string, ManagedPool>();
  readonly #configFile: string | undefined;
  readonly #logger: Pick<Console, 'warn'> | null;
  readonly #health: Required<HealthOptions>;
  readonly #autoTune: ResolvedAutoTune;
  readonly #recovery: Required<RecoveryOptions>;
  /** Per pool id: the primary pool (routed unless failed over), its recovery, its own backup pool. */
  readonly #primaries = new Map<string, ManagedPool>();
  readonly #controllers = new Map<string, FailoverController>();
  readonly #backups = new Map<string, ManagedPool>();
  readonly #replicas = new Map<string, ReplicaSet>();
  readonly #alertHandlers: AlertHandler[];
  #alerts: AlertEvaluator | undefined;
  readonly #adminServers = new Set<AdminServer>();
  #autoTuneTimer: NodeJS.Timeout | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: DatabasePoolOptions = {}) {
    super();
    registerConfigReader(this, (poolId) => this.#get(poolId).config);
    this.#configFile = options.configFile ?? process.env.DB_POOL_CONFIG;
    this.#logger = options.logger === undefined ? console : options.logger;
    this.#health = { ...HEALTH_DEFAULTS, ...stripUndefined(options.health ?? {}) };
    this.#autoTune = { ...AUTO_TUNE_DEFAULTS, ...stripUndefined(options.autoTune ?? {}) };
    this.#recovery = { ...RECOVERY_DEFAULTS, ...stripUndefined(options.recovery ?? {}) };
    this.#alertHandlers = options.alertHandlers ?? [];
    // Built before any pool: invalid alert options throw INVALID_CONFIG and nothing is created.
    if (this.#alertHandlers.length > 0) {
      this.#alerts = new AlertEvaluator(this, this.#alertHandlers, { logger: this.#logger, autoStart: false, ...options.alerts });
    }
    const entries = Object.entries(options.pools ?? {});
    // Validate every pool before creating any: an invalid config changes nothing.
    const issues: ConfigIssue[] = [];
    const resolved: [string, ResolvedPoolConfig][] = [];
    for (const [id, cfg] of entries) {
      try {
        validatePoolId(id);
        resolved.push([id, resolvePoolConfig(cfg, id, `pools.${id}`)]);
      } catch (err) {
        if (err instanceof InvalidConfigError) issues.push(...err.issues);
        else throw err;
      }
    }
    if (issues.length > 0) throw new InvalidConfigError(issues);
    for (const [id, cfg] of resolved) this.#add(id, cfg);
    this.#alerts?.start();
    const every = this.#autoTune.intervalMs;
    if (every !== undefined && every > 0) {
      this.#autoTuneTimer = setInterval(() => void this.#autoTuneAll(), every);
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
    if (this.#pools.has(poolId)) throw new PoolExistsError(poolId);
    this.#add(poolId, resolvePoolConfig(config, poolId));
  }

  /** Creates a pool from its entry in the config file (`configFile` or env `DB_POOL_CONFIG`). */
  async createPoolFromConfig(poolId: string): Promise<void> {
    this.#assertOpen();
    validatePoolId(poolId);
    if (this.#pools.has(poolId)) throw new PoolExistsError(poolId);
    const file = this.#configFile;
    if (!file) {
      throw new InvalidConfigError([{ path: 'configFile', value: undefined, rule: 'no config file: pass configFile to DatabasePool or set DB_POOL_CONFIG' }]);
    }
    const { pools } = await loadConfigFile(file, { only: poolId });
    if (!Object.hasOwn(pools, poolId)) {
      throw new InvalidConfigError([
        { path: `pools.${poolId}`, value: undefined, rule: `is not defined in ${file} (it has: ${Object.keys(pools).join(', ') || 'no pools'})` },
      ]);
    }
    const cfg = resolvePoolConfig(pools[poolId], poolId, `pools.${poolId}`);
    if (this.#pools.has(poolId)) throw new PoolExistsError(poolId);
    this.#add(poolId, cfg);
  }

  #add(poolId: string, cfg: ResolvedPoolConfig): void {
    const pool = this.#newPool(poolId, cfg, undefined, 'primary');
    this.#pools.set(poolId, pool);
    this.#primaries.set(poolId, pool);
    registerPool(pool);
    if (this.#recovery.enabled) this.#controllers.set(poolId, this.#newController(poolId));
    this.#setReplicas(poolId, cfg);
    pool.publish('created', { max: cfg.max, min: cfg.min });
  }

  /** Builds the replica pools of `cfg` (ids `<poolId>:replica-N`), replacing any before. */
  #setReplicas(poolId: string, cfg: ResolvedPoolConfig): void {
    const old = this.#replicas.get(poolId);
    this.#replicas.delete(poolId);
    if (old) {
      for (const r of old.replicas) unregisterPool(r);
      void old.close();
    }
    if (!cfg.readReplicas?.length) return;
    const replicas = cfg.readReplicas.map((connection, i) => {
      const id = `${poolId}:replica-${i + 1}`;
      const r = this.#newPool(
        id,
        resolvePoolConfig(
          { ...cfg, connection, backup: undefined, readReplicas: undefined, applicationName: `${cfg.applicationName}:r${i + 1}`.slice(0, 63) },
          id,
        ),
        undefined,
        'backup',
      );
      registerPool(r);
      return r;
    });
    this.#replicas.set(poolId, new ReplicaSet(replicas));
  }

  #behaviour(cfg: ResolvedPoolConfig, role: 'primary' | 'backup'): FailureBehaviour {
    const r = this.#recovery;
    if (!r.enabled) return { failFast: true, circuitThreshold: 0, circuitResetMs: r.circuitResetMs };
    // A primary with a backup keeps its callers waiting for the failover; the others fail fast.
    if (role === 'primary' && cfg.backup !== undefined) return { failFast: false, circuitThreshold: 0, circuitResetMs: r.circuitResetMs };
    return { failFast: true, circuitThreshold: r.circuitBreakerThreshold, circuitResetMs: r.circuitResetMs };
  }

  #newPool(poolId: string, cfg: ResolvedPoolConfig, previous: ManagedPool | undefined, role: 'primary' | 'backup'): ManagedPool {
    const pool: ManagedPool = new ManagedPool(
      poolId,
      cfg,
      {
        onConnectionError: (id, connectionId, error, { idle, client }) => {
          pool.publish('connection-error', { connectionId, error: error?.message });
          this.emit('connectionError', withClient({ poolId: id, connectionId, error, idle }, client));
        },
        onConnectionClosed: (id, connectionId, client) => {
          if (this.listenerCount('connectionClosed') > 0) this.emit('connectionClosed', withClient({ poolId: id, connectionId }, client));
        },
        onLeak: (report) => {
          if (report.kind === 'suspected') {
            this.#logger?.warn(
              `[db-pool-otel] pool "${report.poolId}": connection ${report.connectionId} held for ${Math.round(report.heldMs)} ms ` +
                `(leakDetectionThresholdMs ${pool.config.leakDetectionThresholdMs}); acquired at:\n${report.stack ?? '(no stack)'}`,
            );
          }
          this.emit('leak', report);
        },
        onSlowQuery: (report) => this.emit('slowQuery', report),
        onReleasedWithPending: (report) => {
          this.#logger?.warn(
            `[db-pool-otel] pool "${report.poolId}": loan ${report.loanId} was released with ${report.pendingStatements} statement(s) still running ` +
              `(a missing await?); connection ${report.connectionId} is lent to nobody until they finish, then checked` +
              (report.stack ? `; acquired at:\n${report.stack}` : ''),
          );
          this.emit('releasedWithPending', report);
        },
        onUnreachable: (err) => {
          if (role === 'primary' && this.#primaries.get(poolId) === pool) this.#controllers.get(poolId)?.onUnreachable(err);
        },
      },
      previous?.stats,
      this.#behaviour(cfg, role),
    );
    return pool;
  }

  /** Moves the pool id's traffic (and its waiting callers) from the pool routed now to `next`. */
  #route(poolId: string, next: ManagedPool): ManagedPool | undefined {
    const current = this.#pools.get(poolId);
    if (!current || current === next) return current;
    this.#pools.set(poolId, next);
    if (next.poolId === poolId) registerPool(next);
    if (current.poolId === poolId) unregisterPool(current);
    current.transferWaitersTo(next);
    return current;
  }

  #newController(poolId: string): FailoverController {
    return new FailoverController(
      {
        poolId,
        primary: () => this.#primaries.get(poolId)!,
        recreatePrimary: () => {
          const old = this.#primaries.get(poolId)!;
          const fresh = this.#newPool(poolId, old.config, old, 'primary');
          this.#primaries.set(poolId, fresh);
          if (this.#pools.get(poolId) === old) this.#route(poolId, fresh);
          void old.close(1_000);
          return fresh;
        },
        backup: () => {
          const primary = this.#primaries.get(poolId)!;
          const b = primary.config.backup;
          if (b === undefined) return undefined;
          if (typeof b === 'string') return b === poolId ? undefined : this.#pools.get(b);
          const own = this.#newPool(poolId, resolvePoolConfig({ ...primary.config, connection: b, backup: undefined }, poolId), primary, 'backup');
          this.#backups.set(poolId, own);
          return own;
        },
        route: (pool) => void this.#route(poolId, pool),
        retireBackup: (pool) => {
          if (this.#backups.get(poolId) !== pool) return;
          this.#backups.delete(poolId);
          void pool.close();
        },
        probe: (pool) => probe(pool, this.#health.probeTimeoutMs),
        transition: (event, detail) => {
          const primary = this.#primaries.get(poolId);
          const totals = primary?.stats.totals;
          if (totals) {
            if (event === 'recovered') totals.recoveries++;
            if (event === 'failed-over') totals.failovers++;
            if (event === 'failed-back') totals.failbacks++;
          }
          primary?.publish(event, detail);
          if (event === 'failed-over' || event === 'recovery-failed') {
            this.#logger?.warn(`[db-pool-otel] pool "${poolId}": ${event} (${JSON.stringify(detail)})`);
          }
          this.#alertTransition(poolId, event, detail);
          this.emit('recovery', { poolId, event, detail });
        },
      },
      this.#recovery,
    );
  }

  /** Failover, failback and a failed recovery page the alert handlers (one incident: same dedup key). */
  #alertTransition(poolId: string, event: string, detail: Record<string, unknown>): void {
    if (event !== 'failed-over' && event !== 'failed-back' && event !== 'recovery-failed') return;
    const message =
      event === 'failed-over'
        ? `Pool "${poolId}" failed over to its backup: the primary is unreachable (${String(detail.error ?? 'unknown error')})`
        : event === 'failed-back'
          ? `Pool "${poolId}" failed back to its primary`
          : `Pool "${poolId}" could not be recovered after ${String(detail.attempts)} attempts and has no backup (${String(detail.error ?? '')})`;
    for (const h of this.#alertHandlers) {
      void h
        .sendAlert({ level: event === 'failed-back' ? 'info' : 'critical', message, poolId, kind: 'FailedOver', resolve: event === 'failed-back' })
        .catch(() => {});
    }
  }

  /** Stops recovery of a pool id and closes every pool object behind it. */
  async #closeId(poolId: string, drainTimeoutMs: number | undefined, event: 'removed' | 'closed'): Promise<void> {
    this.#controllers.get(poolId)?.stop();
    this.#controllers.delete(poolId);
    const routed = this.#pools.get(poolId);
    this.#pools.delete(poolId);
    const own = [this.#primaries.get(poolId), this.#backups.get(poolId)];
    this.#primaries.delete(poolId);
    this.#backups.delete(poolId);
    const replicas = this.#replicas.get(poolId);
    this.#replicas.delete(poolId);
    if (replicas) {
      for (const r of replicas.replicas) unregisterPool(r);
      await replicas.close(drainTimeoutMs);
    }
    // A backup that is another pool id is closed under its own id, not here.
    const pools = new Set([routed, ...own].filter((p): p is ManagedPool => p !== undefined && p.poolId === poolId));
    await Promise.all(
      [...pools].map(async (pool) => {
        try {
          await pool.close(drainTimeoutMs);
        } finally {
          unregisterPool(pool);
          pool.publish(event);
        }
      }),
    );
  }

  /**
   * Removes a pool. New calls get POOL_NOT_FOUND at once; work already started (including callers
   * queued for a connection) finishes first, up to `drainTimeoutMs` (default 30 s), after which
   * remaining loans are revoked.
   */
  async removePool(poolId: string, options: { drainTimeoutMs?: number } = {}): Promise<void> {
    this.#get(poolId);
    await this.#closeId(poolId, options.drainTimeoutMs, 'removed');
  }

  /** Ids of the pools, in creation order. */
  listPools(): string[] {
    return [...this.#pools.keys()];
  }

  /**
   * Runs one statement on a pooled connection. Values are sent as bound parameters.
   *
   * @example
   * const { rows } = await db.query('main', 'SELECT name FROM users WHERE id = $1', [42]);
   */
  async query<R extends pg.QueryResultRow = Record<string, unknown>>(
    poolId: string,
    text: QueryInput,
    values?: unknown[],
    options: QueryOptions = {},
  ): Promise<QueryResult<R>> {
    const pool = this.#get(poolId);
    const limits = callLimits(options);
    const replicas = options.readOnly ? this.#replicas.get(poolId) : undefined;
    if (replicas) {
      const { conn, onReplica } = await replicas.acquire(pool);
      conn.limits = limits;
      try {
        return await conn.query<R>(text, values);
      } catch (err) {
        // A read that lost its replica mid-way is safe to run again on the primary.
        if (!onReplica || !unreachable(err)) throw err;
      } finally {
        conn.release();
      }
    }
    const conn = await pool.acquire({ limits });
    conn.limits = limits;
    try {
      return await conn.query<R>(text, values);
    } finally {
      conn.release();
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
    const conn = await this.#get(poolId).acquire({ limits });
    conn.limits = limits;
    try {
      return await fn(conn);
    } finally {
      conn.release();
    }
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
    const pool = this.#get(poolId);
    const replicas = options.readOnly ? this.#replicas.get(poolId) : undefined;
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
    const needsRestart = Object.keys(patch).some((k) => !LIVE_SETTINGS.has(k));
    if (needsRestart) await this.#restart(poolId, pool, next);
    else {
      pool.reconfigure(next);
      for (const r of this.#replicas.get(poolId)?.replicas ?? [])
        r.reconfigure({ ...next, connection: r.config.connection, applicationName: r.config.applicationName, backup: undefined, readReplicas: undefined });
    }
  }

  /**
   * Replaces the pool with a new one built from its config. Callers waiting for a connection are
   * served by the new pool; work in progress finishes on the old one, which then closes.
   */
  async restartPool(poolId: string, options: { drainTimeoutMs?: number } = {}): Promise<void> {
    const pool = this.#get(poolId);
    await this.#restart(poolId, pool, pool.config, options.drainTimeoutMs);
  }

  async #restart(poolId: string, old: ManagedPool, cfg: ResolvedPoolConfig, drainTimeoutMs?: number): Promise<void> {
    // A restart always builds the primary again; when failed over, it is also a manual failback.
    const primary = this.#primaries.get(poolId) ?? old;
    const next = this.#newPool(poolId, cfg, primary, 'primary');
    this.#primaries.set(poolId, next);
    this.#route(poolId, next);
    const backup = this.#backups.get(poolId);
    this.#backups.delete(poolId);
    if (this.#controllers.has(poolId)) {
      this.#controllers.get(poolId)!.stop();
      this.#controllers.set(poolId, this.#newController(poolId));
    }
    this.#setReplicas(poolId, cfg);
    next.publish('restarted', { max: cfg.max, min: cfg.min });
    const retired = new Set([old, primary, backup].filter((p): p is ManagedPool => p !== undefined && p !== next && p.poolId === poolId));
    await Promise.all([...retired].map((p) => p.close(drainTimeoutMs)));
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
    return healthCheck([...this.#pools.values()], this.#health);
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
    const pools = poolIds.map((id) => this.#get(id));
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

  /** Connectivity, probe latency, utilization and error rate of one pool against thresholds. */
  deepHealthCheck(poolId: string): Promise<DeepHealthReport> {
    return deepHealthCheck(this.#get(poolId), this.#health);
  }

  /** What is wrong with a pool's performance, how bad, and what to do; with its slowest queries. */
  async diagnosePerformanceIssues(poolId: string): Promise<PerformanceDiagnosis> {
    return diagnosePerformance(this.#get(poolId));
  }

  /** Loans held suspiciously long, with the stacks that took them. */
  async diagnoseConnectionLeak(poolId: string): Promise<LeakDiagnosis> {
    return diagnoseLeaks(this.#get(poolId));
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

  async #autoTuneAll(): Promise<void> {
    for (const poolId of this.listPools()) {
      try {
        const size = await this.optimizePoolSize(poolId);
        if (size.after !== size.before) this.#logger?.warn(`[db-pool-otel] auto-tune: pool "${poolId}" max ${size.before} → ${size.after}: ${size.reason}`);
        await this.optimizeTimeouts(poolId);
      } catch {
        // A pool that cannot be measured now is tuned next time; health checks report why.
      }
    }
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
      await Promise.all([...this.#pools.keys()].map((id) => this.#closeId(id, options.drainTimeoutMs, 'closed')));
      await alertsStopped;
    })();
    return this.#closing;
  }

  /** What `JSON.stringify` and `console.log` show: ids and redacted configs, never secrets. */
  toJSON(): { pools: Record<string, ResolvedPoolConfig> } {
    const pools: Record<string, ResolvedPoolConfig> = {};
    for (const [id, p] of this.#pools) pools[id] = p.redactedConfig();
    return { pools };
  }

  #get(poolId: string): ManagedPool {
    const pool = this.#pools.get(poolId);
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

/** An event payload carrying the raw client as a non-enumerable `client` (logs and JSON skip it). */
function withClient<T extends object>(payload: T, client: pg.Client): T & { client: pg.Client } {
  return Object.defineProperty(payload, 'client', { value: client, enumerable: false }) as T & { client: pg.Client };
}

/** The limits of a call from its options (validated), or undefined when it has none. */
function callLimits(options: CallOptions): CallLimits | undefined {
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

function beginStatement(options: TransactionOptions): string {
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
