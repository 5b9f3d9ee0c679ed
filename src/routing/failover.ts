/**
 * Auto-recovery of one pool id: when its server becomes unreachable, recreate the pool with
 * exponential backoff (3 tries: 1 s, 2 s, 4 s by default; a pool that has reconnected by itself in
 * the meantime is kept); if it stays down, route its traffic to
 * the configured backup, keep probing the primary, and fail back when it answers. Callers waiting
 * at each switch move to the new pool instead of failing. Every transition is published on
 * `db-pool:pool` and counted in the pool's totals.
 */
import type { ProbeResult } from '../ops/health.js';
import type { ManagedPool } from '../pool/managed-pool.js';
import { Sleeper } from '../util/sleeper.js';

/** Settings of auto-recovery (DatabasePool option `recovery`). */
export interface RecoveryOptions {
  /** Default true. */
  enabled?: boolean;
  /** Recreate attempts before failing over. Default 3. */
  retries?: number;
  /** Delay before the first attempt, doubling after each. Default 1 000 ms (1 s, 2 s, 4 s). */
  baseDelayMs?: number;
  /** How often the primary is probed while traffic is on the backup. Default 5 000 ms. */
  probeIntervalMs?: number;
  /** Consecutive connect failures with no connection that open the circuit (pools without a backup). Default 3. */
  circuitBreakerThreshold?: number;
  /** An open circuit lets one call through after this long. Default 1 000 ms. */
  circuitResetMs?: number;
}

export const RECOVERY_DEFAULTS: Required<RecoveryOptions> = {
  enabled: true,
  retries: 3,
  baseDelayMs: 1_000,
  probeIntervalMs: 5_000,
  circuitBreakerThreshold: 3,
  circuitResetMs: 1_000,
};

/** What the controller needs from DatabasePool. */
export interface FailoverHost {
  readonly poolId: string;
  /** The primary pool as it is now (routed or not). */
  primary(): ManagedPool;
  /** Replaces the primary with a fresh pool from its config (routed if the old one was). */
  recreatePrimary(): ManagedPool;
  /** The backup pool to route to, or undefined when the pool has none. */
  backup(): ManagedPool | undefined;
  /** Routes the pool id's traffic to `pool`; callers waiting on the pool routed before move with it. */
  route(pool: ManagedPool): void;
  /** The backup is no longer routed: close it if it is the pool's own. */
  retireBackup(pool: ManagedPool): void;
  probe(pool: ManagedPool): Promise<ProbeResult>;
  transition(event: 'recovering' | 'recovered' | 'failed-over' | 'failed-back' | 'recovery-failed', detail: Record<string, unknown>): void;
}

export class FailoverController {
  /** Recovering or failed over: a new failure starts nothing until the pool is healthy again. */
  #busy = false;
  #stopped = false;
  readonly #sleeper = new Sleeper();

  constructor(
    private readonly host: FailoverHost,
    private readonly options: Required<RecoveryOptions>,
  ) {}

  /** The primary reported a connect failure with no connection left. */
  onUnreachable(err: Error): void {
    if (this.#busy || this.#stopped || !this.options.enabled) return;
    this.#busy = true;
    this.#run(err).catch(() => {
      this.#busy = false;
    });
  }

  async #run(cause: Error): Promise<void> {
    const o = this.options;
    this.host.transition('recovering', { error: cause.message });
    let lastError = cause.message;
    for (let attempt = 1; attempt <= o.retries; attempt++) {
      await this.#sleeper.sleep(o.baseDelayMs * 2 ** (attempt - 1), { unref: true });
      if (this.#stopped) return;
      // The server came back during the backoff and the pool has reconnected by itself: keep it,
      // and the work running on it, instead of recreating it (which drains and closes the old one).
      const current = this.host.primary();
      const kept = current.hasOpenConnection() && (await this.host.probe(current)).ok;
      if (this.#stopped) return;
      const r = kept ? undefined : await this.host.probe(this.host.recreatePrimary());
      if (this.#stopped) return;
      if (!r || r.ok) {
        this.#busy = false;
        this.host.transition('recovered', { attempt, recreated: !kept });
        return;
      }
      lastError = r.error;
    }
    const backup = this.host.backup();
    if (!backup) {
      // Nothing to fail over to: the circuit breaker fails calls fast until the server is back.
      this.#busy = false;
      this.host.transition('recovery-failed', { attempts: o.retries, error: lastError });
      return;
    }
    const primary = this.host.primary();
    this.host.route(backup);
    this.host.transition('failed-over', { attempts: o.retries, error: lastError, backup: backup.poolId });
    while (!this.#stopped) {
      await this.#sleeper.sleep(o.probeIntervalMs, { unref: true });
      if (this.#stopped) return;
      const r = await this.host.probe(primary);
      if (r.ok && !this.#stopped) {
        this.host.route(primary);
        this.host.retireBackup(backup);
        this.#busy = false;
        this.host.transition('failed-back', {});
        return;
      }
    }
  }

  /** Stops recovering (pool removed or closed). */
  stop(): void {
    this.#stopped = true;
    this.#sleeper.wakeAll();
  }
}
