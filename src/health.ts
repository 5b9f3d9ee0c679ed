/**
 * Health checks: every pool probed at once with `SELECT 1` under a per-probe timeout, so one hung
 * server cannot hang the check; and a deep check of one pool against thresholds.
 */
import type { ManagedPool } from './managed-pool.js';
import type { PoolMetrics } from './metrics.js';
import { round3 } from './object-utils.js';

/** Thresholds of the health checks. */
export interface HealthOptions {
  /** Longest a probe may take before the pool counts as unhealthy. Default 2 000 ms. */
  probeTimeoutMs?: number;
  /** deepHealthCheck: probe latency under this is "performant". Default 100 ms. */
  latencyThresholdMs?: number;
  /** deepHealthCheck: utilization under this is fine. Default 0.9. */
  utilizationThreshold?: number;
  /** deepHealthCheck: error rate under this is fine. Default 0.01. */
  errorRateThreshold?: number;
}

export const HEALTH_DEFAULTS: Required<HealthOptions> = {
  probeTimeoutMs: 2_000,
  latencyThresholdMs: 100,
  utilizationThreshold: 0.9,
  errorRateThreshold: 0.01,
};

export interface HealthReport {
  /** healthy: every pool answered; degraded: some did not; unhealthy: none did (or no pool could be probed). */
  status: 'healthy' | 'degraded' | 'unhealthy';
  healthyPools: string[];
  unhealthyPools: { poolId: string; error: string }[];
  /** ISO 8601. */
  timestamp: string;
}

export interface HealthCheckItem {
  healthy: boolean;
  value: number;
  threshold: number;
  message: string;
}

export interface DeepHealthReport {
  poolId: string;
  overallHealthy: boolean;
  checks: {
    connectivity: HealthCheckItem;
    performance: HealthCheckItem;
    resourceUsage: HealthCheckItem;
    errorRate: HealthCheckItem;
  };
  metrics: ReturnType<PoolMetrics['toJSON']>;
  timestamp: string;
}

export type ProbeResult = { ok: true; latencyMs: number } | { ok: false; latencyMs: number; error: string };

/** One `SELECT 1` through the pool, abandoned (not awaited) after `timeoutMs`. */
export async function probe(pool: ManagedPool, timeoutMs: number): Promise<ProbeResult> {
  const started = performance.now();
  const work = (async () => {
    // A probe wants to know whether the server answers now, so a failed connect fails it at once.
    const conn = await pool.acquire({ failFast: true });
    try {
      await conn.query('SELECT 1');
    } finally {
      conn.release();
    }
  })();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`health probe timed out after ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([work, timeout]);
    return { ok: true, latencyMs: performance.now() - started };
  } catch (err) {
    work.catch(() => {}); // finishes (and releases) on its own
    return { ok: false, latencyMs: performance.now() - started, error: err instanceof Error ? err.message : String(err) };
  } finally {
    clearTimeout(timer);
  }
}

export async function healthCheck(pools: ManagedPool[], options: Required<HealthOptions>): Promise<HealthReport> {
  const results = await Promise.all(pools.map(async (p) => [p.poolId, await probe(p, options.probeTimeoutMs)] as const));
  const healthyPools = results.filter(([, r]) => r.ok).map(([id]) => id);
  const unhealthyPools = results.flatMap(([poolId, r]) => (r.ok ? [] : [{ poolId, error: r.error }]));
  const status = unhealthyPools.length === 0 ? 'healthy' : healthyPools.length > 0 ? 'degraded' : 'unhealthy';
  return { status, healthyPools, unhealthyPools, timestamp: new Date().toISOString() };
}

export async function deepHealthCheck(pool: ManagedPool, options: Required<HealthOptions>): Promise<DeepHealthReport> {
  const p = await probe(pool, options.probeTimeoutMs);
  const m = pool.getMetrics();
  const connectivity: HealthCheckItem = {
    healthy: p.ok,
    value: p.ok ? 1 : 0,
    threshold: 1,
    message: p.ok ? 'SELECT 1 answered' : `SELECT 1 failed: ${p.error}`,
  };
  const performance: HealthCheckItem = {
    healthy: p.ok && p.latencyMs < options.latencyThresholdMs,
    value: round3(p.latencyMs),
    threshold: options.latencyThresholdMs,
    message: `probe took ${round3(p.latencyMs)} ms (limit ${options.latencyThresholdMs} ms)`,
  };
  const resourceUsage: HealthCheckItem = {
    healthy: m.connectionUtilization < options.utilizationThreshold,
    value: round3(m.connectionUtilization),
    threshold: options.utilizationThreshold,
    message: `${m.activeConnections} of ${m.maxConnections} connections in use, ${m.waitingQueueLength} callers waiting`,
  };
  const errorRate: HealthCheckItem = {
    healthy: m.errorRate < options.errorRateThreshold,
    value: round3(m.errorRate),
    threshold: options.errorRateThreshold,
    message: `${(m.errorRate * 100).toFixed(2)} % of queries failed in the last ${m.windowSeconds} s`,
  };
  const checks = { connectivity, performance, resourceUsage, errorRate };
  return {
    poolId: pool.poolId,
    overallHealthy: Object.values(checks).every((c) => c.healthy),
    checks,
    metrics: m.toJSON(),
    timestamp: new Date().toISOString(),
  };
}
