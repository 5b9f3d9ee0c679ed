/**
 * `knexConfig(db, poolId)`: a knex 3.x config whose connections are loans from a `DatabasePool`
 * pool, so knex code stays the same and every knex query is timed, guarded and published like the
 * pool's own. knex is loaded here, at call time (it is an optional peer dependency).
 *
 * @example
 * import knex from 'knex';
 * const k = knex({ ...knexConfig(db, 'main', { searchPath: ['app', 'public'] }), migrations: { directory: './migrations' } });
 * await k('users').where({ id: 42 }).first();
 * await k.destroy();   // knex lets go of the pool; the pool stays open (db.close() closes it)
 */
import type { Knex } from 'knex';
import { internalPoolConfig } from '../internal-config.js';
import type { PoolSource } from './pool-source.js';
import { connectionView, createKnexClientClass, type KnexAfterCreate } from './knex-client.js';
import { loadKnex } from './knex-loader.js';

export type { KnexAfterCreate } from './knex-client.js';

/** Options of {@link knexConfig}: the knex settings that shape a connection. */
export interface KnexConfigOptions {
  /** Schemas for `SET search_path`, applied when knex takes a connection whose path differs. */
  searchPath?: string | readonly string[];
  /**
   * knex's `pool.afterCreate`: runs once per physical connection, before this knex instance first
   * uses it; an error fails that acquire and the connection is closed. (`pool: { afterCreate }` in
   * the knex config works too.)
   */
  afterCreate?: KnexAfterCreate;
  /** Server version for knex's feature checks; detected with `select version()` when omitted. */
  version?: string;
}

/**
 * A knex config (client `pg`) taking its connections from pool `poolId` of `db`. Spread it to add
 * knex settings (`migrations`, `useNullAsDefault`, `acquireConnectionTimeout`, ...). Pool sizing
 * and timeouts are the pool's: knex's `pool` settings other than `afterCreate` are ignored.
 *
 * Throws POOL_NOT_FOUND for an unknown pool, INVALID_CONFIG when knex 3.x is not installed.
 */
export function knexConfig(db: PoolSource, poolId: string, options: KnexConfigOptions = {}): Knex.Config {
  const resolved = internalPoolConfig(db, poolId);
  const parts = loadKnex();
  const client = createKnexClientClass(parts, db, poolId);
  const config: Knex.Config = {
    client: client as unknown as typeof Knex.Client,
    // What knex shows as its connection: nothing secret. The client reads the pool's real
    // settings itself (knex's cancelQuery connects with them).
    connection: connectionView(resolved),
  };
  if (options.searchPath !== undefined) config.searchPath = options.searchPath;
  if (options.afterCreate) config.pool = { afterCreate: options.afterCreate };
  if (options.version !== undefined) config.version = options.version;
  return config;
}
