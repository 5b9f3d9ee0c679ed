/**
 * Health checks: every pool probed at once with `SELECT 1` under a per-probe timeout, so one hung
 * server cannot hang the check; and a deep check of one pool against thresholds.
 */
import type { ManagedPool } from '../pool/managed-pool.js';
import type { PoolMetrics } from '../pool/metrics.js';
import { round3 } from '../util/object-utils.js';
import type { ServerBudget } from '../pool/server-budget.js';

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
  /**
   * Servers whose usable slots this process's pools could exceed on their own (the sum of their
   * `max` is larger): every pool answers now, but under load connects will fail with 53300. Does
   * not change `status`.
   */
  warnings: ServerBudgetWarning[];
  /** ISO 8601. */
  timestamp: string;
}

/** This process's pools may open more connections to a server than it has usable slots. */
export interface ServerBudgetWarning {
  type: 'server_budget';
  /** host:port as the pools connect to it. */
  server: string;
  usableConnections: number;
  maxConnections: number;
  /** The sum of `max` of this process's pools to the server, and their ids. */
  instanceMax: number;
  poolIds: string[];
  message: string;
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
    /** The sum of `max` of this process's pools to the pool's server against its usable slots. */
    serverBudget: HealthCheckItem;
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
  const budgets = await freshBudgets(pools, options.probeTimeoutMs);
  return { status, healthyPools, unhealthyPools, warnings: budgetWarnings(budgets), timestamp: new Date().toISOString() };
}

/** The pools' server budgets, read again where due (the probes just left idle connections), within `timeoutMs`. */
async function freshBudgets(pools: ManagedPool[], timeoutMs: number): Promise<ServerBudget[]> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(pools.map((p) => p.refreshServerBudget())),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  return pools.flatMap((p) => p.serverBudget() ?? []);
}

/** One warning per server this process's pools claim more of than it has usable slots. */
export function budgetWarnings(budgets: Iterable<ServerBudget>): ServerBudgetWarning[] {
  const out = new Map<string, ServerBudgetWarning>();
  for (const b of budgets) {
    const server = `${b.serverAddress}:${b.serverPort}`;
    if (!b.overBudget || out.has(server)) continue;
    out.set(server, {
      type: 'server_budget',
      server,
      usableConnections: b.usableConnections,
      maxConnections: b.maxConnections,
      instanceMax: b.instance.max,
      poolIds: [...b.instance.poolIds],
      message: budgetMessage(b),
    });
  }
  return [...out.values()];
}

function budgetMessage(b: ServerBudget): string {
  return (
    `the pools of this process (${b.instance.poolIds.join(', ')}) may open ${b.instance.max} connections to ${b.serverAddress}:${b.serverPort}, ` +
    `which has ${b.usableConnections} usable slots (max_connections ${b.maxConnections} minus ${b.maxConnections - b.usableConnections} reserved): ` +
    'under load their connects will fail with 53300 (too many connections)'
  );
}

function budgetCheck(b: ServerBudget | null, lastError: string | undefined): HealthCheckItem {
  if (b === null) {
    return {
      healthy: true,
      value: 0,
      threshold: 0,
      message: `the server's connection budget is not known yet${lastError ? ` (${lastError})` : ' (read on the first connection)'}`,
    };
  }
  if (b.via === 'pooler') {
    return {
      healthy: true,
      value: b.instance.max,
      threshold: b.usableConnections,
      message: `through a transaction pooler: the server behind it has ${b.usableConnections} usable slots and ${b.backends ?? '?'} backends; this pool's connections go to the pooler, not the server`,
    };
  }
  return {
    healthy: !b.overBudget,
    value: b.instance.max,
    threshold: b.usableConnections,
    message: b.overBudget
      ? budgetMessage(b)
      : `this process's pools may open ${b.instance.max} of the server's ${b.usableConnections} usable slots (${b.backends ?? '?'} backends now)`,
  };
}

export async function deepHealthCheck(pool: ManagedPool, options: Required<HealthOptions>): Promise<DeepHealthReport> {
  const p = await probe(pool, options.probeTimeoutMs);
  await freshBudgets([pool], options.probeTimeoutMs);
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
  const serverBudget = budgetCheck(m.serverBudget, pool.budgetTracker.lastError);
  const checks = { connectivity, performance, resourceUsage, errorRate, serverBudget };
  return {
    poolId: pool.poolId,
    overallHealthy: Object.values(checks).every((c) => c.healthy),
    checks,
    metrics: m.toJSON(),
    timestamp: new Date().toISOString(),
  };
}
