/**
 * Log-scale bucket arithmetic shared by the histograms: bucket i covers (MIN·γ^(i-1), MIN·γ^i], so
 * reporting a bucket's geometric middle is within ±1 % of any value in it (γ = 1.02), whatever the
 * magnitude, in a fixed number of buckets (0.001 ms to 10⁷ ms in 1 170).
 */
const GAMMA = 1.02;
const LOG_GAMMA = Math.log(GAMMA);
const MIN_MS = 0.001;
/** Number of buckets; the last one also holds everything above 10⁷ ms. */
export const BUCKETS = 1_170;

/** The bucket of a duration in milliseconds. */
export function bucketOf(ms: number): number {
  if (!(ms > MIN_MS)) return 0;
  const i = Math.max(1, Math.ceil(Math.log(ms / MIN_MS) / LOG_GAMMA - 1e-9));
  return i < BUCKETS ? i : BUCKETS - 1;
}

/** The representative (geometric middle) of a bucket, in milliseconds. */
export function valueOf(bucket: number): number {
  if (bucket <= 0) return MIN_MS;
  return MIN_MS * GAMMA ** (bucket - 0.5);
}

/**
 * The nearest-rank percentile (p in 0..1) from bucket counts, clamped to the exact min and max seen.
 * `buckets` are (bucket, count) pairs in bucket order, from a dense window or a sparse map alike.
 */
export function percentileOf(p: number, total: number, min: number, max: number, buckets: Iterable<[bucket: number, count: number]>): number {
  if (total === 0) return 0;
  const rank = Math.max(1, Math.ceil(p * total));
  let seen = 0;
  for (const [bucket, count] of buckets) {
    seen += count;
    if (seen >= rank) return Math.min(max, Math.max(min, valueOf(bucket)));
  }
  return max;
}
