/**
 * Background load for the fault scenarios: `workers` callers each running one call after another
 * until stopped, every call tracked by a {@link CallLedger} (deadline, outcome, code). A caller whose
 * call failed waits a moment before the next, as a real client would. Records when each success
 * started and ended, to tell when the pool served again after a fault.
 */
import { CallLedger, eventually } from './outcomes.js';

export class LoadDriver {
  readonly ledger = new CallLedger();
  /** [started, ended] of each successful call (Date.now() ms). */
  readonly successes: [number, number][] = [];
  /** Duration of each successful call, ms, with when it started. */
  readonly latencies: { at: number; ms: number }[] = [];
  #running = false;
  #done: Promise<void> | undefined;

  constructor(
    private readonly call: (worker: number) => Promise<unknown>,
    private readonly workers: number,
    private readonly deadlineMs: number,
    private readonly backoffMs = 10,
  ) {}

  start(): this {
    this.#running = true;
    this.#done = Promise.all(
      Array.from({ length: this.workers }, async (_, w) => {
        while (this.#running) {
          const startedAt = Date.now();
          const r = await this.ledger.track(() => this.call(w), this.deadlineMs);
          if (r.ok) {
            this.successes.push([startedAt, Date.now()]);
            this.latencies.push({ at: startedAt, ms: r.ms });
          } else {
            await new Promise((res) => setTimeout(res, this.backoffMs));
          }
        }
      }),
    ).then(() => undefined);
    return this;
  }

  get served(): number {
    return this.ledger.served;
  }

  get failed(): number {
    return this.ledger.requests - this.ledger.served;
  }

  /** Waits until `n` more calls have succeeded (false if not within `timeoutMs`). */
  waitServed(n: number, timeoutMs = 15_000): Promise<boolean> {
    const target = this.ledger.served + n;
    return eventually(() => this.ledger.served >= target, timeoutMs);
  }

  /** Waits until `n` more calls have failed. */
  waitFailed(n: number, timeoutMs = 15_000): Promise<boolean> {
    const target = this.failed + n;
    return eventually(() => this.failed >= target, timeoutMs);
  }

  /** Ms from `t` to the end of the first successful call that started at or after `t`. */
  recoveredAfter(t: number): number | undefined {
    const first = this.successes.find(([s]) => s >= t);
    return first ? first[1] - t : undefined;
  }

  /** Stops the callers and waits for the calls in flight (bounded by their deadlines). */
  async stop(): Promise<number> {
    this.#running = false;
    await this.#done;
    return this.ledger.drain();
  }
}
