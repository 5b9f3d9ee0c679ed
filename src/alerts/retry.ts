/**
 * Retries a failing delivery with exponential backoff: `attempts` tries in all, waiting
 * `baseDelayMs × factor^(n-1)` (at most `maxDelayMs`, or longer when the receiver asked with
 * Retry-After, still capped) after the n-th failure. Failures marked permanent stop at once.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { RetryOptions } from './channel-config.js';
import { DeliveryError } from './types.js';

export type RetryOutcome<T> = { ok: true; value: T; attempts: number } | { ok: false; error: unknown; attempts: number };

/** The wait after the n-th failed attempt (n from 1). */
function backoffDelay(policy: Required<RetryOptions>, failedAttempt: number, retryAfterMs?: number): number {
  const exp = policy.baseDelayMs * policy.factor ** (failedAttempt - 1);
  return Math.min(policy.maxDelayMs, Math.max(exp, retryAfterMs ?? 0));
}

/**
 * Runs `fn` until it resolves, fails permanently, or has been tried `policy.attempts` times.
 * Never rejects. `onFailure` hears every failed attempt, with the wait before the next one
 * (undefined when giving up).
 */
export async function withRetry<T>(
  fn: (attempt: number) => Promise<T>,
  policy: Required<RetryOptions>,
  onFailure: (attempt: number, error: unknown, nextDelayMs: number | undefined) => void,
): Promise<RetryOutcome<T>> {
  for (let attempt = 1; ; attempt++) {
    try {
      return { ok: true, value: await fn(attempt), attempts: attempt };
    } catch (error) {
      const permanent = error instanceof DeliveryError && error.permanent;
      const last = permanent || attempt >= policy.attempts;
      const delay = last ? undefined : backoffDelay(policy, attempt, error instanceof DeliveryError ? error.retryAfterMs : undefined);
      try {
        onFailure(attempt, error, delay);
      } catch {
        // a throwing logger must not stop the retries
      }
      if (delay === undefined) return { ok: false, error, attempts: attempt };
      await sleep(delay);
    }
  }
}
