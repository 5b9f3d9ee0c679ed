/**
 * Finds loans held too long (HikariCP's ProxyLeakTask, as one periodic scan per pool instead of a
 * timer per loan): past `leakDetectionThresholdMs` a loan is reported once, with the stack that
 * took it; past `leakReclaimMs` it is taken back. Runs only while one of the two is set.
 */
import type { PooledConnection } from './pooled-connection.js';

export interface LeakDetectorHost {
  loans(): Iterable<PooledConnection>;
  onSuspected(loan: PooledConnection, heldMs: number): void;
  onReclaim(loan: PooledConnection, heldMs: number): void;
}

export class LeakDetector {
  #timer: NodeJS.Timeout | undefined;
  readonly #reported = new WeakSet<PooledConnection>();
  #thresholdMs = 0;
  #reclaimMs = 0;

  constructor(private readonly host: LeakDetectorHost) {}

  /** Applies (new) limits; 0 turns a check off. */
  configure(thresholdMs: number, reclaimMs: number): void {
    this.#thresholdMs = thresholdMs;
    this.#reclaimMs = reclaimMs;
    this.stop();
    const shortest = Math.min(...[thresholdMs, reclaimMs].filter((v) => v > 0));
    if (!Number.isFinite(shortest)) return;
    // A quarter of the shortest limit: a leak is seen at most 25 % late, and the scan stays rare.
    const every = Math.min(1_000, Math.max(10, Math.floor(shortest / 4)));
    this.#timer = setInterval(() => this.scan(), every);
    this.#timer.unref();
  }

  get capturesStacks(): boolean {
    return this.#thresholdMs > 0 || this.#reclaimMs > 0;
  }

  /** Loans currently held past the detection threshold. */
  suspectedCount(now = Date.now()): number {
    if (this.#thresholdMs <= 0) return 0;
    let n = 0;
    for (const loan of this.host.loans()) if (now - loan.acquiredAt >= this.#thresholdMs) n++;
    return n;
  }

  scan(now = Date.now()): void {
    for (const loan of [...this.host.loans()]) {
      const held = now - loan.acquiredAt;
      if (this.#thresholdMs > 0 && held >= this.#thresholdMs && !this.#reported.has(loan)) {
        this.#reported.add(loan);
        this.host.onSuspected(loan, held);
      }
      if (this.#reclaimMs > 0 && held >= this.#reclaimMs) this.host.onReclaim(loan, held);
    }
  }

  /** Takes back every loan held past the detection threshold now (cleanupPool). */
  reclaimSuspected(now = Date.now()): number {
    if (this.#thresholdMs <= 0) return 0;
    let n = 0;
    for (const loan of [...this.host.loans()]) {
      const held = now - loan.acquiredAt;
      if (held >= this.#thresholdMs) {
        this.host.onReclaim(loan, held);
        n++;
      }
    }
    return n;
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
