/**
 * Drizzle on a db-pool-otel pool through its `pg.Pool` face: queries and transactions (Drizzle
 * sees a pool, so each transaction runs on one lent connection), with every statement published on
 * the pool's channels (printed below; `DbPoolInstrumentation` turns the same events into
 * OpenTelemetry spans and metrics).
 *
 *   DATABASE_URL=postgres://... npx tsx examples/drizzle.ts
 *   node scripts/with-postgres.mjs -- tsx examples/drizzle.ts     # on an embedded PostgreSQL
 */
import { startTracing } from './support/print-spans.js';
import { asc, eq, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { integer, pgSchema, serial, text } from 'drizzle-orm/pg-core';
import { DatabasePool, pgPool } from '../src/index.js'; // from the package: 'db-pool-otel'

const url = process.env.DATABASE_URL;
if (!url) {
  console.error('Set DATABASE_URL, or run: node scripts/with-postgres.mjs -- tsx examples/drizzle.ts');
  process.exit(1);
}

startTracing();

const db = new DatabasePool({ pools: { main: { connection: { connectionString: url }, max: 5 } } });
const schemaName = `drizzle_example_${process.pid}`;
const accounts = pgSchema(schemaName).table('accounts', {
  id: serial('id').primaryKey(),
  owner: text('owner').notNull(),
  balance: integer('balance').notNull(),
});
const orm = drizzle({ client: pgPool(db, 'main') });

try {
  await orm.execute(sql.raw(`CREATE SCHEMA ${schemaName}`));
  await orm.execute(sql.raw(`CREATE TABLE ${schemaName}.accounts (id serial PRIMARY KEY, owner text NOT NULL, balance integer NOT NULL CHECK (balance >= 0))`));
  await orm.insert(accounts).values([
    { owner: 'ada', balance: 100 },
    { owner: 'alan', balance: 50 },
  ]);

  // A transfer: both updates or neither.
  const transfer = (from: string, to: string, amount: number) =>
    orm.transaction(async (tx) => {
      await tx
        .update(accounts)
        .set({ balance: sql`${accounts.balance} - ${amount}` })
        .where(eq(accounts.owner, from));
      await tx
        .update(accounts)
        .set({ balance: sql`${accounts.balance} + ${amount}` })
        .where(eq(accounts.owner, to));
    });
  await transfer('ada', 'alan', 30);
  await transfer('alan', 'ada', 1_000).catch((err: Error) =>
    console.log('transfer refused and rolled back:', (err.cause as Error | undefined)?.message ?? err.message),
  );

  console.log('balances:', await orm.select({ owner: accounts.owner, balance: accounts.balance }).from(accounts).orderBy(asc(accounts.owner)));
  console.log('pool:', db.getPoolStatus('main'));
} finally {
  await orm.execute(sql.raw(`DROP SCHEMA IF EXISTS ${schemaName} CASCADE`));
  await db.close();
}
