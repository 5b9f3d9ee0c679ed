/**
 * Durations over a rolling window: the window is cut into slots (6 by default); each slot is a dense
 * log-bucket histogram plus count, sum, min, max and error count. Recording is O(1) and allocates
 * nothing; a slot older than the window is cleared when its turn comes round again, so memory is
 * fixed (slots × 1 170 counters) however much traffic passes.
 */
import { BUCKETS, bucketOf, percentileOf } from './log-histogram.js';

class Slot {
  epoch = -1;
  readonly counts = new Uint32Array(BUCKETS);
  count = 0;
  errors = 0;
  sum = 0;
  min = Infinity;
  max = 0;

  reset(epoch: number): void {
    this.epoch = epoch;
    this.counts.fill(0);
    this.count = 0;
    this.errors = 0;
    this.sum = 0;
    this.min = Infinity;
    this.max = 0;
  }
}

/** A summary of the window. Durations in milliseconds. */
export interface WindowSummary {
  count: number;
  errors: number;
  mean: number;
  min: number;
  max: number;
  p50: number;
  p95: number;
  p99: number;
  /** Seconds of the window actually covered (shorter than the window while the pool is young). */
  seconds: number;
}

export class WindowedHistogram {
  readonly #slots: Slot[];
  readonly #slotMs: number;
  readonly #createdAt: number;

  constructor(
    readonly windowMs: number,
    slots = 6,
    now = performance.now(),
  ) {
    this.#slotMs = windowMs / slots;
    this.#slots = Array.from({ length: slots }, () => new Slot());
    this.#createdAt = now;
  }

  /** Records one duration (ms) at time `now` (performance.now()). */
  record(ms: number, error = false, now = performance.now()): void {
    const epoch = Math.floor(now / this.#slotMs);
    const slot = this.#slots[epoch % this.#slots.length]!;
    if (slot.epoch !== epoch) slot.reset(epoch);
    slot.counts[bucketOf(ms)]!++;
    slot.count++;
    if (error) slot.errors++;
    slot.sum += ms;
    if (ms < slot.min) slot.min = ms;
    if (ms > slot.max) slot.max = ms;
  }

  summary(now = performance.now()): WindowSummary {
    const epoch = Math.floor(now / this.#slotMs);
    const live = this.#slots.filter((s) => s.epoch > epoch - this.#slots.length && s.epoch <= epoch);
    let count = 0;
    let errors = 0;
    let sum = 0;
    let min = Infinity;
    let max = 0;
    for (const s of live) {
      count += s.count;
      errors += s.errors;
      sum += s.sum;
      if (s.min < min) min = s.min;
      if (s.max > max) max = s.max;
    }
    const merged = count > 0 ? mergeCounts(live) : undefined;
    const pct = (p: number) => (merged ? percentileOf(p, count, min, max, merged) : 0);
    return {
      count,
      errors,
      mean: count > 0 ? sum / count : 0,
      min: count > 0 ? min : 0,
      max,
      p50: pct(0.5),
      p95: pct(0.95),
      p99: pct(0.99),
      seconds: Math.max(0.001, Math.min(this.windowMs, now - this.#createdAt) / 1000),
    };
  }

  /** Forgets everything recorded. */
  clear(): void {
    for (const s of this.#slots) s.reset(-1);
  }
}

/** Non-empty buckets of the slots, summed, in bucket order (read once per percentile). */
function mergeCounts(slots: Slot[]): [number, number][] {
  const merged = new Uint32Array(BUCKETS);
  for (const s of slots) for (let i = 0; i < BUCKETS; i++) merged[i]! += s.counts[i]!;
  const out: [number, number][] = [];
  for (let i = 0; i < BUCKETS; i++) if (merged[i]! > 0) out.push([i, merged[i]!]);
  return out;
}
