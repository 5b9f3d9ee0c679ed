/** Events counted over a rolling window of slots (the counting half of WindowedHistogram). */
export class WindowedCounter {
  readonly #epochs: Float64Array;
  readonly #counts: Float64Array;
  readonly #slotMs: number;

  constructor(windowMs: number, slots = 6) {
    this.#slotMs = windowMs / slots;
    this.#epochs = new Float64Array(slots).fill(-1);
    this.#counts = new Float64Array(slots);
  }

  add(n = 1, now = performance.now()): void {
    const epoch = Math.floor(now / this.#slotMs);
    const i = epoch % this.#epochs.length;
    if (this.#epochs[i] !== epoch) {
      this.#epochs[i] = epoch;
      this.#counts[i] = 0;
    }
    this.#counts[i]! += n;
  }

  total(now = performance.now()): number {
    const epoch = Math.floor(now / this.#slotMs);
    let sum = 0;
    for (let i = 0; i < this.#epochs.length; i++) {
      const e = this.#epochs[i]!;
      if (e > epoch - this.#epochs.length && e <= epoch) sum += this.#counts[i]!;
    }
    return sum;
  }

  clear(): void {
    this.#epochs.fill(-1);
    this.#counts.fill(0);
  }
}
