/**
 * Paces connection attempts after failures. generic-pool retries `factory.create` at once, forever,
 * while callers wait: against a down server that is thousands of attempts a second. Here the first
 * attempt after a success goes straight through; after a failure, attempts run one at a time,
 * spaced by an exponential delay with jitter (base × 2^n, capped), until one succeeds.
 */
import { Sleeper } from '../util/sleeper.js';

export class CreateBackoff {
  #failures = 0;
  #nextAttemptAt = 0;
  /** Tail of the chain of attempts while failing: attempts wait for the previous one. */
  #tail: Promise<void> = Promise.resolve();
  readonly #sleeper = new Sleeper();
  #closed = false;

  constructor(
    readonly baseMs: number,
    readonly capMs: number,
  ) {}

  /** Consecutive failed attempts since the last success. */
  get failures(): number {
    return this.#failures;
  }

  /**
   * Runs `attempt` now when healthy, or after the previous attempt and the backoff delay when
   * failing. Records the outcome.
   */
  async run<T>(attempt: (attemptNo: number) => Promise<T>): Promise<T> {
    if (this.#failures === 0) return this.#record(attempt, 1);
    const previous = this.#tail;
    let done!: () => void;
    this.#tail = new Promise<void>((r) => (done = r));
    try {
      await previous;
      const wait = this.#nextAttemptAt - Date.now();
      if (wait > 0) await this.#sleeper.sleep(wait);
      if (this.#closed) throw new Error('pool closed while waiting to reconnect');
      return await this.#record(attempt, this.#failures + 1);
    } finally {
      done();
    }
  }

  async #record<T>(attempt: (attemptNo: number) => Promise<T>, attemptNo: number): Promise<T> {
    try {
      const value = await attempt(attemptNo);
      this.#failures = 0;
      return value;
    } catch (err) {
      this.#failures++;
      const exp = Math.min(this.capMs, this.baseMs * 2 ** Math.min(this.#failures - 1, 20));
      // Equal jitter: half fixed, half random, so many pools don't retry in lockstep.
      this.#nextAttemptAt = Date.now() + exp / 2 + Math.random() * (exp / 2);
      throw err;
    }
  }

  /** Forgets past failures: the next attempt runs at once. */
  reset(): void {
    this.#failures = 0;
    this.#nextAttemptAt = 0;
  }

  /** Wakes every sleeping attempt (they then fail) so closing a pool never waits on a backoff. */
  close(): void {
    this.#closed = true;
    this.#sleeper.wakeAll();
  }
}
