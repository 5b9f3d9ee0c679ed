/** Dependency-free: the admin protocol (and through it the CLI) imports it. */

/**
 * Settings a running pool takes without a restart (`updatePoolConfig` applies them in place; any other
 * change restarts the pool). The admin endpoint's config patch may change exactly these.
 */
export const LIVE_SETTINGS = [
  'min',
  'max',
  'acquireTimeoutMs',
  'queryTimeoutMs',
  'idleTimeoutMs',
  'maxLifetimeMs',
  'maxWaitingClients',
  'validateOnBorrow',
  'leakDetectionThresholdMs',
  'leakReclaimMs',
  'slowQueryThresholdMs',
  'metricsWindowMs',
] as const;

const LIVE = new Set<string>(LIVE_SETTINGS);

/** Whether a config patch changes a setting a running pool cannot take (so the pool is restarted). */
export function restartsPool(patch: object): boolean {
  return Object.keys(patch).some((k) => !LIVE.has(k));
}
