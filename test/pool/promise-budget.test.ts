/**
 * Promises a query makes. Under the AsyncLocalStorage context manager every OpenTelemetry setup
 * registers, Node 20 runs async-hook code for each promise, so each one on the statement path is
 * paid for on every query (bench/promises.ts compares the contenders). A count, not a timing: it
 * reads the same on a busy machine. Also: the query config a caller passes comes back unchanged
 * (statements go to pg with a callback, which pg would otherwise write onto the config).
 */
import { createHook } from 'node:async_hooks';
import test from 'ava';
import { newDb } from '../support/helpers.js';

/** pg.Pool makes 3 per query; ours made 25 before the statement path was cut down. */
const BUDGET = 14;

test.serial(`a query on an idle connection makes at most ${BUDGET} promises`, async (t) => {
  const db = newDb(t, { promises: { max: 1 } });
  for (let i = 0; i < 20; i++) await db.query('promises', 'SELECT 1');
  let made = 0;
  const hook = createHook({
    init(_id, type) {
      if (type === 'PROMISE') made++;
    },
  });
  const n = 200;
  hook.enable();
  try {
    for (let i = 0; i < n; i++) await db.query('promises', 'SELECT $1::int AS n', [i]);
  } finally {
    hook.disable();
  }
  // The loop's own await makes one a query.
  const perQuery = made / n - 1;
  t.log(`${perQuery} promises per query`);
  t.true(perQuery <= BUDGET, `${perQuery} promises per query`);
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
