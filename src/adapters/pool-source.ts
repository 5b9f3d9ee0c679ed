/**
 * What the adapters need of a DatabasePool, named here so they never import the facade (which
 * builds them): lend a loan, read a pool's status, hear of connection errors and closes. The
 * unredacted config comes through `internalPoolConfig`.
 */
import type { PoolStatus } from '../pool/managed-pool.js';
import type { DatabasePoolEvents } from '../pool-api.js';
import type { PooledConnection } from '../pool/pooled-connection.js';

type ConnectionEvent = 'connectionError' | 'connectionClosed';
type ConnectionListener<K extends ConnectionEvent> = (...args: DatabasePoolEvents[K]) => void;

/** A `DatabasePool`, as the knex and pg.Pool adapters use it. */
export interface PoolSource {
  acquire(poolId: string): Promise<PooledConnection>;
  getPoolStatus(poolId: string): PoolStatus;
  on<K extends ConnectionEvent>(event: K, listener: ConnectionListener<K>): unknown;
  off<K extends ConnectionEvent>(event: K, listener: ConnectionListener<K>): unknown;
}
