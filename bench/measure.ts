/**
 * The load loop every contender runs under: `callers` concurrent async loops, each awaiting one
 * operation after another until a deadline (or until a number of operations has been started),
 * with wall time and this process's CPU time (user + system, all threads) around the whole run.
 */

export interface LoadResult {
  ops: number;
  errors: number;
  /** First error message, when any operation failed. */
  firstError?: string;
  elapsedMs: number;
  cpuUs: number;
}

export interface LoadOptions {
  callers: number;
  /** Stop starting operations after this long... */
  durationMs?: number;
  /** ...or after this many operations were started. */
  maxOps?: number;
  /**
   * Let the event loop turn (setImmediate) after this many operations of one caller. Pools whose
   * acquire and release resolve in microtasks would otherwise starve timers (span export, metric
   * collection) for the whole run. The same for every contender.
   */
  yieldEvery?: number;
}

const immediate = () => new Promise<void>((resolve) => setImmediate(resolve));

export async function runLoad(op: (caller: number, i: number) => Promise<unknown>, options: LoadOptions): Promise<LoadResult> {
  const { callers, durationMs, maxOps, yieldEvery = 0 } = options;
  let started = 0;
  let ops = 0;
  let errors = 0;
  let firstError: string | undefined;
  const t0 = performance.now();
  const deadline = durationMs === undefined ? Infinity : t0 + durationMs;
  const limit = maxOps ?? Infinity;
  const cpu0 = process.cpuUsage();

  const loop = async (caller: number): Promise<void> => {
    let mine = 0;
    while (started < limit && performance.now() < deadline) {
      const i = started++;
      try {
        await op(caller, i);
        ops++;
      } catch (err) {
        errors++;
        firstError ??= err instanceof Error ? err.message : String(err);
      }
      if (yieldEvery > 0 && ++mine % yieldEvery === 0) await immediate();
    }
  };
  const loops: Promise<void>[] = [];
  for (let c = 0; c < callers; c++) loops.push(loop(c));
  await Promise.all(loops);

  const cpu = process.cpuUsage(cpu0);
  const result: LoadResult = { ops, errors, elapsedMs: performance.now() - t0, cpuUs: cpu.user + cpu.system };
  if (firstError !== undefined) result.firstError = firstError;
  return result;
}

export interface MemorySample {
  rssMb: number;
  heapUsedMb: number;
}

/** RSS and V8 heap in use after a full collection (the worker runs with --expose-gc). */
export function memoryAfterGc(): MemorySample {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) {
    gc();
    gc();
  }
  const m = process.memoryUsage();
  return { rssMb: m.rss / 2 ** 20, heapUsedMb: m.heapUsed / 2 ** 20 };
}
