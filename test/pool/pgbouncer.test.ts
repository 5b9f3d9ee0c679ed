import test from 'ava';
import { DatabasePool } from '../../src/index.js';
import { databaseUrl, uniqueName } from '../support/helpers.js';
import { startPgBouncer } from '../support/pgbouncer.js';
import { withTools } from '../support/prometheus-tools.js';

withTools(test, ['pgbouncer'])('works through PgBouncer in transaction mode: concurrency, transactions, named prepared statements', async (t) => {
  const bouncer = await startPgBouncer(databaseUrl(), 2);
  t.teardown(() => bouncer.stop());
  const db = new DatabasePool({
    pools: { pgb: { connection: { connectionString: bouncer.url }, max: 10, min: 0, transactionPooling: true } },
    logger: null,
  });
  t.teardown(() => db.close());

  // 10 client connections multiplexed over 2 server connections.
  const rows = await Promise.all(Array.from({ length: 100 }, (_, i) => db.query<{ n: number }>('pgb', 'SELECT $1::int AS n', [i])));
  t.deepEqual(
    rows.map((r) => r.rows[0]!.n),
    Array.from({ length: 100 }, (_, i) => i),
  );

  // Named statements: each client connection would otherwise believe it prepared "get_n" on a server
  // connection it may not reach next time ("prepared statement does not exist").
  const named = await Promise.allSettled(
    Array.from({ length: 200 }, (_, i) => db.query<{ n: number }>('pgb', { name: 'get_n', text: 'SELECT $1::int + 0 AS n', values: [i] })),
  );
  const failures = named.filter((r) => r.status === 'rejected');
  t.is(
    failures.length,
    0,
    failures
      .map((f) => String((f as PromiseRejectedResult).reason))
      .slice(0, 2)
      .join('; '),
  );

  // A transaction stays on one server connection for its duration.
  const table = uniqueName('pgb');
  await db.query('pgb', `CREATE TABLE ${table} (id int)`);
  t.teardown(async () => {
    await db.query('pgb', `DROP TABLE IF EXISTS ${table}`).catch(() => undefined);
  });
  await Promise.all(
    Array.from({ length: 10 }, (_, i) =>
      db.transaction('pgb', async (tx) => {
        await tx.query(`INSERT INTO ${table} VALUES ($1)`, [i]);
        await tx.query('SELECT pg_sleep(0.01)');
      }),
    ),
  );
  await t.throwsAsync(
    db.transaction('pgb', async (tx) => {
      await tx.query(`INSERT INTO ${table} VALUES (99)`);
      throw new Error('roll back');
    }),
    { message: 'roll back' },
  );
  const count = await db.query<{ n: string }>('pgb', `SELECT count(*) AS n FROM ${table}`);
  t.is(Number(count.rows[0]!.n), 10);
  t.is(db.getMetrics('pgb').errorRate, 0);
});
