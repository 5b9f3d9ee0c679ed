/**
 * Closing idle connections on time: one timer per pool for the earliest moment an idle connection
 * passes its idle timeout or lifetime, and the rule generic-pool's eviction passes apply (installed
 * in place of its idle-time-only evictor).
 */
import type { Pool as GenericPool } from 'generic-pool';
import type { ResolvedPoolConfig } from '../config/config.js';
import { evictNow, idleResources } from './generic-pool-internals.js';
import type { LentConnection } from './pooled-connection.js';
import { TIMER_SLACK_MS } from './waiters.js';

/** What eviction reads of its pool, each time (the config changes on reconfigure). */
export interface EvictionPool {
  config(): ResolvedPoolConfig;
  closing(): boolean;
}

export class IdleEviction {
  #timer: NodeJS.Timeout | undefined;
  #at = Infinity;
  /** Set during cleanupPool: the pass closes every idle connection. */
  #all = false;

  constructor(
    private readonly gpool: GenericPool<LentConnection>,
    /** Connections answering the pool's budget statement: left alone until they have answered. */
    private readonly budgetReads: ReadonlyMap<LentConnection, Promise<void>>,
    private readonly pool: EvictionPool,
  ) {}

  /**
   * One timer per pool, set for the earliest moment an idle connection passes its idle timeout or
   * lifetime, so idle connections are closed on time (not at the next 5 s eviction pass). A
   * release sets it only when it is not already set earlier: no timer churn under load.
   */
  schedule(at: number): void {
    if (at >= this.#at || this.pool.closing()) return;
    clearTimeout(this.#timer);
    this.#at = at;
    this.#timer = setTimeout(() => this.#due(), Math.max(1, Math.ceil(at - Date.now())));
    // Idle connections keep the process alive unless allowExitOnIdle; so does their timer.
    if (this.pool.config().allowExitOnIdle) this.#timer.unref();
  }

  #due(): void {
    this.#timer = undefined;
    this.#at = Infinity;
    this.#evictIdle();
  }

  /** An eviction pass now, then the timer for the next deadline of the idle connections left. */
  #evictIdle(): void {
    if (this.pool.closing()) return;
    evictNow(this.gpool);
    const idleTimeout = this.pool.config().idleTimeoutMs;
    const aboveMin = this.gpool.available > this.pool.config().min;
    const now = Date.now();
    let next = Infinity;
    for (const r of idleResources<LentConnection>(this.gpool)) {
      let at = r.obj.expiresAt;
      if (idleTimeout > 0 && aboveMin) at = Math.min(at, r.lastIdleTime + idleTimeout);
      // Due but answering the pool's budget statement (eviction waits for it): looked at again
      // as soon as it has answered.
      const reading = at <= now + TIMER_SLACK_MS ? this.budgetReads.get(r.obj) : undefined;
      if (reading) void reading.then(() => this.#evictIdle());
      else if (at < next) next = at;
    }
    if (next !== Infinity) this.schedule(next);
  }

  /** cleanupPool: an eviction pass that closes every idle connection. */
  evictAllIdle(): void {
    this.#all = true;
    try {
      evictNow(this.gpool);
    } finally {
      this.#all = false;
    }
  }

  /**
   * Decides, per idle connection in an eviction pass: broken or expired ones go; idle ones above
   * `min` go after `idleTimeoutMs`; surplus above a lowered `max` goes; cleanup closes all.
   */
  shouldEvict(conn: LentConnection, lastIdleTime: number, availableCount: number): boolean {
    const now = Date.now();
    if (this.#all) return true;
    // Running the pool's budget statement (statements pending): judged once it has answered.
    if (this.budgetReads.has(conn)) return false;
    if (!conn.reusable(now).ok) return true;
    if (this.gpool.size > this.pool.config().max) return true;
    const idleTimeout = this.pool.config().idleTimeoutMs;
    // The eviction timer fires at the deadline, give or take the timers' millisecond rounding.
    return idleTimeout > 0 && now - lastIdleTime >= idleTimeout - TIMER_SLACK_MS && availableCount > this.pool.config().min;
  }

  /** Clears the timer (the pool is closed). */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
