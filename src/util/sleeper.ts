/**
 * Cancellable sleeps: `wakeAll()` ends every pending one at once, so closing a pool or stopping a
 * recovery never waits out a backoff.
 */
export class Sleeper {
  readonly #pending = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>();

  /** Resolves after `ms`, or earlier on `wakeAll()`. With `unref`, it does not keep the process alive. */
  sleep(ms: number, options: { unref?: boolean } = {}): Promise<void> {
    return new Promise((resolve) => {
      const entry = {
        resolve,
        timer: setTimeout(() => {
          this.#pending.delete(entry);
          resolve();
        }, ms),
      };
      if (options.unref) entry.timer.unref();
      this.#pending.add(entry);
    });
  }

  wakeAll(): void {
    for (const e of this.#pending) {
      clearTimeout(e.timer);
      e.resolve();
    }
    this.#pending.clear();
  }
}
