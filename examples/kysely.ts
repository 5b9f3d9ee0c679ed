/**
 * Kysely on a db-pool-otel pool through its `pg.Pool` face: queries, a transaction and a streamed
 * result, with every connection lent by the pool and every statement published on the pool's
 * channels (printed below; `DbPoolInstrumentation` turns the same events into OpenTelemetry spans
 * and metrics).
 *
 *   DATABASE_URL=postgres://... npx tsx examples/kysely.ts
 *   node scripts/with-postgres.mjs -- tsx examples/kysely.ts     # on an embedded PostgreSQL
 */
import { startTracing } from './support/print-spans.js';
import { Kysely, PostgresDialect, sql, type Generated, type PostgresCursorConstructor } from 'kysely';
import { createRequire } from 'node:module';
import { DatabasePool, pgPool } from '../src/index.js'; // from the package: 'db-pool-otel'

const url = process.env.DATABASE_URL;
if (!url) {
  console.error('Set DATABASE_URL, or run: node scripts/with-postgres.mjs -- tsx examples/kysely.ts');
  process.exit(1);
}

startTracing();

// pg-cursor ships without type declarations; Kysely describes what it needs from it.
const Cursor = createRequire(import.meta.url)('pg-cursor') as PostgresCursorConstructor;

interface Account {
  id: Generated<number>;
  owner: string;
  balance: number;
}

const db = new DatabasePool({ pools: { main: { connection: { connectionString: url }, max: 5 } } });
const schema = `kysely_example_${process.pid}`;
const accounts = `${schema}.accounts`;
const kysely = new Kysely<Record<string, Account>>({
  dialect: new PostgresDialect({ pool: pgPool(db, 'main'), cursor: Cursor }),
});

try {
  await kysely.schema.createSchema(schema).execute();
  await kysely.schema
    .createTable(accounts)
    .addColumn('id', 'serial', (c) => c.primaryKey())
    .addColumn('owner', 'text', (c) => c.notNull())
    .addColumn('balance', 'integer', (c) => c.notNull().check(sql`balance >= 0`))
    .execute();
  await kysely
    .insertInto(accounts)
    .values([
      { owner: 'ada', balance: 100 },
      { owner: 'alan', balance: 50 },
    ])
    .execute();

  // A transfer: both updates or neither.
  const transfer = (from: string, to: string, amount: number) =>
    kysely.transaction().execute(async (trx) => {
      await trx
        .updateTable(accounts)
        .set({ balance: sql`balance - ${amount}` })
        .where('owner', '=', from)
        .execute();
      await trx
        .updateTable(accounts)
        .set({ balance: sql`balance + ${amount}` })
        .where('owner', '=', to)
        .execute();
    });
  await transfer('ada', 'alan', 30);
  await transfer('alan', 'ada', 1_000).catch((err: Error) => console.log('transfer refused and rolled back:', err.message));

  console.log('balances:', await kysely.selectFrom(accounts).select(['owner', 'balance']).orderBy('owner').execute());

  let streamed = 0;
  for await (const row of kysely.selectFrom(accounts).selectAll().stream(1)) {
    streamed++;
    console.log('streamed row:', row);
  }
  console.log(`streamed ${streamed} rows; pool:`, db.getPoolStatus('main'));
} finally {
  await sql`DROP SCHEMA IF EXISTS ${sql.id(schema)} CASCADE`.execute(kysely);
  await kysely.destroy(); // ends the face only; the pool is the DatabasePool's
  await db.close();
}
