/**
 * Promises a query makes. Under the AsyncLocalStorage context manager every OpenTelemetry setup
 * registers, Node 20 runs async-hook code for each promise, so each one on the statement path is
 * paid for on every query (bench/promises.ts compares the contenders). A count, not a timing: it
 * reads the same on a busy machine. Also: the query config a caller passes comes back unchanged
 * (statements go to pg with a callback, which pg would otherwise write onto the config).
 */
import { createHook } from 'node:async_hooks';
import { tracingChannel } from 'node:diagnostics_channel';
import test from 'ava';
import { CHANNELS } from '../../src/index.js';
import { newDb } from '../support/helpers.js';

/**
 * pg.Pool makes 3 per query; ours made 25 before the statement path was cut down, 13 before db.query
 * took its loan and sent its statement with callbacks. Four of those left are generic-pool's own
 * (its request and loan Deferreds, its queue's catch, release's resolved promise).
 */
const BUDGET = 8;
/** With the acquire and query channels traced (any instrumentation): the same path, publishing. */
const TRACED_BUDGET = 8;

async function promisesPerQuery(db: ReturnType<typeof newDb>, poolId: string): Promise<number> {
  for (let i = 0; i < 20; i++) await db.query(poolId, 'SELECT 1');
  let made = 0;
  const hook = createHook({
    init(_id, type) {
      if (type === 'PROMISE') made++;
    },
  });
  const n = 200;
  hook.enable();
  try {
    for (let i = 0; i < n; i++) await db.query(poolId, 'SELECT $1::int AS n', [i]);
  } finally {
    hook.disable();
  }
  // The loop's own await makes one a query.
  return made / n - 1;
}

test.serial(`a query on an idle connection makes at most ${BUDGET} promises`, async (t) => {
  const db = newDb(t, { promises: { max: 1 } });
  const perQuery = await promisesPerQuery(db, 'promises');
  t.log(`${perQuery} promises per query`);
  t.true(perQuery <= BUDGET, `${perQuery} promises per query`);
});

test.serial(`traced, a query makes at most ${TRACED_BUDGET} promises`, async (t) => {
  const handlers = { start() {}, end() {}, asyncStart() {}, asyncEnd() {}, error() {} };
  const channels = [tracingChannel(CHANNELS.acquire), tracingChannel(CHANNELS.query)];
  for (const ch of channels) ch.subscribe(handlers);
  t.teardown(() => {
    for (const ch of channels) ch.unsubscribe(handlers);
  });
  const db = newDb(t, { traced: { max: 1 } });
  const perQuery = await promisesPerQuery(db, 'traced');
  t.log(`${perQuery} promises per query`);
  t.true(perQuery <= TRACED_BUDGET, `${perQuery} promises per query`);
});

test.serial('a query config object is sent as it is and left unchanged', async (t) => {
  const db = newDb(t, { configs: { max: 1 } });
  const config = Object.freeze({ text: 'SELECT $1::int AS n', values: [7] });
  const { rows } = await db.query<{ n: number }>('configs', config);
  t.is(rows[0]?.n, 7);
  t.deepEqual(Object.keys(config), ['text', 'values'], 'no callback or other field written onto it');
  const named = { name: 'promise-budget-named', text: 'SELECT $1::int AS n' };
  for (const v of [1, 2]) t.is((await db.query<{ n: number }>('configs', named, [v])).rows[0]?.n, v);
  t.deepEqual(Object.keys(named), ['name', 'text']);
});
