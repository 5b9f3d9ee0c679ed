/**
 * The pool's queue and circuit logic on their own, in memory (no server): the waiter list and its
 * acquire-timeout timer, and the circuit breaker's states. The real-PostgreSQL tests cover the
 * same paths end to end; these pin the rules down and run in milliseconds.
 */
import test from 'ava';
import { createPool } from 'generic-pool';
import type { ResolvedPoolConfig } from '../../src/config/config.js';
import { CircuitBreaker } from '../../src/pool/circuit-breaker.js';
import { Lender, PRIORITY_RANGE } from '../../src/pool/lender.js';
import type { LentConnection, PooledConnection } from '../../src/pool/pooled-connection.js';
import { PoolStats } from '../../src/stats/pool-stats.js';
import { type Waiter, WaitingCallers } from '../../src/pool/waiters.js';

function waiter(deadline: number, settled: string[], name: string): Waiter {
  return {
    failFast: false,
    deadline,
    resolve: () => settled.push(`${name} served`),
    reject: (err) => settled.push(`${name} ${err.message}`),
    prev: undefined,
    next: undefined,
    queued: false,
  };
}

/** A WaitingCallers whose expiries are collected; `expired()` resolves at the next expiry. */
function callers() {
  const batches: string[][] = [];
  let notify: (() => void) | undefined;
  const names = new Map<Waiter, string>();
  // No generic-pool behind it: withdrawing finds no queue and does nothing (guarded).
  const list = new WaitingCallers({}, (expired) => {
    batches.push(expired.map((w) => names.get(w)!));
    for (const w of list.take(expired)) w.reject(new Error('timed out'));
    notify?.();
  });
  return {
    list,
    batches,
    add(w: Waiter, name: string) {
      names.set(w, name);
      list.add(w, performance.now());
    },
    expired: () => new Promise<void>((resolve) => (notify = resolve)),
  };
}

test('waiters are kept oldest first; take() and delete() unlink them, even while iterating', (t) => {
  const settled: string[] = [];
  const c = callers();
  const far = performance.now() + 60_000;
  const ws = ['a', 'b', 'c', 'd'].map((n) => {
    const w = waiter(far, settled, n);
    c.add(w, n);
    return w;
  });
  t.is(c.list.size, 4);
  for (const w of c.list) if (w === ws[1]) c.list.delete(w);
  t.deepEqual([...c.list], [ws[0], ws[2], ws[3]]);
  const taken = c.list.take([ws[3]!, ws[0]!]);
  t.deepEqual(taken, [ws[3], ws[0]]);
  t.deepEqual([...c.list], [ws[2]]);
  t.false(ws[0]!.queued);
  t.true(ws[2]!.queued);
  // Deleting one already off the list changes nothing.
  c.list.delete(ws[0]!);
  t.is(c.list.size, 1);
  c.list.stop();
});

test('each waiter expires at its own deadline, in deadline order, and the timer re-arms for the next', async (t) => {
  const settled: string[] = [];
  const c = callers();
  const now = performance.now();
  c.add(waiter(now + 60_000, settled, 'late'), 'late');
  let next = c.expired();
  c.add(waiter(now + 60, settled, 'second'), 'second');
  // Added after, due first: the timer moves earlier.
  c.add(waiter(now + 20, settled, 'first'), 'first');
  await next;
  next = c.expired();
  t.deepEqual(c.batches, [['first']]);
  t.true(performance.now() - now >= 19, 'not before its deadline');
  await next;
  t.deepEqual(c.batches, [['first'], ['second']]);
  t.true(performance.now() - now >= 59);
  t.deepEqual(settled, ['first timed out', 'second timed out']);
  t.is(c.list.size, 1, 'the one with a later deadline still waits');
  c.list.stop();
});

test('fail() rejects the waiters it picks (all by default) and leaves the rest queued', (t) => {
  const settled: string[] = [];
  const c = callers();
  const far = performance.now() + 60_000;
  const probe = { ...waiter(far, settled, 'probe'), failFast: true };
  c.add(probe, 'probe');
  c.add(waiter(far, settled, 'caller'), 'caller');
  c.list.fail(new Error('server down'), (w) => w.failFast);
  t.deepEqual(settled, ['probe server down']);
  t.is(c.list.size, 1);
  c.list.fail(new Error('closed'));
  t.deepEqual(settled, ['probe server down', 'caller closed']);
  t.is(c.list.size, 0);
  c.list.stop();
});

test('the circuit opens after `circuitThreshold` failures in a row, once; a threshold of 0 never opens it', (t) => {
  const breaker = new CircuitBreaker({ failFast: true, circuitThreshold: 3, circuitResetMs: 60_000 });
  t.false(breaker.connectFailed(1));
  t.false(breaker.connectFailed(2));
  t.is(breaker.state, 'closed');
  t.true(breaker.admits());
  t.true(breaker.connectFailed(3), 'the failure that opens it says so (counted and published once)');
  t.is(breaker.state, 'open');
  t.false(breaker.connectFailed(4), 'already open: not opened again');
  t.false(breaker.admits(), 'open, reset time not reached: calls fail at once');

  const never = new CircuitBreaker({ failFast: true, circuitThreshold: 0, circuitResetMs: 0 });
  for (let i = 1; i <= 100; i++) t.false(never.connectFailed(i));
  t.is(never.state, 'closed');
});

test('after circuitResetMs one call goes through (half-open); its failure opens it again, a success closes it', (t) => {
  const breaker = new CircuitBreaker({ failFast: true, circuitThreshold: 1, circuitResetMs: 0 });
  t.true(breaker.connectFailed(1));
  t.true(breaker.admits(), 'the trial call');
  t.is(breaker.state, 'half-open');
  t.false(breaker.admits(), 'only one trial at a time');
  t.true(breaker.connectFailed(2), 'a failed trial at the threshold is another opening');
  t.is(breaker.state, 'open');
  t.true(breaker.admits());
  // The connect backoff was reset meanwhile (cleanupPool): below the threshold, it reopens without news.
  t.false(breaker.connectFailed(0));
  t.is(breaker.state, 'open');
  t.true(breaker.admits());
  t.true(breaker.close(), 'closing an open circuit is news (published)');
  t.is(breaker.state, 'closed');
  t.false(breaker.close(), 'closing a closed one is not');
});

/**
 * A Lender over a generic-pool of fake connections (max 1), set up as ManagedPool sets it up; the
 * test on borrow fails for the connections named in `failing` (at once, or after a round trip).
 */
function lender(failing: Set<number>, mode: 'at once' | 'after a round trip' | 'by rejecting') {
  let nextId = 1;
  const gpool = createPool<LentConnection>(
    {
      create: async () => ({ id: nextId++, loanId: 0, useCount: 0, returnedAt: 0, client: {} }) as unknown as LentConnection,
      destroy: async () => {},
    },
    { max: 1, testOnBorrow: false, priorityRange: PRIORITY_RANGE },
  );
  const stats = new PoolStats(60_000);
  const config = { acquireTimeoutMs: 60_000, allowExitOnIdle: false } as ResolvedPoolConfig;
  const l = new Lender('p', gpool, {
    loanOwner: { poolId: 'p', runQuery: () => Promise.reject(new Error('no')), releaseLoan: (loan) => void gpool.release(loan.connection) },
    config: () => config,
    stats: () => stats,
    connectFailure: () => undefined,
    check: (conn) => {
      const ok = !failing.has(conn.id);
      if (mode === 'at once') return ok;
      if (mode === 'after a round trip' || ok) return Promise.resolve(ok);
      return Promise.reject(new Error('the check failed to answer'));
    },
  });
  /** A loan through the lender's callbacks, as the pool asks for one. */
  const acquire = () => new Promise<PooledConnection>((resolve, reject) => l.lend(undefined, undefined, false, undefined, resolve, reject));
  return { l, gpool, acquire };
}

for (const mode of ['at once', 'after a round trip', 'by rejecting'] as const) {
  test(`a caller whose connection fails the test on borrow (${mode}) is served before those who asked after it`, async (t) => {
    const failing = new Set<number>();
    const { l, gpool, acquire } = lender(failing, mode);
    const first = await acquire();
    t.is(first.connectionId, 1);
    const order: string[] = [];
    const a = acquire().then((loan) => (order.push(`a on ${loan.connectionId}`), loan));
    const b = acquire().then((loan) => (order.push(`b on ${loan.connectionId}`), loan));
    // Connection 1 goes bad while lent: handed to a, it fails the test, is closed, and a asks again.
    failing.add(1);
    first.release();
    (await a).release();
    (await b).release();
    t.deepEqual(order, ['a on 2', 'b on 2']);
    l.waiters.stop();
    await gpool.drain();
    await gpool.clear();
  });
}
