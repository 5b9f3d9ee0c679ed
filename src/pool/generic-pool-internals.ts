/**
 * What generic-pool 3.9 (pinned exactly in package.json) cannot do through its API, done through its
 * internals, each guarded so that a different version fails loudly or degrades to the API.
 *
 * generic-pool cannot withdraw a queued acquire: a caller we fail early (the server is down) would
 * stay in its queue until the acquire timeout, and each create failure would start another create
 * for it. This reaches into generic-pool 3.9's queue (pinned exactly in package.json) and rejects
 * those requests with an error named `TimeoutError`, which is how generic-pool itself removes one.
 * Guarded: if the internals differ, it does nothing and the requests expire on their own timeout.
 */
interface Deferredish {
  promise: Promise<unknown>;
  reject(reason: Error): void;
}
interface Node {
  data: Deferredish;
  next: Node | null;
}
interface QueueInternals {
  _waitingClientsQueue?: { _slots?: { _list?: { head: Node | null } }[] };
}

class WithdrawnError extends Error {
  override name = 'TimeoutError';
}

/** Withdraws the queued requests whose promises are in `requests`; returns how many it found. */
export function withdrawQueuedRequests(pool: object, requests: ReadonlySet<Promise<unknown>>): number {
  const slots = (pool as QueueInternals)._waitingClientsQueue?._slots;
  if (!Array.isArray(slots) || requests.size === 0) return 0;
  const found: Deferredish[] = [];
  for (const slot of slots) {
    for (let node = slot._list?.head ?? null; node !== null; node = node.next) {
      if (requests.has(node.data.promise)) found.push(node.data);
    }
  }
  // Reject after the walk: rejection unlinks nodes (asynchronously, but don't rely on it).
  for (const request of found) request.reject(new WithdrawnError('withdrawn by db-pool-otel'));
  return found.length;
}

interface PoolInternals {
  _config?: {
    max: number;
    min: number;
    maxWaitingClients?: number;
    numTestsPerEvictionRun: number;
  };
  _dispense?: () => void;
  _ensureMinimum?: () => void;
  _evict?: () => void;
  _evictor?: { evict: unknown };
  _descheduleEvictorRun?: () => void;
}

/** generic-pool's evictor hook: decides, per idle resource, whether to close it. */
export type EvictFn<T> = (pooled: { obj: T; lastIdleTime: number }, availableCount: number) => boolean;

/** Replaces generic-pool's idle-time-only evictor. Returns false if the internals are not there. */
export function installEvictor<T>(pool: object, evict: EvictFn<T>): boolean {
  const p = pool as PoolInternals;
  if (!p._evictor) return false;
  p._evictor = { evict: (_config: unknown, pooled: { obj: T; lastIdleTime: number }, available: number) => evict(pooled, available) };
  return true;
}

/**
 * Changes a running pool's limits (generic-pool reads them from `_config` on each decision), then
 * lets it act on them at once: serve waiters after a raise, create up to a new min.
 */
export function setLimits(pool: object, limits: { min: number; max: number; maxWaitingClients: number }): void {
  const p = pool as PoolInternals;
  if (!p._config) throw new Error('generic-pool internals not found: cannot resize a running pool');
  p._config.max = limits.max;
  p._config.min = limits.min;
  p._config.maxWaitingClients = limits.maxWaitingClients;
  p._config.numTestsPerEvictionRun = Math.max(3, limits.max);
  p._ensureMinimum?.();
  p._dispense?.();
}

interface TableInternals {
  _resourceLoans?: Map<unknown, unknown>;
  _testOnBorrowResources?: Set<unknown>;
  _validationOperations?: Set<unknown>;
}

/**
 * Gives generic-pool's per-borrow Map and Sets fresh hash tables. Every borrow adds and deletes an
 * entry in each, so V8 rehashes their tables every few borrows; once a table has been promoted to
 * the old generation (the pool sat idle through two young-generation collections), every later
 * rehash allocates in the old generation, and steady load then runs into a full collection every
 * few milliseconds (acquire + release 2-4x slower, measured in bench/). A copy starts young and
 * stays young while it is churned. At most `max` entries are copied. The validation set's entries
 * are deleted through a reference captured when they were added, so it is replaced only empty.
 */
export function refreshTables(pool: object): void {
  const p = pool as TableInternals;
  if (p._resourceLoans instanceof Map) p._resourceLoans = new Map(p._resourceLoans);
  if (p._testOnBorrowResources instanceof Set) p._testOnBorrowResources = new Set(p._testOnBorrowResources);
  if (p._validationOperations instanceof Set && p._validationOperations.size === 0) p._validationOperations = new Set();
}

/**
 * The idle resources, most recently returned first (the pool lends from that end: fifo false).
 * Empty when the internals are not there.
 */
export function idleResources<T>(pool: object): Iterable<{ obj: T; lastIdleTime: number }> {
  const available = (pool as { _availableObjects?: Iterable<{ obj: T; lastIdleTime: number }> })._availableObjects;
  return available && typeof available[Symbol.iterator] === 'function' ? available : [];
}

/** Runs an eviction pass now instead of at the next interval. */
export function evictNow(pool: object): void {
  (pool as PoolInternals)._evict?.();
}

/** Stops the eviction timer (for a pool closed without a clean drain). */
export function stopEvictor(pool: object): void {
  (pool as PoolInternals)._descheduleEvictorRun?.();
}
