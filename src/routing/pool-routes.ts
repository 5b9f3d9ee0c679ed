/**
 * The routing table of a DatabasePool: for each pool id, the pool its calls go to now, its primary,
 * its own backup pool, its read replicas and its failover controller — and every move between
 * them (recreate, fail over, fail back, restart, remove). The facade validates, delegates and wires;
 * what happens to a pool id's pools happens here.
 */
import { resolvePoolConfig, type ResolvedPoolConfig } from '../config/config.js';
import { probe } from '../ops/health.js';
import { ManagedPool } from '../pool/managed-pool.js';
import type { FailureBehaviour, PoolHooks } from '../pool/pool-types.js';
import { registerPool, unregisterPool } from '../pool/registry.js';
import { FailoverController, type FailoverHost, type RecoveryOptions } from './failover.js';
import { ReplicaSet } from './replica-set.js';

type Transition = Parameters<FailoverHost['transition']>[0];

/** What the routes ask of the facade that owns them. */
export interface RouteOwner {
  recovery: Required<RecoveryOptions>;
  probeTimeoutMs: number;
  /** The owner's hooks for a new pool (events, logs); `pool` is the pool they belong to. */
  hooksFor(pool: () => ManagedPool): Omit<PoolHooks, 'onUnreachable'>;
  /** A recovery transition of a pool id (counted and published on its primary already). */
  onTransition(poolId: string, event: Transition, detail: Record<string, unknown>): void;
}

export class PoolRoutes {
  /** Per pool id, the pool its calls go to now. */
  readonly #routed = new Map<string, ManagedPool>();
  /** Per pool id: the primary pool (routed unless failed over), its recovery, its own backup pool, its replicas. */
  readonly #primaries = new Map<string, ManagedPool>();
  readonly #controllers = new Map<string, FailoverController>();
  readonly #backups = new Map<string, ManagedPool>();
  readonly #replicas = new Map<string, ReplicaSet>();

  constructor(private readonly owner: RouteOwner) {}

  /** The pool a pool id's calls go to now. */
  get(poolId: string): ManagedPool | undefined {
    return this.#routed.get(poolId);
  }

  has(poolId: string): boolean {
    return this.#routed.has(poolId);
  }

  /** Pool ids, in creation order. */
  ids(): string[] {
    return [...this.#routed.keys()];
  }

  /** The routed pool of every id. */
  routed(): IterableIterator<[string, ManagedPool]> {
    return this.#routed.entries();
  }

  replicas(poolId: string): ReplicaSet | undefined {
    return this.#replicas.get(poolId);
  }

  /** A new pool id: its primary, its recovery, its replicas. */
  add(poolId: string, cfg: ResolvedPoolConfig): void {
    const pool = this.#newPool(poolId, cfg, undefined, 'primary');
    this.#routed.set(poolId, pool);
    this.#primaries.set(poolId, pool);
    registerPool(pool);
    if (this.owner.recovery.enabled) this.#controllers.set(poolId, this.#newController(poolId));
    this.#setReplicas(poolId, cfg);
    pool.publish('created', { max: cfg.max, min: cfg.min });
  }

  /** A live config change: the routed pool and the replicas take it (each keeps its own server). */
  reconfigure(poolId: string, next: ResolvedPoolConfig): void {
    this.#routed.get(poolId)?.reconfigure(next);
    for (const r of this.#replicas.get(poolId)?.replicas ?? [])
      r.reconfigure({ ...next, connection: r.config.connection, applicationName: r.config.applicationName, backup: undefined, readReplicas: undefined });
  }

  /**
   * Replaces a pool id's pools with new ones built from `cfg`: waiting callers are served by the new
   * primary; work in progress finishes on the old pools, which then close. When failed over, this is
   * also a manual failback.
   */
  async restart(poolId: string, cfg: ResolvedPoolConfig, drainTimeoutMs?: number): Promise<void> {
    const old = this.#routed.get(poolId);
    if (!old) return;
    const primary = this.#primaries.get(poolId) ?? old;
    const next = this.#newPool(poolId, cfg, primary, 'primary');
    this.#primaries.set(poolId, next);
    this.#route(poolId, next);
    const backup = this.#backups.get(poolId);
    this.#backups.delete(poolId);
    if (this.#controllers.has(poolId)) {
      this.#controllers.get(poolId)!.stop();
      this.#controllers.set(poolId, this.#newController(poolId));
    }
    this.#setReplicas(poolId, cfg);
    next.publish('restarted', { max: cfg.max, min: cfg.min });
    const retired = new Set([old, primary, backup].filter((p): p is ManagedPool => p !== undefined && p !== next && p.poolId === poolId));
    await Promise.all([...retired].map((p) => p.close(drainTimeoutMs)));
  }

  /** Stops recovery of a pool id and closes every pool object behind it. */
  async close(poolId: string, drainTimeoutMs: number | undefined, event: 'removed' | 'closed'): Promise<void> {
    this.#controllers.get(poolId)?.stop();
    this.#controllers.delete(poolId);
    const routed = this.#routed.get(poolId);
    this.#routed.delete(poolId);
    const own = [this.#primaries.get(poolId), this.#backups.get(poolId)];
    this.#primaries.delete(poolId);
    this.#backups.delete(poolId);
    const replicas = this.#replicas.get(poolId);
    this.#replicas.delete(poolId);
    if (replicas) {
      for (const r of replicas.replicas) unregisterPool(r);
      await replicas.close(drainTimeoutMs);
    }
    // A backup that is another pool id is closed under its own id, not here.
    const pools = new Set([routed, ...own].filter((p): p is ManagedPool => p !== undefined && p.poolId === poolId));
    await Promise.all(
      [...pools].map(async (pool) => {
        try {
          await pool.close(drainTimeoutMs);
        } finally {
          unregisterPool(pool);
          pool.publish(event);
        }
      }),
    );
  }

  /** Builds the replica pools of `cfg` (ids `<poolId>:replica-N`), replacing any before. */
  #setReplicas(poolId: string, cfg: ResolvedPoolConfig): void {
    const old = this.#replicas.get(poolId);
    this.#replicas.delete(poolId);
    if (old) {
      for (const r of old.replicas) unregisterPool(r);
      void old.close();
    }
    if (!cfg.readReplicas?.length) return;
    const replicas = cfg.readReplicas.map((connection, i) => {
      const id = `${poolId}:replica-${i + 1}`;
      const r = this.#newPool(
        id,
        resolvePoolConfig(
          { ...cfg, connection, backup: undefined, readReplicas: undefined, applicationName: `${cfg.applicationName}:r${i + 1}`.slice(0, 63) },
          id,
        ),
        undefined,
        'backup',
      );
      registerPool(r);
      return r;
    });
    this.#replicas.set(poolId, new ReplicaSet(replicas));
  }

  #behaviour(cfg: ResolvedPoolConfig, role: 'primary' | 'backup'): FailureBehaviour {
    const r = this.owner.recovery;
    if (!r.enabled) return { failFast: true, circuitThreshold: 0, circuitResetMs: r.circuitResetMs };
    // A primary with a backup keeps its callers waiting for the failover; the others fail fast.
    if (role === 'primary' && cfg.backup !== undefined) return { failFast: false, circuitThreshold: 0, circuitResetMs: r.circuitResetMs };
    return { failFast: true, circuitThreshold: r.circuitBreakerThreshold, circuitResetMs: r.circuitResetMs };
  }

  #newPool(poolId: string, cfg: ResolvedPoolConfig, previous: ManagedPool | undefined, role: 'primary' | 'backup'): ManagedPool {
    const pool: ManagedPool = new ManagedPool(
      poolId,
      cfg,
      {
        ...this.owner.hooksFor(() => pool),
        onUnreachable: (err) => {
          if (role === 'primary' && this.#primaries.get(poolId) === pool) this.#controllers.get(poolId)?.onUnreachable(err);
        },
      },
      previous?.stats,
      this.#behaviour(cfg, role),
    );
    return pool;
  }

  /** Moves the pool id's traffic (and its waiting callers) from the pool routed now to `next`. */
  #route(poolId: string, next: ManagedPool): ManagedPool | undefined {
    const current = this.#routed.get(poolId);
    if (!current || current === next) return current;
    this.#routed.set(poolId, next);
    if (next.poolId === poolId) registerPool(next);
    if (current.poolId === poolId) unregisterPool(current);
    current.transferWaitersTo(next);
    return current;
  }

  #newController(poolId: string): FailoverController {
    return new FailoverController(
      {
        poolId,
        primary: () => this.#primaries.get(poolId)!,
        recreatePrimary: () => {
          const old = this.#primaries.get(poolId)!;
          const fresh = this.#newPool(poolId, old.config, old, 'primary');
          this.#primaries.set(poolId, fresh);
          if (this.#routed.get(poolId) === old) this.#route(poolId, fresh);
          void old.close(1_000);
          return fresh;
        },
        backup: () => {
          const primary = this.#primaries.get(poolId)!;
          const b = primary.config.backup;
          if (b === undefined) return undefined;
          if (typeof b === 'string') return b === poolId ? undefined : this.#routed.get(b);
          const own = this.#newPool(poolId, resolvePoolConfig({ ...primary.config, connection: b, backup: undefined }, poolId), primary, 'backup');
          this.#backups.set(poolId, own);
          return own;
        },
        route: (pool) => void this.#route(poolId, pool),
        retireBackup: (pool) => {
          if (this.#backups.get(poolId) !== pool) return;
          this.#backups.delete(poolId);
          void pool.close();
        },
        probe: (pool) => probe(pool, this.owner.probeTimeoutMs),
        transition: (event, detail) => {
          const primary = this.#primaries.get(poolId);
          const totals = primary?.stats.totals;
          if (totals) {
            if (event === 'recovered') totals.recoveries++;
            if (event === 'failed-over') totals.failovers++;
            if (event === 'failed-back') totals.failbacks++;
          }
          primary?.publish(event, detail);
          this.owner.onTransition(poolId, event, detail);
        },
      },
      this.owner.recovery,
    );
  }
}
