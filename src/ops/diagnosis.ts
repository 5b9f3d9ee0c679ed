/**
 * The ops guide's diagnosis reports, drawn from a pool's own numbers: what is wrong, how bad, and
 * what to do about it.
 */
import type { ConnectionInfo, ManagedPool } from '../pool/managed-pool.js';
import type { SlowQuery } from '../stats/slow-query-log.js';
import { AUTO_TUNE_DEFAULTS } from './tuning.js';

export type Severity = 'low' | 'medium' | 'high' | 'critical';

export interface PerformanceIssue {
  type:
    | 'high_utilization'
    | 'callers_waiting'
    | 'acquire_timeouts'
    | 'high_latency'
    | 'high_error_rate'
    | 'slow_queries'
    | 'connection_leaks'
    | 'connect_failures'
    | 'server_budget'
    | 'server_near_limit';
  severity: Severity;
  description: string;
  recommendations: string[];
}

export interface PerformanceDiagnosis {
  poolId: string;
  issues: PerformanceIssue[];
  slowQueries: SlowQuery[];
  /** good: no issue; warning: low/medium ones; critical: any high or critical. */
  overallHealth: 'good' | 'warning' | 'critical';
  timestamp: string;
}

export interface LeakDiagnosis {
  poolId: string;
  totalConnections: number;
  /** Loans held longer than the threshold, longest first, with the stack that took them when captured. */
  suspiciousConnections: ConnectionInfo[];
  thresholdMs: number;
  recommendations: string[];
  timestamp: string;
}

const pct = (v: number) => `${(v * 100).toFixed(1)} %`;
const ms = (v: number) => `${v.toFixed(1)} ms`;

export function diagnosePerformance(pool: ManagedPool): PerformanceDiagnosis {
  const m = pool.getDetailedMetrics();
  const cfg = pool.config;
  const issues: PerformanceIssue[] = [];
  if (m.connectionUtilization >= 0.8) {
    issues.push({
      type: 'high_utilization',
      severity: m.connectionUtilization >= 0.95 ? 'high' : 'medium',
      description: `${m.activeConnections} of ${m.maxConnections} connections in use (${pct(m.connectionUtilization)})`,
      recommendations: [
        `Raise max (now ${cfg.max}) if the database has room: db.updatePoolConfig('${pool.poolId}', { max: ${Math.min(AUTO_TUNE_DEFAULTS.maxConnections, Math.ceil(cfg.max * AUTO_TUNE_DEFAULTS.scaleUpFactor))} })`,
        'Look for slow statements holding connections (getSlowQueries, topStatements)',
      ],
    });
  }
  if (m.waitingQueueLength > 0 || m.acquireLatencyP99 > 100) {
    issues.push({
      type: 'callers_waiting',
      severity: m.acquireLatencyP99 > cfg.acquireTimeoutMs / 2 ? 'high' : 'medium',
      description: `${m.waitingQueueLength} callers waiting; acquire P99 ${ms(m.acquireLatencyP99)}`,
      recommendations: [
        'Shorten transactions and loans; release connections before slow non-database work',
        'Raise max or add a read replica for read traffic',
      ],
    });
  }
  if (m.acquireTimeouts > 0) {
    issues.push({
      type: 'acquire_timeouts',
      severity: 'critical',
      description: `${m.acquireTimeouts} callers timed out waiting for a connection in the last ${m.windowSeconds} s (acquireTimeoutMs ${cfg.acquireTimeoutMs})`,
      recommendations: ['The pool is exhausted: raise max, or find what holds connections (getConnectionDetails, leak detection)'],
    });
  }
  if (m.latencyP99 > 1_000) {
    issues.push({
      type: 'high_latency',
      severity: m.latencyP99 > 5_000 ? 'high' : 'medium',
      description: `query P99 ${ms(m.latencyP99)} (P50 ${ms(m.latencyP50)})`,
      recommendations: [
        'Check the slowest statements below with EXPLAIN ANALYZE',
        'Add indexes for their WHERE clauses; check for lock waits in pg_stat_activity',
      ],
    });
  }
  if (m.errorRate > 0.05) {
    const codes = Object.entries(pool.getQueryMetrics().errorsByCode)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 3)
      .map(([c, n]) => `${c} ×${n}`)
      .join(', ');
    issues.push({
      type: 'high_error_rate',
      severity: m.errorRate > 0.2 ? 'critical' : 'high',
      description: `${pct(m.errorRate)} of queries failed in the last ${m.windowSeconds} s (most common: ${codes || 'n/a'})`,
      recommendations: ['Look up the SQLSTATEs above; 40001/40P01 call for retries, 57014 for a longer queryTimeoutMs or faster queries'],
    });
  }
  if (m.slowQueriesCount > 0) {
    issues.push({
      type: 'slow_queries',
      severity: m.slowQueriesCount > 10 ? 'medium' : 'low',
      description: `${m.slowQueriesCount} queries over ${cfg.slowQueryThresholdMs} ms in the last ${m.windowSeconds} s`,
      recommendations: ['See slowQueries below; group them by fingerprint and optimise the heaviest statement first'],
    });
  }
  if (m.leakedConnections > 0) {
    issues.push({
      type: 'connection_leaks',
      severity: 'high',
      description: `${m.leakedConnections} connections held longer than ${cfg.leakDetectionThresholdMs} ms`,
      recommendations: [
        'Run diagnoseConnectionLeak for the stacks that took them; release in finally blocks',
        'Set leakReclaimMs to take leaked connections back automatically',
      ],
    });
  }
  if (m.lastConnectError) {
    issues.push({
      type: 'connect_failures',
      severity: m.totalConnections === 0 ? 'critical' : 'high',
      description: `new connections are failing: ${m.lastConnectError}`,
      recommendations: ['Check the server is up and reachable, credentials, and max_connections on the server'],
    });
  }
  issues.push(...budgetIssues(pool));
  const worst = issues.some((i) => i.severity === 'high' || i.severity === 'critical');
  return {
    poolId: pool.poolId,
    issues,
    slowQueries: pool.getSlowQueries(10),
    overallHealth: issues.length === 0 ? 'good' : worst ? 'critical' : 'warning',
    timestamp: new Date().toISOString(),
  };
}

/** The server's connection budget: this process's pools claim more than its usable slots; the server is nearly full. */
function budgetIssues(pool: ManagedPool): PerformanceIssue[] {
  const b = pool.serverBudget();
  if (b === null || b.via !== 'server') return [];
  const out: PerformanceIssue[] = [];
  const server = `${b.serverAddress}:${b.serverPort}`;
  if (b.overBudget) {
    out.push({
      type: 'server_budget',
      severity: 'high',
      description:
        `the pools of this process (${b.instance.poolIds.join(', ')}) may open ${b.instance.max} connections to ${server}, ` +
        `which has ${b.usableConnections} usable slots (max_connections ${b.maxConnections}, ${b.maxConnections - b.usableConnections} reserved); ` +
        'every other instance of the app needs slots too',
      recommendations: [
        `Lower max so that the sum over every instance stays below ${b.usableConnections}: db.updatePoolConfig('${pool.poolId}', { max: N })`,
        'Or put a pooler (PgBouncer, transaction mode) in front of the server, or raise max_connections (a restart)',
        "Bound auto-tuning with autoTune.serverShare (this instance's share of the server) or autoTune.serverBudget",
      ],
    });
  }
  if (b.backends !== null && b.usableConnections > 0 && b.backends >= 0.9 * b.usableConnections) {
    const full = b.backends >= b.usableConnections;
    out.push({
      type: 'server_near_limit',
      severity: full ? 'critical' : 'medium',
      description: `${server} has ${b.backends} client backends of ${b.usableConnections} usable slots (at ${b.backendsMeasuredAt}): new connections ${full ? 'fail' : 'will soon fail'} with 53300`,
      recommendations: [
        'Find who holds the connections: SELECT application_name, count(*) FROM pg_stat_activity GROUP BY 1 ORDER BY 2 DESC',
        'Lower max of the pools that hold idle connections, or shorten idleTimeoutMs so idle ones are closed',
      ],
    });
  }
  return out;
}

/** Loans held longer than the leak threshold (or 30 s when detection is off). */
export function diagnoseLeaks(pool: ManagedPool): LeakDiagnosis {
  const thresholdMs = pool.config.leakDetectionThresholdMs > 0 ? pool.config.leakDetectionThresholdMs : 30_000;
  const details = pool.getConnectionDetails();
  const suspicious = details.filter((c) => c.state === 'active' && c.activeDurationMs >= thresholdMs).sort((a, b) => b.activeDurationMs - a.activeDurationMs);
  const recommendations: string[] = [];
  if (suspicious.length > 0) {
    recommendations.push('Release every connection in a finally block, or use withConnection / transaction, which always release');
    if (suspicious.some((c) => !c.stackTrace)) {
      recommendations.push(`Set leakDetectionThresholdMs (e.g. ${thresholdMs}) to capture the stack of the code that takes each connection`);
    }
    recommendations.push('Set leakReclaimMs to take leaked connections back automatically');
  }
  return {
    poolId: pool.poolId,
    totalConnections: details.length,
    suspiciousConnections: suspicious,
    thresholdMs,
    recommendations,
    timestamp: new Date().toISOString(),
  };
}
