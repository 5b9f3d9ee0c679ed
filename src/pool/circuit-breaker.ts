/**
 * A pool's circuit breaker: after `circuitThreshold` connect failures in a row with no connection
 * open, calls fail at once with CIRCUIT_OPEN instead of waiting out their acquire timeout; after
 * `circuitResetMs` one call goes through (half-open) to try the server; a connect that succeeds
 * closes it. State only: the pool decides what to fail and what to publish.
 */
import type { FailureBehaviour } from './pool-types.js';

export type CircuitState = 'closed' | 'open' | 'half-open';

export class CircuitBreaker {
  state: CircuitState = 'closed';
  #openedAt = 0;

  constructor(private readonly behaviour: FailureBehaviour) {}

  /** Whether a call may go through: closed, or open for `circuitResetMs` already (it turns half-open: one trial). */
  admits(): boolean {
    if (this.state === 'closed') return true;
    if (this.state === 'open' && Date.now() - this.#openedAt >= this.behaviour.circuitResetMs) {
      this.state = 'half-open';
      return true;
    }
    return false;
  }

  /**
   * A connect failed while the pool holds no connection (`failures` in a row so far). Returns true
   * when this failure opened the circuit (a failed half-open trial at the threshold opens it again:
   * another opening). Below the threshold, a failed trial still reopens it, without that news.
   */
  connectFailed(failures: number): boolean {
    const threshold = this.behaviour.circuitThreshold;
    if (threshold > 0 && failures >= threshold && this.state !== 'open') {
      this.state = 'open';
      this.#openedAt = Date.now();
      return true;
    }
    if (this.state === 'half-open') {
      this.state = 'open';
      this.#openedAt = Date.now();
    }
    return false;
  }

  /** A connect succeeded; true when the circuit was not closed. */
  close(): boolean {
    if (this.state === 'closed') return false;
    this.state = 'closed';
    return true;
  }
}
