/** `db.ready()`: the startup check that fails fast with a typed error. */
import test from 'ava';
import { freePort } from '../support/server.js';
import { DatabasePool } from '../../src/index.js';
import { databaseUrl, newDb } from '../support/helpers.js';

test('ready() resolves when every pool answers SELECT 1', async (t) => {
  const db = newDb(t, { a: { min: 0 }, b: { min: 0 } });
  await t.notThrowsAsync(db.ready());
  await t.notThrowsAsync(db.ready(['b']));
  t.is(db.getDetailedMetrics('a').totals.queries, 1);
});

test('ready() rejects at the first failed connect with CONNECTION_FAILED and the cause, not after the acquire timeout', async (t) => {
  const port = await freePort(); // nothing listens there
  const db = new DatabasePool({
    pools: {
      good: { connection: { connectionString: databaseUrl() }, min: 0 },
      down: { connection: { host: '127.0.0.1', port }, min: 0, acquireTimeoutMs: 60_000 },
    },
    logger: null,
    // A backup-less pool with recovery on keeps callers waiting through reconnects; ready() must not.
    recovery: { enabled: true, baseDelayMs: 60_000 },
  });
  t.teardown(() => db.close({ drainTimeoutMs: 100 }));
  const err = await t.throwsAsync(db.ready());
  t.is((err as { code?: string }).code, 'CONNECTION_FAILED');
  t.is((err as { cause?: { code?: string } }).cause?.code, 'ECONNREFUSED');
  await t.notThrowsAsync(db.ready(['good']));
});

test('ready() with an unknown pool id rejects with POOL_NOT_FOUND', async (t) => {
  const db = newDb(t, { a: { min: 0 } });
  const err = await t.throwsAsync(db.ready(['nope']));
  t.is((err as { code?: string }).code, 'POOL_NOT_FOUND');
});
