/** Our spans and metrics for Kysely and Drizzle queries through the `pg.Pool` face. */
import test from 'ava';
import { sql as dsql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { integer, pgSchema, text } from 'drizzle-orm/pg-core';
import { Kysely, PostgresDialect, sql, type PostgresCursorConstructor } from 'kysely';
import { createRequire } from 'node:module';
import { pgPool } from '../../src/adapters/pg-pool.js';
import { tempSchema } from '../support/adapter-helpers.js';
import { newDb, uniqueName } from '../support/helpers.js';
import { parentId, setupOtel, valueOf } from '../support/instrumentation-helpers.js';

const Cursor = createRequire(import.meta.url)('pg-cursor') as PostgresCursorConstructor;

test.serial('Kysely: query and stream spans under the caller, operation-duration and wait-time metrics', async (t) => {
  const otel = setupOtel(t);
  const schema = await tempSchema(t, 'kotel');
  const poolId = uniqueName('kyselyotel');
  const db = newDb(t, { [poolId]: { max: 2, min: 0 } });
  const kysely = new Kysely<Record<string, { id: number }>>({ dialect: new PostgresDialect({ pool: pgPool(db, poolId), cursor: Cursor }) });
  t.teardown(() => kysely.destroy());
  const table = `${schema}.nums`;
  await sql`create table ${sql.table(table)} as select generate_series(1, 50) as id`.execute(kysely);
  otel.exporter.reset();

  const { parent } = await otel.inSpan('request', async () => {
    await kysely.selectFrom(table).select('id').where('id', '<', 10).execute();
    let n = 0;
    for await (const row of kysely.selectFrom(table).select('id').stream(20)) n += row.id > 0 ? 1 : 0;
    return n;
  });
  const ours = otel.spans(poolId).filter((s) => s.attributes['db.operation.name'] === 'SELECT');
  t.is(ours.length, 2, ours.map((s) => s.name).join(', '));
  t.true(ours.every((s) => parentId(s) === parent.spanContext().spanId));
  t.deepEqual(ours.map((s) => s.attributes['db.response.returned_rows']).sort(), [50, 9].sort());
  t.true(ours.every((s) => s.attributes['db.collection.name'] === table));
  const metrics = await otel.metrics();
  const pool = { 'db.client.connection.pool.name': poolId };
  t.is(valueOf(metrics.get('db.client.operation.duration'), { ...pool, 'db.operation.name': 'SELECT' }), 2);
  t.true(valueOf(metrics.get('db.client.connection.wait_time'), pool) >= 2);
});

test.serial('Drizzle: a rolled-back transaction is one loan, BEGIN to ROLLBACK, under the caller', async (t) => {
  const otel = setupOtel(t);
  const schema = await tempSchema(t, 'dotel');
  const poolId = uniqueName('drizzleotel');
  const db = newDb(t, { [poolId]: { max: 3, min: 0 } });
  const orm = drizzle({ client: pgPool(db, poolId) });
  const items = pgSchema(schema).table('items', { id: integer('id').primaryKey(), name: text('name') });
  await orm.execute(dsql.raw(`create table "${schema}".items (id integer primary key, name text)`));
  otel.exporter.reset();

  const { parent } = await otel.inSpan('request', async () => {
    await orm
      .transaction(async (tx) => {
        await tx.insert(items).values({ id: 1, name: 'x' });
        tx.rollback();
      })
      .catch(() => {});
  });
  const ours = otel.spans(poolId).filter((s) => s.kind === 2); // CLIENT: the statements
  t.deepEqual(
    ours.map((s) => String(s.attributes['db.operation.name'])),
    ['BEGIN', 'INSERT', 'ROLLBACK'],
  );
  t.is(new Set(ours.map((s) => s.attributes['db_pool.connection.id'])).size, 1, 'one connection');
  t.true(ours.every((s) => parentId(s) === parent.spanContext().spanId));
  // One loan: one acquire, warm (no span of its own), its wait on the first statement only.
  t.is(otel.spans(poolId).filter((s) => s.name === `acquire ${poolId}`).length, 0);
  t.deepEqual(
    ours.map((s) => typeof s.attributes['db_pool.acquire.wait_ms']),
    ['number', 'undefined', 'undefined'],
    'one loan',
  );
  t.is((await db.query<{ n: number }>(poolId, `select count(*)::int as n from "${schema}".items`)).rows[0]!.n, 0);
});
