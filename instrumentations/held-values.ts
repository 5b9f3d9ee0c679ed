/**
 * Histogram values held off the statement's path and handed to the SDK in one tight loop.
 *
 * Why: a `Histogram.record()` call costs the SDK an attribute hash (sorted keys, a string built),
 * a map lookup and a bucket search (about 2 µs for the seven attributes of the operation duration,
 * docs/performance.md). Run between socket reads, each call finds that code and data cold; in a
 * loop it runs warm (on the stub, the metrics case spends 12 % less CPU this way). So the channel
 * handlers only write (histogram, value, attributes) into three preallocated arrays, and the
 * values reach the SDK at the start of each collection (the meter's batch callback, or the
 * producer's collect), when the arrays are full, on disable(), and before the instruments change.
 *
 * What that changes for a reader: nothing in what is exported (the SDK's histograms ignore the
 * time of a record except to start a new series, and get no context from us: ours records never
 * carried one); a value reaches the SDK later, but always before the collection that follows it.
 */
import { diag, type Attributes, type Histogram } from '@opentelemetry/api';

/** Values held at most: 24 KiB of arrays; at 20 000 statements/s about one flush per 20 ms. */
export const HELD_MAX = 1024;

export class HeldValues {
  #count = 0;
  readonly #values = new Float64Array(HELD_MAX);
  /** The instrument each value was recorded against (values go where they were recorded, even if the instruments changed since). */
  readonly #into: (Histogram | undefined)[] = Array.from({ length: HELD_MAX }, () => undefined);
  readonly #attributes: (Attributes | undefined)[] = Array.from({ length: HELD_MAX }, () => undefined);

  /** Values held now. */
  get count(): number {
    return this.#count;
  }

  /** Holds one histogram value; hands every held value to the SDK when the arrays are full. */
  record(into: Histogram, value: number, attributes: Attributes): void {
    const i = this.#count;
    this.#values[i] = value;
    this.#into[i] = into;
    this.#attributes[i] = attributes;
    this.#count = i + 1;
    if (i + 1 === HELD_MAX) this.flush();
  }

  /** Records every held value into its histogram, in the order they came. */
  flush(): void {
    const n = this.#count;
    // First: a record that throws (a meter of the user's) must not make the next flush repeat values.
    this.#count = 0;
    const values = this.#values;
    const into = this.#into;
    const attributes = this.#attributes;
    for (let i = 0; i < n; i++) {
      try {
        into[i]!.record(values[i]!, attributes[i]);
      } catch (err) {
        diag.error('db-pool-otel: a histogram record threw', err);
      }
      // Drop the references: a removed pool's attribute sets are not kept alive by the arrays.
      into[i] = undefined;
      attributes[i] = undefined;
    }
  }
}
