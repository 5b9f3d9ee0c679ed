/**
 * The read replicas of one pool: read-only work goes to a healthy replica, round-robin, and falls
 * back to the primary when none can serve (down, circuit open) — a read never fails because a
 * replica is gone while the primary is up.
 */
import type { ManagedPool } from '../pool/managed-pool.js';
import type { PooledConnection } from '../pool/pooled-connection.js';
import { DbPoolError } from '../errors.js';

export class ReplicaSet {
  #next = 0;

  constructor(readonly replicas: readonly ManagedPool[]) {}

  /** Whether a replica looks able to serve now (no open circuit, not known to be unreachable). */
  static healthy(pool: ManagedPool): boolean {
    const s = pool.status();
    return !s.closed && s.circuit === 'closed' && !(s.total === 0 && s.lastConnectError !== undefined);
  }

  /** A connection for read-only work: from the next healthy replica, else from the primary. */
  async acquire(primary: ManagedPool): Promise<{ conn: PooledConnection; onReplica: boolean }> {
    const n = this.replicas.length;
    // Claim the starting replica now, before awaiting, so concurrent callers spread out.
    const start = this.#next;
    this.#next = (start + 1) % n;
    for (let i = 0; i < n; i++) {
      const replica = this.replicas[(start + i) % n]!;
      if (!ReplicaSet.healthy(replica)) continue;
      try {
        const conn = await replica.acquire({ failFast: true });
        return { conn, onReplica: true };
      } catch (err) {
        if (!unreachable(err)) throw err;
      }
    }
    return { conn: await primary.acquire(), onReplica: false };
  }

  async close(drainTimeoutMs?: number): Promise<void> {
    await Promise.all(this.replicas.map((r) => r.close(drainTimeoutMs)));
  }
}

/** Errors that mean "this server cannot serve now" rather than "this statement failed". */
export function unreachable(err: unknown): boolean {
  if (err instanceof DbPoolError) return err.code === 'CONNECTION_FAILED' || err.code === 'CIRCUIT_OPEN' || err.code === 'POOL_CLOSED';
  const e = err as { code?: unknown; severity?: unknown };
  if (typeof e?.severity === 'string' && typeof e.code === 'string') return e.code.startsWith('08') || e.code.startsWith('57P');
  return true;
}
