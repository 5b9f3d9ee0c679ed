/**
 * The report objects of one pool (`getMetrics`, `getDetailedMetrics`, `getQueryMetrics`, the load
 * profile, connection details), built from what the pool hands over at one instant.
 */
import type { PoolStats } from '../stats/pool-stats.js';
import { DetailedMetrics, type PoolMetrics, type PoolMetricsFields, QueryMetrics } from './metrics.js';
import type { ConnectionInfo, PoolStatus } from './pool-types.js';
import type { LentConnection } from './pooled-connection.js';
import type { ServerBudget } from './server-budget.js';

/** What a pool hands over for a metrics object, read at one instant. */
export interface ReportInputs {
  poolId: string;
  stats: PoolStats;
  status: PoolStatus;
  /** Loans held past the leak threshold now. */
  leaksSuspected: number;
  budget: ServerBudget | null;
  /** Connections opened and closed by the pool object in use (earlier ones are in the stats' totals). */
  connectionsCreated: number;
  connectionsClosed: number;
}

/** Load over the window from loan hold times (Little's law). */
export interface LoadProfile {
  acquiresPerSecond: number;
  meanHoldMs: number;
  /** Mean number of connections in use. */
  meanInUse: number;
  averageUtilization: number;
}

/** The per-pool numbers, as `Kind` (PoolMetrics or DetailedMetrics). */
export function poolMetrics<M extends PoolMetrics>(Kind: new (fields: PoolMetricsFields) => M, i: ReportInputs): M {
  return withWindows(Kind, i, performance.now()).m;
}

/** PoolMetrics plus the rest of the pool's state; one reading of the windows serves both parts. */
export function detailedMetrics(i: ReportInputs): DetailedMetrics {
  const { m, acquire, q } = withWindows(DetailedMetrics, i, performance.now());
  const s = i.status;
  m.minConnections = s.min;
  m.pendingCreates = s.pendingCreates;
  m.acquireLatencyP95 = acquire.p95;
  m.acquireLatencyMax = acquire.max;
  m.latencyMean = q.mean;
  m.latencyMax = q.max;
  m.queriesInWindow = q.count;
  m.errorsInWindow = q.errors;
  m.lastConnectError = s.lastConnectError ?? null;
  const t = i.stats.totals;
  m.totals = {
    acquires: t.acquires,
    acquireTimeouts: t.acquireTimeouts,
    queries: t.queries,
    errors: t.errors,
    slowQueries: i.stats.slowLog.total,
    leaksReported: t.leaksReported,
    leaksReclaimed: t.leaksReclaimed,
    connectionsCreated: i.connectionsCreated + t.connectionsCreated,
    connectionsClosed: i.connectionsClosed + t.connectionsClosed,
    connectAttempts: s.connectAttempts,
    connectFailures: s.connectFailures,
    circuitOpens: t.circuitOpens,
    failovers: t.failovers,
    failbacks: t.failbacks,
    recoveries: t.recoveries,
  };
  return m;
}

function withWindows<M extends PoolMetrics>(Kind: new (fields: PoolMetricsFields) => M, i: ReportInputs, now: number) {
  const { stats, status: s } = i;
  const acquire = stats.acquire.summary(now);
  const q = stats.queries.summary(now);
  const m = new Kind({
    poolId: i.poolId,
    windowSeconds: stats.windowMs / 1000,
    connectionUtilization: s.max > 0 ? s.active / s.max : 0,
    activeConnections: s.active,
    idleConnections: s.idle,
    totalConnections: s.total,
    maxConnections: s.max,
    waitingQueueLength: s.waiting,
    acquireLatencyP50: acquire.p50,
    acquireLatencyP99: acquire.p99,
    acquireTimeouts: stats.acquireTimeouts.total(now),
    queriesPerSecond: q.count / q.seconds,
    latencyP50: q.p50,
    latencyP95: q.p95,
    latencyP99: q.p99,
    errorRate: q.count > 0 ? q.errors / q.count : 0,
    slowQueriesCount: stats.slowQueries.total(now),
    leakedConnections: i.leaksSuspected,
    timestamp: new Date().toISOString(),
  });
  m.serverBudget = i.budget;
  return { m, acquire, q };
}

export function queryMetrics(poolId: string, stats: PoolStats, topLimit: number): QueryMetrics {
  const now = performance.now();
  const q = stats.queries.summary(now);
  return new QueryMetrics({
    poolId,
    windowSeconds: stats.windowMs / 1000,
    queriesPerSecond: q.count / q.seconds,
    latencyP50: q.p50,
    latencyP95: q.p95,
    latencyP99: q.p99,
    latencyMean: q.mean,
    latencyMax: q.max,
    errorRate: q.count > 0 ? q.errors / q.count : 0,
    slowQueriesCount: stats.slowQueries.total(now),
    errorsByCode: Object.fromEntries(stats.errorsByCode),
    topStatements: stats.statements.top(topLimit),
    statementsTracked: stats.statements.size,
    statementsEvicted: stats.statements.evicted,
    timestamp: new Date().toISOString(),
  });
}

export function loadProfile(stats: PoolStats, max: number): LoadProfile {
  const h = stats.holds.summary();
  const acquiresPerSecond = h.count / h.seconds;
  const meanInUse = (h.mean * h.count) / 1000 / h.seconds;
  return { acquiresPerSecond, meanHoldMs: h.mean, meanInUse, averageUtilization: max > 0 ? meanInUse / max : 0 };
}

export function connectionDetails(connections: Iterable<LentConnection>): ConnectionInfo[] {
  const now = Date.now();
  return [...connections]
    .sort((a, b) => a.id - b.id)
    .map((conn) => {
      const loan = conn.loan;
      const info: ConnectionInfo = {
        id: conn.id,
        state: conn.broken ? 'broken' : loan ? 'active' : 'idle',
        processId: conn.processId,
        createdAt: new Date(conn.createdAt).toISOString(),
        activeDurationMs: loan ? now - loan.acquiredAt : 0,
        useCount: conn.useCount,
        lastQuery: conn.lastQuery?.sanitized,
      };
      if (loan) {
        info.loanId = loan.id;
        if (loan.stack) info.stackTrace = loan.stack;
        if (loan.traceId) info.traceId = loan.traceId;
      }
      return info;
    });
}
