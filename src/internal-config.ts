/**
 * Unredacted pool configs (with their passwords), for the adapters inside the package: knex and the
 * pg.Pool face need them to connect and to cancel queries, and `getPoolConfig` redacts. The facade
 * registers a reader per instance; adapters read through it without importing the facade. Shared by
 * the ESM and CommonJS builds, so an adapter of one build works with a DatabasePool of the other.
 */
import type { ResolvedPoolConfig } from './config/config.js';
import { processGlobal } from './util/process-global.js';

type ConfigReader = (poolId: string) => ResolvedPoolConfig;

const configReaders = processGlobal('db-pool-otel.config-readers.v1', () => new WeakMap<object, ConfigReader>());

/** @internal Called by a DatabasePool for itself. */
export function registerConfigReader(owner: object, read: ConfigReader): void {
  configReaders.set(owner, read);
}

/** @internal The unredacted config of a pool (with its password). Not exported from the package root. */
export function internalPoolConfig(owner: object, poolId: string): ResolvedPoolConfig {
  const read = configReaders.get(owner);
  if (!read) throw new TypeError('internalPoolConfig: not a DatabasePool of db-pool-otel');
  return read(poolId);
}
