/** Drizzle 0.45 (node-postgres driver) on the `pg.Pool` face. */
import test, { type ExecutionContext } from 'ava';
import { asc, eq, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { integer, pgSchema, text } from 'drizzle-orm/pg-core';
import { pgPool } from '../../src/adapters/pg-pool.js';
import { recordChannels, tempSchema } from '../support/adapter-helpers.js';
import { newDb, uniqueName } from '../support/helpers.js';

async function setup(t: ExecutionContext) {
  const schema = await tempSchema(t, 'drizzle');
  const poolId = uniqueName('drizzle');
  const db = newDb(t, { [poolId]: { max: 3, min: 0 } });
  const face = pgPool(db, poolId);
  const orm = drizzle({ client: face });
  const s = pgSchema(schema);
  const people = s.table('people', {
    id: integer('id').primaryKey(),
    name: text('name').notNull(),
  });
  await orm.execute(sql.raw(`create table "${schema}".people (id integer primary key, name text not null)`));
  return { db, poolId, orm, people, face, schema };
}

test('select and insert', async (t) => {
  const { orm, people } = await setup(t);
  const inserted = await orm
    .insert(people)
    .values([
      { id: 1, name: 'ada' },
      { id: 2, name: 'alan' },
    ])
    .returning();
  t.is(inserted.length, 2);
  t.deepEqual(await orm.select().from(people).orderBy(asc(people.id)), [
    { id: 1, name: 'ada' },
    { id: 2, name: 'alan' },
  ]);
  t.deepEqual(await orm.select({ name: people.name }).from(people).where(eq(people.id, 2)), [{ name: 'alan' }]);
});

test('a transaction commits; rollback() and a throw both remove their rows for real', async (t) => {
  const { db, poolId, orm, people, face, schema } = await setup(t);
  const rec = recordChannels(t, poolId);
  await orm.transaction(async (tx) => {
    await tx.insert(people).values({ id: 1, name: 'kept' });
  });
  await t.throwsAsync(
    orm.transaction(async (tx) => {
      await tx.insert(people).values({ id: 2, name: 'rolled back' });
      tx.rollback();
    }),
  );
  await t.throwsAsync(
    orm.transaction(async (tx) => {
      await tx.insert(people).values({ id: 3, name: 'thrown away' });
      throw new Error('nope');
    }),
    { message: 'nope' },
  );
  t.deepEqual(await orm.select({ id: people.id }).from(people), [{ id: 1 }]);
  const { rows } = await db.query<{ n: number }>(poolId, `select count(*)::int as n from "${schema}".people`);
  t.is(rows[0]!.n, 1, 'seen from outside Drizzle too');
  // Drizzle took our face for a pool: each transaction ran on one loan (BEGIN ... ROLLBACK on the same connection).
  const byLoan = new Map<number, string[]>();
  for (const q of rec.queries) byLoan.set(q.loanId, [...(byLoan.get(q.loanId) ?? []), q.text]);
  const rolledBack = [...byLoan.values()].filter((texts) => texts[0] === 'begin' && texts.at(-1) === 'rollback');
  t.is(rolledBack.length, 2);
  t.true(rolledBack.every((texts) => texts.some((x) => x.startsWith('insert into'))));
  t.false(face.ended);
});

test('Drizzle queries publish acquire and query events (with rowMode array passed through)', async (t) => {
  const { poolId, orm, people } = await setup(t);
  const rec = recordChannels(t, poolId);
  await orm.insert(people).values({ id: 5, name: 'e' });
  const rows = await orm.select({ id: people.id, name: people.name }).from(people);
  t.deepEqual(rows, [{ id: 5, name: 'e' }]);
  t.true(rec.acquires.length >= 2);
  t.true(rec.queriesEnded.some((q) => q.text.startsWith('select') && q.rowCount === 1 && q.command === 'SELECT'));
  t.true(rec.queriesEnded.some((q) => q.text.startsWith('insert into') && q.valuesCount === 2));
});
