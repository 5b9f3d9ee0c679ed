/**
 * Data integrity under a careless caller: a release with statements still in flight, a COMMIT that
 * PostgreSQL answered with ROLLBACK, a query cut off by a drain timeout, and arguments that are not
 * SQL. Each of these once lost an acknowledged write or threw an untyped error.
 */
import test, { type ExecutionContext } from 'ava';
import knex from 'knex';
import type pg from 'pg';
import { knexConfig } from '../../src/adapters/knex-config.js';
import { pgPool } from '../../src/adapters/pg-pool.js';
import { DbPoolError, type PendingReleaseReport } from '../../src/index.js';
import { adminClient, eventually, newDb, uniqueName } from '../support/helpers.js';

/** A table of its own, dropped when the test ends; `count()` reads it from outside any pool. */
async function table(t: ExecutionContext) {
  const name = uniqueName('integrity');
  const admin = await adminClient(t);
  await admin.query(`CREATE TABLE ${name} (id int PRIMARY KEY, note text)`);
  t.teardown(() => admin.query(`DROP TABLE IF EXISTS ${name}`).then(() => undefined));
  const count = async () => Number((await admin.query<{ n: string }>(`SELECT count(*) AS n FROM ${name}`)).rows[0]!.n);
  return { name, count };
}

test("a release with BEGIN still in flight never lends the connection into that transaction: the next caller's write is committed", async (t) => {
  const { name, count } = await table(t);
  const db = newDb(t, { main: { max: 1, min: 0 } });
  const reports: PendingReleaseReport[] = [];
  db.on('releasedWithPending', (r) => reports.push(r));
  const careless = await db.acquire('main');
  const begun = careless.query('BEGIN'); // the missing await
  careless.release();
  t.is(reports.length, 1, 'the holder is told, naming the loan');
  t.like(reports[0], { poolId: 'main', loanId: careless.id, pendingStatements: 1 });

  const res = await db.query('main', `INSERT INTO ${name} VALUES (1, 'acknowledged')`);
  t.is(res.rowCount, 1);
  await begun;
  // Read from another session: the acknowledged write is there, not inside somebody's open transaction.
  t.is(await count(), 1);
  // The connection that held the open BEGIN was closed, not reused.
  const status = db.getPoolStatus('main');
  t.true(status.total <= 1);
});

test('withConnection and the pg.Pool face hold back a connection released with BEGIN in flight', async (t) => {
  const { name, count } = await table(t);
  const db = newDb(t, { main: { max: 1, min: 0 } });
  let begun: Promise<unknown> | undefined;
  await db.withConnection('main', async (conn) => {
    begun = conn.query('BEGIN');
  });
  await db.query('main', `INSERT INTO ${name} VALUES (1, 'a')`);
  await begun;
  t.is(await count(), 1);

  const face = pgPool(db, 'main');
  const client = await face.connect();
  const again = client.query('BEGIN');
  client.release();
  await face.query(`INSERT INTO ${name} VALUES (2, 'b')`);
  await again;
  t.is(await count(), 2);
});

test('a release with a harmless statement in flight gives the connection back once it is answered', async (t) => {
  const db = newDb(t, { main: { max: 1, min: 0 } });
  const conn = await db.acquire('main');
  const pid = conn.processId;
  const late = conn.query<{ n: number }>('SELECT 1 AS n, pg_sleep(0.05)');
  conn.release();
  t.is((await late).rows[0]!.n, 1);
  const { rows } = await db.query<{ pid: number }>('main', 'SELECT pg_backend_pid() AS pid');
  t.is(rows[0]!.pid, pid ?? -1, 'idle after its statement finished: reused');
});

test('transaction() rejects with TRANSACTION_ROLLED_BACK when COMMIT was answered with ROLLBACK, and nothing is written', async (t) => {
  const { name, count } = await table(t);
  const db = newDb(t, { main: { max: 1, min: 0 } });
  const err = await t.throwsAsync(
    db.transaction('main', async (tx) => {
      await tx.query(`INSERT INTO ${name} VALUES (1, 'lost')`);
      await tx.query('SELECT 1/0').catch(() => undefined); // caught: the transaction is now aborted
      return 'looks fine';
    }),
  );
  t.true(err instanceof DbPoolError);
  t.is((err as DbPoolError).code, 'TRANSACTION_ROLLED_BACK');
  t.is((err as unknown as { sqlState?: string }).sqlState, '22012');
  t.is(await count(), 0);
  // The connection is clean for the next caller.
  const { rows } = await db.query<{ n: number }>('main', 'SELECT 1 AS n');
  t.is(rows[0]!.n, 1);
  // A ROLLBACK the caller asked for is not an error.
  await db.withConnection('main', async (c) => {
    await c.query('BEGIN');
    const r = await c.query('ROLLBACK');
    t.is(r.command, 'ROLLBACK');
  });
});

test('knex transactions and a COMMIT sent through the pg.Pool face reject when the server rolled back', async (t) => {
  const { name, count } = await table(t);
  const db = newDb(t, { main: { max: 2, min: 0 } });
  const k = knex(knexConfig(db, 'main'));
  t.teardown(() => k.destroy());
  const viaKnex = await t.throwsAsync(
    k.transaction(async (trx) => {
      await trx(name).insert({ id: 1, note: 'knex' });
      await trx.raw('SELECT 1/0').catch(() => undefined);
    }),
  );
  t.is((viaKnex as { code?: string }).code, 'TRANSACTION_ROLLED_BACK');

  const face = pgPool(db, 'main');
  const client: pg.PoolClient = await face.connect();
  await client.query('BEGIN');
  await client.query(`INSERT INTO ${name} VALUES (2, 'face')`);
  await client.query('SELECT 1/0').catch(() => undefined);
  const viaFace = await t.throwsAsync(client.query('COMMIT'));
  t.is((viaFace as { code?: string }).code, 'TRANSACTION_ROLLED_BACK');
  client.release();
  t.is(await count(), 0);
});

test("a query cut off by removePool's drain timeout rejects with CONNECTION_REVOKED, not a bare driver error", async (t) => {
  const db = newDb(t, { main: { max: 1, min: 0 } });
  const running = db.query('main', 'SELECT pg_sleep(5)');
  t.true(await eventually(() => db.getPoolStatus('main').active === 1));
  const removal = db.removePool('main', { drainTimeoutMs: 100 });
  const err = await t.throwsAsync(running);
  t.is((err as { code?: string }).code, 'CONNECTION_REVOKED');
  t.true(err instanceof DbPoolError);
  await removal;
});

test('non-string SQL and non-array values get INVALID_QUERY and send nothing', async (t) => {
  const db = newDb(t, { main: { max: 1, min: 0 } });
  for (const bad of [null, undefined, 42, {}, { text: 7 }, [], () => 'SELECT 1']) {
    const err = await t.throwsAsync(db.query('main', bad as never));
    t.is((err as { code?: string }).code, 'INVALID_QUERY', `for ${String(bad)}`);
  }
  const badValues = await t.throwsAsync(db.query('main', 'SELECT $1::int', 'x' as never));
  t.is((badValues as { code?: string }).code, 'INVALID_QUERY');
  const face = pgPool(db, 'main');
  const viaFace = await t.throwsAsync(face.query(null as never));
  t.is((viaFace as { code?: string }).code, 'INVALID_QUERY');
  t.is(db.getDetailedMetrics('main').totals.queries, 0, 'nothing was sent');
});
