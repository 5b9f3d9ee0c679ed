/** Kysely 0.28 on the `pg.Pool` face. */
import test, { type ExecutionContext } from 'ava';
import { Kysely, PostgresDialect, sql, type PostgresCursorConstructor, type PostgresDialectConfig } from 'kysely';
import { createRequire } from 'node:module';
import pg from 'pg';
import { pgPool } from '../../src/adapters/pg-pool.js';
import { recordChannels, tempSchema } from '../support/adapter-helpers.js';
import { databaseUrl, eventually, newDb, uniqueName } from '../support/helpers.js';

const require = createRequire(import.meta.url);
const Cursor = require('pg-cursor') as PostgresCursorConstructor;

interface Person {
  id: number;
  name: string;
}
type Schema = Record<string, Person>;

async function setup(t: ExecutionContext, max = 3, onCreateConnection?: () => void) {
  const schema = await tempSchema(t, 'kysely');
  const poolId = uniqueName('kysely');
  const db = newDb(t, { [poolId]: { max, min: 0 } });
  const kysely = new Kysely<Schema>({
    dialect: new PostgresDialect({
      pool: pgPool(db, poolId),
      cursor: Cursor,
      onCreateConnection: async () => onCreateConnection?.(),
    }),
  });
  t.teardown(() => kysely.destroy());
  const table = `${schema}.person`;
  await kysely.schema
    .createTable(table)
    .addColumn('id', 'integer', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .execute();
  return { db, poolId, kysely, table };
}

test('select, insert and update', async (t) => {
  const { kysely, table } = await setup(t);
  await kysely
    .insertInto(table)
    .values([
      { id: 1, name: 'ada' },
      { id: 2, name: 'alan' },
    ])
    .execute();
  const rows = await kysely.selectFrom(table).select(['id', 'name']).where('id', '>', 0).orderBy('id').execute();
  t.deepEqual(rows, [
    { id: 1, name: 'ada' },
    { id: 2, name: 'alan' },
  ]);
  const updated = await kysely.updateTable(table).set({ name: 'grace' }).where('id', '=', 2).executeTakeFirst();
  t.is(updated.numUpdatedRows, 1n);
  const { rows: raw } = await sql<{ n: number }>`select count(*)::int as n from ${sql.table(table)}`.execute(kysely);
  t.is(raw[0]!.n, 2);
});

test('a transaction commits; a throwing transaction rolls back and its row is really gone', async (t) => {
  const { db, poolId, kysely, table } = await setup(t);
  await kysely.transaction().execute(async (trx) => {
    await trx.insertInto(table).values({ id: 1, name: 'kept' }).execute();
  });
  await t.throwsAsync(
    kysely.transaction().execute(async (trx) => {
      await trx.insertInto(table).values({ id: 2, name: 'dropped' }).execute();
      throw new Error('roll it back');
    }),
    { message: 'roll it back' },
  );
  const names = (await kysely.selectFrom(table).select('name').orderBy('id').execute()).map((r) => r.name);
  t.deepEqual(names, ['kept']);
  const { rows } = await db.query<{ n: number }>(poolId, `select count(*)::int as n from ${table} where id = 2`);
  t.is(rows[0]!.n, 0, 'seen from outside Kysely too');
});

test('streaming with a cursor', async (t) => {
  const { db, poolId, kysely, table } = await setup(t);
  const rec = recordChannels(t, poolId);
  await sql`insert into ${sql.table(table)} select n, 'p' || n from generate_series(1, 1000) n`.execute(kysely);
  let count = 0;
  let last = 0;
  for await (const row of kysely.selectFrom(table).select(['id']).orderBy('id').stream(100)) {
    count++;
    last = row.id;
  }
  t.is(count, 1000);
  t.is(last, 1000);
  // The query-end event can follow the stream's last row.
  t.true(await eventually(() => rec.queriesEnded.some((q) => q.text.startsWith('select "id" from'))), "the stream's query ended");
  const traced = rec.queriesEnded.find((q) => q.text.startsWith('select "id" from'));
  t.like(traced, { rowCount: 1000, command: 'SELECT' });
  t.true(await eventually(() => db.getPoolStatus(poolId).active === 0));
});

test('onCreateConnection runs once per physical connection (same client object on every loan)', async (t) => {
  let created = 0;
  const { db, poolId, kysely, table } = await setup(t, 2, () => created++);
  const rec = recordChannels(t, poolId);
  await Promise.all(Array.from({ length: 30 }, (_, i) => kysely.selectFrom(table).select('id').where('id', '=', i).execute()));
  const connections = new Set(rec.acquires.map((a) => a.connectionId));
  t.is(rec.acquires.length, 30);
  t.true(created >= connections.size, 'every connection Kysely used was set up');
  t.true(created <= db.getPoolStatus(poolId).total, 'once per connection, not per loan');
});

test('Kysely queries publish acquire and query events; destroy() leaves the pool open', async (t) => {
  const { db, poolId, kysely, table } = await setup(t);
  const rec = recordChannels(t, poolId);
  await kysely.insertInto(table).values({ id: 9, name: 'x' }).execute();
  await kysely.transaction().execute(async (trx) => trx.selectFrom(table).selectAll().execute());
  const texts = rec.queries.map((q) => q.text);
  t.true(texts.some((x) => x.startsWith('insert into')));
  t.true(texts.includes('begin') && texts.includes('commit'));
  t.true(rec.acquires.length >= 2);
  await kysely.destroy();
  t.false(db.getPoolStatus(poolId).closed);
  t.is((await db.query<{ ok: number }>(poolId, 'select 1 as ok')).rows[0]!.ok, 1);
});

/**
 * Statement-level session state, the way Kysely code uses it without a transaction: a temporary
 * table made by one statement, filled and read by the next ones. With one shared pool and nothing
 * else running, each statement gets the connection the previous one released.
 */
async function temporaryTables(pool: PostgresDialectConfig['pool']): Promise<number[]> {
  const kysely = new Kysely<Record<string, { n: number }>>({ dialect: new PostgresDialect({ pool }) });
  try {
    // Three connections open and idle, as after a burst.
    await Promise.all([1, 2, 3].map(() => sql`select pg_sleep(0.05)`.execute(kysely)));
    const table = uniqueName('tmp_kysely');
    await sql`create temporary table ${sql.table(table)} (n int)`.execute(kysely);
    await kysely
      .insertInto(table)
      .values([{ n: 1 }, { n: 2 }])
      .execute();
    await sql`insert into ${sql.table(table)} values (3)`.execute(kysely);
    const rows = await kysely.selectFrom(table).select('n').orderBy('n').execute();
    await sql`drop table ${sql.table(table)}`.execute(kysely);
    return rows.map((r) => r.n);
  } finally {
    await kysely.destroy();
  }
}

test('temporary tables across statements: one shared db.pgPool behaves as one shared pg.Pool', async (t) => {
  const reference = await temporaryTables(new pg.Pool({ connectionString: databaseUrl(), max: 3 }));
  t.deepEqual(reference, [1, 2, 3], 'pg.Pool itself');
  const poolId = uniqueName('kysely');
  const db = newDb(t, { [poolId]: { max: 3, min: 0 } });
  t.deepEqual(await temporaryTables(db.pgPool(poolId)), reference);
  t.is(db.getPoolStatus(poolId).total, 3, 'with three connections open');
});
