/**
 * Every open pool in the process, across all DatabasePool instances. Observers that must read live
 * state (the OpenTelemetry gauges, for one) iterate it instead of keeping counters of their own, so
 * they are right with any number of pools and from whenever they start.
 */
import type { ManagedPool, PoolStatus } from './managed-pool.js';
import { processGlobal } from '../util/process-global.js';

// One set per process, even when both the ESM and the CommonJS build are loaded (an app that
// imports the pools and requires the instrumentation would otherwise see two registries).
const live = processGlobal('db-pool-otel.registry.v1', () => new Set<ManagedPool>());

/** @internal */
export function registerPool(pool: ManagedPool): void {
  live.add(pool);
}

/** @internal */
export function unregisterPool(pool: ManagedPool): void {
  live.delete(pool);
}

/**
 * Status of every open pool in the process.
 *
 * @example
 * for (const s of livePoolStatuses()) console.log(s.poolId, s.active, '/', s.max);
 */
export function* livePoolStatuses(): IterableIterator<PoolStatus> {
  for (const pool of live) yield pool.status();
}
