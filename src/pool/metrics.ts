/**
 * What `getMetrics`, `getDetailedMetrics` and `getQueryMetrics` return: plain numbers computed in
 * the core (no OpenTelemetry needed), latencies in milliseconds, rates over a rolling window.
 * `toJSON()` gives the documented shape with a stable key order (`export-metrics` writes it).
 */
import type { ServerBudget } from './server-budget.js';
import type { StatementStats } from '../stats/statement-stats.js';

/** The fields of {@link PoolMetrics}, named (a swapped pair of numbers does not type-check as one). */
export interface PoolMetricsFields {
  poolId: string;
  /** Length of the rolling window the rates and percentiles cover. */
  windowSeconds: number;
  /** active / max, 0..1. */
  connectionUtilization: number;
  activeConnections: number;
  idleConnections: number;
  totalConnections: number;
  maxConnections: number;
  waitingQueueLength: number;
  acquireLatencyP50: number;
  acquireLatencyP99: number;
  /** Acquire timeouts within the window. */
  acquireTimeouts: number;
  queriesPerSecond: number;
  latencyP50: number;
  latencyP95: number;
  latencyP99: number;
  /** Failed / all queries within the window, 0..1. */
  errorRate: number;
  /** Slow queries within the window. */
  slowQueriesCount: number;
  /** Loans currently held past `leakDetectionThresholdMs`. */
  leakedConnections: number;
  /** When it was taken, ISO 8601. */
  timestamp: string;
}

/** The ops guide's per-pool numbers. */
export class PoolMetrics implements PoolMetricsFields {
  // Documented on PoolMetricsFields.
  readonly poolId: string;
  readonly windowSeconds: number;
  readonly connectionUtilization: number;
  readonly activeConnections: number;
  readonly idleConnections: number;
  readonly totalConnections: number;
  readonly maxConnections: number;
  readonly waitingQueueLength: number;
  readonly acquireLatencyP50: number;
  readonly acquireLatencyP99: number;
  readonly acquireTimeouts: number;
  readonly queriesPerSecond: number;
  readonly latencyP50: number;
  readonly latencyP95: number;
  readonly latencyP99: number;
  readonly errorRate: number;
  readonly slowQueriesCount: number;
  readonly leakedConnections: number;
  readonly timestamp: string;

  constructor(fields: PoolMetricsFields) {
    this.poolId = fields.poolId;
    this.windowSeconds = fields.windowSeconds;
    this.connectionUtilization = fields.connectionUtilization;
    this.activeConnections = fields.activeConnections;
    this.idleConnections = fields.idleConnections;
    this.totalConnections = fields.totalConnections;
    this.maxConnections = fields.maxConnections;
    this.waitingQueueLength = fields.waitingQueueLength;
    this.acquireLatencyP50 = fields.acquireLatencyP50;
    this.acquireLatencyP99 = fields.acquireLatencyP99;
    this.acquireTimeouts = fields.acquireTimeouts;
    this.queriesPerSecond = fields.queriesPerSecond;
    this.latencyP50 = fields.latencyP50;
    this.latencyP95 = fields.latencyP95;
    this.latencyP99 = fields.latencyP99;
    this.errorRate = fields.errorRate;
    this.slowQueriesCount = fields.slowQueriesCount;
    this.leakedConnections = fields.leakedConnections;
    this.timestamp = fields.timestamp;
  }

  /**
   * The server's connection budget as the pool last read it (max_connections, reserved slots,
   * backends now) with what this process's pools claim of it; null until the first connection.
   */
  serverBudget: ServerBudget | null = null;

  toJSON(): Record<string, unknown> {
    return {
      poolId: this.poolId,
      timestamp: this.timestamp,
      windowSeconds: this.windowSeconds,
      connectionUtilization: this.connectionUtilization,
      activeConnections: this.activeConnections,
      idleConnections: this.idleConnections,
      totalConnections: this.totalConnections,
      maxConnections: this.maxConnections,
      waitingQueueLength: this.waitingQueueLength,
      acquireLatencyP50: this.acquireLatencyP50,
      acquireLatencyP99: this.acquireLatencyP99,
      acquireTimeouts: this.acquireTimeouts,
      queriesPerSecond: this.queriesPerSecond,
      latencyP50: this.latencyP50,
      latencyP95: this.latencyP95,
      latencyP99: this.latencyP99,
      errorRate: this.errorRate,
      slowQueriesCount: this.slowQueriesCount,
      leakedConnections: this.leakedConnections,
      serverBudget: this.serverBudget === null ? null : { ...this.serverBudget, instance: { ...this.serverBudget.instance } },
    };
  }
}

/** Lifetime counters of a pool (since it was created; kept across restarts). */
export interface PoolTotals {
  acquires: number;
  acquireTimeouts: number;
  queries: number;
  errors: number;
  slowQueries: number;
  leaksReported: number;
  leaksReclaimed: number;
  connectionsCreated: number;
  connectionsClosed: number;
  connectAttempts: number;
  connectFailures: number;
  /** Recovery: circuit openings, failovers to the backup, failbacks, recoveries by recreating. */
  circuitOpens: number;
  failovers: number;
  failbacks: number;
  recoveries: number;
}

/** {@link PoolMetrics} plus the rest of the pool's state. */
export class DetailedMetrics extends PoolMetrics {
  minConnections = 0;
  pendingCreates = 0;
  acquireLatencyP95 = 0;
  acquireLatencyMax = 0;
  latencyMean = 0;
  latencyMax = 0;
  queriesInWindow = 0;
  errorsInWindow = 0;
  lastConnectError: string | null = null;
  totals!: PoolTotals;

  override toJSON(): Record<string, unknown> {
    return {
      ...super.toJSON(),
      minConnections: this.minConnections,
      pendingCreates: this.pendingCreates,
      acquireLatencyP95: this.acquireLatencyP95,
      acquireLatencyMax: this.acquireLatencyMax,
      latencyMean: this.latencyMean,
      latencyMax: this.latencyMax,
      queriesInWindow: this.queriesInWindow,
      errorsInWindow: this.errorsInWindow,
      lastConnectError: this.lastConnectError,
      totals: { ...this.totals },
    };
  }
}

/** The fields of {@link QueryMetrics}, named (a swapped pair of numbers does not type-check as one). */
export interface QueryMetricsFields {
  poolId: string;
  windowSeconds: number;
  queriesPerSecond: number;
  latencyP50: number;
  latencyP95: number;
  latencyP99: number;
  latencyMean: number;
  latencyMax: number;
  errorRate: number;
  slowQueriesCount: number;
  /** Failures by SQLSTATE or error code since the pool started (bounded: 64 codes, then 'other'). */
  errorsByCode: Record<string, number>;
  /** Per statement fingerprint since the pool started: calls, errors, total / mean / P99 / max ms. */
  topStatements: StatementStats[];
  statementsTracked: number;
  statementsEvicted: number;
  timestamp: string;
}

/** Query-side numbers: window rates, error codes and the top statements by total time. */
export class QueryMetrics implements QueryMetricsFields {
  // Documented on QueryMetricsFields.
  readonly poolId: string;
  readonly windowSeconds: number;
  readonly queriesPerSecond: number;
  readonly latencyP50: number;
  readonly latencyP95: number;
  readonly latencyP99: number;
  readonly latencyMean: number;
  readonly latencyMax: number;
  readonly errorRate: number;
  readonly slowQueriesCount: number;
  readonly errorsByCode: Record<string, number>;
  readonly topStatements: StatementStats[];
  readonly statementsTracked: number;
  readonly statementsEvicted: number;
  readonly timestamp: string;

  constructor(fields: QueryMetricsFields) {
    this.poolId = fields.poolId;
    this.windowSeconds = fields.windowSeconds;
    this.queriesPerSecond = fields.queriesPerSecond;
    this.latencyP50 = fields.latencyP50;
    this.latencyP95 = fields.latencyP95;
    this.latencyP99 = fields.latencyP99;
    this.latencyMean = fields.latencyMean;
    this.latencyMax = fields.latencyMax;
    this.errorRate = fields.errorRate;
    this.slowQueriesCount = fields.slowQueriesCount;
    this.errorsByCode = fields.errorsByCode;
    this.topStatements = fields.topStatements;
    this.statementsTracked = fields.statementsTracked;
    this.statementsEvicted = fields.statementsEvicted;
    this.timestamp = fields.timestamp;
  }

  toJSON(): Record<string, unknown> {
    return {
      poolId: this.poolId,
      timestamp: this.timestamp,
      windowSeconds: this.windowSeconds,
      queriesPerSecond: this.queriesPerSecond,
      latencyP50: this.latencyP50,
      latencyP95: this.latencyP95,
      latencyP99: this.latencyP99,
      latencyMean: this.latencyMean,
      latencyMax: this.latencyMax,
      errorRate: this.errorRate,
      slowQueriesCount: this.slowQueriesCount,
      errorsByCode: { ...this.errorsByCode },
      topStatements: this.topStatements.map((s) => ({ ...s })),
      statementsTracked: this.statementsTracked,
      statementsEvicted: this.statementsEvicted,
    };
  }
}
