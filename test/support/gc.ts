/** A full garbage collection on demand, with or without --expose-gc, and memory read after it. */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gcFn: (() => void) | undefined;

export function collectGarbage(): void {
  if (!gcFn) {
    const exposed = (globalThis as { gc?: () => void }).gc;
    if (exposed) gcFn = exposed;
    else {
      setFlagsFromString('--expose-gc');
      gcFn = runInNewContext('gc') as () => void;
    }
  }
  // Twice: the first pass can leave objects whose finalizers free more.
  gcFn();
  gcFn();
}

/** Heap used and RSS in MB after a full collection. */
export async function settledMemory(): Promise<{ heapMb: number; rssMb: number }> {
  await new Promise((r) => setImmediate(r));
  collectGarbage();
  const m = process.memoryUsage();
  return { heapMb: m.heapUsed / 1048576, rssMb: m.rss / 1048576 };
}
