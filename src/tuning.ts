/**
 * Auto-tuning: the ops guide's pool-size rule, Little's law as a second opinion, and timeouts
 * derived from measured probe latency. Decisions are pure functions of measurements; the pool
 * applies them through `updatePoolConfig`, so every change is validated like a user's.
 */
import type { ManagedPool } from './managed-pool.js';
import { probe } from './health.js';
import { round3 } from './object-utils.js';

/** Thresholds of the sizing rule and bounds of auto-tuning. */
export interface AutoTuneOptions {
  /** Run optimizePoolSize and optimizeTimeouts for every pool this often; unset: never (opt-in). */
  intervalMs?: number;
  /** Grow when utilization is above this and QPS above scaleUpQps. Default 0.8 / 1000. */
  scaleUpUtilization?: number;
  scaleUpQps?: number;
  /** Shrink when utilization is below this and QPS below scaleDownQps. Default 0.3 / 100. */
  scaleDownUtilization?: number;
  scaleDownQps?: number;
  /** Growth and shrink factors. Default 1.5 and 0.8. */
  scaleUpFactor?: number;
  scaleDownFactor?: number;
  /** Bounds for max: never above maxConnections (default 200) or below minConnections (default 10). */
  maxConnections?: number;
  minConnections?: number;
  /** Little's law headroom over the mean number in use. Default 1.2. */
  headroom?: number;
  /** Bounds for the derived timeouts (ms). */
  minQueryTimeoutMs?: number;
  maxQueryTimeoutMs?: number;
}

export const AUTO_TUNE_DEFAULTS: Required<Omit<AutoTuneOptions, 'intervalMs'>> = {
  scaleUpUtilization: 0.8,
  scaleUpQps: 1_000,
  scaleDownUtilization: 0.3,
  scaleDownQps: 100,
  scaleUpFactor: 1.5,
  scaleDownFactor: 0.8,
  maxConnections: 200,
  minConnections: 10,
  headroom: 1.2,
  minQueryTimeoutMs: 1_000,
  maxQueryTimeoutMs: 300_000,
};

export type ResolvedAutoTune = Required<Omit<AutoTuneOptions, 'intervalMs'>> & { intervalMs?: number };

export interface PoolSizeDecision {
  poolId: string;
  before: number;
  after: number;
  reason: string;
  /** What the rule looked at. */
  utilization: number;
  queriesPerSecond: number;
  /** Little's law: acquires/s × mean hold time = connections in use on average; × headroom. */
  littlesLaw: { acquiresPerSecond: number; meanHoldMs: number; meanInUse: number; suggestedMax: number };
}

export interface TimeoutDecision {
  poolId: string;
  queryTimeoutMs: number;
  acquireTimeoutMs: number;
  measuredP95Ms: number;
  probes: number;
}

/**
 * The sizing rule: utilization (the larger of now and the window's average) above 0.8 with QPS
 * above 1000 grows max ×1.5 (up to 200); below 0.3 with QPS under 100 shrinks it ×0.8 (down to 10).
 */
export function decidePoolSize(pool: ManagedPool, o: ResolvedAutoTune): PoolSizeDecision {
  const m = pool.getMetrics();
  const load = pool.loadProfile();
  const before = pool.config.max;
  const utilization = Math.max(m.connectionUtilization, load.averageUtilization);
  const qps = m.queriesPerSecond;
  const suggestedMax = Math.max(1, Math.ceil(load.meanInUse * o.headroom));
  const littlesLaw = { acquiresPerSecond: round3(load.acquiresPerSecond), meanHoldMs: round3(load.meanHoldMs), meanInUse: round3(load.meanInUse), suggestedMax };
  let after = before;
  let reason: string;
  if (utilization > o.scaleUpUtilization && qps > o.scaleUpQps) {
    after = Math.min(o.maxConnections, Math.max(before + 1, Math.ceil(before * o.scaleUpFactor)));
    reason = `utilization ${pct(utilization)} > ${pct(o.scaleUpUtilization)} with ${qps.toFixed(0)} QPS > ${o.scaleUpQps}: max ×${o.scaleUpFactor}`;
    if (after === before) reason += ` (already at the ceiling of ${o.maxConnections})`;
  } else if (utilization < o.scaleDownUtilization && qps < o.scaleDownQps) {
    after = Math.max(Math.min(before, o.minConnections), Math.floor(before * o.scaleDownFactor));
    reason = `utilization ${pct(utilization)} < ${pct(o.scaleDownUtilization)} with ${qps.toFixed(0)} QPS < ${o.scaleDownQps}: max ×${o.scaleDownFactor}`;
    if (after === before) reason += ` (already at the floor of ${o.minConnections})`;
  } else {
    reason = `utilization ${pct(utilization)} and ${qps.toFixed(0)} QPS are within the thresholds: no change`;
  }
  return { poolId: pool.poolId, before, after, reason, utilization: round3(utilization), queriesPerSecond: round3(qps), littlesLaw };
}

/** Measures probe latency (10 `SELECT 1`) and derives query timeout = max(3 × P95, 1 s), acquire = half. */
export async function decideTimeouts(pool: ManagedPool, o: ResolvedAutoTune, probes = 10): Promise<TimeoutDecision> {
  const latencies: number[] = [];
  for (let i = 0; i < probes; i++) {
    const r = await probe(pool, Math.max(pool.config.acquireTimeoutMs, 1_000));
    if (!r.ok) throw new Error(`cannot measure pool "${pool.poolId}": ${r.error}`);
    latencies.push(r.latencyMs);
  }
  latencies.sort((a, b) => a - b);
  const p95 = latencies[Math.max(1, Math.ceil(0.95 * latencies.length)) - 1]!;
  const queryTimeoutMs = Math.min(o.maxQueryTimeoutMs, Math.max(o.minQueryTimeoutMs, Math.ceil(3 * p95)));
  return { poolId: pool.poolId, queryTimeoutMs, acquireTimeoutMs: Math.ceil(queryTimeoutMs / 2), measuredP95Ms: round3(p95), probes };
}

function pct(v: number): string {
  return `${(v * 100).toFixed(0)} %`;
}
