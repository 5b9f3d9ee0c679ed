/**
 * Auto-tuning: the ops guide's pool-size rule, Little's law as a second opinion, and timeouts
 * derived from measured probe latency. Decisions are pure functions of measurements; the pool
 * applies them through `updatePoolConfig`, so every change is validated like a user's.
 */
import type { ManagedPool } from '../pool/managed-pool.js';
import { probe } from './health.js';
import { InvalidConfigError } from '../errors.js';
import { round3 } from '../util/object-utils.js';
import { instanceClaims, TOO_MANY_CONNECTIONS_BACKOFF_MS } from '../pool/server-budget.js';

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
  /**
   * This process's share of each server's usable slots (max_connections minus the reserved ones),
   * 0 < share <= 1: auto-tuning never grows a pool so far that the `max` of this process's pools to
   * that server add up to more. With N instances of the app, 1 / N (less with other clients). Default 1.
   */
  serverShare?: number;
  /**
   * Connections this process's pools may hold on one server, as an explicit number instead of a
   * share (also when the server's budget cannot be read, e.g. through a pooler). 0: none (use serverShare). Default 0.
   */
  serverBudget?: number;
  /** After a connect refused with 53300 (too many connections), no growth for this long (ms). Default 300 000. */
  tooManyConnectionsBackoffMs?: number;
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
  serverShare: 1,
  serverBudget: 0,
  tooManyConnectionsBackoffMs: TOO_MANY_CONNECTIONS_BACKOFF_MS,
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
  /**
   * The server's budget as it bounded growth: the most this pool's max may become (the budget
   * minus what this process's other pools to the server may open), from which limit; absent when
   * nothing bounds it (the budget not read yet and no serverBudget).
   */
  budget?: { ceiling: number; limit: number; from: 'serverShare' | 'serverBudget'; otherPoolsMax: number; usableConnections: number | null };
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
  const littlesLaw = {
    acquiresPerSecond: round3(load.acquiresPerSecond),
    meanHoldMs: round3(load.meanHoldMs),
    meanInUse: round3(load.meanInUse),
    suggestedMax,
  };
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
  const budget = growthCeiling(pool, o);
  if (after > before) {
    if (budget && after > budget.ceiling) {
      after = Math.max(before, budget.ceiling);
      reason +=
        after === before
          ? `; not grown: this process's pools may already open ${budget.otherPoolsMax + before} of the ${budget.limit} connections ${budget.from} allows on the server`
          : `; capped at ${after} by ${budget.from} (${budget.limit} connections for this process's pools on the server)`;
    }
    const since = pool.budgetTracker.sinceTooManyConnections();
    if (since !== undefined && since < o.tooManyConnectionsBackoffMs) {
      after = before;
      reason += `; not grown: the server refused a connection with 53300 (too many connections) ${Math.round(since / 1000)} s ago (backing off for ${Math.round(o.tooManyConnectionsBackoffMs / 1000)} s)`;
    }
  }
  const decision: PoolSizeDecision = {
    poolId: pool.poolId,
    before,
    after,
    reason,
    utilization: round3(utilization),
    queriesPerSecond: round3(qps),
    littlesLaw,
  };
  if (budget) decision.budget = budget;
  return decision;
}

/** Validates the budget options of auto-tuning (they arrive unvalidated through `autoTune`). */
function checkBudgetOptions(o: ResolvedAutoTune): void {
  const issues = [];
  if (!(typeof o.serverShare === 'number' && o.serverShare > 0 && o.serverShare <= 1)) {
    issues.push({ path: 'autoTune.serverShare', value: o.serverShare, rule: 'must be a number above 0 and at most 1' });
  }
  if (!(Number.isInteger(o.serverBudget) && o.serverBudget >= 0)) {
    issues.push({ path: 'autoTune.serverBudget', value: o.serverBudget, rule: 'must be a whole number, 0 for none' });
  }
  if (!(Number.isInteger(o.tooManyConnectionsBackoffMs) && o.tooManyConnectionsBackoffMs >= 0)) {
    issues.push({ path: 'autoTune.tooManyConnectionsBackoffMs', value: o.tooManyConnectionsBackoffMs, rule: 'must be a whole number of milliseconds' });
  }
  if (issues.length > 0) throw new InvalidConfigError(issues);
}

/**
 * The most `pool`'s max may grow to within the server's budget: serverBudget, or serverShare of
 * the server's usable slots, minus the `max` of this process's other pools to the same server.
 */
function growthCeiling(pool: ManagedPool, o: ResolvedAutoTune): PoolSizeDecision['budget'] {
  checkBudgetOptions(o);
  const owner = pool.budgetTracker.owner;
  const b = pool.serverBudget();
  const usable = b && b.via === 'server' ? b.usableConnections : null;
  let limit: number;
  let from: 'serverShare' | 'serverBudget';
  if (o.serverBudget > 0) {
    limit = o.serverBudget;
    from = 'serverBudget';
  } else if (usable !== null) {
    limit = Math.floor(usable * o.serverShare);
    from = 'serverShare';
  } else return undefined;
  const claims = instanceClaims(owner.serverAddress, owner.serverPort, owner.via);
  const own = claims.poolIds.includes(pool.poolId) ? pool.config.max : 0;
  const otherPoolsMax = Math.max(0, claims.max - own);
  return { ceiling: Math.max(0, limit - otherPoolsMax), limit, from, otherPoolsMax, usableConnections: usable };
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

/** What periodic auto-tuning uses of a DatabasePool. */
export interface TunedPools {
  listPools(): string[];
  optimizePoolSize(poolId: string): Promise<PoolSizeDecision>;
  optimizeTimeouts(poolId: string): Promise<TimeoutDecision>;
}

/** One round of auto-tuning (`autoTune.intervalMs`): size, then timeouts, of every pool. */
export async function autoTuneAll(db: TunedPools, logger: Pick<Console, 'warn'> | null): Promise<void> {
  for (const poolId of db.listPools()) {
    try {
      const size = await db.optimizePoolSize(poolId);
      if (size.after !== size.before) logger?.warn(`[db-pool-otel] auto-tune: pool "${poolId}" max ${size.before} → ${size.after}: ${size.reason}`);
      await db.optimizeTimeouts(poolId);
    } catch {
      // A pool that cannot be measured now is tuned next time; health checks report why.
    }
  }
}
