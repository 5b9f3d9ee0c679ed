/**
 * The callers waiting for a connection: a list linked through the waiters themselves, the one
 * timer that fails them at their deadlines, and the withdrawal of their requests from
 * generic-pool's queue when they are failed or moved.
 */
import { withdrawQueuedRequests } from './generic-pool-internals.js';
import type { PooledConnection } from './pooled-connection.js';

/** A timer can fire this much before its deadline (millisecond rounding): still on time. */
export const TIMER_SLACK_MS = 1;

export interface Waiter {
  /** Fail this caller on a connect failure even when the pool keeps callers waiting (probes). */
  failFast: boolean;
  /** When it times out with ACQUIRE_TIMEOUT (performance.now() time). */
  deadline: number;
  /** Set when the call's own timeoutMs ends the wait before acquireTimeoutMs: expiring is QUERY_TIMEOUT. */
  callTimeoutMs?: number | undefined;
  resolve(loan: PooledConnection): void;
  reject(err: Error): void;
  /** The generic-pool request behind it, to withdraw it when the caller is failed or moved. */
  request?: Promise<unknown>;
  /** Links of the waiter list. */
  prev: Waiter | undefined;
  next: Waiter | undefined;
  /** In the list, i.e. not yet served, failed or moved: whoever takes it off the list settles it. */
  queued: boolean;
}

/**
 * The callers waiting for a connection, oldest first, as a list linked through the waiters
 * themselves. Not a Set: an entry added and deleted on every acquire makes V8 rehash the Set's
 * table every few operations, and once that table has been promoted to the old generation
 * (the pool sat idle through two young-generation collections) each rehash allocates there,
 * turning steady load into back-to-back full collections.
 */
class WaiterList implements Iterable<Waiter> {
  #head: Waiter | undefined;
  #tail: Waiter | undefined;
  size = 0;

  constructor(
    /** Called when the list goes from empty to one waiter, and back to empty. */
    private readonly onOccupied: (occupied: boolean) => void = () => {},
  ) {}

  add(w: Waiter): void {
    w.prev = this.#tail;
    w.next = undefined;
    if (this.#tail) this.#tail.next = w;
    else this.#head = w;
    this.#tail = w;
    w.queued = true;
    if (this.size++ === 0) this.onOccupied(true);
  }

  delete(w: Waiter): void {
    if (!w.queued) return;
    if (w.prev) w.prev.next = w.next;
    else this.#head = w.next;
    if (w.next) w.next.prev = w.prev;
    else this.#tail = w.prev;
    w.prev = w.next = undefined;
    w.queued = false;
    if (--this.size === 0) this.onOccupied(false);
  }

  /** Oldest first; the current waiter may be deleted during the iteration. */
  *[Symbol.iterator](): Iterator<Waiter> {
    for (let w = this.#head; w; ) {
      const next = w.next;
      yield w;
      w = next;
    }
  }
}

/**
 * The waiter list plus acquire timeouts: one timer per pool, set for the earliest deadline of the
 * waiting callers, instead of generic-pool's timer per acquire (set and cleared even when a
 * connection is free). The timer stays set after its waiters are served (no churn); while nobody
 * waits it does not keep the process alive (a DatabasePool never closed still lets it exit).
 */
export class WaitingCallers implements Iterable<Waiter> {
  readonly #list = new WaiterList((occupied) => {
    if (occupied) this.#timer?.ref();
    else this.#timer?.unref();
  });
  #timer: NodeJS.Timeout | undefined;
  #timeoutAt = Infinity;

  constructor(
    /** The generic-pool pool whose queue holds the waiters' requests. */
    private readonly gpool: object,
    /** Called with the waiters past their deadline, still in the list (take them to settle them). */
    private readonly onExpired: (expired: Waiter[]) => void,
  ) {}

  get size(): number {
    return this.#list.size;
  }

  /** Queues a caller (`now`: performance.now() when it asked). */
  add(w: Waiter, now: number): void {
    this.#list.add(w);
    if (w.deadline < this.#timeoutAt) this.#arm(w.deadline, now);
  }

  /** Off the list once served. */
  delete(w: Waiter): void {
    this.#list.delete(w);
  }

  [Symbol.iterator](): Iterator<Waiter> {
    return this.#list[Symbol.iterator]();
  }

  /**
   * Takes these waiters off the list (they are the caller's to settle now) and their requests out
   * of generic-pool's queue; a request served anyway is handed straight back by whoever made it.
   */
  take(waiters: Iterable<Waiter>): Waiter[] {
    const taken: Waiter[] = [];
    const requests = new Set<Promise<unknown>>();
    for (const w of waiters) {
      this.#list.delete(w);
      if (w.request) requests.add(w.request);
      taken.push(w);
    }
    withdrawQueuedRequests(this.gpool, requests);
    return taken;
  }

  /** Fails waiting callers (all, or those `which` picks). */
  fail(err: Error, which?: (w: Waiter) => boolean): void {
    const picked = which ? [...this.#list].filter(which) : [...this.#list];
    for (const w of this.take(picked)) w.reject(err);
  }

  /** Clears the timer (the pool is closed). */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timeoutAt = Infinity;
  }

  #arm(at: number, now: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timeoutAt = at;
    this.#timer = setTimeout(() => this.#expire(), Math.max(0, Math.ceil(at - now)));
    if (this.#list.size === 0) this.#timer.unref();
  }

  /** The timer fired: hands over the callers past their deadline, and sets it for the next one. */
  #expire(): void {
    this.#timer = undefined;
    this.#timeoutAt = Infinity;
    const now = performance.now();
    const expired: Waiter[] = [];
    let next = Infinity;
    for (const w of this.#list) {
      if (w.deadline <= now + TIMER_SLACK_MS) expired.push(w);
      else if (w.deadline < next) next = w.deadline;
    }
    if (expired.length > 0) this.onExpired(expired);
    if (next !== Infinity) this.#arm(next, now);
  }
}
